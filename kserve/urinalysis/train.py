"""Train the urinalysis MLP on generated panels (seconds on a CPU) and write the demo weights:
``weights.pt`` and ``normalisation.json`` (mean and std of log1p-scaled analytes).

    .venv/bin/medflow models train urinalysis
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .panel import NAMES, SKEWED, TASKS, generate, log1p_scale

HERE = Path(__file__).resolve().parent
SEED = 7


def train(out: Path = HERE, n: int = 20000, epochs: int = 15) -> dict:
    import torch
    from torch import nn

    from medflow.inference.torch_tools import seed_everything
    from .model import UrinalysisMLP

    seed_everything(SEED)
    x, y = generate(n, seed=SEED)
    xs = log1p_scale(x)
    mean, std = xs.mean(0), xs.std(0) + 1e-6
    xn = torch.from_numpy((xs - mean) / std)
    yt = torch.from_numpy(y)
    split = int(0.9 * n)
    model = UrinalysisMLP()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    loss_fn = nn.BCELoss()
    gen = torch.Generator().manual_seed(SEED)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(split, generator=gen).split(256):
            opt.zero_grad()
            loss_fn(model(xn[idx]), yt[idx]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        pred = model(xn[split:]) > 0.5
    accuracy = {t: round(float((pred[:, i] == (yt[split:, i] > 0.5)).float().mean()), 4) for i, t in enumerate(TASKS)}
    torch.save(model.state_dict(), out / "weights.pt")
    (out / "normalisation.json").write_text(json.dumps(
        {"analytes": list(NAMES), "log1p": list(SKEWED), "mean": mean.tolist(), "std": std.tolist(),
         "tasks": list(TASKS), "held_out_accuracy": accuracy}, indent=1) + "\n")
    return accuracy


if __name__ == "__main__":
    print(train())
