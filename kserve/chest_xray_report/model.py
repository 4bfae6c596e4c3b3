"""Report generator at demo size, after region-guided report generation (Tanida et al.,
RGRG 2023). Region stage, Faster R-CNN (Ren et al. 2015): a ResNet trunk to stride 16; a
region proposal network (9 anchors per cell, objectness and box deltas, the 300 best thinned
by matrix NMS to 48 proposals); RoI Align and a two-layer box head that scores every proposal
for each anatomical region (and background) and refines its box per region. For each region
the best-scoring proposal is kept (top-1 per class, as in RGRG): its refined box, its score
and its box-head feature. Sentence stage: a GPT-2-style decoder (causal pre-LN transformer,
learned positions, tied output embedding) conditioned by the region feature as its first
token, greedy decoding unrolled to MAX_WORDS inside the graph, one position per step with
each block's keys and values cached (training runs the whole sentence, causally masked)."""

from __future__ import annotations

import torch
from torch import nn

from ..common.detection import ROI_WEIGHTS, BoxHead, RegionProposalNetwork, decode, gather_rows
from ..common.layers import Attention, ResNet
from ..common.synthetic import CXR_REGIONS as REGIONS

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

    def step(self, x, past=None):
        """One new position x [N, 1, dim] with the cache of the earlier ones (as ``forward``
        on the whole sequence, causal, gives at its last position)."""
        out, cache = self.attn.step(self.ln1(x), past)
        x = x + out
        return x + self.mlp(self.ln2(x)), cache


class ReportGenerator(nn.Module):
    def __init__(self, vocab_size: int, bos: int, dim: int = 64, width: int = 8, depth: int = 2, heads: int = 4,
                 box_features: int = 256):
        super().__init__()
        self.cnn = ResNet(in_ch=1, width=width, layers=(2, 2, 2))            # stride 16
        self.rpn = RegionProposalNetwork(self.cnn.out_channels)
        self.box_head = BoxHead(self.cnn.out_channels, len(REGIONS), box_features)
        self.region_proj = nn.Linear(box_features, dim)
        self.region_emb = nn.Embedding(len(REGIONS), dim)
        self.tok = nn.Embedding(vocab_size, dim)
        self.pos = nn.Embedding(MAX_WORDS + 2, dim)
        self.blocks = nn.ModuleList(GPTBlock(dim, heads) for _ in range(depth))
        self.ln = nn.LayerNorm(dim)
        self.bos = bos

    def detect(self, features):
        """-> per region: box [B, R, 4], detection score [B, R], box-head feature [B, R, F]."""
        proposals = self.rpn.proposals(*self.rpn(features))                  # [B, P, 4]
        feat, logits, deltas = self.box_head(features, proposals)
        log_probs = logits.log_softmax(-1)[..., 1:]                           # [B, P, R] without background
        best_log, best = log_probs.max(1)                                     # top-1 proposal per region (log: no
        scores = best_log.exp()                                               # ties among saturated probabilities)
        r = torch.arange(len(REGIONS))
        chosen_deltas = gather_rows(deltas, best)[:, r, r]                    # [B, R, 4]: region r's deltas
        boxes = decode(gather_rows(proposals, best), chosen_deltas, ROI_WEIGHTS)
        return boxes, scores, gather_rows(feat, best)

    def region_tokens(self, box_features):
        """Box-head features [B, R, F] -> the decoder's region tokens [B, R, dim]."""
        return self.region_proj(box_features) + self.region_emb.weight

    def logits(self, region, tokens):
        """region [N, dim], tokens [N, L] (starting with BOS) -> next-token logits [N, L+1, V]."""
        x = torch.cat([region.unsqueeze(1), self.tok(tokens)], 1)
        x = x + self.pos(torch.arange(x.shape[1]))
        for block in self.blocks:
            x = block(x)
        return self.ln(x) @ self.tok.weight.t()

    def _step(self, x, position: int, caches):
        """Embedding x [N, dim] at ``position`` through the blocks with their key/value caches
        -> next-token logits [N, V] and the caches."""
        x = (x + self.pos.weight[position]).unsqueeze(1)
        new = []
        for block, past in zip(self.blocks, caches):
            x, cache = block.step(x, past)
            new.append(cache)
        return (self.ln(x) @ self.tok.weight.t()).squeeze(1), new

    def forward(self, image):
        boxes, scores, box_features = self.detect(self.cnn(image))
        region = self.region_tokens(box_features)
        b, r, d = region.shape
        _, caches = self._step(region.reshape(b * r, d), 0, [None] * len(self.blocks))
        token = torch.full((b * r,), self.bos, dtype=torch.long)
        words, probs = [], []
        for t in range(MAX_WORDS):                     # greedy, unrolled in the graph, one position per step
            logits, caches = self._step(self.tok(token), t + 1, caches)
            best, token = logits.softmax(-1).max(-1)
            words.append(token)
            probs.append(best)
        words = torch.stack(words, 1).reshape(b, r, MAX_WORDS)
        word_probs = torch.stack(probs, 1).reshape(b, r, MAX_WORDS)
        return boxes, words, word_probs, scores
