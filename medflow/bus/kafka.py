"""Kafka event bus (kafka-python): the cluster adapter of ``EventBus``.

Records are CloudEvents in binary content mode (``ce_*`` headers, JSON value, key =
subject, so events about one resource share a partition and stay in order).

Each consumer group runs one ``KafkaConsumer`` in its own thread and handles its records
one at a time: the handler runs on the bus's event loop through the shared ``deliver``
(same retry and dead-letter rules as the embedded bus), and the offset is committed only
once the event is done or dead-lettered (at-least-once; consumers are idempotent).

Topics: ``topic_for(event_type)`` names the topic of a concrete type. A type pattern
ending in ``*`` is mapped by asking ``topic_for`` about two different completions of it;
they must agree (``org.medflow.audit.*`` names one topic, ``org.medflow.*`` does not),
otherwise pass ``topics=`` to ``subscribe``. A group only sees the types it subscribed to:
other types sharing its topics are skipped (and committed).

Dead letters: the original record (key, value, ``ce_*`` headers) is written to
``dead_letter_topic_for(group)`` with ``medflow_dlq_*`` headers (reason, group, attempts,
source topic, partition and offset). Records that are not CloudEvents go there too.

Nothing here logs event data (it may hold patient data): ids, types and offsets only.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Sequence

import kafka.errors as kafka_errors
from cloudevents.http import CloudEvent
from kafka import ConsumerRebalanceListener, KafkaAdminClient, KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition

from medflow.bus.delivery import DeliveryResult, deliver
from medflow.bus.events import describe, from_kafka, to_kafka
from medflow.bus.ports import DeadLetter, DeliveryPolicy, Handler, Lag, Outcome, matches
from medflow.errors import TransientError

log = logging.getLogger("medflow.bus.kafka")

DLQ_PREFIX = "medflow_dlq_"
SEND_TIMEOUT_S = 30.0          # default producer delivery time-out (MEDFLOW_KAFKA_SEND_TIMEOUT_S)
SESSION_TIMEOUT_S = 45.0       # default consumer session (MEDFLOW_KAFKA_SESSION_TIMEOUT_S), Kafka's own default
ASSIGNMENT_TIMEOUT_S = 60.0    # group join beyond the session time-out: a new member waits for a crashed one's
                               # session to run out before the group rebalances
UNDECODABLE_TYPE = "org.medflow.bus.undecodable.v1"
NUDGE_EVERY_S = 2.0            # idle consumers re-check their positions this often (see _nudge_when_idle)
STALL_AFTER_S = 10.0           # an idle consumer behind its partitions' ends this long is opened again
RESTART_BACKOFF_S = 1.0        # a consumer that failed is opened again after this pause


@dataclass(frozen=True)
class _Subscription:
    group: str
    types: tuple[str, ...]
    topics: tuple[str, ...]
    handler: Handler
    policy: DeliveryPolicy
    concurrency: int = 1


class KafkaEventBus:
    def __init__(self, bootstrap: str, *, topic_for: Callable[[str], str], dead_letter_topic_for: Callable[[str], str],
                 default_policy: DeliveryPolicy | None = None, client_id: str = "medflow",
                 partitions_for: Callable[[str], int] | None = None, send_timeout_s: float = SEND_TIMEOUT_S,
                 session_timeout_s: float = SESSION_TIMEOUT_S) -> None:
        self._bootstrap = bootstrap
        self._send_timeout_s = send_timeout_s
        self._session_timeout_s = session_timeout_s
        self._partitions_for = partitions_for or (lambda topic: 3)
        self._topic_for = topic_for
        self._dead_letter_topic_for = dead_letter_topic_for
        self._policy = default_policy or DeliveryPolicy()
        self._client_id = client_id
        self._subscriptions: dict[str, _Subscription] = {}
        self._workers: list[_GroupWorker] = []
        self._producer: KafkaProducer | None = None
        self._producer_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False

    # -- EventBus ------------------------------------------------------------------------

    def subscribe(self, group: str, types: Sequence[str], handler: Handler, policy: DeliveryPolicy | None = None, *,
                  topics: Sequence[str] | None = None, concurrency: int = 1) -> None:
        """Register a group before ``start``; ``topics`` overrides the topics derived from ``types``;
        ``concurrency`` consumers of the group in this process share its partitions (one event
        in flight each, in order per partition)."""
        if self._started:
            raise RuntimeError("subscribe before start(): Kafka consumer groups are fixed once started")
        if group in self._subscriptions:
            raise ValueError(f"consumer group {group!r} already subscribed")
        group_topics = tuple(dict.fromkeys(topics or (self.topic_of(t) for t in types)))
        self._subscriptions[group] = _Subscription(group, tuple(types), group_topics, handler, policy or self._policy,
                                                   max(1, concurrency))

    async def publish(self, event: CloudEvent) -> None:
        """Send to the type's topic and return once the broker acknowledged it (acks=all)."""
        key, value, headers = to_kafka(event)
        topic = self._topic_for(event["type"])
        await asyncio.to_thread(self._send, topic, key, value, headers)

    async def start(self) -> None:
        """Create missing topics, start one consumer thread per group, wait for their partitions."""
        if self._started:
            return
        self._loop = asyncio.get_running_loop()
        subscriptions = list(self._subscriptions.values())
        topics = {t for s in subscriptions for t in s.topics} | {self._dead_letter_topic_for(s.group) for s in subscriptions}
        for count in sorted({self._partitions_for(t) for t in topics}):   # as the catalogue declares them
            await self.ensure_topics({t for t in topics if self._partitions_for(t) == count}, count)
        self._workers = [_GroupWorker(self, s, lane) for s in subscriptions for lane in range(s.concurrency)]
        self._started = True
        for worker in self._workers:
            worker.start()
        deadline = time.monotonic() + self._session_timeout_s + ASSIGNMENT_TIMEOUT_S
        await asyncio.to_thread(self._wait_for_assignments, deadline)

    async def stop(self) -> None:
        """Stop the consumer threads (an event being handled is cancelled, not committed), close the producer."""
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.request_stop()
        for worker in workers:
            await asyncio.to_thread(worker.join)
        self._started = False
        with self._producer_lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            await asyncio.to_thread(producer.close, 10)

    async def dead_letters(self, group: str, limit: int = 100) -> list[DeadLetter]:
        """Read the group's dead-letter topic from the beginning (no consumer group, nothing committed)."""
        records = await asyncio.to_thread(self._read_topic, self._dead_letter_topic_for(group))
        records.sort(key=lambda r: (r.timestamp, r.partition, r.offset))
        return [_dead_letter_of(group, r) for r in records[:limit]]

    async def lag(self, group_topics: dict[str, Sequence[str]]) -> list[Lag]:
        """Per group, topic and partition: committed offset, log end, and the difference."""
        return await asyncio.to_thread(self._lag, group_topics)

    async def dead_letter_counts(self, groups: Sequence[str]) -> dict[str, int]:
        """Records in each group's dead-letter topic (end minus beginning offsets)."""
        return await asyncio.to_thread(self._dead_letter_counts, list(groups))

    def consumer_states(self) -> list[dict[str, Any]]:
        """Each consumer thread: alive, assigned, restarts, last poll, records seen, positions."""
        return [worker.state() for worker in self._workers]

    # -- administration ------------------------------------------------------------------

    async def ensure_topics(self, topics: Iterable[str], partitions: int = 3) -> None:
        """Create the topics that do not exist yet (clusters often disable auto-creation)."""
        await asyncio.to_thread(self._create_topics, sorted(set(topics)), partitions)

    def topic_of(self, type_or_pattern: str) -> str:
        """The topic of a concrete type, or of a ``*`` pattern that stays within one topic."""
        if not type_or_pattern.endswith("*"):
            return self._topic_for(type_or_pattern)
        prefix = type_or_pattern[:-1]
        candidates = {self._topic_for(prefix + completion) for completion in ("a.v1", "z.y.v9")}
        if len(candidates) != 1:
            raise ValueError(f"type pattern {type_or_pattern!r} spans several topics; pass topics= to subscribe")
        return candidates.pop()

    # -- blocking helpers (run in threads) -----------------------------------------------

    def _producer_instance(self) -> KafkaProducer:
        with self._producer_lock:
            if self._producer is None:
                delivery_ms = int(self._send_timeout_s * 1000)   # >= linger + request time-out, as the client wants
                self._producer = KafkaProducer(
                    bootstrap_servers=self._bootstrap, client_id=self._client_id, acks="all", linger_ms=0,
                    enable_idempotence=True, request_timeout_ms=min(10_000, delivery_ms // 2),
                    delivery_timeout_ms=delivery_ms, max_block_ms=min(15_000, delivery_ms))
            return self._producer

    def _send(self, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> None:
        try:
            self._producer_instance().send(topic, value=value, key=key, headers=headers).get(timeout=self._send_timeout_s + 5)
        except kafka_errors.KafkaError as exc:
            raise TransientError(f"Kafka did not acknowledge a record for {topic}: {type(exc).__name__}") from exc

    def _create_topics(self, topics: list[str], partitions: int) -> None:
        try:
            admin = KafkaAdminClient(bootstrap_servers=self._bootstrap, client_id=self._client_id)
        except kafka_errors.KafkaError as exc:
            raise TransientError(f"Kafka admin client could not connect: {type(exc).__name__}") from exc
        try:
            response = admin.create_topics(
                {t: {"num_partitions": partitions, "replication_factor": -1} for t in topics}, raise_errors=False)
            for result in response["topics"]:
                error = kafka_errors.for_code(result["error_code"])
                if error not in (kafka_errors.NoError, kafka_errors.TopicAlreadyExistsError):
                    raise TransientError(f"could not create topic {result['name']}: {error.__name__}")
            admin.wait_for_topics(topics)
        except kafka_errors.KafkaError as exc:
            raise TransientError(f"could not create topics: {type(exc).__name__}") from exc
        finally:
            admin.close()

    def _offset_clients(self) -> tuple[KafkaAdminClient, KafkaConsumer]:
        try:
            admin = KafkaAdminClient(bootstrap_servers=self._bootstrap, client_id=self._client_id)
            consumer = KafkaConsumer(bootstrap_servers=self._bootstrap, client_id=self._client_id, group_id=None,
                                     enable_auto_commit=False, allow_auto_create_topics=False)
        except kafka_errors.KafkaError as exc:
            raise TransientError(f"Kafka could not be reached: {type(exc).__name__}") from exc
        return admin, consumer

    def _lag(self, group_topics: dict[str, Sequence[str]]) -> list[Lag]:
        admin, consumer = self._offset_clients()
        try:
            rows = []
            for group, topics in group_topics.items():
                committed = _committed_offsets(admin, group)
                partitions = [TopicPartition(topic, p) for topic in topics
                              for p in sorted(consumer.partitions_for_topic(topic) or ())]
                if not partitions:
                    continue
                end, start = consumer.end_offsets(partitions), consumer.beginning_offsets(partitions)
                for tp in partitions:
                    done = committed[tp].offset if tp in committed and committed[tp].offset >= 0 else start[tp]
                    rows.append(Lag(group, tp.topic, tp.partition, done, end[tp], max(0, end[tp] - done)))
            return rows
        except kafka_errors.KafkaError as exc:
            raise TransientError(f"could not read offsets: {type(exc).__name__}") from exc
        finally:
            consumer.close(autocommit=False)
            admin.close()

    def _dead_letter_counts(self, groups: list[str]) -> dict[str, int]:
        admin, consumer = self._offset_clients()
        try:
            counts = {}
            for group in groups:
                topic = self._dead_letter_topic_for(group)
                partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
                end, start = (consumer.end_offsets(partitions), consumer.beginning_offsets(partitions)) if partitions else ({}, {})
                counts[group] = sum(end[tp] - start[tp] for tp in partitions)
            return counts
        except kafka_errors.KafkaError as exc:
            raise TransientError(f"could not read offsets: {type(exc).__name__}") from exc
        finally:
            consumer.close(autocommit=False)
            admin.close()

    def _wait_for_assignments(self, deadline: float) -> None:
        for worker in self._workers:
            while not worker.assigned.wait(0.1):
                if worker.error is not None:
                    raise TransientError(f"consumer of group {worker.group} failed: {type(worker.error).__name__}")
                if time.monotonic() > deadline:
                    raise TransientError(f"consumer group {worker.group} got no partitions in time")

    def _read_topic(self, topic: str, timeout_s: float = 30.0) -> list[Any]:
        """Every record of a topic, read with a group-less consumer from the beginning to the current end."""
        consumer = KafkaConsumer(bootstrap_servers=self._bootstrap, client_id=self._client_id, group_id=None,
                                 enable_auto_commit=False, allow_auto_create_topics=False)
        try:
            partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
            if not partitions:
                return []
            consumer.assign(partitions)
            consumer.seek_to_beginning(*partitions)
            end = consumer.end_offsets(partitions)
            records: list[Any] = []
            deadline = time.monotonic() + timeout_s
            while any(consumer.position(tp) < end[tp] for tp in partitions):
                if time.monotonic() > deadline:
                    raise TransientError(f"timed out reading {topic}")
                for batch in consumer.poll(timeout_ms=200).values():
                    records.extend(r for r in batch if r.offset < end[TopicPartition(r.topic, r.partition)])
            return records
        except kafka_errors.KafkaError as exc:
            raise TransientError(f"could not read {topic}: {type(exc).__name__}") from exc
        finally:
            consumer.close(autocommit=False)

    def _dead_letter(self, group: str, record: Any, reason: str, attempts: int) -> None:
        """Write the original record plus ``medflow_dlq_*`` headers to the group's dead-letter topic."""
        headers = [(k, v) for k, v in (record.headers or []) if not k.startswith(DLQ_PREFIX)]
        headers += [(DLQ_PREFIX + name, str(value).encode()) for name, value in (
            ("reason", reason), ("group", group), ("attempts", attempts),
            ("topic", record.topic), ("partition", record.partition), ("offset", record.offset))]
        self._send(self._dead_letter_topic_for(group), record.key, record.value, headers)

    def _run_on_loop(self, coroutine: Any) -> concurrent.futures.Future:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)


class _AssignmentSignal(ConsumerRebalanceListener):
    """Sets ``assigned`` once the group coordinator gave this consumer its partitions."""

    def __init__(self, assigned: threading.Event) -> None:
        self._assigned = assigned

    def on_partitions_revoked(self, revoked: Any) -> None:
        pass

    def on_partitions_assigned(self, assigned: Any) -> None:
        self._assigned.set()


class _Stopping(Exception):
    """The bus is stopping: leave the current record uncommitted."""


class _Stalled(Exception):
    """The consumer polls nothing while its partitions hold records it has not read."""


class _GroupWorker(threading.Thread):
    """One consumer group: poll, hand each matching event to ``deliver``, commit after it."""

    def __init__(self, bus: KafkaEventBus, subscription: _Subscription, lane: int = 0) -> None:
        super().__init__(name=f"kafka-bus:{subscription.group}:{lane}", daemon=True)
        self.group = subscription.group
        self.assigned = threading.Event()
        self.error: BaseException | None = None
        self._bus = bus
        self._subscription = subscription
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._in_flight: concurrent.futures.Future | None = None
        self._nudged_at = 0.0
        self._behind_since: float | None = None
        self.restarts = 0
        self.records = 0
        self.polled_at: float | None = None
        self.positions: dict[str, int | None] = {}

    def request_stop(self) -> None:
        with self._lock:
            self._stopping.set()
            if self._in_flight is not None:
                self._in_flight.cancel()

    def run(self) -> None:
        """Consume until stopped. A consumer that fails after it joined is closed and opened
        again (its partitions resume from the group's commits); one that never joined
        reports the error to ``start``."""
        while not self._stopping.is_set():
            try:
                consumer = self._open()
            except Exception as exc:
                self.error = exc
                log.error("kafka consumer could not start", extra={"group": self.group, "error": type(exc).__name__})
                if not self.assigned.is_set():
                    return
                self._stopping.wait(RESTART_BACKOFF_S)
                continue
            try:
                self._serve(consumer)
            except Exception as exc:
                self.error = exc
                self.restarts += 1
                if isinstance(exc, _Stalled):
                    log.warning("kafka consumer stalled behind its partitions; opening a new one",
                                extra={"group": self.group})
                else:
                    log.exception("kafka consumer failed; opening a new one", extra={"group": self.group})
                    self._stopping.wait(RESTART_BACKOFF_S)
            finally:
                consumer.close(autocommit=False)

    def _open(self) -> KafkaConsumer:
        consumer = KafkaConsumer(
            bootstrap_servers=self._bus._bootstrap, client_id=self._bus._client_id, group_id=self.group,
            enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=100,
            metadata_max_age_ms=30_000, session_timeout_ms=int(self._bus._session_timeout_s * 1000),
            heartbeat_interval_ms=int(min(3.0, self._bus._session_timeout_s / 3) * 1000))
        try:
            self._await_topic_metadata(consumer)
            consumer.subscribe(topics=list(self._subscription.topics), listener=_AssignmentSignal(self.assigned))
        except BaseException:
            consumer.close(autocommit=False)
            raise
        return consumer

    def _serve(self, consumer: KafkaConsumer) -> None:
        while not self._stopping.is_set():
            batches = self._poll(consumer)
            for partition, records in batches.items():
                self._consume_batch(consumer, partition, records)
            if batches:
                self._behind_since = None
            else:
                self._nudge_when_idle(consumer)
            self.positions = self._positions_known(consumer)

    def _poll(self, consumer: KafkaConsumer) -> dict[TopicPartition, list[Any]]:
        """The next records; broker trouble is waited out (kafka-python reconnects by itself)."""
        try:
            batches = consumer.poll(timeout_ms=200)
        except kafka_errors.KafkaError as exc:
            log.warning("kafka poll failed; retrying", extra={"group": self.group, "error": type(exc).__name__})
            self._stopping.wait(1.0)
            return {}
        self.polled_at = time.monotonic()
        return batches

    def _nudge_when_idle(self, consumer: KafkaConsumer) -> None:
        """Every few idle seconds, ask for each assigned partition's position and end. kafka-python
        3 can leave a partition unfetchable while an offset reset or leader-epoch validation it
        started is never awaited by ``poll`` (dpkp/kafka-python#3106); ``position`` awaits both,
        so a partition stalled that way fetches again. A consumer still behind after
        ``STALL_AFTER_S`` of empty polls is stuck some other way: ``_Stalled`` has it opened
        again (it resumes from the group's commits)."""
        now = time.monotonic()
        if now - self._nudged_at < NUDGE_EVERY_S:
            return
        self._nudged_at = now
        try:
            partitions = list(consumer.assignment())
            positions = {tp: consumer.position(tp, timeout_ms=1_000) for tp in partitions}
            ends = consumer.end_offsets(partitions, timeout_ms=1_000) if partitions else {}
        except (kafka_errors.KafkaError, ValueError) as exc:   # broker trouble: not this consumer's stall
            log.warning("kafka position check failed", extra={"group": self.group, "error": type(exc).__name__})
            return
        if not any(positions[tp] is not None and positions[tp] < ends.get(tp, 0) for tp in partitions):
            self._behind_since = None
        elif self._behind_since is None:
            self._behind_since = now
        elif now - self._behind_since >= STALL_AFTER_S:
            self._behind_since = None
            raise _Stalled(f"group {self.group} read nothing for {STALL_AFTER_S:.0f} s while behind")

    @staticmethod
    def _positions_known(consumer: KafkaConsumer) -> dict[str, int | None]:
        """Fetch positions as the consumer holds them (no network call), for ``state``."""
        found: dict[str, int | None] = {}
        subscription = getattr(consumer, "_subscription", None)
        for partition, state in list(getattr(subscription, "assignment", {}).items()):
            position = getattr(state, "position", None)
            found[f"{partition.topic}/{partition.partition}"] = getattr(position, "offset", position)
        return found

    def state(self) -> dict[str, Any]:
        """What this consumer is doing, for diagnostics (no event data)."""
        return {"group": self.group, "thread": self.name, "alive": self.is_alive(), "assigned": self.assigned.is_set(),
                "error": type(self.error).__name__ if self.error else None, "restarts": self.restarts,
                "seconds_since_poll": round(time.monotonic() - self.polled_at, 1) if self.polled_at else None,
                "records": self.records, "positions": dict(self.positions)}

    def _await_topic_metadata(self, consumer: KafkaConsumer, timeout_s: float = 30.0) -> None:
        """Load the partitions of our topics before joining: a group leader that does not know a
        topic yet assigns none of it, and would only notice at the next metadata refresh."""
        deadline = time.monotonic() + timeout_s
        while not all(consumer.partitions_for_topic(t) for t in self._subscription.topics):
            if time.monotonic() > deadline or self._stopping.is_set():
                raise TransientError(f"no partition metadata for the topics of group {self.group}")
            time.sleep(0.2)

    def _consume_batch(self, consumer: KafkaConsumer, partition: TopicPartition, records: list[Any]) -> None:
        """Handle records in order, committing each; when one cannot be finished (or committed),
        rewind the partition so that the next poll resumes from the first unfinished record."""
        for record in records:
            self.records += 1
            try:
                self._consume(record)
            except _Stopping:
                return
            except Exception as exc:
                if self._stopping.is_set():
                    return
                log.error("record not handled; will retry", extra={
                    "group": self.group, "topic": record.topic, "partition": record.partition,
                    "offset": record.offset, "error": type(exc).__name__})
                _rewind(consumer, partition, record.offset)
                self._stopping.wait(1.0)
                return
            try:
                consumer.commit({partition: OffsetAndMetadata(record.offset + 1, "", -1)})
            except kafka_errors.KafkaError as exc:  # e.g. a rebalance: a later commit, or the next owner, covers it
                log.warning("offset commit failed", extra={"group": self.group, "error": type(exc).__name__})
                _rewind(consumer, partition, record.offset + 1)
                return

    def _consume(self, record: Any) -> None:
        try:
            event = from_kafka(record.key, record.value, record.headers or [])
        except Exception as exc:
            reason = f"undecodable: not a binary-mode CloudEvent ({type(exc).__name__})"
            log.error("undecodable record dead-lettered", extra={
                "group": self.group, "topic": record.topic, "partition": record.partition, "offset": record.offset})
            self._bus._dead_letter(self.group, record, reason, 0)
            return
        if not matches(self._subscription.types, event["type"]):
            return
        result = self._deliver(event)
        if result.outcome is Outcome.REJECT:
            self._bus._dead_letter(self.group, record, result.reason, result.attempts)
            log.warning("event dead-lettered", extra={**describe(event), "group": self.group, "attempts": result.attempts})

    def _deliver(self, event: CloudEvent) -> DeliveryResult:
        s = self._subscription
        with self._lock:
            if self._stopping.is_set():
                raise _Stopping()
            self._in_flight = in_flight = self._bus._run_on_loop(deliver(event, s.handler, s.policy, s.group))
        try:
            return in_flight.result()
        except concurrent.futures.CancelledError:
            raise _Stopping() from None
        finally:
            self._in_flight = None


def _committed_offsets(admin: KafkaAdminClient, group: str) -> dict[TopicPartition, Any]:
    """A group's committed offsets: ``list_group_offsets`` (kafka-python 3) or
    ``list_consumer_group_offsets`` (2.x)."""
    if hasattr(admin, "list_group_offsets"):
        return admin.list_group_offsets(group).get(group, {})
    return admin.list_consumer_group_offsets(group)


def _rewind(consumer: KafkaConsumer, partition: TopicPartition, offset: int) -> None:
    """Fetch ``partition`` from ``offset`` again (poll already moved past the batch)."""
    try:
        consumer.seek(partition, offset)
    except (kafka_errors.KafkaError, ValueError):  # no longer ours: its next owner starts at the commit
        pass


def _dead_letter_of(group: str, record: Any) -> DeadLetter:
    """A DeadLetter from a dead-letter record: the original event, reason, attempts and origin."""
    headers = record.headers or []
    dlq = {k[len(DLQ_PREFIX):]: v.decode() for k, v in headers if k.startswith(DLQ_PREFIX)}
    original = [(k, v) for k, v in headers if not k.startswith(DLQ_PREFIX)]
    try:
        event = from_kafka(record.key, record.value, original)
    except Exception:
        event = _stand_in_event(record, dlq)
    origin = {name: dlq[name] for name in ("topic", "partition", "offset") if name in dlq}
    return DeadLetter(group=group, event=event, reason=dlq.get("reason", ""), attempts=int(dlq.get("attempts", "0")),
                      failed_at=datetime.fromtimestamp(record.timestamp / 1000, timezone.utc), extra=origin)


def _stand_in_event(record: Any, dlq: dict[str, str]) -> CloudEvent:
    """A record that was never a CloudEvent, wrapped so it can be inspected like the others."""
    origin = "/".join(dlq.get(name, "?") for name in ("topic", "partition", "offset"))
    attributes = {"type": UNDECODABLE_TYPE, "source": "/medflow/kafka-bus", "id": origin,
                  "datacontenttype": "application/octet-stream"}
    if record.key:
        attributes["subject"] = record.key.decode(errors="replace")
    return CloudEvent(attributes, record.value)
