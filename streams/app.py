"""Builds the Faust app: topics of the contract and the changelogged state tables."""

from __future__ import annotations

import asyncio
import base64
import pickle
from dataclasses import dataclass, field
from datetime import timedelta
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import faust
from faust.serializers import codecs
from prometheus_client import CollectorRegistry

from alerts.chains import ChainDirectory
from alerts.threshold_history import ThresholdSchedule
from engine.partition import DayResult, PartitionEngine
from engine.state_codec import MAGIC, decode_merchant, encode_merchant
from streams.metrics import WorkerMetrics
from streams.topics import chain_notices_topic, chain_signals_topic
from streams.write_behind import WriteBehindTable, write_behind

if TYPE_CHECKING:
    from streams.config import KafkaSettings


@dataclass
class Pipeline:
    """The app with everything the agent needs, built from settings (no module globals)."""

    app: faust.App
    inputs: faust.TopicT
    warnings: faust.TopicT
    deadletter: faust.TopicT
    kind_by_topic: dict[str, str]
    engine: PartitionEngine
    # Chain contagion crosses partitions: notices keyed by chain_id, signals keyed by merchant_id
    # (co-partitioned with the inputs, so a signal reaches the partition that owns the store).
    chain_notices: faust.TopicT
    chain_signals: faust.TopicT
    chains: ChainDirectory
    partitions: int
    metrics: WorkerMetrics
    # Every scored merchant-day, to the case service's drill-down history (engine.merchant_days).
    merchant_days: faust.TopicT
    # The engine's scored days since the last emit (filled by its on_day_scored hook).
    scored_days: list[DayResult] = field(default_factory=list)
    engine_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class _PickleCodec(codecs.Codec):
    """Pickle without Faust's base64 wrapping (a third more bytes for nothing); values written
    by Faust's own ``pickle`` codec (base64, never starting with a pickle's 0x80) still load."""

    def _dumps(self, obj: Any) -> bytes:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)

    def _loads(self, s: bytes) -> Any:
        return pickle.loads(s if s[:1] == b"\x80" else base64.b64decode(s))  # our own changelogs only


class _MerchantStateCodec(codecs.Codec):
    """A merchant's state in the compact, versioned layout of ``engine.state_codec`` (a fifth
    of its pickle or less); pickled states of older changelogs, base64 or not, still load."""

    def _dumps(self, obj: Any) -> bytes:
        return encode_merchant(obj)

    def _loads(self, s: bytes) -> Any:
        if s[:1] != b"\x80" and not s.startswith(MAGIC):
            s = base64.b64decode(s)  # written by Faust's "pickle" codec, before this one
        return decode_merchant(s)


PICKLE_CODEC = "yujing-pickle"
MERCHANT_CODEC = "yujing-merchant-state"
codecs.register(PICKLE_CODEC, _PickleCodec())
codecs.register(MERCHANT_CODEC, _MerchantStateCodec())


class PickledState:
    """Value type of the state tables: values are pickled (state holds dataclasses and river
    objects and never leaves our own changelog topics). Faust takes a table's serializer from
    its value type's ``_options`` and rebuilds values with ``from_data``; both are kept
    trivial here so the changelog is written and recovered with the same codec."""

    _options = SimpleNamespace(serializer=PICKLE_CODEC)

    @classmethod
    def from_data(cls, data: Any, preferred_type: Any = None) -> Any:
        return data


class MerchantStateValue(PickledState):
    """Value type of the merchants table: :class:`~models.state.MerchantState` in the compact
    codec (written once per merchant per closed day: the bulk of the changelog)."""

    _options = SimpleNamespace(serializer=MERCHANT_CODEC)


FETCH_BYTES_PER_PARTITION = 64 * 1024


def _pickled_table(
    app: faust.App, name: str, partitions: int, value_type: type = PickledState
) -> WriteBehindTable:
    # Changelogged at each commit, not at each change (streams.write_behind says why it is safe).
    return WriteBehindTable(app.Table(name, partitions=partitions, value_type=value_type))


