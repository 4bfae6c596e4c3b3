"""A word-level tokenizer for the demo models' text inputs (clinical indications, tongue
descriptions, report sentences). BERT's WordPiece vocabulary cannot be downloaded here, so
each model ships the vocabulary of its generated corpus (``vocab.json``); unknown words map
to [UNK]. Sequences are [CLS] w1 .. wn [SEP], padded with [PAD] (id 0) to a fixed length."""

from __future__ import annotations

import re

import numpy as np

PAD, UNK, CLS, SEP, BOS, EOS = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[BOS]", "[EOS]"
SPECIAL = (PAD, UNK, CLS, SEP, BOS, EOS)
_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*|[.,;]")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def build_vocab(corpus: list[str]) -> list[str]:
    seen = sorted({w for text in corpus for w in words(text)})
    return list(SPECIAL) + seen


class Tokenizer:
    def __init__(self, vocab: list[str], max_len: int):
        self.vocab = vocab
        self.index = {w: i for i, w in enumerate(vocab)}
        self.max_len = max_len

    def encode(self, text: str) -> np.ndarray:
        ids = [self.index[CLS]] + [self.index.get(w, self.index[UNK]) for w in words(text)][: self.max_len - 2]
        ids.append(self.index[SEP])
        return np.array(ids + [0] * (self.max_len - len(ids)), np.int64)

    def encode_batch(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.encode(t) for t in texts])

    def decode(self, ids) -> str:
        out = []
        for i in ids:
            w = self.vocab[int(i)] if 0 <= int(i) < len(self.vocab) else UNK
            if w == EOS:
                break
            if w in SPECIAL:
                continue
            out.append(w)
        text = " ".join(out).replace(" .", ".").replace(" ,", ",")
        return text[:1].upper() + text[1:]
