"""Reference building blocks at demo sizes: ResNet (He et al. 2016, basic blocks; [2,2,2,2]
is ResNet-18) with a width multiplier, and a BERT-style transformer encoder (token +
position + segment embeddings, pre-LN blocks)."""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (x if self.down is None else self.down(x)))


class ResNet(nn.Module):
    """ResNet trunk: returns the last feature map [B, C, H/32, W/32]. ``width`` 64 is the
    published ResNet-18; the demo uses 8-16 to keep weights under a few MB."""

    def __init__(self, in_ch: int = 1, width: int = 16, layers=(2, 2, 2, 2)):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_ch, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        stages, cin = [], width
        for i, n in enumerate(layers):
            cout = width * 2 ** i
            for j in range(n):
                stages.append(BasicBlock(cin, cout, 2 if j == 0 and i > 0 else 1))
                cin = cout
        self.stages = nn.Sequential(*stages)
        self.out_channels = cin

    def forward(self, x):
        return self.stages(self.stem(x))


class Attention(nn.Module):
    """Multi-head scaled dot-product attention written out (exports to plain ONNX MatMul/Softmax;
    nn.MultiheadAttention's inference fast path has no ONNX export)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))

    def split(self, x, proj):
        """[B, L, dim] -> projected and split into heads [B, heads, L, head_dim]."""
        return proj(x).unflatten(-1, (self.heads, self.head_dim)).transpose(1, 2)

    def step(self, x, past=None):
        """Self-attention of one new position x [B, 1, dim] over the cached keys and values
        of the earlier ones (``past``: (k, v) [B, heads, L, head_dim] or None): a decoder's
        incremental step, no mask needed. -> (output [B, 1, dim], the cache with x added)."""
        q, k, v = self.split(x, self.q), self.split(x, self.k), self.split(x, self.v)
        if past is not None:
            k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)
        out = ((q @ k.transpose(-1, -2) / self.head_dim ** 0.5).softmax(-1) @ v).transpose(1, 2).flatten(2)
        return self.o(out), (k, v)

    def forward(self, query, key, value, pad_mask=None, causal: bool = False):
        b, lq, d = query.shape
        lk = key.shape[1]
        q, k, v = self.split(query, self.q), self.split(key, self.k), self.split(value, self.v)
        scores = q @ k.transpose(-1, -2) / self.head_dim ** 0.5
        if pad_mask is not None:  # True = padding, never attended to
            scores = scores.masked_fill(pad_mask[:, None, None, :], -1e4)
        if causal:
            future = torch.triu(torch.ones(lq, lk, dtype=torch.bool, device=query.device), 1)
            scores = scores.masked_fill(future, -1e4)
        out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, lq, d)
        return self.o(out)


class EncoderBlock(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x, pad_mask=None):
        h = self.ln1(x)
        x = x + self.attn(h, h, h, pad_mask)
        return x + self.mlp(self.ln2(x))


class BertEncoder(nn.Module):
    """BERT-style encoder over a sequence of embeddings with segment ids (MMBT feeds image
    tokens as segment 0 and text tokens as segment 1)."""

    def __init__(self, dim: int, heads: int, depth: int, max_len: int, segments: int = 2):
        super().__init__()
        self.pos = nn.Embedding(max_len, dim)
        self.seg = nn.Embedding(segments, dim)
        self.blocks = nn.ModuleList(EncoderBlock(dim, heads) for _ in range(depth))
        self.ln = nn.LayerNorm(dim)

    def forward(self, x, segments, pad_mask=None):
        positions = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
        x = x + self.pos(positions) + self.seg(segments)
        for block in self.blocks:
            x = block(x, pad_mask)
        return self.ln(x)
