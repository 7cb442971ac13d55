"""The case desk's Kafka clients (kafka-python): reading the disposal queue and the merchant-day
history with offsets committed only after what was read is stored, and writing case outcomes to
the feedback topic. The case desk (``cases/service.py``) decides what to store and when; this
module only talks to the broker, so every Kafka client of the project lives in ``streams/``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from streams.clients import committed_and_end
from streams.security import PLAINTEXT, KafkaSecurity

if TYPE_CHECKING:
    from streams.config import KafkaSettings


def backlog(settings: KafkaSettings, group: str, topic: str | None = None) -> int:
    """Records of ``topic`` (default: the disposal queue) that ``group`` has not committed yet."""
    topic = topic or settings.topics.warnings
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap, group_id=group, enable_auto_commit=False,
                             **settings.kafka_security.client_options())
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        positions = committed_and_end(consumer, [TopicPartition(topic, p) for p in parts])
        return sum(max(0, end - committed) for committed, end in positions)
    finally:
        consumer.close()


def storing_consumer(
    bootstrap: str, topic: str, group: str, client_id: str, security: KafkaSecurity = PLAINTEXT
) -> KafkaConsumer:
    """A consumer that commits only what is stored, from the topic's start for a new group;
    ``security``: the settings' ``kafka_security`` (PLAINTEXT if not given)."""
    return KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # While PostgreSQL is down the loop holds its records; do not get kicked out meanwhile.
        max_poll_interval_ms=3_600_000,
        client_id=client_id,
        **security.client_options(),
    )


def poll(consumer: KafkaConsumer, max_records: int) -> dict[TopicPartition, list[ConsumerRecord]]:
    """The next records of each assigned partition (waits up to half a second)."""
    batch: dict[TopicPartition, list[ConsumerRecord]] = consumer.poll(timeout_ms=500, max_records=max_records)
    return batch


def commit_through(consumer: KafkaConsumer, partition: TopicPartition, offset: int) -> None:
    """Commit ``partition`` up to and including ``offset`` (the next read starts after it)."""
    consumer.commit({TopicPartition(partition.topic, partition.partition): OffsetAndMetadata(offset + 1, "", -1)})


def lag(consumer: KafkaConsumer) -> int:
    """Records between a consumer's positions and the ends it last fetched."""
    # The subscription state's positions, not ``consumer.position()``: that may block on a
    # round trip to the coordinator, and the loop only needs what the last poll left.
    subscription = consumer._subscription  # noqa: SLF001
    behind = 0
    for tp in consumer.assignment():
        end = consumer.highwater(tp)
        position = subscription.assignment[tp].position if tp in subscription.assignment else None
        if end is not None and position is not None:
            behind += max(0, end - position.offset)
    return behind


def feedback_producer(bootstrap: str, security: KafkaSecurity = PLAINTEXT) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=bootstrap, acks="all", client_id="yujing-cases", **security.client_options())


def send_keyed(producer: KafkaProducer, topic: str, merchant_id: str, payload: dict[str, object]) -> None:
    """Send one record keyed by merchant (co-partitioned with the inputs) and wait for the broker."""
    producer.send(topic, key=merchant_id.encode(), value=orjson.dumps(payload)).get(timeout=30)
