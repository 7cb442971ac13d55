"""Moving contract records between JSON Lines files and Kafka (outside the Faust worker).

``publish_files`` sends the input files of a directory to the input topics in event-time
order (key = merchant_id, record timestamp = event time), as the platforms feeding yujing
would; ``read_records`` reads a topic back. Used by ``yujing publish``, the demo and tests.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from pydantic import ValidationError

from alerts.threshold_history import Publication
from contract.partitioning import partition_for
from contract.records import DeadLetter, dumps
from engine.replay import iter_events
from streams.security import PLAINTEXT, KafkaRefused, KafkaSecurity, refusals_explained
from streams.topics import (
    TopicError,
    create_missing_topics,
    input_topics,
    internal_topics,
    worker_topics,
)

if TYPE_CHECKING:
    from streams.config import KafkaSettings

# kafka-python logs connection retries at ERROR; the CLI reports failures itself, in one line.
logging.getLogger("kafka").setLevel(logging.CRITICAL)


class RawMessage(NamedTuple):
    """One message as the broker holds it."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def raw_value(deadletter: DeadLetter) -> bytes:
    """The bytes a dead letter was made from."""
    if deadletter.value_encoding == "base64":
        return base64.b64decode(deadletter.value)
    return deadletter.value.encode("utf-8")


class KafkaUnavailable(Exception):
    """Kafka cannot be reached (one readable line)."""


class SendRefused(Exception):
    """The broker refused records of a feed (one readable line)."""


@contextmanager
def connecting(bootstrap: str, security: KafkaSecurity, unreachable: str) -> Iterator[None]:
    """Around a client's construction: :class:`KafkaUnavailable` saying why the broker refused it
    (login, certificate, protocol), or ``unreachable`` when no broker answered at all."""
    try:
        with refusals_explained(bootstrap, security):
            yield
    except KafkaRefused as exc:
        raise KafkaUnavailable(str(exc)) from exc
    except KafkaError as exc:  # kafka-python 3 reports an unreachable bootstrap as a timeout
        raise KafkaUnavailable(unreachable) from exc


def producer(settings: KafkaSettings) -> KafkaProducer:
    with connecting(settings.bootstrap, settings.kafka_security,
                    f"no Kafka broker at {settings.bootstrap} (start one: yujing broker start)"):
        return KafkaProducer(
            bootstrap_servers=settings.bootstrap, **settings.kafka_security.client_options(),
            acks="all",
            linger_ms=20,
            batch_size=256 * 1024,
        )


def committed_and_end(consumer: KafkaConsumer, partitions: list[TopicPartition]) -> list[tuple[int, int]]:
    """(the consumer group's committed offset, the end offset) of each partition."""
    ends = consumer.end_offsets(partitions)
    return [(consumer.committed(tp) or 0, ends[tp]) for tp in partitions]


def group_progress(settings: KafkaSettings) -> tuple[float, int]:
    """(share of the records the worker group has committed, records in total) over the topics it
    reads: the inputs, the feedback and its internal chain-stage topics."""
    # A consumer of the worker's group that never subscribes only reads the group's commits.
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap, group_id=settings.app_id, enable_auto_commit=False,
                             **settings.kafka_security.client_options())
    try:
        known = consumer.topics()
        names = [*input_topics(settings).values(), *internal_topics(settings)]
        partitions = [TopicPartition(t, p) for t in names if t in known for p in range(settings.input_partitions)]
        positions = committed_and_end(consumer, partitions)
        done = sum(min(committed, end) for committed, end in positions)
        total = sum(end for _, end in positions)
        return done / max(total, 1), total
    finally:
        consumer.close()


