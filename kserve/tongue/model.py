"""Tongue diagnosis network at demo size: ResNet-18 (basic blocks [2,2,2,2], width 8) ->
4x4 image tokens; description tokens -> bidirectional LSTM; each syndrome attribute is a
token (its embedding scaled by the attribute's value); text+attribute tokens and image
tokens attend to each other with multi-head attention; pooled -> syndrome softmax."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..common.layers import Attention, ResNet
from ..common.synthetic import TONGUE_ATTRIBUTES, TONGUE_SYNDROMES

TEXT_LEN = 24
GRID = 4


class TongueNet(nn.Module):
    def __init__(self, vocab_size: int, dim: int = 64, width: int = 8, heads: int = 4):
        super().__init__()
        self.cnn = ResNet(in_ch=3, width=width)
        self.img_proj = nn.Linear(self.cnn.out_channels, dim)
        self.tok = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.lstm = nn.LSTM(dim, dim // 2, batch_first=True, bidirectional=True)
        self.attr = nn.Parameter(torch.randn(len(TONGUE_ATTRIBUTES), dim) * 0.02)
        self.attr_bias = nn.Parameter(torch.zeros(len(TONGUE_ATTRIBUTES), dim))
        self.text_to_image = Attention(dim, heads)
        self.image_to_text = Attention(dim, heads)
        self.ln = nn.LayerNorm(2 * dim)
        self.head = nn.Linear(2 * dim, len(TONGUE_SYNDROMES))

    def forward(self, image, tokens, attributes):
        feat = self.cnn(image)
        feat = F.avg_pool2d(feat, feat.shape[-1] // GRID)
        img = self.img_proj(feat.flatten(2).transpose(1, 2))                 # [B, 16, dim]
        text, _ = self.lstm(self.tok(tokens))                                  # [B, L, dim]
        attrs = attributes.unsqueeze(-1) * self.attr + self.attr_bias          # [B, 8, dim]
        ctx = torch.cat([text, attrs], 1)
        pad = torch.cat([tokens == 0, torch.zeros_like(attributes, dtype=torch.bool)], 1)
        t2i = ctx + self.text_to_image(ctx, img, img)                          # text/attributes look at the image
        i2t = img + self.image_to_text(img, ctx, ctx, pad)                     # the image looks at text/attributes
        keep = (~pad).unsqueeze(-1).float()
        pooled = torch.cat([(t2i * keep).sum(1) / keep.sum(1), i2t.mean(1)], -1)
        return self.head(self.ln(pooled)).softmax(-1)
