"""``yujing backtest``: the live pipeline's scoring over contract JSON Lines files, without Kafka.

Events of the three input files are merged in event-time order and routed to the partition
that Kafka's default partitioner would give their ``merchant_id`` key (murmur2, as the Java
client and kafka-python do), so each partition's watermark, and hence every warning, is the
one the live worker produces for the same records.

An optional ``feedback.jsonl`` (case dispositions, :class:`yujing.contract.Feedback`, as the
case service publishes them to ``prepaid.feedback``) is merged in too, ordered by
``effective_from``, so a replay applies staff's feedback at the same point of event time.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import orjson
from kafka.partitioner.default import murmur2
from pydantic import BaseModel

from alerts.chains import ChainDirectory
from models.scoring import RiskScorer
from yujing.contract import DeadLetter, Feedback, InputEvent, Warning, decode
from yujing.engine import DayResult, PartitionClock, PartitionEngine
from yujing.threshold_history import ThresholdSchedule

INPUT_FILES = {"merchants": "merchants.jsonl", "complaints": "complaints.jsonl", "transactions": "transactions.jsonl"}
FEEDBACK_FILE = "feedback.jsonl"  # optional: case dispositions read back by the scoring side
# At equal timestamps a profile is applied before activity, and activity before the clock moves.
# Feedback never moves the clock and counts from the day after its own, so its rank is moot.
KIND_RANK = {"merchants": 0, "complaints": 1, "transactions": 2, "feedback": 3}
Record = InputEvent | Feedback


def partition_for(merchant_id: str, partitions: int) -> int:
    """Kafka's default partition for a ``merchant_id`` key.

    >>> partition_for("m-0001", 6) == partition_for("m-0001", 6)
    True
    """
    return (murmur2(merchant_id.encode("utf-8")) & 0x7FFFFFFF) % partitions


class EventFilesError(Exception):
    """The events directory cannot be read (one readable line)."""


@dataclass
class BacktestResult:
    warnings: list[Warning] = field(default_factory=list)
    deadletters: list[DeadLetter] = field(default_factory=list)
    events: int = 0
    duplicates: int = 0
    late: int = 0
    feedback: list[Feedback] = field(default_factory=list)  # taken in (from the file or ``staff``)


def _decoded(kind: str, path: Path) -> Iterator[tuple[float, int, int, Record | DeadLetter]]:
    """Decode one file lazily. Files are read in their own order, as a topic would be: a record
    older than the partition's watermark is handled as a late event, exactly as live."""
    moment = 0.0
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            record = decode(kind, line.rstrip(b"\r\n"), source_topic=path.name, offset=number)
            if not isinstance(record, DeadLetter):
                moment = record.occurred_at.timestamp()
            yield moment, KIND_RANK[kind], number, record


def _feedback(path: Path) -> Iterator[tuple[float, int, int, Record | DeadLetter]]:
    """The feedback file sorted by ``effective_from`` (then ``feedback_id``): the case service
    writes it in order of decision, the replay needs it in event time. It is small."""
    records = list(_decoded("feedback", path))
    valid = sorted(
        (r for r in records if not isinstance(r[3], DeadLetter)),
        key=lambda r: (r[0], r[3].feedback_id),  # type: ignore[union-attr]
    )
    # Dead letters first (they carry their line number as offset), then the records in order.
    yield from ((0.0, rank, number, record) for _, rank, number, record in records if isinstance(record, DeadLetter))
    for number, (moment, rank, _, record) in enumerate(valid, start=1):
        yield moment, rank, number, record


def iter_events(events_dir: Path) -> Iterator[tuple[str, Record | DeadLetter]]:
    """All input records of ``events_dir`` (and its ``feedback.jsonl``, if any) merged in
    event-time order."""
    if not events_dir.is_dir():
        raise EventFilesError(f"events directory not found: {events_dir}")
    streams = []
    kinds = {rank: kind for kind, rank in KIND_RANK.items()}
    for kind, name in INPUT_FILES.items():
        path = events_dir / name
        if path.exists():
            streams.append(_decoded(kind, path))
    if not streams:
        raise EventFilesError(f"no {', '.join(INPUT_FILES.values())} in {events_dir}")
    if (events_dir / FEEDBACK_FILE).exists():
        streams.append(_feedback(events_dir / FEEDBACK_FILE))
    for _, rank, _, record in heapq.merge(*streams, key=lambda r: (r[0], r[1], r[2])):
        yield kinds[rank], record


