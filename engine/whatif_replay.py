"""The what-if's two replays: the same history replayed with the current and the candidate
threshold set, in two processes at once (or once, re-judged, when only the levels differ), with the
history before the window replayed once and kept as a checkpoint. What is compared and how is
:mod:`engine.whatif`; this module runs the replays that feed it.
"""

from __future__ import annotations

import multiprocessing
import sys
import time
import warnings as python_warnings
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from alerts.threshold_history import ThresholdSchedule, publication
from alerts.threshold_set import ThresholdSet
from contract.records import Warning
from engine.checkpoints import CheckpointCache
from engine.rejudge import Diverged, Trace, rejudge
from engine.replay import (
    FEEDBACK_FILE,
    INPUT_FILES,
    Checkpoint,
    EventFilesError,
    Replay,
)
from engine.whatif import WarmUp, WhatIf, merchant_changes, read_labels, tally
from models.calendar import day_start

_progress: Any = None  # in a replay process: the shared event counters (one per side)
_warm: Checkpoint | None = None  # in a replay process: the history before the window, replayed


def _init_replay(counters: Any, warm: Checkpoint | None) -> None:
    global _progress, _warm
    _progress, _warm = counters, warm


def _ticker(side: int, start: int = 0) -> Callable[[], None]:
    seen = start

    def tick() -> None:
        nonlocal seen
        seen += 1
        if _progress is not None and seen % 2000 == 0:
            _progress[side] = seen

    return tick


def schedule_for(current: ThresholdSet, candidate: ThresholdSet, since: date | None) -> ThresholdSchedule:
    """The candidate side's schedule: ``candidate`` in force from the window's first day, as if it
    had been published to take effect then (``current`` before it); from the start without one.

    >>> from alerts.threshold_set import builtin_thresholds
    >>> current = builtin_thresholds()
    >>> data = current.model_dump(); data["levels"]["cutoffs"]["red"] = 0.9
    >>> candidate = ThresholdSet.from_mapping(data)
    >>> schedule = schedule_for(current, candidate, date(2026, 3, 1))
    >>> [schedule.at(date(2026, 2, day).toordinal()).version == candidate.version for day in (27, 28)]
    [False, False]
    >>> schedule.at(date(2026, 3, 1).toordinal()).version == candidate.version
    True
    """
    if since is None:
        return ThresholdSchedule(candidate)
    schedule = ThresholdSchedule(current)
    schedule.add(publication(candidate, author="what-if", reason="what-if", published_at=datetime(2000, 1, 1, tzinfo=UTC),
                             effective_from=day_start(since.toordinal())))
    return schedule


@dataclass
class Recording:
    """The current side of a window, as its replay recorded it (kept in the checkpoint cache):
    its warnings, and the trace the next what-if judges its candidate on."""

    warnings: list[Warning]
    events: int
    seconds: float
    trace: Trace


def _replay(
    side: int, events_dir: Path, schedule: ThresholdSchedule, partitions: int, allowed_lateness: timedelta,
    keep: tuple[CheckpointCache, Path] | None = None,
) -> tuple[list[Warning], int, float]:
    """One side's replay (in a worker process), from the warmed-up checkpoint if there is one:
    its warnings, events read and seconds taken. ``keep``: record it, and keep the recording in
    that cache entry."""
    started = time.perf_counter()
    if _warm is not None:
        replay = Replay.resume(_warm, schedule=schedule, on_event=_ticker(side, _warm.result.events))
    else:
        replay = Replay(events_dir, partitions=partitions, allowed_lateness=allowed_lateness, schedule=schedule,
                        on_event=_ticker(side))
    trace = Trace() if keep is not None else None
    replay.tracer = replay.engine.tracer = trace
    result = replay.run()
    if _progress is not None:
        _progress[side] = result.events
    seconds = time.perf_counter() - started
    if keep is not None and trace is not None:
        cache, entry = keep
        try:
            cache.save_recording(entry, events_dir, Recording(result.warnings, result.events, seconds, trace))
        except OSError as error:
            python_warnings.warn(f"cannot keep the what-if recording in {entry}: {error}", stacklevel=2)
    return result.warnings, result.events, seconds


