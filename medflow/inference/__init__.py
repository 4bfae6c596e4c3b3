"""Serving the diagnostic models: shared KServe predictor machinery (engines, batching,
weights, v2 checking) and the catalogue of the models under ``kserve/<model>/``."""
