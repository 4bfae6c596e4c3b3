"""Train the echo network on generated cine clips of a beating ventricle (seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..common.synthetic import echo_clip
from .model import FRAMES, POINTS, SIZE

HERE = Path(__file__).resolve().parent
SEED = 17


def generate(rng, n):
    items = [echo_clip(rng, FRAMES, SIZE, POINTS) for _ in range(n)]
    clips = np.stack([i[0] for i in items])[:, None]
    return clips, np.array([[i[1]] for i in items], np.float32), np.stack([i[2] for i in items])


def train(out: Path = HERE, steps: int = 1200, batch_size: int = 8, time_budget_s: float = 900.0) -> dict:
    """About 7 minutes on 2 idle cores (the shipped weights: 1,200 steps); a clip's EF needs
    the whole beat, so far fewer steps learn nothing (the first demo weights: 120 steps)."""
    import torch

    from medflow.inference.torch_tools import fit, save_state, seed_everything
    from .model import EchoNet

    seed_everything(SEED)
    torch.set_num_threads(2)
    rng = np.random.default_rng(SEED)

    def sample(n):
        clips, ef, contour = generate(rng, n)
        return (torch.from_numpy(clips),), (torch.from_numpy(ef), torch.from_numpy(contour))

    def loss(outputs, targets):
        (ef, contour), (ef_t, contour_t) = outputs, targets
        return torch.nn.functional.smooth_l1_loss(ef / 10, ef_t / 10) + 50 * torch.nn.functional.mse_loss(contour, contour_t)

    model = EchoNet()
    last = fit(model, lambda _: sample(batch_size), loss, steps, time_budget_s=time_budget_s)
    (clips,), (ef_t, contour_t) = sample(64)
    with torch.no_grad():
        ef, contour = model(clips)
    mae = float((ef - ef_t).abs().mean())
    err = float((contour - contour_t).norm(dim=-1).mean())
    save_state(model, out / "weights.pt")
    (out / "labels.json").write_text(json.dumps({"frames": FRAMES, "size": SIZE, "points": POINTS,
                                                 "held_out_ef_mae_percent": round(mae, 2),
                                                 "held_out_contour_error_fraction": round(err, 4)}) + "\n")
    return {"loss": round(last, 4), "ef_mae": round(mae, 2), "contour_error": round(err, 4)}


if __name__ == "__main__":
    print(train())
