"""MMBT at demo size: ResNet trunk -> pooled 4x4 grid = 16 image tokens, projected into the
text embedding space; [CLS] + image tokens (segment 0) + indication tokens (segment 1) go
through a BERT-style encoder; [CLS] -> one sigmoid per label."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..common.layers import BertEncoder, ResNet
from ..common.synthetic import CXR_LABELS

TEXT_LEN = 24
IMAGE_TOKENS = 4  # per side


class ChestXrayMMBT(nn.Module):
    def __init__(self, vocab_size: int, dim: int = 64, width: int = 8, depth: int = 2, heads: int = 4,
                 n_labels: int = len(CXR_LABELS)):
        super().__init__()
        self.cnn = ResNet(in_ch=1, width=width)
        self.img_proj = nn.Linear(self.cnn.out_channels, dim)
        self.tok = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.encoder = BertEncoder(dim, heads, depth, max_len=1 + IMAGE_TOKENS ** 2 + TEXT_LEN)
        self.head = nn.Linear(dim, n_labels)

    def forward(self, image: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        b = image.shape[0]
        feat = self.cnn(image)
        feat = F.avg_pool2d(feat, feat.shape[-1] // IMAGE_TOKENS)  # fixed grid (constant at the served size)
        img = self.img_proj(feat.flatten(2).transpose(1, 2))  # [B, 16, dim]
        x = torch.cat([self.cls.expand(b, -1, -1), img, self.tok(tokens)], 1)
        n_img = 1 + img.shape[1]
        segments = torch.cat([torch.zeros(b, n_img, dtype=torch.long, device=image.device),
                              torch.ones_like(tokens)], 1)
        pad = torch.cat([torch.zeros(b, n_img, dtype=torch.bool, device=image.device), tokens == 0], 1)
        return torch.sigmoid(self.head(self.encoder(x, segments, pad)[:, 0]))
