"""Inference figures of the five diagnostic models (CPU; no GPU here, so TensorRT: not measured).

1. Per model, batch 1, inputs at the served size (512x512 images; echo: 16 frames of
   112x112): ONNX Runtime vs PyTorch eager latency (median, P99), same threads, one run,
   the two measured in alternating blocks of 10 runs.
2. One KServe model server (a real process) under many concurrent clients, same run:
   batching on + async clients (aiohttp, one process) vs batching off + one-request-at-a-time
   blocking clients (threads with httpx.Client).

    .venv/bin/python bench/inference.py [--runs 30] [--seconds 10] [--clients 32] [--gateway-models tongue,urinalysis]
                                        [--skip-models]   (only the model server's throughput)

The first gateway model gives ``gateway_async_rps``/``gateway_sync_rps``; every one also
``gateway_<model>_async_rps``/``..._sync_rps``.

Writes bench/results/inference.json through bench/record.py (and a line in bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests"))

from record import record  # noqa: E402


def percentile(values, q):
    return float(np.percentile(np.asarray(values), q))


def paired_latencies(first, second, runs: int, warmup: int = 3, block: int = 10) -> tuple[list[float], list[float]]:
    """Latencies (ms) of two calls measured in alternating blocks of ``block`` runs, so that
    the machine's noise (bursts lasting seconds on these 2 cores) falls on both alike; blocks
    rather than single calls, because each runtime's worker threads spin for a while after a
    call and would slow the other's next call. The first call of each block is not counted."""
    a, b = [], []
    while len(a) < runs:
        for fn, out in ((first, a), (second, b)):
            for i in range(block + 1 if out else block + warmup):
                t = time.perf_counter()
                fn()
                if i >= (1 if out else warmup):
                    out.append((time.perf_counter() - t) * 1000)
    return a[:runs], b[:runs]


def model_latencies(runs: int, threads: int) -> dict[str, float]:
    import onnxruntime as ort
    import torch

    from medflow.inference.catalog import MODELS, model_folder, model_module

    torch.set_num_threads(threads)
    figures = {}
    for name in MODELS:
        export = model_module(name, "export")
        inputs = export.example(1)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        session = ort.InferenceSession(str(model_folder(name) / "model.onnx"), opts, providers=["CPUExecutionProvider"])
        model = export.load_torch()
        tensors = [torch.from_numpy(v) for v in inputs.values()]

        def eager():
            with torch.inference_mode():
                model(*tensors)

        ort_ms, torch_ms = paired_latencies(lambda: session.run(None, inputs), eager, runs)
        figures[f"{name}_ort_median_ms"] = round(statistics.median(ort_ms), 3)
        figures[f"{name}_ort_p99_ms"] = round(percentile(ort_ms, 99), 3)
        figures[f"{name}_torch_median_ms"] = round(statistics.median(torch_ms), 3)
        figures[f"{name}_torch_p99_ms"] = round(percentile(torch_ms, 99), 3)
        shapes = {k: list(v.shape) for k, v in inputs.items()}
        print(f"{name:22s} {shapes}  ORT median {figures[f'{name}_ort_median_ms']:.2f} ms "
              f"P99 {figures[f'{name}_ort_p99_ms']:.2f} | torch eager median {figures[f'{name}_torch_median_ms']:.2f} ms "
              f"P99 {figures[f'{name}_torch_p99_ms']:.2f} | x{figures[f'{name}_torch_median_ms'] / figures[f'{name}_ort_median_ms']:.2f}",
              flush=True)
    return figures


async def _async_load(url: str, body: dict, clients: int, seconds: float) -> tuple[int, int, list[int]]:
    """``clients`` concurrent async clients in one process (aiohttp: httpx's async client spent
    more CPU per request than the server here and capped the figure)."""
    import aiohttp
    import orjson
    done, errors, sizes = 0, 0, []
    stop = time.perf_counter() + seconds
    payload = orjson.dumps(body)
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        async def worker():
            nonlocal done, errors
            while time.perf_counter() < stop:
                async with session.post(url, data=payload, headers={"content-type": "application/json"}) as r:
                    data = await r.read()
                    if r.status == 200:
                        done += 1
                        sizes.append(orjson.loads(data)["parameters"]["batch_size"])
                    else:
                        errors += 1
        await asyncio.gather(*[worker() for _ in range(clients)])
    return done, errors, sizes


