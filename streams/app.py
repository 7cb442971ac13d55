"""Builds the Faust app: topics of the contract and the changelogged state tables."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import faust

from yujing.engine import PartitionEngine
from yujing.settings import Settings


@dataclass
class Pipeline:
    """The app with everything the agent needs, built from settings (no module globals)."""

    app: faust.App
    inputs: faust.TopicT
    warnings: faust.TopicT
    deadletter: faust.TopicT
    kind_by_topic: dict[str, str]
    engine: PartitionEngine


def create_pipeline(settings: Settings) -> Pipeline:
    topics = settings.topics
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.bootstrap}",
        store="memory://",  # tables are rebuilt from their changelog topics on start
        processing_guarantee="at_least_once",  # outputs are idempotent (deterministic ids)
        topic_partitions=settings.input_partitions,
        topic_replication_factor=1,
        table_standby_replicas=0,
        web_enabled=False,
        broker_commit_every=500,
        stream_wait_empty=True,
    )
    raw = {"key_serializer": "raw", "value_serializer": "raw"}
    inputs = app.topic(topics.transactions, topics.complaints, topics.merchants, **raw)
    warnings = app.topic(topics.warnings, **raw)
    deadletter = app.topic(topics.deadletter, **raw)
    tables = {"key_serializer": "json", "value_serializer": "pickle", "partitions": settings.input_partitions}
    engine = PartitionEngine(
        buckets=app.Table("yujing-day-buckets", **tables),
        merchants=app.Table("yujing-merchants", **tables),
        clocks=app.Table("yujing-partition-clocks", **tables),
        allowed_lateness=timedelta(hours=settings.allowed_lateness_hours),
        thresholds_version=settings.thresholds_version,
    )
    kind_by_topic = {
        topics.transactions: "transactions",
        topics.complaints: "complaints",
        topics.merchants: "merchants",
    }
    return Pipeline(app, inputs, warnings, deadletter, kind_by_topic, engine)