def count_events(events_dir: Path) -> int:
    """Lines in the input files (and feedback) of ``events_dir``: the total for a progress bar."""
    total = 0
    for name in (*INPUT_FILES.values(), FEEDBACK_FILE):
        path = events_dir / name
        if path.exists():
            with path.open("rb") as lines:
                total += sum(chunk.count(b"\n") for chunk in iter(partial(lines.read, 1 << 20), b""))
    return total


def _context() -> Any:
    # fork starts a replay at once (nothing to import again, the warmed-up state is inherited, not
    # pickled); elsewhere the platform's default.
    return multiprocessing.get_context("fork" if sys.platform == "linux" else None)




def warm_up(
    events_dir: Path, current: ThresholdSet, since: date, *, partitions: int, allowed_lateness: timedelta,
    cache: CheckpointCache | None = None, on_event: Callable[[], None] | None = None,
) -> tuple[Checkpoint, WarmUp]:
    """Replay ``events_dir`` with ``current`` up to the start of ``since`` (Shanghai), or load
    that checkpoint from ``cache`` (or go on from an earlier one there); a new one is saved there."""
    stop_at = day_start(since.toordinal())
    started = time.perf_counter()
    options: dict[str, Any] = {"partitions": partitions, "allowed_lateness": allowed_lateness,
                               "thresholds_version": current.version, "stop_at": stop_at}
    found = cache.find(events_dir, **options) if cache is not None else None
    resumed_from = None
    if found is not None:
        checkpoint, entry = found
    else:
        earlier = cache.find(events_dir, before=True, **options) if cache is not None else None
        if earlier is not None:  # the window moved forward: go on from where an earlier one began
            resumed_from = CheckpointCache.stopped_at(earlier[1])
            replay = Replay.resume(earlier[0], schedule=ThresholdSchedule(current), on_event=on_event)
        else:
            replay = Replay(events_dir, partitions=partitions, allowed_lateness=allowed_lateness,
                            schedule=ThresholdSchedule(current), on_event=on_event)
        replay.run(stop_at)
        checkpoint, entry = replay.checkpoint(), None
        if cache is not None:
            try:
                entry = cache.save(checkpoint, thresholds_version=current.version, stop_at=stop_at)
            except OSError as error:
                python_warnings.warn(f"cannot keep the what-if checkpoint in {cache.root}: {error}", stacklevel=2)
    closed = checkpoint.closed_through
    # Nothing of the window may have been scored yet, or the two sides would not start equal.
    assert closed is None or closed < since.toordinal(), "the checkpoint closed a day of the window"
    return checkpoint, WarmUp(checkpoint.result.events, time.perf_counter() - started, found is not None,
                              None if closed is None else date.fromordinal(closed), entry, resumed_from)


