"""Event -> warning latency at a paced load, on the caught-up worker.

The live part of the world (``bench.world``) is published at ``rate`` records a second, in event
time order, with event-time record timestamps, as the feeding platforms do; the bench notes the
wall-clock moment each record is handed to the producer. A warning's latency is its Kafka
timestamp (stamped when the worker sent it to the disposal queue) minus the publish moment of the
transaction that made its day closable on its merchant's partition (:mod:`bench.measure`): the
earliest moment any pipeline could know that day was over. The same is measured for every scored
merchant-day (``yujing.merchant-days``), a far larger sample of the same path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import orjson

from bench.live import WorkerRun
from bench.measure import closing_moments, latencies
from bench.steps import Steps
from bench.world import World, history_marks, live_feed
from contract.partitioning import partition_for
from models.calendar import local_day
from streams.baselines import TopicReader, publish_paced


@dataclass(frozen=True)
class LatencyRun:
    rate: float  # records a second asked for
    records: int
    fed_seconds: float  # how long publishing took (rate kept if close to records / rate)
    warnings: list[float]  # seconds, one per warning of the live part
    scored_days: list[float]  # seconds, one per scored merchant-day of the live part


def paced_latency(run: WorkerRun, world: World, rate: float, steps: Steps, timeout: float) -> LatencyRun:
    settings = run.settings
    partitions = settings.input_partitions
    lateness = timedelta(hours=settings.allowed_lateness_hours)
    feed = live_feed(world.live, settings)
    marks = history_marks(world.history, partitions, lateness)
    sent = [0.0] * len(feed.records)

    with steps.bar(f"live part, {len(feed.records):,} records at {rate:,.0f}/s", total=len(feed.records)) as done:
        def note(i: int, moment: float) -> None:
            sent[i] = moment
            if i % 250 == 0:
                done(i)

        fed = publish_paced(feed.records, settings, rate, note)
    run.wait_settled(steps, "worker finishing the live part", timeout)
    moments = closing_moments(((p, moment, sent[i]) for i, p, moment in feed.transactions), lateness, marks)
    began = sent[0] if sent else 0.0
    reader = TopicReader(settings)
    try:
        warnings = [(partition_for(w["merchant_id"], partitions), local_day(datetime.fromisoformat(w["raised_at"])), t)
                    for w, t in _decoded(reader, settings.topics.warnings, began)]
        days = [(partition_for(d["merchant_id"], partitions), date.fromisoformat(d["day"]).toordinal(), t)
                for d, t in _decoded(reader, settings.topics.merchant_days, began)]
    finally:
        reader.close()
    return LatencyRun(rate, len(feed.records), fed, latencies(warnings, moments), latencies(days, moments))


def _decoded(reader: TopicReader, topic: str, since: float) -> list[tuple[dict, float]]:
    return [(orjson.loads(r.value), r.timestamp) for r in reader.since(topic, since) if r.value]
