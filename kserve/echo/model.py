"""Echo network at demo size: an R3D encoder (3D-convolution ResNet, Tran et al. 2018;
basic 3D blocks, one per stage, width 8) over a 16-frame 112x112 clip -> clip feature;
EF regression head (0-100 %); a graph convolutional head (Kipf & Welling 2017) over a ring
graph of 32 contour points -> (x, y) per point in 0..1 of the frame."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

FRAMES, SIZE, POINTS = 16, 112, 32


class Block3d(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv3d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(cout)
        self.conv2 = nn.Conv3d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm3d(cout)
        self.down = nn.Sequential(nn.Conv3d(cin, cout, 1, stride, bias=False), nn.BatchNorm3d(cout))

    def forward(self, x):
        return torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))) + self.down(x))


def ring_adjacency(n: int) -> np.ndarray:
    """Normalised adjacency D^-1/2 (A + I) D^-1/2 of a closed contour (each point joined to its two neighbours)."""
    a = np.eye(n)
    for i in range(n):
        a[i, (i + 1) % n] = a[(i + 1) % n, i] = 1
    d = 1 / np.sqrt(a.sum(1))
    return (a * d[:, None] * d[None, :]).astype(np.float32)


class GraphConv(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.lin = nn.Linear(cin, cout)

    def forward(self, x, adj):
        return adj @ self.lin(x)


class EchoNet(nn.Module):
    def __init__(self, width: int = 8, dim: int = 64):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv3d(1, width, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False),
                                  nn.BatchNorm3d(width), nn.ReLU())
        chans = [width, width * 2, width * 4, width * 8]
        self.stages = nn.Sequential(*[Block3d(c_in, c_out, 1 if i == 0 else 2)
                                      for i, (c_in, c_out) in enumerate(zip([width] + chans[:-1], chans))])
        self.feat = nn.Linear(chans[-1], dim)
        self.ef = nn.Sequential(nn.ReLU(), nn.Linear(dim, 1))
        self.register_buffer("adj", torch.from_numpy(ring_adjacency(POINTS)))
        self.node = nn.Parameter(torch.randn(POINTS, dim) * 0.1)
        self.gc1, self.gc2, self.gc3 = GraphConv(2 * dim, dim), GraphConv(dim, dim), GraphConv(dim, 2)

    def forward(self, clip):
        f = self.stages(self.stem(clip)).mean((2, 3, 4))
        f = self.feat(f)                                                     # [B, dim]
        ef = torch.sigmoid(self.ef(f)) * 100
        nodes = torch.cat([f.unsqueeze(1).expand(-1, POINTS, -1), self.node.expand(f.shape[0], -1, -1)], -1)
        h = torch.relu(self.gc1(nodes, self.adj))
        h = torch.relu(self.gc2(h, self.adj))
        contour = torch.sigmoid(self.gc3(h, self.adj))                       # [B, POINTS, 2]
        return ef, contour