def compare(
    events_dir: Path,
    current: ThresholdSet,
    candidate: ThresholdSet,
    *,
    partitions: int,
    allowed_lateness: timedelta,
    since: date | None = None,
    until: date | None = None,
    labels: Path | None = None,
    current_label: str = "current",
    candidate_label: str = "candidate",
    on_progress: Callable[[list[int]], None] | None = None,
    cache: CheckpointCache | None = None,
) -> WhatIf:
    """Replay ``events_dir`` with ``current`` and with ``candidate`` and compare their warnings
    within ``since``..``until``.

    With ``since``, the history before it is replayed once, with ``current`` (or loaded from
    ``cache``), and the candidate applies from ``since`` on. The first time, both sides then
    replay the window in two processes at once, and the current side's replay is recorded in
    ``cache``; the next time (same files, code, settings, current set and ``since``), the current
    side is that recording and the candidate is judged on its trace (:mod:`engine.rejudge`), or
    replayed from the checkpoint if the candidate changes which merchants are scored. Without
    ``since``, both replay everything, each with its own set. ``labels``: a ``labels.jsonl`` for
    the quality figures. ``on_progress`` gets the events each side has read, every ~0.2 s.
    Raises :class:`EventFilesError` for an unreadable events directory, ``OSError`` for labels."""
    events_dir = Path(events_dir)
    if not events_dir.is_dir():
        raise EventFilesError(f"events directory not found: {events_dir}")
    label_rows = read_labels(labels) if labels is not None else None
    same = current.version == candidate.version
    schedules = [ThresholdSchedule(current)] + ([] if same else [schedule_for(current, candidate, since)])
    started = time.perf_counter()
    warm: Checkpoint | None = None
    warmed: WarmUp | None = None
    replays: list[tuple[list[Warning], int, float]] | None = None
    method = "replayed"
    if since is not None:
        read = [0]

        def tick() -> None:
            read[0] += 1
            if on_progress is not None and read[0] % 5000 == 0:
                on_progress([read[0]] * len(schedules))

        warm, warmed = warm_up(events_dir, current, since, partitions=partitions, allowed_lateness=allowed_lateness,
                               cache=cache, on_event=tick)
        if on_progress is not None:
            on_progress([warm.result.events] * len(schedules))
        recording = cache.load_recording(warmed.entry, events_dir) if cache and warmed.entry else None
        if isinstance(recording, Recording) and cache is not None:
            replays, method = _from_recording(recording, warm, warmed, schedules, events_dir, cache, on_progress)
    if replays is None:
        keep = (cache, warmed.entry) if cache is not None and warmed is not None and warmed.entry else None
        replays = _side_by_side(events_dir, schedules, warm, partitions, allowed_lateness, keep, on_progress)
    seconds = time.perf_counter() - started
    if len(replays) == 1:  # the same set twice: one replay serves both sides
        replays.append(replays[0])
    sides = []
    for (label, thresholds), (warnings, events, took) in zip(
        ((current_label, current), (candidate_label, candidate)), replays, strict=True,
    ):
        sides.append(tally(warnings, label=label, version=thresholds.version, since=since, until=until,
                           labels=label_rows, events=events, seconds=took))
    newly, gone = merchant_changes(sides[0], sides[1])
    return WhatIf(sides[0], sides[1], current, candidate, events_dir, since, until, seconds, newly, gone,
                  warm_up=warmed, method=method)


def _side_by_side(
    events_dir: Path, schedules: list[ThresholdSchedule], warm: Checkpoint | None, partitions: int,
    allowed_lateness: timedelta, keep: tuple[CheckpointCache, Path] | None,
    on_progress: Callable[[list[int]], None] | None,
) -> list[tuple[list[Warning], int, float]]:
    """Each schedule's replay in a process of its own, at once (from ``warm`` if given); the first
    (current) side's is recorded into ``keep``."""
    context = _context()
    counters = context.Array("q", len(schedules), lock=False)
    with ProcessPoolExecutor(max_workers=len(schedules), mp_context=context, initializer=_init_replay,
                             initargs=(counters, warm)) as pool:
        futures: list[Future[tuple[list[Warning], int, float]]] = [
            pool.submit(_replay, side, events_dir, schedule, partitions, allowed_lateness, keep if side == 0 else None)
            for side, schedule in enumerate(schedules)
        ]
        pending = set(futures)
        while pending:
            _, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            if on_progress is not None:
                on_progress(list(counters))
        return [future.result() for future in futures]


def _from_recording(
    recording: Recording, warm: Checkpoint, warmed: WarmUp, schedules: list[ThresholdSchedule], events_dir: Path,
    cache: CheckpointCache, on_progress: Callable[[list[int]], None] | None,
) -> tuple[list[tuple[list[Warning], int, float]], str]:
    """The current side from its recording; the candidate judged on the recorded trace, or, if it
    changes which merchants are scored, replayed from the checkpoint."""
    sides = [(recording.warnings, recording.events, recording.seconds)]
    done = [recording.events] * len(schedules)
    if len(schedules) == 1:
        if on_progress is not None:
            on_progress(done)
        return sides, "recorded"
    started = time.perf_counter()
    window = recording.events - warm.result.events

    def step(calls: int, total: int) -> None:
        if on_progress is not None:  # (the candidate's bar moves with the calls judged)
            on_progress([recording.events, warm.result.events + window * calls // max(total, 1)])

    try:
        warnings = rejudge(warm, recording.trace, schedules[1], on_step=step)
        method = "judged on the recording"
    except Diverged as why:
        assert warmed.entry is not None
        warnings = Replay.resume(cache.reload(warmed.entry, events_dir), schedule=schedules[1]).run().warnings
        method = f"replayed (the candidate changes which merchants are scored: {why})"
    if on_progress is not None:
        on_progress(done)
    sides.append((warnings, recording.events, time.perf_counter() - started))
    return sides, method


