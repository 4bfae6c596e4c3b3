"""Train the tongue network on generated photographs, descriptions and attributes (seconds,
128x128; served at 512x512)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from medflow.inference.text import Tokenizer, build_vocab

from ..common.synthetic import TONGUE_ATTRIBUTES, TONGUE_SYNDROMES, TONGUE_WORDS, tongue
from .model import TEXT_LEN

HERE = Path(__file__).resolve().parent
SEED = 13
TRAIN_SIZE = 128


def train(out: Path = HERE, steps: int = 150, batch_size: int = 16) -> dict:
    import torch

    from medflow.inference.torch_tools import fit, save_state, seed_everything
    from .model import TongueNet

    seed_everything(SEED)
    torch.set_num_threads(2)
    vocab = build_vocab(["patient reports no complaints"] + list(TONGUE_WORDS.values()))
    tok = Tokenizer(vocab, TEXT_LEN)
    rng = np.random.default_rng(SEED)

    def sample(n):
        ys = rng.integers(0, len(TONGUE_SYNDROMES), n)
        items = [tongue(rng, int(s), TRAIN_SIZE) for s in ys]
        images = np.stack([i[0].transpose(2, 0, 1) for i in items])
        attrs = np.stack([i[1] for i in items])
        tokens = tok.encode_batch([i[2] for i in items])
        return ((torch.from_numpy(images), torch.from_numpy(tokens), torch.from_numpy(attrs)),
                torch.from_numpy(ys))

    def nll(probs, target):
        return torch.nn.functional.nll_loss(torch.log(probs + 1e-7), target)

    model = TongueNet(len(vocab))
    loss = fit(model, lambda _: sample(batch_size), nll, steps)
    inputs, ys = sample(128)
    with torch.no_grad():
        acc = float((model(*inputs).argmax(-1) == ys).float().mean())
    save_state(model, out / "weights.pt")
    (out / "vocab.json").write_text(json.dumps({"vocab": vocab, "text_len": TEXT_LEN}) + "\n")
    (out / "labels.json").write_text(json.dumps({"labels": list(TONGUE_SYNDROMES), "attributes": list(TONGUE_ATTRIBUTES),
                                                 "held_out_accuracy": round(acc, 4)}) + "\n")
    return {"loss": round(loss, 4), "held_out_accuracy": round(acc, 4)}


if __name__ == "__main__":
    print(train())
