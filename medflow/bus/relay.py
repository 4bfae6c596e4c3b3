"""The relay: Kafka to CloudEvent functions over HTTP where there is no Knative (CI, dev).

It plays Knative's KafkaSource: each route is a consumer group whose events are POSTed in
binary content mode to a function URL, with Knative's delivery contract — 2xx done; 4xx
except 408/429 never retried (dead-letter); 408, 429, 5xx, time-outs and connection
errors retried with backoff by ``deliver`` and dead-lettered after ``max_attempts``.

    medflow relay --bootstrap 127.0.0.1:39092 \\
        --route audit_sink=http://127.0.0.1:8082/=org.medflow.audit.*

Topics come from the events catalogue (events/catalogue.yaml), and so do a consumer's own
retry rules (its ``delivery``: ``job_worker`` retries 10 times), over ``--max-attempts``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Callable, Sequence

import httpx
from cloudevents.http import CloudEvent

from medflow.bus.catalogue import Catalogue
from medflow.bus.events import to_http
from medflow.bus.kafka import KafkaEventBus
from medflow.bus.ports import DeliveryPolicy
from medflow.errors import PermanentError, TransientError

log = logging.getLogger("medflow.bus.relay")

Route = tuple[str, Sequence[str], str]   # (consumer group, event types or patterns, function URL)
NOT_RETRIED = frozenset(range(400, 500)) - {408, 429}


class HttpDelivery:
    """An event handler that POSTs each event to one function URL and maps the status."""

    def __init__(self, url: str, timeout_s: float = 30.0, client: httpx.AsyncClient | None = None) -> None:
        self.url = url
        self._timeout = httpx.Timeout(timeout_s)
        self._client = client
        self._owns_client = client is None

    async def __call__(self, event: CloudEvent) -> None:
        headers, body = to_http(event)
        try:
            response = await self._http().post(self.url, headers=headers, content=body, timeout=self._timeout)
        except httpx.TransportError as exc:   # connection refused or reset, time-outs, protocol errors
            raise TransientError(f"{type(exc).__name__} calling the function") from exc
        status = response.status_code
        if 200 <= status < 300:
            return
        if status in NOT_RETRIED:
            raise PermanentError(f"HTTP {status}")
        raise TransientError(f"HTTP {status}")

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient()
        return self._client

    async def aclose(self) -> None:
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None


async def run_relay(bus: KafkaEventBus, routes: Sequence[Route], timeout_s: float = 30.0,
                    topics_for: Callable[[Sequence[str]], Sequence[str]] | None = None,
                    policies: dict[str, DeliveryPolicy] | None = None,
                    concurrency: dict[str, int] | None = None) -> None:
    """Subscribe every route, start the bus and relay until cancelled; then stop the bus.
    ``policies`` gives a group its own retry rules and ``concurrency`` its events in flight
    (the catalogue consumer's ``delivery``)."""
    async with httpx.AsyncClient() as client:
        for group, types, url in routes:
            topics = topics_for(tuple(types)) if topics_for else None
            bus.subscribe(group, types, HttpDelivery(url, timeout_s, client), (policies or {}).get(group), topics=topics,
                          concurrency=(concurrency or {}).get(group, 1))
        try:
            await bus.start()
            log.info("relay started", extra={"groups": [group for group, _, _ in routes]})
            await asyncio.Event().wait()
        finally:
            await bus.stop()


def parse_route(text: str) -> Route:
    """``group=url=type1,type2`` (the URL may itself contain ``=``)."""
    group, sep, rest = text.partition("=")
    url, sep2, types = rest.rpartition("=")
    type_list = [t.strip() for t in types.split(",") if t.strip()]
    if not (sep and sep2 and group and url and type_list):
        raise argparse.ArgumentTypeError(f"route {text!r} is not group=url=type1,type2")
    return group, type_list, url


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="medflow-relay", description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers, host:port[,host:port]")
    parser.add_argument("--route", action="append", type=parse_route, required=True,
                        help="group=url=type1,type2 (repeatable; types may end with *)")
    parser.add_argument("--max-attempts", type=int, default=DeliveryPolicy.max_attempts)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per HTTP delivery")
    parser.add_argument("--namespace", default="", help="prefix of topics and groups (MEDFLOW_KAFKA_NAMESPACE)")
    args = parser.parse_args(argv)
    from medflow.runtime.logs import configure_logging
    configure_logging("INFO")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    events = Catalogue(namespace=args.namespace)  # topics and dead-letter topics as events/catalogue.yaml declares them
    bus = KafkaEventBus(args.bootstrap, topic_for=events.topic_for, dead_letter_topic_for=events.dead_letter_topic,
                        default_policy=DeliveryPolicy(max_attempts=args.max_attempts), client_id="medflow-relay",
                        partitions_for=events.partitions_of)
    routes = [(events.namespace + group, types, url) for group, types, url in args.route]
    default = DeliveryPolicy(max_attempts=args.max_attempts)
    policies = {c.group: c.policy(default) for c in events.consumers if c.delivery}   # the catalogue's own rules win
    concurrency = {c.group: c.concurrency for c in events.consumers}
    asyncio.run(_run_until_signalled(bus, routes, args.timeout, events.topics_for, policies, concurrency))


async def _run_until_signalled(bus: KafkaEventBus, routes: Sequence[Route], timeout_s: float,
                               topics_for: Callable[[Sequence[str]], Sequence[str]],
                               policies: dict[str, DeliveryPolicy] | None = None,
                               concurrency: dict[str, int] | None = None) -> None:
    task = asyncio.create_task(run_relay(bus, routes, timeout_s, topics_for, policies, concurrency))
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        pass


if __name__ == "__main__":
    main()