def create_pipeline(
    settings: KafkaSettings, metrics: WorkerMetrics | None = None, schedule: ThresholdSchedule | None = None
) -> Pipeline:
    """``metrics``: the worker's exposed metrics; by default a private registry (nothing served).
    ``schedule``: the threshold versions known at start; by default the settings' base set."""
    topics = settings.topics
    # Faust's own data directory (it creates only the last level): under YUJING_HOME, not the
    # working directory.
    datadir = settings.home / "worker-data" / settings.app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.bootstrap}",
        store="memory://",  # tables are rebuilt from their changelog topics on start
        datadir=str(datadir),
        processing_guarantee="at_least_once",  # outputs are idempotent (deterministic ids)
        topic_partitions=settings.input_partitions,
        topic_replication_factor=1,
        table_standby_replicas=0,
        web_enabled=False,
        # Faust commits inside its fetch loop: reading stops for a producer flush and a broker
        # round trip. Every 500 events (as before) that stalled a catch-up for a third of its time.
        broker_commit_every=settings.commit_every,
        # The chain stage's heartbeats and watermarks share this consumer with the inputs, and
        # aiokafka fetches nothing new from a broker while a fetched batch is still being read:
        # with Faust's 1 MiB per partition, a catching-up worker read each one ~2.2 s after it
        # was sent (behind ~20k input records), and closed days a week per ~4.5 s round trip.
        # 64 KiB batches bring that to ~0.1-0.3 s, so days close while the backlog is read.
        consumer_max_fetch_size=FETCH_BYTES_PER_PARTITION,
        stream_wait_empty=True,
        # Warnings, history records, chain messages and (at commits) changelogs: without a linger
        # the producer sent a request per few records, a quarter of the worker's time in socket
        # writes (py-spy, when every event still rewrote its bucket); 50 ms gave 1.5x the events/s.
        producer_linger=settings.producer_linger_ms / 1000.0,
        **settings.kafka_security.faust_options(),  # TLS and SASL, none for PLAINTEXT
    )
    raw = {"key_serializer": "raw", "value_serializer": "raw"}
    # One subscription for the three inputs and the case feedback: all co-partitioned by
    # merchant_id, so partition N of each is assigned together, with the tables' partition N.
    inputs = app.topic(topics.transactions, topics.complaints, topics.merchants, topics.feedback, **raw)
    warnings = app.topic(topics.warnings, **raw)
    deadletter = app.topic(topics.deadletter, **raw)
    merchant_days = app.topic(topics.merchant_days, **raw)
    engine = PartitionEngine(
        buckets=_pickled_table(app, "yujing-day-buckets", settings.input_partitions),
        merchants=_pickled_table(app, "yujing-merchants", settings.input_partitions, MerchantStateValue),
        clocks=_pickled_table(app, "yujing-partition-clocks", settings.input_partitions),
        allowed_lateness=timedelta(hours=settings.allowed_lateness_hours),
        schedule=schedule or ThresholdSchedule(settings.base_thresholds()),
        chain_sources=settings.input_partitions,  # one chain watermark per chain-stage partition
        online_learning=settings.online_learning,
    )
    internal = {"internal": True, "partitions": settings.input_partitions, **raw}
    chain_notices = app.topic(chain_notices_topic(settings), **internal)
    chain_signals = app.topic(chain_signals_topic(settings), **internal)
    chains = ChainDirectory(
        _pickled_table(app, "yujing-chains", settings.input_partitions),  # type: ignore[arg-type]
        partitions=settings.input_partitions,
    )
    kind_by_topic = {
        topics.transactions: "transactions",
        topics.complaints: "complaints",
        topics.merchants: "merchants",
        topics.feedback: "feedback",
    }
    pipeline = Pipeline(
        app, inputs, warnings, deadletter, kind_by_topic, engine, chain_notices, chain_signals, chains,
        settings.input_partitions, metrics or WorkerMetrics(CollectorRegistry()), merchant_days,
    )
    engine.on_day_scored = pipeline.scored_days.append
    write_behind(app, [engine.buckets, engine.merchants, engine.clocks, chains.chains])  # type: ignore[list-item]
    return pipeline


def run_worker(app: faust.App, loglevel: str) -> None:
    """Run ``app`` as a Faust worker in this process until it is stopped (Ctrl-C stops it cleanly)."""
    import sys

    from faust.worker import Worker

    # Faust's Worker parses no arguments of ours; give it a clean argv.
    sys.argv = [sys.argv[0]]
    Worker(app, loglevel=loglevel).execute_from_commandline()
