"""``medflow models``: serve the diagnostic models on a KServe model server, train and export
them, and write demo v2 requests.

    medflow models serve [--http-port 8090] [--models urinalysis,tongue] [--storage-uri urinalysis=s3://b/p]
    medflow models train urinalysis        (generated data, seconds; needs the train extra: torch)
    medflow models export urinalysis       (ONNX, dynamic batch)
    medflow models build-engine urinalysis (TensorRT FP16 engine, strongly typed; GPU nodes only)
    medflow models demo-requests DIR       (one v2 request JSON per model, to try with curl)

On a cluster each model is its own InferenceService: ``medflow models serve --models <name>
--model-dir /mnt/models`` (KServe's storage initializer copies ``storageUri`` there), or
``STORAGE_URI`` when the predictor fetches it itself.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="medflow models")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="a local KServe model server (Open Inference Protocol v2) with the models")
    s.add_argument("--http-port", type=int, default=8090)
    s.add_argument("--models", default="", help="comma-separated (default: every model in the checkout)")
    s.add_argument("--storage-uri", action="append", default=[], metavar="MODEL=URI",
                   help="weights of MODEL at URI (s3://bucket/prefix, file://, folder); repeatable")
    s.add_argument("--model-dir", default=None, help="one model: its weights folder (KServe: /mnt/models)")
    s.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads per model (0: default)")
    s.add_argument("--max-wait-ms", type=float, default=None, help="batching: longest wait for more requests")
    s.add_argument("--max-batch", type=int, default=None, help="batching: most cases per engine call")
    s.add_argument("--cpu", action="store_true", help="ONNX Runtime even where a TensorRT engine and a GPU are")
    for name in ("train", "export"):
        p = sub.add_parser(name, help=f"{name} a model (needs torch: the train extra)")
        p.add_argument("model")
    b = sub.add_parser("build-engine", help="TensorRT engine (model.plan) from the ONNX export: GPU nodes only")
    b.add_argument("model")
    b.add_argument("--max-batch", type=int, default=None)
    d = sub.add_parser("demo-requests", help="write one v2 request JSON per model into a folder")
    d.add_argument("folder", type=Path)
    d.add_argument("--port", type=int, default=8090, help="the model server's port, for the printed commands")
    return parser.parse_args(argv)


def build_predictors(names: list[str], storage: dict[str, str], **options):
    from medflow.inference.catalog import model_module
    predictors = []
    for name in names:
        predictor = model_module(name, "predictor").Predictor(storage_uri=storage.get(name), **options)
        predictor.load()
        predictors.append(predictor)
    return predictors


def serve(args: argparse.Namespace) -> int:
    from medflow.inference.catalog import MODELS, available
    names = [n for n in args.models.split(",") if n] or available()
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        print(f"unknown model(s) {unknown}; known: {', '.join(MODELS)}", file=sys.stderr)
        return 2
    storage = dict(item.split("=", 1) for item in args.storage_uri)
    if args.model_dir or os.environ.get("STORAGE_URI"):
        if len(names) != 1:
            print("--model-dir and STORAGE_URI need exactly one model (--models NAME)", file=sys.stderr)
            return 2
        storage.setdefault(names[0], args.model_dir or os.environ["STORAGE_URI"])
    sys.argv = sys.argv[:1]  # kserve.model_server parses sys.argv when imported: give it none of ours
    from kserve import ModelServer
    from kserve.model_server import app

    import logging

    from medflow.inference.middleware import ModelVersions, NoDataInServerErrors, WithholdExceptionText

    predictors = build_predictors(names, storage, threads=args.threads, max_wait_ms=args.max_wait_ms,
                                  max_batch=args.max_batch, prefer_gpu=not args.cpu)
    for p in predictors:
        print(f"model {p.name}: {p.runner.kind}, {p.weights.source} weights — not for clinical use", flush=True)
    print(f"KServe model server on http://127.0.0.1:{args.http_port}  (POST /v2/models/<name>/infer; "
          "demo requests: medflow models demo-requests DIR)", flush=True)
    app.add_middleware(ModelVersions, versions={p.name: p.spec.version for p in predictors})
    app.add_middleware(NoDataInServerErrors)
    logging.getLogger("kserve").addFilter(WithholdExceptionText())
    ModelServer(http_port=args.http_port, enable_grpc=False, workers=1,
                enable_latency_logging=False).start(predictors)
    return 0


def main(argv: list[str]) -> int:
    args = _parse(argv)
    if args.command == "serve":
        return serve(args)
    from medflow.inference.catalog import MODELS, model_module
    if args.command in ("train", "export"):
        module = model_module(args.model, args.command)
        print(getattr(module, args.command)())
        return 0
    if args.command == "build-engine":  # pragma: no cover - needs TensorRT and a GPU
        from medflow.inference.tensorrt_build import build_for_model
        predictor = model_module(args.model, "predictor").Predictor
        print(build_for_model(model_module(args.model, "export").HERE, args.max_batch or predictor.spec.max_batch))
        return 0
    args.folder.mkdir(parents=True, exist_ok=True)
    from medflow.inference.catalog import available
    for name in available():
        demo = model_module(name, "demo")
        path = args.folder / f"{name}.json"
        path.write_text(json.dumps(demo.request()) + "\n")
        print(f"curl -s -XPOST localhost:{args.port}/v2/models/{name}/infer -H 'content-type: application/json' -d @{path}")
    return 0
