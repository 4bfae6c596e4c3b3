"""Report generator at demo size. Region stage (the second stage of Faster R-CNN for a fixed
region set, no proposal network): a ResNet trunk, one default box per anatomical region
refined by a box-regression head, region features pooled inside each refined box (soft
box masks, exportable RoI pooling). Sentence stage: a GPT-2-style decoder (causal pre-LN
transformer, learned positions, tied output embedding) conditioned by the region feature as
its first token, greedy decoding unrolled to MAX_WORDS inside the graph."""

from __future__ import annotations

import torch
from torch import nn

from ..common.layers import Attention, ResNet

REGIONS = ("right_lung", "left_lung", "heart", "mediastinum", "right_costophrenic_angle", "left_costophrenic_angle")
# default boxes (x0, y0, x1, y1) as fractions of the image
DEFAULT_BOXES = ((0.14, 0.2, 0.46, 0.8), (0.54, 0.2, 0.86, 0.8), (0.38, 0.45, 0.68, 0.82),
                 (0.42, 0.1, 0.58, 0.5), (0.12, 0.65, 0.32, 0.85), (0.68, 0.65, 0.88, 0.85))
MAX_WORDS = 10


class GPTBlock(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        h = self.ln1(x)
        x = x + self.attn(h, h, h, causal=True)
        return x + self.mlp(self.ln2(x))


class ReportGenerator(nn.Module):
    def __init__(self, vocab_size: int, bos: int, dim: int = 64, width: int = 8, depth: int = 2, heads: int = 4):
        super().__init__()
        self.cnn = ResNet(in_ch=1, width=width)
        self.register_buffer("boxes", torch.tensor(DEFAULT_BOXES))
        self.box_delta = nn.Linear(self.cnn.out_channels, len(REGIONS) * 4)
        self.region_proj = nn.Linear(self.cnn.out_channels, dim)
        self.region_emb = nn.Embedding(len(REGIONS), dim)
        self.tok = nn.Embedding(vocab_size, dim)
        self.pos = nn.Embedding(MAX_WORDS + 2, dim)
        self.blocks = nn.ModuleList(GPTBlock(dim, heads) for _ in range(depth))
        self.ln = nn.LayerNorm(dim)
        self.bos = bos

    def regions(self, image):
        feat = self.cnn(image)                                             # [B, C, h, w]
        b, c, h, w = feat.shape
        boxes = (self.boxes + 0.05 * torch.tanh(self.box_delta(feat.mean((2, 3))).view(b, -1, 4))).clamp(0, 1)
        ys = (torch.arange(h, dtype=feat.dtype) + 0.5) / h
        xs = (torch.arange(w, dtype=feat.dtype) + 0.5) / w
        sharp = 40.0                                                       # soft box edges: differentiable
        my = torch.sigmoid(sharp * (ys[None, None] - boxes[..., 1:2])) * torch.sigmoid(sharp * (boxes[..., 3:4] - ys[None, None]))
        mx = torch.sigmoid(sharp * (xs[None, None] - boxes[..., 0:1])) * torch.sigmoid(sharp * (boxes[..., 2:3] - xs[None, None]))
        mask = my.unsqueeze(-1) * mx.unsqueeze(-2)                         # [B, R, h, w]
        pooled = torch.einsum("brhw,bchw->brc", mask, feat) / (mask.sum((2, 3)).unsqueeze(-1) + 1e-6)
        region = self.region_proj(pooled) + self.region_emb.weight         # [B, R, dim]
        return boxes, region

    def logits(self, region, tokens):
        """region [N, dim], tokens [N, L] (starting with BOS) -> next-token logits [N, L+1, V]."""
        x = torch.cat([region.unsqueeze(1), self.tok(tokens)], 1)
        x = x + self.pos(torch.arange(x.shape[1]))
        for block in self.blocks:
            x = block(x)
        return self.ln(x) @ self.tok.weight.t()

    def forward(self, image):
        boxes, region = self.regions(image)
        b, r, d = region.shape
        flat = region.reshape(b * r, d)
        tokens = torch.full((b * r, 1), self.bos, dtype=torch.long)
        probs = []
        for _ in range(MAX_WORDS):                                         # greedy, unrolled in the graph
            p = self.logits(flat, tokens)[:, -1].softmax(-1)
            best, nxt = p.max(-1)
            probs.append(best)
            tokens = torch.cat([tokens, nxt.unsqueeze(1)], 1)
        words = tokens[:, 1:].reshape(b, r, MAX_WORDS)
        word_probs = torch.stack(probs, 1).reshape(b, r, MAX_WORDS)
        return boxes, words, word_probs
