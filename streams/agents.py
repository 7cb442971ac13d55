"""The scoring agent: one event from topic to warning, in order.

decode -> validate (bad input to the dead-letter topic) -> update state (duplicates ignored)
-> score the days the watermark closed -> emit warnings to the disposal queue.

The same agent reads the case service's feedback topic (co-partitioned with the inputs): a
disposition is decoded and dead-lettered like an input and taken into the merchant's state.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import faust
import orjson
from aiokafka.errors import KafkaError

from alerts.chains import ChainNotice, ChainSignal
from alerts.threshold_history import ThresholdSchedule
from contract.districts import industry_label
from contract.records import DeadLetter, decode, dumps
from engine.merchant_days import merchant_day_record, record_key
from engine.partition import Outcome
from models.calendar import day_end
from streams.app import Pipeline, create_pipeline
from streams.metrics import WorkerMetrics
from streams.threshold_feed import PublicationFeed, apply_publications
from streams.watchdog import PartitionWatchdog, RepeatSchedule, settled

if TYPE_CHECKING:
    from streams.config import KafkaSettings

log = logging.getLogger("yujing.worker")


def build_worker_app(
    settings: KafkaSettings, metrics: WorkerMetrics | None = None, schedule: ThresholdSchedule | None = None,
    feed: PublicationFeed | None = None,
) -> faust.App:
    """``schedule``: the threshold versions published before start; ``feed``: those that follow.

    Faust registers each agent under this module and its function's name
    (``streams.agents.score_merchants``), each timer in the order added here."""
    pipeline = create_pipeline(settings, metrics, schedule)
    add_scoring_agents(pipeline)
    report_assignments(pipeline, settings)
    add_heartbeat_repeater(pipeline, settings)
    if feed is not None:
        add_threshold_reloader(pipeline, feed)
    if settings.stall_seconds:
        add_partition_watchdog(pipeline, settings.stall_seconds)
    add_gauge_refresher(pipeline, settings)
    return pipeline.app


def add_scoring_agents(pipeline: Pipeline) -> None:
    """The inputs scored, and the chain stage: notices relayed, sister stores' signals heard."""
    # concurrency=1: faust can commit past an in-flight event with more (faust #606), and a
    # partition's watermark needs its events in order.
    @pipeline.app.agent(pipeline.inputs, concurrency=1)
    async def score_merchants(stream: faust.StreamT) -> None:
        async for event in stream.events():
            await handle(pipeline, event.message)

    @pipeline.app.agent(pipeline.chain_notices, concurrency=1)
    async def relay_chain_levels(stream: faust.StreamT) -> None:
        async for event in stream.events():
            await relay_chain_notice(pipeline, event.message)

    @pipeline.app.agent(pipeline.chain_signals, concurrency=1)
    async def hear_sister_stores(stream: faust.StreamT) -> None:
        async for event in stream.events():
            await hear_chain_signal(pipeline, event.message)


async def relay_chain_notice(pipeline: Pipeline, notice: faust.types.Message) -> None:
    """Chain stage: a store's level changed (or it joined a chain) -> tell its sister stores; a
    partition closed days -> once all have, announce the chain watermark to every partition."""
    message = orjson.loads(notice.value)
    if "heartbeat" in message:
        watermark = pipeline.chains.heartbeat(notice.partition, **message["heartbeat"])
        if watermark is not None:
            mark = orjson.dumps({"watermark": watermark, "source": notice.partition})
            for partition in range(pipeline.partitions):
                await pipeline.chain_signals.send(value=mark, partition=partition)
        return
    for signal in pipeline.chains.notice(ChainNotice(**message)):
        await pipeline.chain_signals.send(key=signal.merchant_id.encode(), value=orjson.dumps(signal._asdict()))


async def hear_chain_signal(pipeline: Pipeline, signal: faust.types.Message) -> None:
    """A sister store's level, or the chain watermark, into this partition's engine; what it
    caused emitted."""
    message = orjson.loads(signal.value)
    partition = signal.partition
    async with pipeline.engine_lock:
        if "watermark" in message:
            outcome = pipeline.engine.apply_chain_watermark(message["source"], message["watermark"], partition)
        else:
            outcome = pipeline.engine.apply_chain_signal(ChainSignal(**message), partition)
        await emit(pipeline, outcome, partition, signal.timestamp)


