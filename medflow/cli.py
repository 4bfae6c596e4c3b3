"""``medflow``: migrate, seed demo data, serve the one-process platform, run the event relay,
receive DICOM over DIMSE (``dicom-scp``),
serve the diagnostic models (``models``)."""

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
    steps = []
    if args.demo:
        from medflow.demo import seed
        steps.append(seed)
    if args.dicom_port is not None:
        steps.append(_scp_starter(args.dicom_institution, args.dicom_host, args.dicom_port))
    if args.reap_every > 0:
        steps.append(_reaper_starter(args.reap_every))

    async def on_start(services) -> None:
        for step in steps:
            await step(services)

    app = create_app(build_services(settings), on_start=on_start)
    print(f"MedFlow on http://{args.host}:{args.port}  (API reference: /api/docs, health: /healthz)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


def _reaper_starter(interval_s: float):
    """A start step that runs the analysis reaper and the outbox sweep every ``interval_s``
    in this process (the cluster runs ``medflow analysis reap`` and ``medflow outbox sweep``
    from CronJobs instead)."""
    running: set[asyncio.Task] = set()   # held, so the loops are not garbage-collected

    async def start(services) -> None:
        from medflow.analysis.reaper import reap_every
        from medflow.bus.outbox import sweep_every
        loop = asyncio.get_running_loop()
        running.add(loop.create_task(reap_every(services, interval_s), name="analysis-reaper"))
        running.add(loop.create_task(sweep_every(services.db, services.bus, interval_s), name="outbox-sweep"))
    return start


def _one_pass(work) -> int:
    """Run ``work(services)`` once against the configured database and bus (a CronJob's pass)."""
    from medflow.bootstrap import build_services
    from medflow.runtime.logs import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level)

    async def run() -> int:
        services = build_services(settings)
        try:
            await services.bus.start()
            print(await work(services), flush=True)
            return 0
        finally:
            await services.close()
    return asyncio.run(run())


def _reap(args: argparse.Namespace) -> int:
    """One reaper pass: analysis tasks stuck running or queued."""
    from medflow.analysis.reaper import reap

    async def work(services) -> str:
        done = await reap(services)
        return f"analysis reaper: {done.requeued} queued again, {done.failed} failed"
    return _one_pass(work)


def _sweep(args: argparse.Namespace) -> int:
    """One outbox pass: events whose publish after their commit was lost are published."""
    from medflow.bus.outbox import GRACE_S, sweep_all

    async def work(services) -> str:
        return f"outbox sweep: {await sweep_all(services.db, services.bus, older_than_s=GRACE_S)} event(s) published"
    return _one_pass(work)


def _scp_starter(institution_code: str, host: str, port: int):
    """A start step that runs the DICOM C-STORE receiver inside this process (its own threads,
    this process's store and bus: the embedded run's in-process events reach imaging_arrivals)."""
    async def start(services) -> None:
        from medflow.imaging.scp import StorageSCP, institution_id_of
        scp = StorageSCP(services, await institution_id_of(services, institution_code), asyncio.get_running_loop())
        bound = scp.start(host, port)
        print(f"DICOM C-STORE/C-ECHO receiver on {host}:{bound}, AE title {scp.ae.ae_title}, "
              f"institution {institution_code}", flush=True)
    return start


def _dicom_scp(args: argparse.Namespace) -> int:
    """The receiver alone, as a long-running process (the cluster's Deployment). On the
    embedded in-process bus it delivers arrivals to imaging_arrivals itself."""
    from medflow.bootstrap import build_services
    from medflow.runtime.logs import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level)

    async def run() -> None:
        from medflow.imaging.scp import StorageSCP, institution_id_of
        services = build_services(settings)
        await services.objects.ensure_buckets()
        if not settings.kafka_bootstrap:
            from medflow.runtime.entry import runtime_for
            from medflow.runtime.registry import load_specs
            from medflow.runtime.server import subscribe_event_functions
            from medflow.runtime.services import ServiceHolder
            holder = ServiceHolder(services=services)
            subscribe_event_functions(services, {s.name: runtime_for(s, holder) for s in load_specs()})
        await services.bus.start()
        scp = StorageSCP(services, await institution_id_of(services, args.institution), asyncio.get_running_loop(),
                         ae_title=args.ae_title)
        bound = scp.start(args.host, args.port)
        print(f"DICOM C-STORE/C-ECHO receiver on {args.host}:{bound}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            scp.stop()
            await services.close()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
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
    s.add_argument("--dicom-port", type=int, default=None,
                   help="also run the DICOM C-STORE/C-ECHO receiver on this port")
    s.add_argument("--dicom-host", default="127.0.0.1")
    s.add_argument("--dicom-institution", default="MFGH", help="institution code the receiver stores for")
    s.add_argument("--reap-every", type=float, default=30.0,
                   help="run the analysis reaper and the outbox sweep every this many seconds (0: never)")
    s.set_defaults(run=_serve)
    a = sub.add_parser("analysis", help="analysis workflow tools: `analysis reap` finds stuck tasks (a CronJob)")
    a.add_argument("action", choices=["reap"])
    a.set_defaults(run=_reap)
    o = sub.add_parser("outbox", help="`outbox sweep` publishes events left in the transactional outbox (a CronJob)")
    o.add_argument("action", choices=["sweep"])
    o.set_defaults(run=_sweep)
    d = sub.add_parser("dicom-scp", help="receive DICOM over DIMSE (C-STORE, C-ECHO): a long-running process")
    d.add_argument("--institution", required=True, help="institution code the received instances belong to")
    d.add_argument("--host", default="0.0.0.0")
    d.add_argument("--port", type=int, default=11112)
    d.add_argument("--ae-title", default=None)
    d.set_defaults(run=_dicom_scp)
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
