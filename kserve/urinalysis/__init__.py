"""Urinalysis kidney-function diagnosis: an MLP over a normalised lab panel, four binary tasks."""