class InputProgress:
    """Share of the input records the worker group has committed (None while the broker is away).

    The inputs alone: the chain stage's topics keep growing while days close, so a share over
    them would move backwards and put a fault at a point of the year other than the one drawn.
    One consumer is kept between looks (a new one per look costs the runner a core's third on a
    2-core machine); it is made again after a failure, e.g. across the broker's restart."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self.partitions = [TopicPartition(t, p) for t in input_topics(settings).values()
                           for p in range(settings.input_partitions)]
        self._consumer: KafkaConsumer | None = None

    def __call__(self) -> float | None:
        try:
            if self._consumer is None:
                # A consumer of the worker's group that never subscribes only reads its commits.
                self._consumer = KafkaConsumer(bootstrap_servers=self.settings.bootstrap, group_id=self.settings.app_id,
                                               enable_auto_commit=False, request_timeout_ms=5000,
                                               **self.settings.kafka_security.client_options())
            ends = self._consumer.end_offsets(self.partitions)
            done = sum(min(self._consumer.committed(tp) or 0, ends[tp]) for tp in self.partitions)
            return done / max(sum(ends.values()), 1)
        except KafkaError:
            self.close()
            return None

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


def publish_files(
    events_dir: Path,
    settings: KafkaSettings,
    *,
    on_record: Callable[[], None] | None = None,
) -> dict[str, int]:
    """Publish the input files of ``events_dir`` (and its ``feedback.jsonl``, if any) in
    event-time order; returns counts per topic.

    Records that do not decode are published as they are (the worker dead-letters them).
    """
    topics = input_topics(settings)
    counts = dict.fromkeys(topics.values(), 0)
    sink = producer(settings)
    try:
        for kind, record in iter_events(events_dir):
            topic = topics[kind]
            if isinstance(record, DeadLetter):
                # The line exactly as it was (base64 keeps bytes that are not UTF-8), so the live
                # worker dead-letters it with the same class as the replay of the file does.
                sink.send(topic, value=raw_value(record))
            else:
                sink.send(
                    topic,
                    key=record.merchant_id.encode("utf-8"),
                    value=orjson.dumps(record.model_dump(mode="json")),
                    timestamp_ms=int(record.occurred_at.timestamp() * 1000),
                )
            counts[topic] += 1
            if on_record is not None:
                on_record()
        sink.flush()
    except KafkaError as exc:
        raise KafkaUnavailable(f"publishing to {settings.bootstrap} failed: {exc}") from exc
    finally:
        sink.close()
    return counts


def read_records(
    topic: str,
    settings: KafkaSettings,
    *,
    idle_seconds: float = 3.0,
    from_beginning: bool = True,
) -> Iterator[dict]:
    """Read ``topic`` until no record has arrived for ``idle_seconds``."""
    with connecting(settings.bootstrap, settings.kafka_security, f"no Kafka broker at {settings.bootstrap}"):
        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=settings.bootstrap, **settings.kafka_security.client_options(),
            auto_offset_reset="earliest" if from_beginning else "latest",
            enable_auto_commit=False,
            consumer_timeout_ms=int(idle_seconds * 1000),
        )
    try:
        for message in consumer:
            yield orjson.loads(message.value)
    finally:
        consumer.close()


def read_messages(topic: str, settings: KafkaSettings, *, idle_seconds: float = 3.0) -> Iterator[RawMessage]:
    """Every message of ``topic`` from its start, undecoded (partition, offset, key, value, in each
    partition's order), until none has arrived for ``idle_seconds``: what the worker itself reads."""
    try:
        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=settings.bootstrap, **settings.kafka_security.client_options(),
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            consumer_timeout_ms=int(idle_seconds * 1000),
        )
    except KafkaError as exc:
        raise KafkaUnavailable(f"no Kafka broker at {settings.bootstrap}") from exc
    try:
        for message in consumer:
            yield RawMessage(message.partition, message.offset, message.key, message.value)
    finally:
        consumer.close()


# -- published thresholds (alerts.threshold_history) -----------------------------------------

def publish_thresholds(settings: KafkaSettings, published: Publication) -> int:
    """Send one publication to the thresholds topic; returns its offset."""
    sender = producer(settings)
    try:
        metadata = sender.send(
            settings.topics.thresholds, key=published.publication_id.encode(), value=dumps(published)
        ).get(timeout=30)
    except KafkaError as exc:
        raise KafkaUnavailable(f"could not publish to {settings.topics.thresholds}: {exc}") from exc
    finally:
        sender.close(timeout=10)
    return metadata.offset


