"""Moving contract records between JSON Lines files and Kafka (outside the Faust worker).

``publish_files`` sends the input files of a directory to the input topics in event-time
order (key = merchant_id, record timestamp = event time), as the platforms feeding yujing
would; ``read_records`` reads a topic back. Used by ``yujing publish``, the demo and tests.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError

from yujing.backtest import iter_events
from yujing.contract import DeadLetter
from yujing.settings import Settings

# kafka-python logs connection retries at ERROR; the CLI reports failures itself, in one line.
logging.getLogger("kafka").setLevel(logging.CRITICAL)


class KafkaUnavailable(Exception):
    """Kafka cannot be reached (one readable line)."""


def producer(settings: Settings) -> KafkaProducer:
    try:
        return KafkaProducer(
            bootstrap_servers=settings.bootstrap,
            acks="all",
            linger_ms=20,
            batch_size=256 * 1024,
        )
    except KafkaError as exc:  # kafka-python 3 reports an unreachable bootstrap as a timeout
        raise KafkaUnavailable(f"no Kafka broker at {settings.bootstrap} (start one: yujing broker start)") from exc


STATE_TABLES = ("yujing-day-buckets", "yujing-merchants", "yujing-partition-clocks", "yujing-chains")


def internal_topics(settings: Settings) -> list[str]:
    """The worker's own topics between its agents (the chain stage), co-partitioned with the inputs."""
    return [f"{settings.app_id}-chain-notices", f"{settings.app_id}-chain-signals"]


def changelog_topics(settings: Settings) -> list[str]:
    """The changelog topics of the worker's state tables (named as Faust names them)."""
    return [f"{settings.app_id}-{table}-changelog" for table in STATE_TABLES]


def ensure_internal_topics(settings: Settings, timeout: float = 30) -> None:
    """Create the worker's topics (``yujing.broker.worker_topics``) before Faust starts."""
    from kafka.admin import KafkaAdminClient

    from yujing.broker import BrokerError, create_missing_topics, worker_topics

    try:
        admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap, request_timeout_ms=int(timeout * 1000))
    except KafkaError as exc:
        raise KafkaUnavailable(f"no Kafka broker at {settings.bootstrap} (start one: yujing broker start)") from exc
    try:
        create_missing_topics(admin, worker_topics(settings), settings.bootstrap, timeout)
    except BrokerError as exc:
        raise KafkaUnavailable(str(exc)) from exc
    finally:
        admin.close()


def group_progress(settings: Settings) -> tuple[float, int]:
    """(share of the records the worker group has committed, records in total) over the topics it
    reads: the inputs, the feedback and its internal chain-stage topics."""
    from kafka import TopicPartition

    # A consumer of the worker's group that never subscribes only reads the group's commits.
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap, group_id=settings.app_id, enable_auto_commit=False)
    try:
        known = consumer.topics()
        names = [*input_topics(settings).values(), *internal_topics(settings)]
        partitions = [TopicPartition(t, p) for t in names if t in known for p in range(settings.input_partitions)]
        ends = consumer.end_offsets(partitions)
        done = sum(min(consumer.committed(tp) or 0, ends[tp]) for tp in partitions)
        total = sum(ends.values())
        return done / max(total, 1), total
    finally:
        consumer.close()


def input_topics(settings: Settings) -> dict[str, str]:
    """The topics the worker's scoring agent reads, by record kind: the contract's three inputs
    and the case feedback (``feedback.jsonl`` in an events directory)."""
    t = settings.topics
    return {"transactions": t.transactions, "complaints": t.complaints, "merchants": t.merchants,
            "feedback": t.feedback}


def publish_files(
    events_dir: Path,
    settings: Settings,
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
                sink.send(topic, value=record.value.encode("utf-8"))
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
    settings: Settings,
    *,
    idle_seconds: float = 3.0,
    from_beginning: bool = True,
) -> Iterator[dict]:
    """Read ``topic`` until no record has arrived for ``idle_seconds``."""
    try:
        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=settings.bootstrap,
            auto_offset_reset="earliest" if from_beginning else "latest",
            enable_auto_commit=False,
            consumer_timeout_ms=int(idle_seconds * 1000),
        )
    except KafkaError as exc:
        raise KafkaUnavailable(f"no Kafka broker at {settings.bootstrap}") from exc
    try:
        for message in consumer:
            yield orjson.loads(message.value)
    finally:
        consumer.close()
