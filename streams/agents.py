"""The scoring agent: one event from topic to warning, in order.

decode -> validate (bad input to the dead-letter topic) -> update state (duplicates ignored)
-> score the days the watermark closed -> emit warnings to the disposal queue.
"""

from __future__ import annotations

import logging

import faust
import orjson

from alerts.chains import ChainNotice, ChainSignal
from streams.app import Pipeline, create_pipeline
from yujing.contract import DeadLetter, decode, dumps
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
        # A store's level changed (or it joined a chain): tell its sister stores.
        async for event in stream.events():
            for signal in pipeline.chains.notice(ChainNotice(**orjson.loads(event.message.value))):
                await pipeline.chain_signals.send(key=signal.merchant_id.encode(), value=orjson.dumps(signal._asdict()))

    @pipeline.app.agent(pipeline.chain_signals, concurrency=1)
    async def hear_sister_stores(stream: faust.StreamT) -> None:
        async for event in stream.events():
            signal = ChainSignal(**orjson.loads(event.message.value))
            outcome = pipeline.engine.apply_chain_signal(signal, event.message.partition)
            if outcome.late:
                log.warning("chain signal for %s reached partition %s after its day closed",
                            signal.merchant_id, event.message.partition)

    return pipeline.app


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
    outcome = pipeline.engine.process(record, message.partition)
    for warning in outcome.warnings:
        await pipeline.warnings.send(key=warning.merchant_id.encode(), value=dumps(warning))
    for notice in outcome.chain_notices:
        await pipeline.chain_notices.send(key=notice.chain_id.encode(), value=orjson.dumps(notice._asdict()))
    if outcome.warnings:
        log.info("partition %s: %d warning(s) emitted", message.partition, len(outcome.warnings))