def report_assignments(pipeline: Pipeline, settings: KafkaSettings) -> None:
    @pipeline.app.on_partitions_assigned.connect
    async def report_assignment(app: faust.App, assigned: set, **kwargs: object) -> None:
        # One line per rebalance naming this worker's input partitions: operators (and the
        # scale-out test) read from it who owns which merchants.
        owned = sorted(tp.partition for tp in assigned if tp.topic == settings.topics.transactions)
        log.info("input partitions assigned: %s", owned)


def add_heartbeat_repeater(pipeline: Pipeline, settings: KafkaSettings) -> None:
    repeat = RepeatSchedule(every=REPEAT_HEARTBEAT_SECONDS)

    @pipeline.app.timer(interval=REPEAT_CHECK_SECONDS)
    async def repeat_heartbeats() -> None:
        # Heals the chain lock-step after a rebalance: a heartbeat or watermark lost between a
        # table update and its message would otherwise leave partitions waiting for ever. At once
        # after each rebalance (CI once waited the full minute for one), and every minute.
        if not settled(pipeline.app) or not repeat.due(pipeline.app.consumer_generation_id, time.monotonic()):
            return
        owned = sorted({tp.partition for tp in pipeline.app.assignor.assigned_actives()
                        if tp.topic == settings.topics.transactions})
        async with pipeline.engine_lock:
            for partition in owned:
                clock = pipeline.engine.clocks.get(partition)
                if clock is None or clock.closed_through is None:
                    continue
                beat = orjson.dumps({"heartbeat": {"partition": partition, "closed_through": clock.closed_through,
                                                   "repeat": True}})
                for chain_partition in range(pipeline.partitions):
                    await pipeline.chain_notices.send(value=beat, partition=chain_partition)


def add_threshold_reloader(pipeline: Pipeline, feed: PublicationFeed) -> None:
    @pipeline.app.timer(interval=THRESHOLDS_SECONDS)
    async def reload_thresholds() -> None:
        # Under the engine lock: a new version never lands in the middle of a day's scoring.
        async with pipeline.engine_lock:
            apply_publications(pipeline, feed)


def add_partition_watchdog(pipeline: Pipeline, stall_seconds: float) -> None:
    """A partition faust stopped fetching (or left with a hole) after a rebalance is read again
    from its committed offset, reported in the log and yujing_partition_stalls_total."""
    watched = {**pipeline.kind_by_topic, pipeline.chain_notices.get_topic_name(): "chain_notices",
               pipeline.chain_signals.get_topic_name(): "chain_signals"}
    watchdog = PartitionWatchdog(pipeline.app, watched, stall_seconds,
                                 on_stall=lambda kind: pipeline.metrics.partition_stalls.labels(topic=kind).inc())

    @pipeline.app.timer(interval=min(WATCHDOG_SECONDS, stall_seconds))
    async def watch_partitions() -> None:
        await watchdog.check()


def add_gauge_refresher(pipeline: Pipeline, settings: KafkaSettings) -> None:
    @pipeline.app.timer(interval=GAUGE_SECONDS)
    async def refresh_gauges() -> None:
        # Gauges read state in the event loop (tables are not safe to walk from the HTTP thread).
        owned = {tp.partition for tp in pipeline.app.assignor.assigned_actives()
                 if tp.topic == settings.topics.transactions}
        observe_state(pipeline, owned)
        observe_lag(pipeline)


GAUGE_SECONDS = 5.0
WATCHDOG_SECONDS = 15.0
THRESHOLDS_SECONDS = 1.0
# Longer than the demo's 30-s "settled" window, so an idle pipeline still looks idle.
REPEAT_HEARTBEAT_SECONDS = 60.0
REPEAT_CHECK_SECONDS = 2.0  # how soon after a rebalance the heartbeats are repeated


async def handle(pipeline: Pipeline, message: faust.types.Message) -> None:
    kind = pipeline.kind_by_topic[message.topic]
    metrics = pipeline.metrics
    metrics.consumed.labels(topic=kind).inc()
    try:
        with metrics.processing.time():
            await _handle(pipeline, message, kind)
    except Exception as exc:
        # Counted, then raised: faust stops the agent and the record is read again after a restart.
        metrics.errors.labels(kind="send_failed" if isinstance(exc, KafkaError) else "processing").inc()
        raise


