"""Train the report generator on generated radiographs and their region sentences
(teacher forcing; seconds at 128x128, served at 512x512)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from medflow.inference.text import BOS, EOS, Tokenizer, build_vocab, words

from ..common.synthetic import chest_xray
from .model import MAX_WORDS, REGIONS
from .sentences import ABNORMAL, NORMAL

HERE = Path(__file__).resolve().parent
SEED = 19
TRAIN_SIZE = 128


def labels_for(abnormal: np.ndarray) -> np.ndarray:
    """Region abnormalities -> the synthetic generator's labels (lung opacity -> consolidation,
    heart -> cardiomegaly, angles -> effusion; mediastinum shares the heart's drawing)."""
    labels = np.zeros(8, np.float32)
    labels[2] = abnormal[0] or abnormal[1]
    labels[1] = abnormal[2] or abnormal[3]
    labels[4] = abnormal[4] or abnormal[5]
    return labels


def train(out: Path = HERE, steps: int = 150, batch_size: int = 8) -> dict:
    import torch

    from medflow.inference.torch_tools import fit, save_state, seed_everything
    from .model import ReportGenerator

    seed_everything(SEED)
    torch.set_num_threads(2)
    vocab = build_vocab(list(NORMAL.values()) + list(ABNORMAL.values()))
    tok = Tokenizer(vocab, MAX_WORDS + 2)
    rng = np.random.default_rng(SEED)

    def target(sentence):
        ids = [tok.index[w] for w in words(sentence)][:MAX_WORDS - 1] + [tok.index[EOS]]
        return ids + [tok.index[EOS]] * (MAX_WORDS - len(ids))

    def sample(n):
        images, targets = [], []
        for _ in range(n):
            abnormal = rng.random(len(REGIONS)) < 0.3
            abnormal[3] = abnormal[2]
            abnormal[5] = abnormal[4] = abnormal[4] or abnormal[5]
            images.append(chest_xray(rng, labels_for(abnormal), TRAIN_SIZE))
            targets.append([target((ABNORMAL if a else NORMAL)[r]) for r, a in zip(REGIONS, abnormal)])
        return torch.from_numpy(np.stack(images)[:, None]), torch.tensor(targets)

    model = ReportGenerator(len(vocab), tok.index[BOS])
    bos = tok.index[BOS]

    class TeacherForced(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, image, tgt):
            _, region = self.m.regions(image)
            b, r, d = region.shape
            flat_t = tgt.reshape(b * r, MAX_WORDS)
            inp = torch.cat([torch.full((b * r, 1), bos), flat_t[:, :-1]], 1)
            return self.m.logits(region.reshape(b * r, d), inp)[:, 1:], flat_t

    wrapper = TeacherForced(model)

    def loss(out, _):
        logits, flat_t = out
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), flat_t.reshape(-1))

    def batch(_):
        images, tgt = sample(batch_size)
        return (images, tgt), None

    last = fit(wrapper, batch, loss, steps)
    images, tgt = sample(32)
    with torch.no_grad():
        _, words_out, _ = model(images)
    exact = float((words_out == tgt).all(-1).float().mean())
    save_state(model, out / "weights.pt")
    (out / "vocab.json").write_text(json.dumps({"vocab": vocab, "regions": list(REGIONS),
                                                "held_out_exact_sentence_rate": round(exact, 4)}) + "\n")
    return {"loss": round(last, 4), "exact_sentences": round(exact, 4)}


if __name__ == "__main__":
    print(train())
