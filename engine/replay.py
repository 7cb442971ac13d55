"""``yujing backtest``: the live pipeline's scoring over contract JSON Lines files, without Kafka.

Events of the three input files are merged in event-time order and routed to the partition
that Kafka's default partitioner would give their ``merchant_id`` key (murmur2, as the Java
client and kafka-python do), so each partition's watermark, and hence every warning, is the
one the live worker produces for the same records.

An optional ``feedback.jsonl`` (case dispositions, :class:`contract.records.Feedback`, as the
case service publishes them to ``prepaid.feedback``) is merged in too, ordered by
``effective_from``, so a replay applies staff's feedback at the same point of event time.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import orjson
from pydantic import BaseModel

from alerts.chains import ChainDirectory
from alerts.threshold_history import ThresholdSchedule
from contract.partitioning import partition_for
from contract.records import DeadLetter, Feedback, InputEvent, Warning, decode
from engine.day_closing import DayResult
from engine.partition import Outcome, PartitionClock, PartitionEngine, Tracer
from models.scoring import RiskScorer
from models.state import DayTotals, MerchantState

INPUT_FILES = {"merchants": "merchants.jsonl", "complaints": "complaints.jsonl", "transactions": "transactions.jsonl"}
FEEDBACK_FILE = "feedback.jsonl"  # optional: case dispositions read back by the scoring side
# At equal timestamps a profile is applied before activity, and activity before the clock moves.
# Feedback never moves the clock and counts from the day after its own, so its rank is moot.
KIND_RANK = {"merchants": 0, "complaints": 1, "transactions": 2, "feedback": 3}
Record = InputEvent | Feedback




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


# Where a replay stands in one input file: (byte offset after the last record taken, that record's
# line number, the event time the file had reached). For feedback (read whole, then sorted): (0,
# records taken, 0.0). A checkpoint holds one per file, so a replay can go on from it.
Position = tuple[int, int, float]
START: Position = (0, 0, 0.0)
Item = tuple[float, int, int, "Record | DeadLetter", Position]


def _decoded(kind: str, path: Path, start: Position = START) -> Iterator[Item]:
    """Decode one file lazily, from ``start``. Files are read in their own order, as a topic would
    be: a record older than the partition's watermark is handled as a late event, exactly as live."""
    offset, number, moment = start
    with path.open("rb") as lines:
        lines.seek(offset)
        for number, line in enumerate(lines, start=number + 1):  # noqa: B020 (numbering goes on)
            offset += len(line)
            if not line.strip():
                continue
            record = decode(kind, line.rstrip(b"\r\n"), source_topic=path.name, offset=number)
            if not isinstance(record, DeadLetter):
                moment = record.occurred_at.timestamp()
            yield moment, KIND_RANK[kind], number, record, (offset, number, moment)


def _feedback(path: Path, start: Position = START) -> Iterator[Item]:
    """The feedback file sorted by ``effective_from`` (then ``feedback_id``): the case service
    writes it in order of decision, the replay needs it in event time. It is small."""
    records = list(_decoded("feedback", path))
    answers = sorted(
        ((moment, rank, record) for moment, rank, _, record, _ in records if isinstance(record, Feedback)),
        key=lambda r: (r[0], r[2].feedback_id),
    )
    # Dead letters first (they carry their line number as offset), then the records in order.
    ordered: list[tuple[float, int, int, Record | DeadLetter]] = [
        (0.0, rank, number, record) for _, rank, number, record, _ in records if isinstance(record, DeadLetter)]
    ordered.extend((moment, rank, number, record) for number, (moment, rank, record) in enumerate(answers, start=1))
    for taken, (moment, rank, number, record) in enumerate(ordered, start=1):
        if taken > start[1]:
            yield moment, rank, number, record, (0, taken, 0.0)


def event_files(events_dir: Path) -> dict[str, Path]:
    """The files of ``events_dir`` a replay reads, by kind (``feedback`` included when present)."""
    if not events_dir.is_dir():
        raise EventFilesError(f"events directory not found: {events_dir}")
    sources = {kind: events_dir / name for kind, name in INPUT_FILES.items() if (events_dir / name).exists()}
    if not sources:
        raise EventFilesError(f"no {', '.join(INPUT_FILES.values())} in {events_dir}")
    if (events_dir / FEEDBACK_FILE).exists():
        sources["feedback"] = events_dir / FEEDBACK_FILE
    return sources


def _merged(events_dir: Path, positions: dict[str, Position]) -> Iterator[tuple[str, Item]]:
    """The records of ``events_dir`` from ``positions`` on, merged in event-time order."""
    streams = [
        ((_feedback if kind == "feedback" else partial(_decoded, kind))(path, positions.get(kind, START)))
        for kind, path in event_files(events_dir).items()
    ]
    kinds = {rank: kind for kind, rank in KIND_RANK.items()}
    for item in heapq.merge(*streams, key=lambda r: (r[0], r[1], r[2])):
        yield kinds[item[1]], item


