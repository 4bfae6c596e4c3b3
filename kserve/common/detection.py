"""Faster R-CNN pieces (Ren et al. 2015) that export to plain ONNX: anchors, box coding,
IoU, a region proposal network, matrix NMS for a fixed proposal count, and RoI Align
written as matrix products (torchvision's ``roi_align`` needs torchvision, whose wheels pin
another torch). Boxes are (x0, y0, x1, y1) as fractions of the image throughout, so the
same weights serve any input size."""

from __future__ import annotations

import math

import torch
from torch import nn

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
    """Pairwise IoU of [..., N, 4] and [..., M, 4] -> [..., N, M] (one coordinate at a time:
    ONNX Runtime broadcasts [N, 1] against [1, M] far faster than [N, 1, 2] against [1, M, 2])."""
    ax0, ay0, ax1, ay1 = a.unbind(-1)
    bx0, by0, bx1, by1 = b.unbind(-1)
    iw = (torch.minimum(ax1.unsqueeze(-1), bx1.unsqueeze(-2)) - torch.maximum(ax0.unsqueeze(-1), bx0.unsqueeze(-2))).clamp(min=0)
    ih = (torch.minimum(ay1.unsqueeze(-1), by1.unsqueeze(-2)) - torch.maximum(ay0.unsqueeze(-1), by0.unsqueeze(-2))).clamp(min=0)
    inter = iw * ih
    area_a = ((ax1 - ax0) * (ay1 - ay0)).unsqueeze(-1)
    area_b = ((bx1 - bx0) * (by1 - by0)).unsqueeze(-2)
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


def _bin_weights(lo: torch.Tensor, hi: torch.Tensor, bins: int, cells: int, sampling: int) -> torch.Tensor:
    """Along one axis: for boxes spanning lo..hi ([B, K], fractions), the weight of each of
    ``cells`` feature cells in each of ``bins`` bins [B, K, bins, cells]: the mean of
    ``sampling`` bilinear samples per bin (a sample between cells shares itself by distance;
    coordinates clamp at the edge cells)."""
    steps = (torch.arange(bins * sampling, dtype=lo.dtype) + 0.5) / (bins * sampling)
    at = ((lo.unsqueeze(-1) + steps * (hi - lo).unsqueeze(-1)) * cells - 0.5).clamp(0, cells - 1)
    weights = torch.relu(1 - (at.unsqueeze(-1) - torch.arange(cells, dtype=lo.dtype)).abs())
    return weights.reshape(*lo.shape, bins, sampling, cells).mean(-2)


def roi_align(features: torch.Tensor, boxes: torch.Tensor, size: int = 7, sampling: int = 2) -> torch.Tensor:
    """RoI Align (He et al., Mask R-CNN 2017; aligned, ``sampling`` x ``sampling`` bilinear
    samples per bin, averaged): features [B, C, H, W], boxes [B, K, 4] -> [B, K, C, size, size].
    Bilinear sampling is separable, so the whole pooling is two matrix products with per-box
    weights along y and x: plain MatMuls for ONNX Runtime and TensorRT (7x faster in ONNX
    Runtime than ``grid_sample``, the same numbers)."""
    h, w = features.shape[2:]
    wy = _bin_weights(boxes[..., 1], boxes[..., 3], size, h, sampling)            # [B, K, size, H]
    wx = _bin_weights(boxes[..., 0], boxes[..., 2], size, w, sampling)            # [B, K, size, W]
    rows = wy.unsqueeze(2) @ features.unsqueeze(1)                                 # [B, K, C, size, W]
    return rows @ wx.unsqueeze(2).transpose(-1, -2)                                # [B, K, C, size, size]


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