def _sync_load(url: str, body: dict, clients: int, seconds: float) -> tuple[int, int]:
    import httpx
    counts = [0, 0]
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def worker():
        with httpx.Client(timeout=30) as client:
            while time.perf_counter() < stop:
                ok = client.post(url, json=body).status_code == 200
                with lock:
                    counts[0 if ok else 1] += 1

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return counts[0], counts[1]


def gateway(model: str, clients: int, seconds: float, workdir: Path) -> dict[str, float]:
    from medflow.inference.catalog import model_module
    from support_processes import free_port, models_command, running

    body = model_module(model, "demo").request(1)
    figures = {}
    # async: each model's own batching policy; sync: no batching at all
    for mode, extra in (("async", []), ("sync", ["--max-batch", "1", "--max-wait-ms", "0"])):
        port = free_port()
        url = f"http://127.0.0.1:{port}/v2/models/{model}/infer"
        with running(models_command(port, "--models", model, *extra), {}, workdir / f"models-{mode}.log",
                     ready_url=f"http://127.0.0.1:{port}/v2/health/ready", timeout_s=120):
            if mode == "async":
                asyncio.run(_async_load(url, body, clients, 2))  # warm-up
                started = time.perf_counter()
                done, errors, sizes = asyncio.run(_async_load(url, body, clients, seconds))
                rps = done / (time.perf_counter() - started)
                figures["gateway_async_mean_batch"] = round(statistics.mean(sizes), 2) if sizes else 0.0
            else:
                _sync_load(url, body, clients, 2)
                started = time.perf_counter()
                done, errors = _sync_load(url, body, clients, seconds)
                rps = done / (time.perf_counter() - started)
        figures[f"gateway_{mode}_rps"] = round(rps, 1)
        figures[f"gateway_{mode}_errors"] = errors
        print(f"gateway {mode:5s}: {rps:.1f} requests/s, {errors} errors", flush=True)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--gateway-models", default="tongue,urinalysis")
    parser.add_argument("--skip-models", action="store_true")
    args = parser.parse_args()
    workdir = REPO / "bench" / ".work"
    workdir.mkdir(exist_ok=True)
    figures = {} if args.skip_models else model_latencies(args.runs, args.threads)
    models = [m for m in args.gateway_models.split(",") if m]
    serving = []
    for i, model in enumerate(models):
        g = gateway(model, args.clients, args.seconds, workdir)
        figures.update({k.replace("gateway_", f"gateway_{model}_"): v for k, v in g.items()})
        if i == 0:
            figures.update(g)
        serving.append(f"{model}: batching+async {g['gateway_async_rps']:.1f} req/s (mean batch "
                       f"{g['gateway_async_mean_batch']}) vs unbatched blocking {g['gateway_sync_rps']:.1f} req/s")
    speedups = {k[:-len("_ort_median_ms")]: figures[k.replace("_ort_", "_torch_")] / v
                for k, v in figures.items() if k.endswith("_ort_median_ms") and not args.skip_models}
    line = "CPU only (no GPU lent: TensorRT not measured)"
    if speedups:
        line += (f"; batch 1 at served sizes, {args.threads} threads, {args.runs} runs each in alternating blocks of 10: " +
                 ", ".join(f"{m} ORT {figures[m + '_ort_median_ms']:.2f} ms (P99 {figures[m + '_ort_p99_ms']:.2f}) vs "
                           f"eager {figures[m + '_torch_median_ms']:.2f} ms = x{s:.2f}" for m, s in speedups.items()))
    if serving:
        line += (f"; one model server, {args.clients} clients, {args.seconds:.0f} s per mode, load generator on the "
                 "same cores: " + "; ".join(serving))
    record("inference", figures, line)
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
