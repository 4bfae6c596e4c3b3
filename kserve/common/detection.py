"""Faster R-CNN pieces (Ren et al. 2015) that export to plain ONNX: anchors, box coding,
IoU, a region proposal network, matrix NMS for a fixed proposal count, and RoI Align
written with ``grid_sample`` (torchvision's ``roi_align`` needs torchvision, whose wheels
pin another torch). Boxes are (x0, y0, x1, y1) as fractions of the image throughout, so the
same weights serve any input size."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

RPN_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
ROI_WEIGHTS = (10.0, 10.0, 5.0, 5.0)   # torchvision's box-head coder weights
_MAX_LOG_SCALE = math.log(1000.0 / 16)


def anchors(h: int, w: int, sizes: tuple[float, ...], ratios: tuple[float, ...]) -> torch.Tensor:
    """[h*w*A, 4] anchors centred on each feature cell; ``sizes`` are square roots of the
    area as fractions of the image, ``ratios`` height/width. Order: cell-major, then anchor."""
    shapes = torch.tensor([(s / math.sqrt(r), s * math.sqrt(r)) for s in sizes for r in ratios])  # [A, (w, h)]
    cy = (torch.arange(h, dtype=torch.float32) + 0.5) / h
    cx = (torch.arange(w, dtype=torch.float32) + 0.5) / w
    centres = torch.stack(torch.meshgrid(cx, cy, indexing="xy"), -1).reshape(-1, 1, 2)                # [hw, 1, (x, y)]
    half = shapes.unsqueeze(0) / 2
    return torch.cat([centres - half, centres + half], -1).reshape(-1, 4)


def _centre_size(b: torch.Tensor):
    w, h = b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]
    return b[..., 0] + 0.5 * w, b[..., 1] + 0.5 * h, w, h


def encode(reference: torch.Tensor, target: torch.Tensor, weights=RPN_WEIGHTS) -> torch.Tensor:
    """The deltas (dx, dy, dw, dh) that take ``reference`` boxes to ``target`` boxes."""
    rx, ry, rw, rh = _centre_size(reference)
    tx, ty, tw, th = _centre_size(target)
    wx, wy, ww, wh = weights
    return torch.stack([wx * (tx - rx) / rw, wy * (ty - ry) / rh,
                        ww * torch.log(tw / rw), wh * torch.log(th / rh)], -1)


def decode(reference: torch.Tensor, deltas: torch.Tensor, weights=RPN_WEIGHTS) -> torch.Tensor:
    """Boxes from ``reference`` boxes moved by ``deltas``, clipped to the image."""
    rx, ry, rw, rh = _centre_size(reference)
    wx, wy, ww, wh = weights
    cx = deltas[..., 0] / wx * rw + rx
    cy = deltas[..., 1] / wy * rh + ry
    w = torch.exp((deltas[..., 2] / ww).clamp(max=_MAX_LOG_SCALE)) * rw
    h = torch.exp((deltas[..., 3] / wh).clamp(max=_MAX_LOG_SCALE)) * rh
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1).clamp(0, 1)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU of [..., N, 4] and [..., M, 4] -> [..., N, M]."""
    area_a = ((a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])).unsqueeze(-1)
    area_b = ((b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])).unsqueeze(-2)
    lo = torch.maximum(a[..., :, None, :2], b[..., None, :, :2])
    hi = torch.minimum(a[..., :, None, 2:], b[..., None, :, 2:])
    inter = (hi - lo).clamp(min=0).prod(-1)
    return inter / (area_a + area_b - inter + 1e-9)


def matrix_nms(boxes: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Fast NMS (Bolya et al., YOLACT 2019) for boxes sorted by score, [B, K, 4] -> kept [B, K]:
    a box is dropped when a higher-scored box overlaps it more than ``iou_threshold``. One
    matrix operation and a fixed count: it exports and batches where sequential NMS cannot."""
    k = boxes.shape[1]
    earlier = torch.ones(k, k).triu(1)                                    # [i, j]: i ranks above j
    return (box_iou(boxes, boxes) * earlier).amax(1) <= iou_threshold


def gather_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x [B, N, ...] rows picked by index [B, K] -> [B, K, ...]."""
    shape = index.shape + x.shape[2:]
    flat = index.reshape(index.shape[0], -1, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:])
    return torch.gather(x, 1, flat).reshape(shape)


