"""PyTorch building blocks shared by the model definitions (ResNet, BERT-style encoder) and
generated training images. Serving never imports this (it needs torch)."""