def run_backtest(
    events_dir: Path,
    *,
    partitions: int,
    allowed_lateness: timedelta,
    thresholds_version: str = "builtin-1",
    scorer: RiskScorer | None = None,
    on_day_scored: Callable[[DayResult], None] | None = None,
    on_event: Callable[[], None] | None = None,
    staff: Callable[[Warning], Iterable[Feedback]] | None = None,
    schedule: ThresholdSchedule | None = None,
) -> BacktestResult:
    """Replay ``events_dir`` through one :class:`PartitionEngine` and the chain stage.

    ``schedule``: the threshold versions by event day (published ones, as the worker has them);
    by default the built-in thresholds; ``scorer`` (with ``thresholds_version``) replaces it.
    ``staff`` simulates the case desk: it sees every warning as it is emitted and may answer
    with feedback, which joins the replay at its ``effective_from`` (it must lie ahead of the
    warning's day; earlier feedback would be late). The feedback taken in is in
    ``result.feedback``; written as ``feedback.jsonl`` next to the inputs it replays the same run
    without ``staff``.
    """
    result = BacktestResult()
    if schedule is None and scorer is None:
        schedule = ThresholdSchedule()  # the built-in thresholds, as a worker without publications
    engine = PartitionEngine(
        buckets={},
        merchants={},
        clocks=dict[int, PartitionClock](),
        scorer=scorer,
        allowed_lateness=allowed_lateness,
        thresholds_version=thresholds_version,
        on_day_scored=on_day_scored,
        chain_sources=1,
        schedule=schedule,
    )
    chains = ChainDirectory(partitions=partitions)
    scheduled: list[tuple[float, str, Feedback]] = []  # staff's answers, by effective_from

    def records() -> Iterator[Record | DeadLetter]:
        for _kind, record in iter_events(events_dir):
            if scheduled and not isinstance(record, DeadLetter):
                moment = record.occurred_at.timestamp()
                while scheduled and scheduled[0][0] < moment:
                    yield heapq.heappop(scheduled)[2]
            yield record
        while scheduled:
            yield heapq.heappop(scheduled)[2]

    for record in records():
        result.events += 1
        if on_event is not None:
            on_event()
        if isinstance(record, DeadLetter):
            result.deadletters.append(record)
            continue
        partition = partition_for(record.merchant_id, partitions)
        outcome = engine.process(record, partition)
        if isinstance(record, Feedback) and not outcome.duplicate:
            result.feedback.append(record)
        result.duplicates += outcome.duplicate
        result.late += outcome.late
        # The chain stage runs in-line here; live, it is a second agent between two topics.
        pending = [(partition, outcome)]
        while pending:
            source, outcome = pending.pop(0)
            result.warnings.extend(outcome.warnings)
            if staff is not None:
                for warning in outcome.warnings:
                    for answer in staff(warning):
                        heapq.heappush(scheduled, (answer.effective_from.timestamp(), answer.feedback_id, answer))
            for notice in outcome.chain_notices:
                for signal in chains.notice(notice):
                    engine.apply_chain_signal(signal, partition_for(signal.merchant_id, partitions))
            if outcome.closed_through is not None:
                watermark = chains.heartbeat(0, partition=source, closed_through=outcome.closed_through)
                if watermark is not None:
                    pending.extend((p, engine.apply_chain_watermark(0, watermark, p)) for p in range(partitions))
    return result


def write_warnings(warnings: list[Warning], out: Path) -> None:
    write_records(warnings, out)


def write_records(records: Iterable[BaseModel], out: Path) -> None:
    """JSON Lines of contract records (warnings, feedback)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as sink:
        for record in records:
            sink.write(orjson.dumps(record.model_dump(mode="json")) + b"\n")
