"""The event catalogue (``events/catalogue.yaml``): topics, schemas, consumers.

Producers call ``validate`` before publishing; consumers call it on receipt and treat a
failure as permanent (dead-letter, no retry).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, FormatChecker

from medflow.bus.ports import DeliveryPolicy, matches
from medflow.errors import PermanentError

CATALOGUE_DIR = Path(__file__).resolve().parents[2] / "events"


class UnknownEventType(PermanentError):
    pass


class InvalidEventData(PermanentError):
    pass


@dataclass(frozen=True)
class Consumer:
    group: str
    function: str
    accepts: tuple[str, ...]
    delivery: dict[str, Any] | None = None   # the consumer's own retry rules, over the defaults

    @property
    def concurrency(self) -> int:
        """Events of the group in flight at once per process (``delivery.concurrency``; 1 by default)."""
        return int((self.delivery or {}).get("concurrency", 1))

    def policy(self, default: DeliveryPolicy) -> DeliveryPolicy:
        """``default`` with this consumer's ``retry`` and ``backoffDelay`` (``PT<n>S``) applied."""
        if not self.delivery:
            return default
        delay = str(self.delivery.get("backoffDelay", "")).removeprefix("PT").removesuffix("S")
        return DeliveryPolicy(int(self.delivery.get("retry", default.max_attempts)),
                              float(delay) if delay else default.backoff_initial_s, default.backoff_max_s)


class Catalogue:
    """The catalogue, optionally under a namespace: a prefix on every topic and consumer group,
    so several environments (or test runs) can share one Kafka cluster."""

    def __init__(self, directory: Path = CATALOGUE_DIR, namespace: str = "") -> None:
        self.directory = directory
        self.namespace = f"{namespace}." if namespace else ""
        self.raw: dict[str, Any] = yaml.safe_load((directory / "catalogue.yaml").read_text())

    @property
    def event_types(self) -> list[str]:
        return sorted(self.raw["events"])

    def topic_for(self, event_type: str) -> str:
        try:
            return self.namespace + self.raw["events"][event_type]["topic"]
        except KeyError:
            raise UnknownEventType(f"event type {event_type} is not in the catalogue") from None

    def topics_for(self, patterns: tuple[str, ...]) -> list[str]:
        """Every topic carrying a type that one of the patterns accepts."""
        return sorted({self.topic_for(t) for t in self.event_types if matches(patterns, t)})

    def partitions_of(self, topic: str, default: int = 3) -> int:
        """The partitions the catalogue gives a topic (dead-letter and unknown topics: ``default``)."""
        declared = self.raw["topics"].get(topic.removeprefix(self.namespace)) or {}
        return int(declared.get("partitions", default))

    def dead_letter_topic(self, group: str) -> str:
        """The dead-letter topic of a consumer group (``group`` as the bus knows it)."""
        return self.namespace + self.raw["defaults"]["dead_letter_topic"].format(group=group.removeprefix(self.namespace))

    @property
    def consumers(self) -> list[Consumer]:
        return [Consumer(self.namespace + group, c["function"], tuple(c["accepts"]), c.get("delivery"))
                for group, c in self.raw["consumers"].items()]

    @cached_property
    def _validators(self) -> dict[str, Draft202012Validator]:
        return {t: Draft202012Validator(json.loads((self.directory / e["schema"]).read_text()), format_checker=FormatChecker())
                for t, e in self.raw["events"].items()}

    def validate(self, event_type: str, data: Any) -> None:
        """Raise InvalidEventData naming the failing fields (not their values)."""
        validator = self._validators.get(event_type)
        if validator is None:
            raise UnknownEventType(f"event type {event_type} is not in the catalogue")
        problems = sorted(validator.iter_errors(data), key=lambda e: list(e.path))
        if problems:
            where = ", ".join("/".join(map(str, p.path)) or "(root)" for p in problems[:5])
            raise InvalidEventData(f"event data does not match {event_type}: invalid at {where}")

    def schema(self, event_type: str) -> dict[str, Any]:
        return self._validators[event_type].schema
