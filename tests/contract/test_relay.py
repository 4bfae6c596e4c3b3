"""The relay against real Kafka and a real HTTP server: Knative's delivery contract.

The function is a tiny HTTP server whose answer depends on the event's subject:
``ok-*`` 200, ``bad-*`` 400, ``down-*`` 503, ``flaky-*`` 503 on the first call then 200.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator

import pytest
from cloudevents.http import CloudEvent

from medflow.bus.events import make_event
from medflow.bus.ports import DeadLetter
from medflow.bus.relay import HttpDelivery, parse_route, run_relay
from medflow.errors import PermanentError, TransientError

STORED = "org.medflow.imaging.study_stored.v1"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
MAX_ATTEMPTS = 3   # the bus_factory's default policy
WAIT_S = 20.0


class FunctionServer(ThreadingHTTPServer):
    """Answers by subject and remembers every CloudEvent it was sent (binary mode headers)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _FunctionHandler)
        self.calls: Counter[str] = Counter()
        self.received: list[dict[str, str]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"

    def status_for(self, subject: str) -> int:
        with self.lock:
            self.calls[subject] += 1
            calls = self.calls[subject]
        kind = subject.split("-", 1)[0]
        return {"ok": 200, "bad": 400, "down": 503, "flaky": 503 if calls == 1 else 200}.get(kind, int(kind) if kind.isdigit() else 500)


class _FunctionHandler(BaseHTTPRequestHandler):
    server: FunctionServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        subject = self.headers.get("ce-subject", "")
        status = self.server.status_for(subject)
        if status == 200:
            with self.server.lock:
                self.server.received.append({**{k.lower(): v for k, v in self.headers.items()}, "body": body.decode()})
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def function_server() -> Iterator[FunctionServer]:
    server = FunctionServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


async def eventually(condition: Callable[[], Any], timeout_s: float = WAIT_S) -> Any:
    """Poll ``condition`` (sync or async) until it returns something truthy; fail at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.05)


async def dead_letters(bus: Any, group: str, count: int) -> list[DeadLetter] | None:
    found = await bus.dead_letters(group)
    return found if len(found) >= count else None


def attributes(e: CloudEvent) -> dict[str, Any]:
    names = ("id", "type", "source", "subject", "time", "traceparent")
    return {**{name: e.get(name) for name in names}, "data": e.data}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def event(subject: str):
    return make_event(STORED, "/medflow/relay-test", subject, {"subject": subject}, traceparent=TRACEPARENT)


async def test_relay_follows_the_knative_delivery_contract(bus_factory, function_server):
    bus = await bus_factory("real")
    group = f"indexer-{secrets.token_hex(3)}"   # group ids are global on the broker
    relay = asyncio.create_task(run_relay(bus, [(group, [STORED], function_server.url)], timeout_s=5))
    sent = {subject: event(subject) for subject in ("ok-1", "bad-1", "down-1", "flaky-1")}
    try:
        for e in sent.values():
            await bus.publish(e)
        letters = await eventually(lambda: dead_letters(bus, group, 2))
        await eventually(lambda: len(function_server.received) >= 2)
    finally:
        relay.cancel()
        await asyncio.gather(relay, return_exceptions=True)

    delivered = {r["ce-subject"]: r for r in function_server.received}
    assert sorted(delivered) == ["flaky-1", "ok-1"]
    assert delivered["ok-1"]["ce-id"] == sent["ok-1"]["id"]
    assert delivered["ok-1"]["ce-traceparent"] == TRACEPARENT
    assert delivered["ok-1"]["content-type"] == "application/json"
    assert delivered["ok-1"]["body"] == '{"subject": "ok-1"}'
    assert "ce-partitionkey" not in delivered["ok-1"]
    assert function_server.calls == {"ok-1": 1, "flaky-1": 2, "bad-1": 1, "down-1": MAX_ATTEMPTS}

    by_subject = {letter.event["subject"]: letter for letter in letters}
    assert sorted(by_subject) == ["bad-1", "down-1"]
    assert by_subject["bad-1"].attempts == 1 and "HTTP 400" in by_subject["bad-1"].reason
    assert by_subject["down-1"].attempts == MAX_ATTEMPTS and "HTTP 503" in by_subject["down-1"].reason
    assert attributes(by_subject["bad-1"].event) == attributes(sent["bad-1"])


@pytest.mark.parametrize("status, error", [(404, PermanentError), (422, PermanentError), (408, TransientError),
                                           (429, TransientError), (500, TransientError), (302, TransientError)])
async def test_http_status_maps_to_done_or_retry_or_dead_letter(function_server, status, error):
    delivery = HttpDelivery(function_server.url, timeout_s=5)
    try:
        with pytest.raises(error, match=f"HTTP {status}"):
            await delivery(event(f"{status}-x"))
        await delivery(event("ok-x"))
    finally:
        await delivery.aclose()


async def test_an_unreachable_function_is_a_transient_failure():
    delivery = HttpDelivery(f"http://127.0.0.1:{free_port()}/", timeout_s=2)
    try:
        with pytest.raises(TransientError):
            await delivery(event("ok-x"))
    finally:
        await delivery.aclose()


def test_routes_are_parsed_from_the_command_line():
    assert parse_route("indexer=http://h:8080/f?a=b=org.medflow.imaging.*,org.medflow.audit.x.v1") == (
        "indexer", ["org.medflow.imaging.*", "org.medflow.audit.x.v1"], "http://h:8080/f?a=b")