async def _handle(pipeline: Pipeline, message: faust.types.Message, kind: str) -> None:
    record = decode(
        kind,
        message.value,
        source_topic=message.topic,
        key=message.key,
        partition=message.partition,
        offset=message.offset,
    )
    if isinstance(record, DeadLetter):
        log.warning("dead-lettered %s[%s]@%s: %s", message.topic, message.partition, message.offset, record.error)
        pipeline.metrics.deadlettered.labels(topic=kind, reason=record.reason).inc()
        await pipeline.deadletter.send(value=dumps(record))
        return
    async with pipeline.engine_lock:
        outcome = pipeline.engine.process(record, message.partition)
        if outcome.duplicate:
            pipeline.metrics.duplicates.labels(topic=kind).inc()
        if outcome.late:
            pipeline.metrics.late.labels(topic=kind).inc()
        await emit(pipeline, outcome, message.partition, message.timestamp)


async def emit(pipeline: Pipeline, outcome: Outcome, partition: int, source_timestamp: float | None = None) -> None:
    """Warnings to the disposal queue; the scored days to the history topic; chain notices, then
    this partition's heartbeat, to the chain stage (in that order: the heartbeat vouches for the
    notices before it). Callers hold ``engine_lock`` from the engine call to the last send, so
    the agents that drive the engine never interleave their outputs (a heartbeat must not
    overtake a notice). ``source_timestamp``: the Kafka timestamp of the record that caused it."""
    metrics = pipeline.metrics
    for warning in outcome.warnings:
        await pipeline.warnings.send(key=warning.merchant_id.encode(), value=dumps(warning))
        metrics.warning_sent(warning, source_timestamp, time.time())
    scored = list(pipeline.scored_days)
    pipeline.scored_days.clear()
    for result in scored:
        record = merchant_day_record(result)
        metrics.risk_score.labels(industry=industry_label(record["industry"])).observe(record["score"])
        await pipeline.merchant_days.send(key=record_key(record), value=orjson.dumps(record))
    for notice in outcome.chain_notices:
        await pipeline.chain_notices.send(key=notice.group.encode(), value=orjson.dumps(notice._asdict()))
    if outcome.closed_through is not None:
        beat = orjson.dumps({"heartbeat": {"partition": partition, "closed_through": outcome.closed_through}})
        for chain_partition in range(pipeline.partitions):
            await pipeline.chain_notices.send(value=beat, partition=chain_partition)
    if outcome.warnings:
        log.info("partition %s: %d warning(s) emitted", partition, len(outcome.warnings))


def observe_state(pipeline: Pipeline, owned: set[int]) -> None:
    """Active warnings by level, town and industry, state table sizes and the event-time
    watermark, from this worker's own partitions (a revoked partition's leftovers not counted)."""
    metrics, engine = pipeline.metrics, pipeline.engine
    levels = []
    for state in engine.merchants.values():
        level = getattr(state.alert, "level", None)
        if level is None or state.partition not in owned:
            continue
        profile = state.profiles[-1] if state.profiles else None
        levels.append((level, profile.district if profile else None, profile.industry if profile else None))
    metrics.set_active(levels)
    for name, table in (("day_buckets", engine.buckets), ("merchants", engine.merchants),
                        ("partition_clocks", engine.clocks), ("chains", pipeline.chains.chains)):
        metrics.state_entries.labels(table=name).set(len(table))
    closed = [clock.closed_through for p, clock in engine.clocks.items()
              if p in owned and clock is not None and clock.closed_through is not None]
    if closed and len(closed) == len(owned):
        metrics.set_watermark(day_end(min(closed)))
    learners = [getattr(clock, "learner", None) for p, clock in engine.clocks.items() if p in owned]
    metrics.set_corrections([learner.correction if learner else {} for learner in learners],
                            sum(learner.examples for learner in learners if learner))


def observe_lag(pipeline: Pipeline) -> None:
    """Records behind the end of each input topic on this worker's partitions: the broker's high
    watermark minus the next offset to read (faust's own bookkeeping; before a partition's
    first read, its committed offset)."""
    consumer = pipeline.app.consumer
    lag = dict.fromkeys(pipeline.kind_by_topic.values(), 0)
    # faust keeps these per partition; reading them is cheap and needs no broker round trip.
    read_offsets, committed = consumer._read_offset, consumer._committed_offset  # noqa: SLF001
    for tp in consumer.assignment():
        kind = pipeline.kind_by_topic.get(tp.topic)
        if kind is None:
            continue
        highwater = consumer.highwater(tp)
        position = read_offsets.get(tp)
        position = position + 1 if position is not None else committed.get(tp)
        if highwater is not None and position is not None:
            lag[kind] += max(0, highwater - position)
    for kind, records in lag.items():
        pipeline.metrics.lag.labels(topic=kind).set(records)