def iter_events(events_dir: Path) -> Iterator[tuple[str, Record | DeadLetter]]:
    """All input records of ``events_dir`` (and its ``feedback.jsonl``, if any) merged in
    event-time order."""
    for kind, item in _merged(events_dir, {}):
        yield kind, item[3]


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
    online_learning: bool = True,
) -> BacktestResult:
    """Replay ``events_dir`` through one :class:`PartitionEngine` and the chain stage.

    ``schedule``: the threshold versions by event day (published ones, as the worker has them);
    by default the built-in thresholds; ``scorer`` (with ``thresholds_version``) replaces it.
    ``staff`` simulates the case desk: it sees every warning as it is emitted and may answer
    with feedback, which joins the replay at its ``effective_from`` (it must lie ahead of the
    warning's day; earlier feedback would be late). The feedback taken in is in
    ``result.feedback``; written as ``feedback.jsonl`` next to the inputs it replays the same run
    without ``staff``. ``online_learning``: case outcomes correct the fusion's weights, as in the
    worker (``YUJING_ONLINE_LEARNING``).
    """
    return Replay(
        events_dir, partitions=partitions, allowed_lateness=allowed_lateness, thresholds_version=thresholds_version,
        scorer=scorer, on_day_scored=on_day_scored, on_event=on_event, staff=staff, schedule=schedule,
        online_learning=online_learning,
    ).run()


@dataclass
class Checkpoint:
    """A replay stopped between two records: all its state and where it stands in each file.

    Picklable (the state is what the worker's tables hold). :meth:`Replay.resume` goes on from it
    with any threshold schedule that agrees with the one it was made with on every day it closed,
    and gives the records, warnings and state a replay from the start with that schedule would.
    """

    events_dir: Path
    partitions: int
    allowed_lateness: timedelta
    positions: dict[str, Position]
    buckets: dict[str, DayTotals]
    merchants: dict[str, MerchantState]
    clocks: dict[int, PartitionClock]
    chains: ChainDirectory
    result: BacktestResult
    scheduled: list[tuple[float, str, Feedback]]
    online_learning: bool = True  # whether case outcomes corrected the weights (the learners are in clocks)

    @property
    def closed_through(self) -> int | None:
        """The latest event-time day any partition has closed (None before any closed)."""
        closed = [clock.closed_through for clock in self.clocks.values() if clock.closed_through is not None]
        return max(closed) if closed else None


