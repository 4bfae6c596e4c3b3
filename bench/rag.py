"""Knowledge assistant retrieval at 100,000 chunks: latency of the retrieval stage, quality on
the starter knowledge base, index load time and memory.

Corpus: the starter knowledge base's chunks (medflow/knowledge/starter, embedded for real
with all-MiniLM-L6-v2) plus filler up to ``--chunks``. Embedding 100,000 real chunks with
the CPU encoder would take half an hour or more on 2 shared cores (40–55 chunks/s), so the
filler is made the cheap way: ``--seeds`` generated clinical-sounding texts are embedded
for real, and each filler chunk is the normalised mix of two of them plus a little noise
(its text the two texts joined), so the distractors lie near real sentence embeddings and
the index has the full size.

Latency: serial queries of 32–256 characters (the question set's questions padded or cut
with clinical words), each timed through encode (the ONNX Runtime encoder of
medflow/knowledge/encoder.py, loaded from its model cache or built into it first) → FAISS
recall (4 × k candidates) → the LexicalReranker (with building the candidates' documents),
in-process, with the mean and P99 of each stage; the SQL read of the candidates' rows that
the function adds is not in it. Quality: recall@5 and MRR of the question set
(bench/rag_questions.json): a result is relevant when it comes from the expected document
and section; the 100,000-chunk index is searched. Index: the artefact written to a local
object store and read back (seconds and the resident memory it adds). Generation (time to
first token, tokens/s) is not measured: no real LLM endpoint here.

Usage: .venv/bin/python bench/rag.py [--chunks 100000] [--queries 300] [--seeds 256]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # serial queries: one thread is fastest here
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from langchain_core.documents import Document  # noqa: E402

from medflow.knowledge.demo import starter_documents  # noqa: E402
from medflow.knowledge.encoder import DIMENSION, MiniLMEncoder  # noqa: E402
from medflow.knowledge.extract import chunk, sections_of  # noqa: E402
from medflow.knowledge.index import VectorIndex  # noqa: E402
from medflow.knowledge.retrieval import LexicalReranker, recall  # noqa: E402
from record import record  # noqa: E402

WORDS = ("patient dose tablet infusion renal hepatic cardiac pulmonary fever cough rash pain chronic acute follow-up "
         "clinic referral imaging ultrasound biopsy screening vaccine allergy paediatric elderly pregnancy wound "
         "dressing catheter fracture physiotherapy nutrition sodium potassium anaemia thyroid migraine epilepsy "
         "dementia depression anxiety insomnia obesity smoking alcohol discharge ward nursing theatre consent").split()


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def filler_text(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(25, 60))).capitalize() + "."


def query_of(question: str, rng: random.Random) -> str:
    target = rng.randint(32, 256)
    text = question
    while len(text) < target:
        text += " " + rng.choice(WORDS)
    return text[:target]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=256)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    rng = random.Random(7)
    encoder = MiniLMEncoder()
    print(f"encoder: {'built' if encoder.built else 'loaded from the cache'} in {encoder.load_seconds:.2f} s "
          f"({encoder.model_path})", flush=True)

    # the starter knowledge base, for real
    texts: dict[str, str] = {}
    meta: dict[str, tuple[str, str]] = {}
    ids, vectors = [], []
    for title, filename, content in starter_documents():
        for c in chunk(sections_of(content, "text/markdown", title)):
            cid = f"{filename}:{c.position}"
            texts[cid], meta[cid] = c.text, (filename, c.section)
            ids.append(cid)
            vectors.append(encoder.encode_one(f"{c.section}\n{c.text}"))
    started = time.perf_counter()
    seed_texts = [filler_text(rng) for _ in range(args.seeds)]
    seed_vectors = encoder.encode(seed_texts)
    seed_s = time.perf_counter() - started
    n_filler = args.chunks - len(ids)
    a = rng_np = np.random.default_rng(7)
    pairs = rng_np.integers(0, args.seeds, size=(n_filler, 2))
    mix = seed_vectors[pairs[:, 0]] + 0.7 * seed_vectors[pairs[:, 1]] + 0.05 * a.standard_normal((n_filler, DIMENSION))
    mix = (mix / np.linalg.norm(mix, axis=1, keepdims=True)).astype(np.float32)
    filler_ids = [f"filler:{i}" for i in range(n_filler)]
    all_ids = ids + filler_ids
    index = VectorIndex(np.concatenate([np.stack(vectors), mix]), np.asarray(all_ids, dtype="<U26"),
                        np.asarray([i.split(":")[0] for i in all_ids], dtype="<U26"))

    def text_of(cid: str) -> tuple[str, str]:
        if cid.startswith("filler:"):
            i, j = pairs[int(cid.split(":")[1])]
            return seed_texts[i] + " " + seed_texts[j], "Filler"
        return texts[cid], meta[cid][1]

    # index artefact: written to a local object store, read back by a "cold" reader
    from medflow.storage.local import LocalObjectStore
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalObjectStore(Path(tmp), secrets.token_bytes(32), "http://127.0.0.1")

        async def round_trip() -> tuple[float, float, int]:
            await store.ensure_buckets()
            data = index.to_bytes()
            await store.put("knowledge", "bench/index.npz", data)
            before = rss_mb()
            t0 = time.perf_counter()
            loaded = VectorIndex.from_bytes(await store.get("knowledge", "bench/index.npz"))
            seconds = time.perf_counter() - t0
            assert len(loaded) == len(index)
            return seconds, rss_mb() - before, len(data)
        load_s, load_mb, artefact_bytes = asyncio.run(round_trip())

    reranker = LexicalReranker(top_n=5)

    stages: dict[str, list[float]] = {"encode": [], "recall": [], "rerank": []}

    def retrieve(question: str) -> list[Document]:
        timings: dict[str, float] = {}
        found = recall(encoder, index, question, 5, timings)
        started = time.perf_counter()
        docs = []
        for cid, score in found:
            text, section = text_of(cid)
            docs.append(Document(page_content=text, metadata={"chunk_id": cid, "section": section, "score": score}))
        ranked = list(reranker.compress_documents(docs, question))
        stages["encode"].append(timings["encode_s"] * 1000)
        stages["recall"].append(timings["recall_s"] * 1000)
        stages["rerank"].append((time.perf_counter() - started) * 1000)
        return ranked

    questions = json.loads((Path(__file__).with_name("rag_questions.json")).read_text())
    for q in questions[:5]:
        retrieve(q["q"])   # warm-up
    latencies = []
    for values in stages.values():
        values.clear()
    for n in range(args.queries):
        text = query_of(questions[n % len(questions)]["q"], rng)
        t0 = time.perf_counter()
        retrieve(text)
        latencies.append((time.perf_counter() - t0) * 1000)
    mean_ms, p99_ms = float(np.mean(latencies)), float(np.percentile(latencies, 99))
    stage_ms = {name: (float(np.mean(v)), float(np.percentile(v, 99))) for name, v in stages.items()}

    hits, reciprocal = 0, 0.0
    for q in questions:
        ranked = retrieve(q["q"])
        relevant = [i for i, d in enumerate(ranked, 1)
                    if d.metadata["chunk_id"].split(":")[0] == q["doc"] and q["section"] in d.metadata["section"]]
        hits += bool(relevant)
        reciprocal += 1 / relevant[0] if relevant else 0.0
    recall5, mrr = hits / len(questions), reciprocal / len(questions)
    load = os.getloadavg()
    figures = {"chunks": len(index), "retrieval_mean_ms": round(mean_ms, 2), "retrieval_p99_ms": round(p99_ms, 2),
               "recall_at_5": round(recall5, 3), "mrr": round(mrr, 3), "index_load_seconds": round(load_s, 3),
               **{f"{name}_mean_ms": round(m, 2) for name, (m, _) in stage_ms.items()},
               **{f"{name}_p99_ms": round(p, 2) for name, (_, p) in stage_ms.items()},
               "encoder_load_seconds": round(encoder.load_seconds, 3), "encoder_built": encoder.built}
    line = (f"retrieval stage (encode + FAISS 8-bit recall with exact re-score + re-rank; MiniLM encoder on ONNX Runtime, "
            f"int8 weights except the FFN down-projections, 1 thread) over "
            f"{len(index):,} chunks ({len(ids)} real starter chunks + filler mixed from {args.seeds} embedded "
            f"generated texts), {args.queries} serial queries of 32–256 chars: mean {mean_ms:.1f} ms "
            f"({'met' if mean_ms <= 20 else 'NOT met'}, target ≤ 20), P99 {p99_ms:.1f} ms "
            f"({'met' if p99_ms <= 40 else 'NOT met'}, target ≤ 40), of which encode {stage_ms['encode'][0]:.1f} ms "
            f"(P99 {stage_ms['encode'][1]:.1f}), FAISS recall {stage_ms['recall'][0]:.1f} ms (P99 {stage_ms['recall'][1]:.1f}), "
            f"re-rank {stage_ms['rerank'][0]:.2f} ms; encoder {'built' if encoder.built else 'loaded from its cache'} in "
            f"{encoder.load_seconds:.2f} s; starter question set ({len(questions)} questions): "
            f"recall@5 {recall5:.2f}, MRR {mrr:.2f}; index artefact {artefact_bytes / 1e6:.0f} MB loaded in "
            f"{load_s:.2f} s (+{load_mb:.0f} MB resident); generation not measured (no real LLM endpoint); "
            f"machine load average {load[0]:.1f} (2 cores shared with other sessions)")
    print(json.dumps(figures), f"seed embedding {seed_s:.1f} s for {args.seeds} texts", line, sep="\n")
    if not args.no_record:
        record("rag", figures, line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
