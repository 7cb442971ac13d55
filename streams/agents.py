"""The scoring agent: one event from topic to warning, in order.

decode -> validate (bad input to the dead-letter topic) -> update state (duplicates ignored)
-> score the days the watermark closed -> emit warnings to the disposal queue.

The same agent reads the case service's feedback topic (co-partitioned with the inputs): a
disposition is decoded and dead-lettered like an input and taken into the merchant's state.
"""

from __future__ import annotations

import logging

import faust
import orjson

from alerts.chains import ChainNotice, ChainSignal
from streams.app import Pipeline, create_pipeline
from yujing.contract import DeadLetter, decode, dumps
from yujing.engine import Outcome
from yujing.settings import Settings

log = logging.getLogger("yujing.worker")


def build_worker_app(settings: Settings) -> faust.App:
    pipeline = create_pipeline(settings)

    # concurrency=1: faust can commit past an in-flight event with more (faust #606), and a
    # partition's watermark needs its events in order.
    @pipeline.app.agent(pipeline.inputs, concurrency=1)
    async def score_merchants(stream: faust.StreamT) -> None:
        async for event in stream.events():
            await handle(pipeline, event.message)

    @pipeline.app.agent(pipeline.chain_notices, concurrency=1)
    async def relay_chain_levels(stream: faust.StreamT) -> None:
        # Chain stage: a store's level changed (or it joined a chain) -> tell its sister stores;
        # a partition closed days -> once all have, announce the chain watermark to every partition.
        async for event in stream.events():
            message = orjson.loads(event.message.value)
            if "heartbeat" in message:
                watermark = pipeline.chains.heartbeat(event.message.partition, **message["heartbeat"])
                if watermark is not None:
                    mark = orjson.dumps({"watermark": watermark, "source": event.message.partition})
                    for partition in range(pipeline.partitions):
                        await pipeline.chain_signals.send(value=mark, partition=partition)
                continue
            for signal in pipeline.chains.notice(ChainNotice(**message)):
                await pipeline.chain_signals.send(key=signal.merchant_id.encode(), value=orjson.dumps(signal._asdict()))

    @pipeline.app.agent(pipeline.chain_signals, concurrency=1)
    async def hear_sister_stores(stream: faust.StreamT) -> None:
        async for event in stream.events():
            message = orjson.loads(event.message.value)
            partition = event.message.partition
            async with pipeline.engine_lock:
                if "watermark" in message:
                    outcome = pipeline.engine.apply_chain_watermark(message["source"], message["watermark"], partition)
                else:
                    outcome = pipeline.engine.apply_chain_signal(ChainSignal(**message), partition)
                await emit(pipeline, outcome, partition)

    @pipeline.app.on_partitions_assigned.connect
    async def report_assignment(app: faust.App, assigned: set, **kwargs: object) -> None:
        # One line per rebalance naming this worker's input partitions: operators (and the
        # scale-out test) read from it who owns which merchants.
        owned = sorted(tp.partition for tp in assigned if tp.topic == settings.topics.transactions)
        log.info("input partitions assigned: %s", owned)

    @pipeline.app.timer(interval=REPEAT_HEARTBEAT_SECONDS)
    async def repeat_heartbeats() -> None:
        # Heals the chain lock-step after a rebalance: a heartbeat or watermark lost between a
        # table update and its message would otherwise leave partitions waiting for ever.
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

    return pipeline.app


# Longer than the demo's 30-s "settled" window, so an idle pipeline still looks idle.
REPEAT_HEARTBEAT_SECONDS = 60.0


async def handle(pipeline: Pipeline, message: faust.types.Message) -> None:
    kind = pipeline.kind_by_topic[message.topic]
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
        await pipeline.deadletter.send(value=dumps(record))
        return
    async with pipeline.engine_lock:
        outcome = pipeline.engine.process(record, message.partition)
        await emit(pipeline, outcome, message.partition)


async def emit(pipeline: Pipeline, outcome: Outcome, partition: int) -> None:
    """Warnings to the disposal queue; chain notices, then this partition's heartbeat, to the
    chain stage (in that order: the heartbeat vouches for the notices before it). Callers hold
    ``engine_lock`` from the engine call to the last send, so the two agents that drive the
    engine never interleave their outputs (a heartbeat must not overtake a notice)."""
    for warning in outcome.warnings:
        await pipeline.warnings.send(key=warning.merchant_id.encode(), value=dumps(warning))
    for notice in outcome.chain_notices:
        await pipeline.chain_notices.send(key=notice.group.encode(), value=orjson.dumps(notice._asdict()))
    if outcome.closed_through is not None:
        beat = orjson.dumps({"heartbeat": {"partition": partition, "closed_through": outcome.closed_through}})
        for chain_partition in range(pipeline.partitions):
            await pipeline.chain_notices.send(value=beat, partition=chain_partition)
    if outcome.warnings:
        log.info("partition %s: %d warning(s) emitted", partition, len(outcome.warnings))
