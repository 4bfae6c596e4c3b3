"""Train the chest X-ray MMBT on generated radiographs and indications (seconds; trained at
128x128, served at 512x512: the trunk is fully convolutional and pooled to a fixed grid)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from medflow.inference.text import Tokenizer, build_vocab

from ..common.synthetic import CXR_LABELS, INDICATIONS, chest_xray, cxr_labels, indication
from .model import TEXT_LEN

HERE = Path(__file__).resolve().parent
SEED = 11
TRAIN_SIZE = 128


def train(out: Path = HERE, steps: int = 150, batch_size: int = 16) -> dict:
    import torch

    from medflow.inference.torch_tools import fit, save_state, seed_everything
    from .model import ChestXrayMMBT

    seed_everything(SEED)
    torch.set_num_threads(2)
    vocab = build_vocab(list(INDICATIONS.values()) + ["chest pain, rule out pathology"])
    tok = Tokenizer(vocab, TEXT_LEN)
    rng = np.random.default_rng(SEED)

    def sample(n):
        labels = np.stack([cxr_labels(rng) for _ in range(n)])
        images = np.stack([chest_xray(rng, lab, TRAIN_SIZE) for lab in labels])[:, None]
        tokens = tok.encode_batch([indication(rng, lab) for lab in labels])
        return (torch.from_numpy(images), torch.from_numpy(tokens)), torch.from_numpy(labels)

    model = ChestXrayMMBT(len(vocab))
    loss = fit(model, lambda _: sample(batch_size), torch.nn.BCELoss(), steps)
    (inputs, labels) = sample(128)
    with torch.no_grad():
        acc = float(((model(*inputs) > 0.5) == (labels > 0.5)).float().mean())
    save_state(model, out / "weights.pt")
    (out / "vocab.json").write_text(json.dumps({"vocab": vocab, "text_len": TEXT_LEN}) + "\n")
    (out / "labels.json").write_text(json.dumps({"labels": list(CXR_LABELS),
                                                 "held_out_label_accuracy": round(acc, 4)}) + "\n")
    return {"loss": round(loss, 4), "held_out_label_accuracy": round(acc, 4)}


if __name__ == "__main__":
    print(train())
