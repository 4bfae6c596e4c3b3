"""The urinalysis MLP: normalised lab values -> four task probabilities (multi-task, sigmoid)."""

from __future__ import annotations

import torch
from torch import nn

from .panel import ANALYTES, TASKS


class UrinalysisMLP(nn.Module):
    def __init__(self, n_in: int = len(ANALYTES), hidden: int = 64, n_tasks: int = len(TASKS), dropout: float = 0.1):
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(n_in, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(dropout),
        )
        self.heads = nn.Linear(hidden, n_tasks)  # one logit per binary task

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.heads(self.body(features)))