class PublicationReader:
    """Reads the thresholds topic from its start, without a consumer group (every worker and
    every CLI call sees every publication). :meth:`poll` returns what arrived since the last
    call: :class:`Publication` records, or ``(offset, error)`` for records that are not one."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.topic = TopicPartition(settings.topics.thresholds, 0)
        with connecting(settings.bootstrap, settings.kafka_security, f"no Kafka broker at {settings.bootstrap}"):
            self.consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False,
                                          **settings.kafka_security.client_options(),
                                          client_id="yujing-thresholds")
        self.consumer.assign([self.topic])
        self.consumer.seek_to_beginning(self.topic)

    def poll(self, timeout_ms: int = 500) -> list[Publication | tuple[int, str]]:
        found: list[Publication | tuple[int, str]] = []
        for records in self.consumer.poll(timeout_ms=timeout_ms).values():
            for record in records:
                try:
                    found.append(Publication.model_validate_json(record.value))
                except ValidationError as exc:
                    found.append((record.offset, f"not a thresholds publication: {str(exc).splitlines()[0]}"))
        return found

    def read_all(self) -> list[Publication | tuple[int, str]]:
        """Everything published so far (up to the end offset seen at the call)."""
        end = self.consumer.end_offsets([self.topic])[self.topic]
        found: list[Publication | tuple[int, str]] = []
        while self.consumer.position(self.topic) < end:
            found.extend(self.poll())
        return found

    def close(self) -> None:
        self.consumer.close()


def ensure_internal_topics(settings: KafkaSettings, timeout: float = 30) -> None:
    """Create the worker's topics (:func:`streams.topics.worker_topics`) before Faust starts."""
    from kafka.admin import KafkaAdminClient

    with connecting(settings.bootstrap, settings.kafka_security,
                    f"no Kafka broker at {settings.bootstrap} (start one: yujing broker start)"):
        admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap, request_timeout_ms=int(timeout * 1000),
                                 **settings.kafka_security.client_options())
    try:
        create_missing_topics(admin, worker_topics(settings), settings.bootstrap, timeout)
    except TopicError as exc:
        raise KafkaUnavailable(str(exc)) from exc
    finally:
        admin.close()


class KeyedFeed:
    """A steady feed of records keyed by ``merchant_id`` with event-time stamps (the simulator's
    ``--to-kafka`` and the demo): batched sends, each merchant's partition computed once (Kafka's
    default partitioner, as the Java client), and the first failed send raised at :meth:`close`
    as :class:`SendRefused`.

    Raises :class:`KafkaUnavailable` when no broker answers at ``bootstrap``.
    """

    def __init__(self, bootstrap: str, client_id: str, security: KafkaSecurity = PLAINTEXT) -> None:
        with connecting(bootstrap, security, f"no Kafka broker answers at {bootstrap}"):
            self._producer = KafkaProducer(
                bootstrap_servers=bootstrap, acks="all", linger_ms=100, batch_size=1024 * 1024,
                client_id=client_id, bootstrap_timeout_ms=10_000, **security.client_options(),
            )
        self._partitions: dict[str, int] = {}
        self._failures: list[BaseException] = []

    def send(self, topic: str, merchant_id: str, value: bytes, timestamp_ms: int) -> None:
        count = self._partitions.get(topic)
        if count is None:
            count = self._partitions[topic] = len(self._producer.partitions_for(topic))
        future = self._producer.send(
            topic, key=merchant_id.encode(), value=value, timestamp_ms=timestamp_ms,
            partition=partition_for(merchant_id, count),
        )
        if not self._failures:
            future.add_errback(self._failures.append)

    def close(self) -> None:
        """Wait for every record to be acknowledged; raise the first send that failed."""
        try:
            self._producer.flush()
        finally:
            self._producer.close()
        if self._failures:
            raise SendRefused(str(self._failures[0])) from self._failures[0]


class TopicTail:
    """Follows a topic from its start without joining a group or committing (the demo's screen)."""

    def __init__(self, bootstrap: str, topic: str, security: KafkaSecurity = PLAINTEXT) -> None:
        self._consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                       enable_auto_commit=False, **security.client_options())

    def poll(self) -> list[bytes]:
        """The values of the records that arrived (waits up to half a second)."""
        batch = self._consumer.poll(timeout_ms=500)
        return [record.value for records in batch.values() for record in records]

    def close(self) -> None:
        self._consumer.close()
