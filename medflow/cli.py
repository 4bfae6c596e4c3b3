"""``medflow``: migrate, seed demo data, serve the one-process platform, run the event relay,
serve the diagnostic models."""

from __future__ import annotations

import argparse
import asyncio
import sys

from medflow.config import ConfigError, load_settings


def _migrate(args: argparse.Namespace) -> int:
    from medflow.db import migrate
    settings = load_settings()
    migrate.upgrade(settings.resolved_database_url(), args.revision)
    print(f"database at revision {migrate.current(settings.resolved_database_url())}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from medflow.bootstrap import build_services
    from medflow.db import migrate
    from medflow.runtime.logs import configure_logging
    from medflow.runtime.server import create_app

    settings = load_settings()
    configure_logging(settings.log_level)
    if args.migrate:
        migrate.upgrade(settings.resolved_database_url())
    on_start = None
    if args.demo:
        from medflow.demo import seed
        on_start = seed
    app = create_app(build_services(settings), on_start=on_start)
    print(f"MedFlow on http://{args.host}:{args.port}  (API reference: /api/docs, health: /healthz)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["relay"]:  # the relay has its own options
        from medflow.bus.relay import main as relay_main
        return relay_main(argv[1:]) or 0
    if argv[:1] == ["models"]:  # the model server and the models' tools have their own options
        from medflow.inference.cli import main as models_main
        return models_main(argv[1:])
    parser = argparse.ArgumentParser(prog="medflow")
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("migrate", help="apply database migrations")
    m.add_argument("revision", nargs="?", default="head")
    m.set_defaults(run=_migrate)
    s = sub.add_parser("serve", help="serve every function in one process")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--demo", action="store_true", help="create the demo data at start")
    s.add_argument("--migrate", action="store_true", help="apply migrations before serving")
    s.set_defaults(run=_serve)
    sub.add_parser("relay", help="deliver Kafka events to CloudEvent functions over HTTP (see relay --help)")
    sub.add_parser("models", help="serve, train or export the diagnostic models (see models --help)")
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