def roi_align(features: torch.Tensor, boxes: torch.Tensor, size: int = 7, sampling: int = 2) -> torch.Tensor:
    """RoI Align (He et al., Mask R-CNN 2017; aligned, ``sampling`` x ``sampling`` bilinear
    samples per bin, averaged): features [B, C, H, W], boxes [B, K, 4] -> [B, K, C, size, size]."""
    b, c = features.shape[:2]
    k = boxes.shape[1]
    n = size * sampling
    steps = (torch.arange(n, dtype=features.dtype) + 0.5) / n                # sample positions inside a box, 0..1
    x = boxes[..., 0:1] + steps * (boxes[..., 2:3] - boxes[..., 0:1])      # [B, K, n]
    y = boxes[..., 1:2] + steps * (boxes[..., 3:4] - boxes[..., 1:2])
    grid = torch.stack([x.unsqueeze(2).expand(-1, -1, n, -1), y.unsqueeze(3).expand(-1, -1, -1, n)], -1)
    grid = grid.reshape(b, k * n, n, 2) * 2 - 1                            # grid_sample's -1..1, pixel edges
    sampled = F.grid_sample(features, grid, mode="bilinear", padding_mode="border", align_corners=False)
    sampled = sampled.reshape(b, c, k, size, sampling, size, sampling).mean((4, 6))
    return sampled.permute(0, 2, 1, 3, 4)


class RegionProposalNetwork(nn.Module):
    """A 3x3 conv over the feature map, then per anchor an objectness logit and box deltas;
    proposals are the ``pre_nms`` best anchors moved by their deltas, thinned by matrix NMS
    to the ``post_nms`` best."""

    def __init__(self, channels: int, sizes=(0.1, 0.2, 0.4), ratios=(0.5, 1.0, 2.0),
                 pre_nms: int = 300, post_nms: int = 48, iou_threshold: float = 0.7):
        super().__init__()
        self.sizes, self.ratios = tuple(sizes), tuple(ratios)
        a = len(self.sizes) * len(self.ratios)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.objectness = nn.Conv2d(channels, a, 1)
        self.deltas = nn.Conv2d(channels, 4 * a, 1)
        self.pre_nms, self.post_nms, self.iou_threshold = pre_nms, post_nms, iou_threshold

    def forward(self, features: torch.Tensor):
        """-> anchors [N, 4], objectness logits [B, N], deltas [B, N, 4] (N = H*W*A)."""
        b, _, h, w = features.shape
        t = torch.relu(self.conv(features))
        logits = self.objectness(t).permute(0, 2, 3, 1).reshape(b, -1)
        deltas = self.deltas(t).reshape(b, -1, 4, h, w).permute(0, 3, 4, 1, 2).reshape(b, -1, 4)
        return anchors(h, w, self.sizes, self.ratios), logits, deltas

    def proposals(self, anchor_boxes, logits, deltas) -> torch.Tensor:
        """[B, post_nms, 4] proposals, best first (no gradient flows to the RPN through them)."""
        k = min(self.pre_nms, logits.shape[1])
        _, index = logits.detach().topk(k, 1)
        boxes = decode(anchor_boxes[index], gather_rows(deltas.detach(), index))
        # kept boxes first, each group in score order: integer keys, so no ties for a runtime
        # to break its own way (dropped boxes fill the places left when fewer than post_nms stay)
        rank = torch.arange(k, 0, -1, dtype=boxes.dtype)
        key = matrix_nms(boxes, self.iou_threshold).to(boxes.dtype) * k + rank
        _, keep = key.topk(min(self.post_nms, k), 1)
        return gather_rows(boxes, keep)


class BoxHead(nn.Module):
    """Faster R-CNN's second stage: RoI-aligned features -> two fully connected layers (the
    region feature) -> class scores (background + regions) and class-specific box deltas."""

    def __init__(self, channels: int, classes: int, hidden: int = 256, pool: int = 7):
        super().__init__()
        self.pool = pool
        self.fc = nn.Sequential(nn.Flatten(2), nn.Linear(channels * pool * pool, hidden), nn.ReLU(),
                                nn.Linear(hidden, hidden), nn.ReLU())
        self.cls = nn.Linear(hidden, classes + 1)
        self.box = nn.Linear(hidden, 4 * classes)
        self.classes = classes

    def forward(self, features: torch.Tensor, boxes: torch.Tensor):
        """-> region features [B, K, hidden], class logits [B, K, classes+1], deltas [B, K, classes, 4]."""
        feat = self.fc(roi_align(features, boxes, self.pool))
        return feat, self.cls(feat), self.box(feat).reshape(*feat.shape[:2], self.classes, 4)
