"""Building CloudEvents and moving them across HTTP and Kafka in binary content mode.

Conventions (ARCHITECTURE §4): ``type`` = ``org.medflow.<context>.<event>.v<N>``,
``source`` = ``/medflow/<function>``, ``subject`` = the resource id (also the Kafka key),
and the W3C ``traceparent`` extension carried through.
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping

from cloudevents import kafka as ce_kafka
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent, from_http

from medflow.ids import new_id, utcnow

TYPE_PATTERN = re.compile(r"^org\.medflow\.[a-z][a-z0-9_]*\.[a-z][a-z0-9_.]*\.v[0-9]+$")
JSON = "application/json"


def make_event(type_: str, source: str, subject: str, data: Mapping[str, Any], *,
               event_id: str | None = None, traceparent: str | None = None) -> CloudEvent:
    """A CloudEvent with our conventions checked; ``traceparent`` defaults to the current trace."""
    if not TYPE_PATTERN.match(type_):
        raise ValueError(f"event type {type_!r} does not follow org.medflow.<context>.<event>.v<N>")
    if not source.startswith("/medflow/"):
        raise ValueError("event source must be /medflow/<function>")
    if traceparent is None:
        from medflow.tracing import current_traceparent
        traceparent = current_traceparent()
    attributes: dict[str, Any] = {
        "type": type_, "source": source, "subject": subject, "id": event_id or new_id(),
        "time": utcnow().isoformat(), "datacontenttype": JSON,
    }
    if traceparent:
        attributes["traceparent"] = traceparent
    return CloudEvent(attributes, dict(data))


def to_http(event: CloudEvent) -> tuple[dict[str, str], bytes]:
    """Binary content mode: attributes in ``ce-*`` headers, data as the JSON body."""
    headers, body = to_binary(event)
    return dict(headers), body if isinstance(body, bytes) else (body or b"")


def parse_http(headers: Mapping[str, str], body: bytes) -> CloudEvent:
    """Binary or structured mode to a CloudEvent; raises the SDK's errors on bad input."""
    return from_http(dict(headers), body)


def _key_of(event: CloudEvent) -> str:
    return event.get("subject") or event["id"]


def to_kafka(event: CloudEvent) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """(key, value, headers) for a Kafka record: ``ce_*`` headers, the subject as key."""
    message = ce_kafka.to_binary(event, key_mapper=_key_of)
    key = message.key.encode() if isinstance(message.key, str) else message.key
    return key or b"", message.value or b"", [(k, v) for k, v in message.headers.items()]


def from_kafka(key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> CloudEvent:
    """The CloudEvent of a binary-mode record. The key is only the subject again, so it is
    not passed to the SDK, which would add it as a bytes ``partitionkey`` attribute (and
    ``to_http`` would then forward it as a ``ce-partitionkey`` header)."""
    message = ce_kafka.KafkaMessage(headers=dict(headers), key=None, value=value)
    return ce_kafka.from_binary(message, data_unmarshaller=_json_or_raw)


def _json_or_raw(value: bytes | None) -> Any:
    if not value:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return value


def describe(event: CloudEvent) -> dict[str, str]:
    """Attributes safe to log: never the data."""
    return {"event_id": event["id"], "event_type": event["type"], "event_source": event["source"]}
