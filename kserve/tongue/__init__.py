"""Tongue diagnosis: ResNet-18 image encoder, BiLSTM over the description, syndrome
attributes, cross-modal multi-head attention; one of six syndromes."""
