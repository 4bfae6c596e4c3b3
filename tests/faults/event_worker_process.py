"""A CloudEvent function as its own process for the fault tests: the function named on the
command line (``job_worker``, ``analysis_worker``) fed by Kafka (its catalogue consumer
group), configured by ``MEDFLOW_*`` like any deployment. Prints ``ready`` once its consumer
has partitions.  Usage: python tests/faults/event_worker_process.py FUNCTION"""

from __future__ import annotations

import asyncio
import sys
import time

from medflow.bootstrap import build_services, delivery_policy
from medflow.runtime.entry import runtime_for
from medflow.runtime.registry import load_specs
from medflow.runtime.services import ServiceHolder


async def main(function: str) -> None:
    services = build_services()
    spec = next(s for s in load_specs() if s.name == function)
    runtime = runtime_for(spec, ServiceHolder(services=services))
    consumer = next(c for c in services.catalogue.consumers if c.function == function)
    services.bus.subscribe(consumer.group, consumer.accepts, runtime.deliver,
                           consumer.policy(delivery_policy(services.settings)),
                           topics=services.catalogue.topics_for(consumer.accepts), concurrency=consumer.concurrency)
    started = time.monotonic()
    await services.bus.start()
    print(f"ready (partitions after {time.monotonic() - started:.1f} s)", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
