"""``yujing backtest`` on every core: the input partitions replayed in parallel processes.

Each worker process reads the merged input files as :func:`engine.replay.run_backtest` does
(the same order, so each partition sees its records exactly as in one process) and keeps a
:class:`~engine.partition.PartitionEngine` for its own partitions only (partition ``p`` goes
to worker ``p % workers``). The chain stage, which links stores of one chain across
partitions, runs in the parent: workers send it their chain notices and heartbeats, it sends
back the signals for their stores and the chain watermark, as the live worker's second agent
does over Kafka. The watermark protocol (``alerts.chains``) makes a day's content independent
of how far the partitions are apart, so the warnings are those of one process: the tests
compare them record for record. Warnings, dead letters and feedback are merged in a fixed order
(:func:`merged_order`), whatever the workers' pace.

Only plain replays run here; those that watch every scored day, simulate staff, stop at a
moment or checkpoint (what-ifs, ``explain``, evaluation with staff) keep one process.
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, cast

from alerts.chains import ChainDirectory, ChainNotice, ChainSignal
from alerts.threshold_history import ThresholdSchedule
from contract.partitioning import partition_for
from contract.records import DeadLetter, Feedback
from engine.partition import Outcome, PartitionEngine
from engine.replay import BacktestResult, _merged, event_files

PROGRESS_EVERY = 5000  # records read between progress reports to the parent


def replay_workers(requested: int, partitions: int) -> int:
    """Processes for a replay: ``requested`` (0: one per core), never more than partitions.

    >>> replay_workers(4, 6), replay_workers(8, 3), replay_workers(1, 6)
    (4, 3, 1)
    >>> 1 <= replay_workers(0, 6) <= 6
    True
    """
    wanted = requested if requested > 0 else (os.cpu_count() or 1)
    return max(1, min(wanted, partitions))


def merged_order(result: BacktestResult) -> BacktestResult:
    """``result`` with its lists in a fixed order: warnings by the moment raised, merchant and id;
    dead letters by file and line; feedback by event time and id. One process and many give
    the same lists in this order."""
    result.warnings.sort(key=lambda w: (w.raised_at, w.merchant_id, w.warning_id))
    result.deadletters.sort(key=lambda d: (d.source_topic, d.offset or 0))
    result.feedback.sort(key=lambda f: (f.effective_from, f.feedback_id))
    return result


@dataclass
class _Job:
    events_dir: Path
    partitions: int
    workers: int
    allowed_lateness: timedelta
    schedule: ThresholdSchedule
    online_learning: bool


@dataclass
class _Worker:
    """One worker process's side: its partitions' engine, what it has to tell the parent."""

    job: _Job
    index: int
    conn: Connection
    engine: PartitionEngine = field(init=False)
    result: BacktestResult = field(default_factory=BacktestResult)
    outbox: list[tuple[Any, ...]] = field(default_factory=list)
    read: int = 0  # records read (own or not), for the parent's progress

    def __post_init__(self) -> None:
        job = self.job
        self.engine = PartitionEngine(
            buckets={}, merchants={}, clocks={}, allowed_lateness=job.allowed_lateness, chain_sources=1,
            schedule=job.schedule, online_learning=job.online_learning,
        )

    def owns(self, partition: int) -> bool:
        return partition % self.job.workers == self.index

    def run(self) -> None:
        job, result, last_report = self.job, self.result, 0
        for _, item in _merged(job.events_dir, {}):
            record = item[3]
            self.read += 1
            if isinstance(record, DeadLetter):
                if self.index == 0:  # every worker reads it; one reports it
                    result.events += 1
                    result.deadletters.append(record)
                continue
            partition = partition_for(record.merchant_id, job.partitions)
            if not self.owns(partition):
                if self.read % 64 == 0:  # keep the pipe from the parent drained while skipping
                    while self.conn.poll():
                        self.answer(self.conn.recv())
                continue
            result.events += 1
            outcome = self.engine.process(record, partition)
            if isinstance(record, Feedback) and not outcome.duplicate:
                result.feedback.append(record)
            result.duplicates += outcome.duplicate
            result.late += outcome.late
            self.take(outcome, partition)
            if self.outbox or self.read - last_report >= PROGRESS_EVERY:
                self.send()
                last_report = self.read
            while self.conn.poll():
                self.answer(self.conn.recv())
        self.send()
        self.conn.send(("done", self.read))
        while True:
            message = self.conn.recv()
            if message[0] == "finish":
                self.conn.send(("result", result))
                return
            self.answer(message)

    def take(self, outcome: Outcome, partition: int) -> None:
        """Warnings kept; notices, then the heartbeat that vouches for them, to the parent."""
        self.result.warnings.extend(outcome.warnings)
        self.outbox.extend(("notice", tuple(notice)) for notice in outcome.chain_notices)
        if outcome.closed_through is not None:
            self.outbox.append(("beat", partition, outcome.closed_through))

    def answer(self, message: tuple[Any, ...]) -> None:
        """Signals and watermarks from the chain stage, applied; acknowledged with what they caused."""
        for item in message[1]:
            if item[0] == "signal":
                signal = ChainSignal(*item[1])
                self.engine.apply_chain_signal(signal, partition_for(signal.merchant_id, self.job.partitions))
            else:
                _, watermark = item
                for partition in range(self.job.partitions):
                    if self.owns(partition):
                        self.take(self.engine.apply_chain_watermark(0, watermark, partition), partition)
        self.send(acked=1)

    def send(self, acked: int = 0) -> None:
        self.conn.send(("out", self.outbox, acked, self.read))
        self.outbox = []


def _work(job: _Job, index: int, conn: Connection) -> None:
    try:
        _Worker(job, index, conn).run()
    except BaseException:  # noqa: BLE001 (reported to the parent, which raises it)
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


class ReplayWorkerError(RuntimeError):
    """A worker process failed; its traceback is the message."""


def run_parallel_backtest(
    events_dir: Path, *, partitions: int, allowed_lateness: timedelta, workers: int,
    schedule: ThresholdSchedule | None = None, online_learning: bool = True,
    on_progress: Callable[[int], None] | None = None,
) -> BacktestResult:
    """Replay ``events_dir`` in ``workers`` processes (see the module docstring); the result of
    :func:`engine.replay.run_backtest` in :func:`merged_order`. ``on_progress``: records read
    by the slowest worker so far."""
    event_files(events_dir)  # a missing or empty directory fails here, in one line
    job = _Job(Path(events_dir), partitions, workers, allowed_lateness, schedule or ThresholdSchedule(),
               online_learning)
    context = multiprocessing.get_context("fork")
    conns, processes = [], []
    for index in range(workers):
        parent_end, child_end = context.Pipe()
        process = context.Process(target=_work, args=(job, index, child_end), daemon=True)
        process.start()
        child_end.close()
        conns.append(parent_end)
        processes.append(process)
    try:
        results = _ChainStage(job, conns, on_progress).run()
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    total = BacktestResult()
    for part in results:
        total.warnings.extend(part.warnings)
        total.deadletters.extend(part.deadletters)
        total.feedback.extend(part.feedback)
        total.events += part.events
        total.duplicates += part.duplicates
        total.late += part.late
    return merged_order(total)


class _ChainStage:
    """The parent: the chain directory between the workers, and the end of the run."""

    def __init__(self, job: _Job, conns: list[Connection], on_progress: Callable[[int], None] | None) -> None:
        self.job, self.conns, self.on_progress = job, conns, on_progress
        self.directory = ChainDirectory(partitions=job.partitions)
        self.unanswered = [0] * len(conns)  # messages sent to each worker, not yet acknowledged
        self.read = [0] * len(conns)
        self.done: set[int] = set()

    def run(self) -> list[BacktestResult]:
        live = {conn: index for index, conn in enumerate(self.conns)}
        while len(self.done) < len(self.conns) or any(self.unanswered):
            for ready in wait(list(live)):
                conn = cast(Connection, ready)
                try:
                    message = conn.recv()
                except EOFError:
                    raise ReplayWorkerError(f"replay worker {live[conn]} ended without its result") from None
                self.hear(live[conn], message)
        for conn in self.conns:
            conn.send(("finish",))
        results = []
        for index, conn in enumerate(self.conns):
            message = conn.recv()
            if message[0] != "result":
                self.hear(index, message)
            results.append(message[1])
        return results

    def hear(self, index: int, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "error":
            raise ReplayWorkerError(f"replay worker {index} failed:\n{message[1]}")
        if kind == "done":
            self.done.add(index)
            self.read[index] = message[1]
            return
        _, items, acked, read = message
        self.unanswered[index] -= acked
        self.read[index] = read
        if self.on_progress is not None:
            self.on_progress(min(self.read))
        outgoing: list[list[tuple[Any, ...]]] = [[] for _ in self.conns]
        workers, partitions = self.job.workers, self.job.partitions
        for item in items:
            if item[0] == "notice":
                for signal in self.directory.notice(ChainNotice(*item[1])):
                    owner = partition_for(signal.merchant_id, partitions) % workers
                    outgoing[owner].append(("signal", tuple(signal)))
            else:
                _, partition, closed_through = item
                watermark = self.directory.heartbeat(0, partition=partition, closed_through=closed_through)
                if watermark is not None:
                    # After the signals above in every pipe: a watermark vouches for them.
                    for batch in outgoing:
                        batch.append(("watermark", watermark))
        for target, batch in enumerate(outgoing):
            if batch:
                self.conns[target].send(("chain", batch))
                self.unanswered[target] += 1


__all__ = ["ReplayWorkerError", "merged_order", "replay_workers", "run_parallel_backtest"]