class Replay:
    """``run_backtest`` as an object: it can stop at a moment of event time, be checkpointed, and
    go on from the checkpoint, also with another threshold schedule (``yujing backtest
    --compare`` replays the history before its window once for both sides)."""

    def __init__(
        self,
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
        checkpoint: Checkpoint | None = None,
        online_learning: bool | None = None,
    ) -> None:
        if schedule is None and scorer is None:
            schedule = ThresholdSchedule()  # the built-in thresholds, as a worker without publications
        self.events_dir = Path(events_dir)
        self.partitions = partitions
        self.allowed_lateness = allowed_lateness
        self.on_event = on_event
        self.staff = staff
        start = checkpoint or Checkpoint(
            events_dir=self.events_dir, partitions=partitions, allowed_lateness=allowed_lateness, positions={},
            buckets={}, merchants={}, clocks={}, chains=ChainDirectory(partitions=partitions),
            result=BacktestResult(), scheduled=[], online_learning=True if online_learning is None else online_learning,
        )
        if (start.partitions, start.allowed_lateness) != (partitions, allowed_lateness):
            raise ValueError("a checkpoint goes on only with its own partitions and allowed lateness")
        if online_learning is not None and online_learning != start.online_learning:
            raise ValueError("a checkpoint goes on only with its own online learning setting")
        self.online_learning = start.online_learning
        self.engine = PartitionEngine(
            buckets=start.buckets,
            merchants=start.merchants,
            clocks=start.clocks,
            scorer=scorer,
            allowed_lateness=allowed_lateness,
            thresholds_version=thresholds_version,
            on_day_scored=on_day_scored,
            chain_sources=1,
            schedule=schedule,
            online_learning=self.online_learning,
        )
        self.chains = start.chains
        self.result = start.result
        self.positions = dict(start.positions)
        self.scheduled = start.scheduled  # staff's answers, by effective_from
        self.tracer: CallTracer | None = None  # set by a what-if's recording replay (engine.rejudge)
        self._items: Iterator[tuple[float, str | None, Record | DeadLetter, Position | None]] | None = None
        self._held: tuple[float, str | None, Record | DeadLetter, Position | None] | None = None

    @classmethod
    def resume(cls, checkpoint: Checkpoint, **options: Any) -> Replay:
        """Go on from ``checkpoint`` (``options`` as for the constructor, without the files'
        layout, which the checkpoint fixes)."""
        return cls(checkpoint.events_dir, partitions=checkpoint.partitions,
                   allowed_lateness=checkpoint.allowed_lateness, checkpoint=checkpoint, **options)

    def checkpoint(self) -> Checkpoint:
        """The replay as it stands (shares its state: pickle it, or stop using this replay)."""
        held = self._held
        if held is not None and held[1] is None and isinstance(held[2], Feedback):  # a staff answer taken, not yet used
            heapq.heappush(self.scheduled, (held[0], held[2].feedback_id, held[2]))
            self._held = None
        return Checkpoint(
            events_dir=self.events_dir, partitions=self.partitions, allowed_lateness=self.allowed_lateness,
            positions=dict(self.positions), buckets=dict(self.engine.buckets), merchants=dict(self.engine.merchants),
            clocks=dict(self.engine.clocks), chains=self.chains, result=self.result, scheduled=self.scheduled,
            online_learning=self.online_learning,
        )

    def _records(self) -> Iterator[tuple[float, str | None, Record | DeadLetter, Position | None]]:
        """(event time, source file kind or None for staff's answers, record, position after it)."""
        for kind, (moment, _, _, record, position) in _merged(self.events_dir, self.positions):
            if self.scheduled and not isinstance(record, DeadLetter):
                while self.scheduled and self.scheduled[0][0] < record.occurred_at.timestamp():
                    answer_at, _, answer = heapq.heappop(self.scheduled)
                    yield answer_at, None, answer, None
            yield moment, kind, record, position
        while self.scheduled:
            answer_at, _, answer = heapq.heappop(self.scheduled)
            yield answer_at, None, answer, None

    def run(self, stop_at: datetime | None = None) -> BacktestResult:
        """Replay up to the end of the files, or only the records before ``stop_at`` (event time,
        in the order the files are merged in). Can be called again to go on."""
        if self._items is None:
            self._items = self._records()
        stop = stop_at.timestamp() if stop_at is not None else None
        while True:
            item = self._held or next(self._items, None)
            self._held = None
            if item is None:
                break
            moment, kind, record, position = item
            if stop is not None and moment >= stop:
                self._held = item
                break
            self._take(record)
            if kind is not None and position is not None:
                self.positions[kind] = position
        return self.result

    def _take(self, record: Record | DeadLetter) -> None:
        result, engine, partitions = self.result, self.engine, self.partitions
        result.events += 1
        if self.on_event is not None:
            self.on_event()
        if isinstance(record, DeadLetter):
            result.deadletters.append(record)
            return
        partition = partition_for(record.merchant_id, partitions)
        if self.tracer is not None:
            self.tracer.call("process", partition)
        outcome = engine.process(record, partition)
        if self.tracer is not None:
            self.tracer.returned(outcome)
        if isinstance(record, Feedback) and not outcome.duplicate:
            result.feedback.append(record)
        result.duplicates += outcome.duplicate
        result.late += outcome.late
        settle(engine, self.chains, partitions, partition, outcome, self._emitted, self.tracer)

    def _emitted(self, warnings: list[Warning]) -> None:
        self.result.warnings.extend(warnings)
        if self.staff is not None:
            for warning in warnings:
                for answer in self.staff(warning):
                    heapq.heappush(self.scheduled, (answer.effective_from.timestamp(), answer.feedback_id, answer))


class CallTracer(Tracer, Protocol):
    """A :class:`~engine.partition.Tracer` that also hears where each call into the engine begins and ends."""

    def call(self, kind: str, partition: int, watermark: int | None = None) -> None: ...

    def returned(self, outcome: Outcome) -> None: ...


def settle(
    engine: Any, chains: ChainDirectory, partitions: int, partition: int, outcome: Outcome,
    emitted: Callable[[list[Warning]], None], tracer: CallTracer | None = None,
) -> None:
    """The chain stage in-line, after ``engine`` produced ``outcome`` on ``partition``: warnings go
    to ``emitted``, chain notices become signals for the linked stores' partitions, and a day closed
    everywhere becomes a chain watermark that lets the partitions close the days waiting for it.
    Live, this is a second agent between two topics (``streams/agents.py``)."""
    pending = [(partition, outcome)]
    while pending:
        source, outcome = pending.pop(0)
        emitted(outcome.warnings)
        for notice in outcome.chain_notices:
            for signal in chains.notice(notice):
                engine.apply_chain_signal(signal, partition_for(signal.merchant_id, partitions))
        if outcome.closed_through is not None:
            watermark = chains.heartbeat(0, partition=source, closed_through=outcome.closed_through)
            if watermark is not None:
                for target in range(partitions):
                    if tracer is not None:
                        tracer.call("watermark", target, watermark)
                    closed = engine.apply_chain_watermark(0, watermark, target)
                    if tracer is not None:
                        tracer.returned(closed)
                    pending.append((target, closed))


def write_warnings(warnings: list[Warning], out: Path) -> None:
    write_records(warnings, out)


def write_records(records: Iterable[BaseModel], out: Path) -> None:
    """JSON Lines of contract records (warnings, feedback)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as sink:
        for record in records:
            sink.write(orjson.dumps(record.model_dump(mode="json")) + b"\n")
