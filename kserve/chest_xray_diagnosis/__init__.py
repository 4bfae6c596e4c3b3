"""Chest X-ray disease diagnosis: a multimodal bitransformer (MMBT, Kiela et al. 2019) over
ResNet image tokens and BERT-style tokens of the clinical indication; multi-label output."""
