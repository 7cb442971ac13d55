"""What-if before apply (阈值调整预演): replay history with two threshold sets, side by side.

``yujing backtest --thresholds candidate.yaml --compare current`` replays the same events twice,
once with each set (two processes at once), and compares what each would have told the case
desk within a window of event time: warnings per level, per driving indicator, per town and per
industry; merchants newly flagged and no longer flagged, with the indicators that flag them;
and, when the simulator's ``labels.jsonl`` is at hand, recall, lead time and false alarms
(:mod:`yujing.evaluation`).

Definitions, for both sides alike:

* **Window.** ``since``/``until`` (Shanghai event days, both inclusive; either may be open)
  choose which warnings count. The replay always starts at the first event, so baselines,
  detectors and levels are warm when the window opens.
* **When the candidate applies.** With ``since``, from the window's first day, as if it had been
  published to take effect then: the history before the window is the same for both sides (replayed
  once, with the current set, and kept as a checkpoint in the cache, so the next what-if on the same
  history and window replays the window only), and levels carried into the window are the ones the
  current set left, as they would be on the day a publication takes effect. Without ``since``, each
  side replays all of the history with its own set.
* **Driving indicator.** The indicator with the largest contribution to a raised or escalated
  warning; each such warning counts once, under it.
* **Town, industry.** The warning's ``district`` and ``industry`` (the profile in force that day).
* **Flagged.** A merchant that held yellow or above at some point of the window: a level
  carried into the window counts, as does one reached in it. Its *highest level* is the highest
  it held in the window; its *reasons* are the top indicators of the warning that brought it
  there, with the warning's own Chinese and English explanations.
* **Quality** (with labels). Recall and lead time over the collapses whose collapse date lies in
  the window, counting any orange/red warning before the collapse (also one before the window);
  false alarms over healthy merchants and look-alikes with an orange/red warning in the window.

Comparing a set with itself replays once and shows no change.

>>> rows = [Row("warnings", "red: raised/escalated", 3, 5, "count"),
...         Row("labels", "recall", 0.5, 0.625, "share")]
>>> [row.cells() for row in rows]
[('3', '5', '+2'), ('50.0%', '62.5%', '+12.5 pp')]
"""

from __future__ import annotations

import base64
import heapq
import io
import multiprocessing
import sys
import time
import warnings as python_warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Literal

import orjson

from alerts.levels import LEVELS, RANK
from models.calendar import SHANGHAI, day_start
from yujing.backtest import (
    FEEDBACK_FILE,
    INPUT_FILES,
    Checkpoint,
    EventFilesError,
    Replay,
    partition_for,
)
from yujing.checkpoints import CheckpointCache
from yujing.contract import Warning
from yujing.evaluation import evaluate, urgent_alarms
from yujing.rejudge import Diverged, Trace, rejudge
from yujing.threshold_history import ThresholdSchedule, publication
from yujing.thresholds import Change, ThresholdSet, diff

FLAG_LEVEL = "yellow"  # flagged: held this level or a higher one in the window
ENTERING = ("raised", "escalated")
TOP_REASONS = 3
TEMPLATES = Path(__file__).parent / "templates"
# CJK fonts matplotlib may find, preferred first; fonts-noto-cjk provides the first two.
CJK_FONTS = (
    "Noto Sans CJK SC", "Noto Serif CJK SC", "Source Han Sans SC", "Source Han Sans CN",
    "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Microsoft YaHei", "SimHei", "PingFang SC",
)
Unit = Literal["count", "share", "days"]


@dataclass(frozen=True)
class Reason:
    """One indicator behind a flag, as the warning explained it."""

    code: str
    contribution: float
    explanation_zh: str
    explanation_en: str


@dataclass(frozen=True)
class MerchantChange:
    """A merchant flagged under one set and not under the other."""

    merchant_id: str
    name: str | None
    industry: str | None
    town: str | None
    current_level: str | None  # highest level held in the window under each set
    candidate_level: str | None
    reasons: tuple[Reason, ...]  # from the side that flags it
    flagged_at: datetime  # event time of the warning that brought it to its highest level


@dataclass(frozen=True)
class Quality:
    """Detection quality against the simulator's labels (see the module's doc for the window)."""

    collapses: int
    caught: int
    recall: float | None
    median_lead_days: float | None
    healthy: int
    healthy_flagged: int  # healthy merchants with an orange/red warning
    lookalikes: int
    lookalikes_flagged: int
    urgent_false_alarms: int  # orange/red raises and escalations of merchants that do not collapse


@dataclass
class Figures:
    """One replay's warnings within the window, tallied."""

    label: str
    version: str
    events: int
    seconds: float
    warnings: list[Warning]  # in the window, in order of event time
    entering: dict[str, int]  # raised/escalated warnings per level
    transitions: dict[str, int]  # every warning per level (raised, escalated, de-escalated, cleared)
    by_indicator: dict[str, int]  # raised/escalated warnings per driving indicator
    by_town: dict[str, int]  # raised/escalated warnings per town
    by_industry: dict[str, int]  # raised/escalated warnings per industry
    highest: dict[str, str]  # merchant -> highest level held in the window
    flagging: dict[str, Warning]  # merchant -> the warning that brought it to that level
    quality: Quality | None = None

    @property
    def flagged(self) -> set[str]:
        return {m for m, level in self.highest.items() if RANK[level] >= RANK[FLAG_LEVEL]}


@dataclass(frozen=True)
class Row:
    """One line of the side-by-side table."""

    section: str
    figure: str
    current: float | None
    candidate: float | None
    unit: Unit = "count"

    @property
    def change(self) -> float | None:
        if self.current is None or self.candidate is None:
            return None
        return self.candidate - self.current

    def cells(self) -> tuple[str, str, str]:
        """(current, candidate, change) as text."""
        change = self.change
        if self.unit == "share":
            delta = "" if change is None else f"{change * 100:+.1f} pp" if change else "0"
            return _share(self.current), _share(self.candidate), delta
        if self.unit == "days":
            delta = "" if change is None else f"{change:+.0f} d" if change else "0"
            return _days(self.current), _days(self.candidate), delta
        delta = "" if change is None else f"{change:+.0f}" if change else "0"
        return _count(self.current), _count(self.candidate), delta


@dataclass
class WhatIf:
    """Both replays' figures and what differs between them."""

    current: Figures
    candidate: Figures
    current_set: ThresholdSet
    candidate_set: ThresholdSet
    events_dir: Path
    since: date | None
    until: date | None
    seconds: float  # wall time of the replays (run side by side)
    newly_flagged: list[MerchantChange] = field(default_factory=list)
    no_longer_flagged: list[MerchantChange] = field(default_factory=list)
    source: str | None = None  # where the events came from, when not ``events_dir`` itself
    warm_up: WarmUp | None = None  # the history before the window, replayed once for both sides
    method: str = "replayed"  # how the window's sides were had: replayed, or judged on a recording

    @property
    def changes(self) -> list[Change]:
        return diff(self.current_set, self.candidate_set)

    @property
    def timing(self) -> str:
        """How the sides were had, in one line.

        >>> cur = Figures("builtin", "t-1", 1000, 2.0, [], {}, {}, {}, {}, {}, {}, {})
        >>> w = WhatIf(cur, cur, None, None, Path("events"), date(2026, 3, 1), None, 4.0,  # type: ignore[arg-type]
        ...            warm_up=WarmUp(800, 0.5, True, date(2026, 2, 27)))
        >>> w.timing
        '1,000 events: 800 before the window from a checkpoint (0.5 s), the window replayed twice side by side (4.0 s in all)'
        >>> w.method = "judged on the recording"
        >>> w.timing
        '1,000 events: 800 before the window from a checkpoint (0.5 s), the window judged on the recording of its replay with the current set (2.0 s; 4.0 s in all)'
        """
        twice = "once" if self.current_set is not None and self.current_set == self.candidate_set else "twice side by side"
        if self.warm_up is None:
            return f"{self.current.events:,} events replayed {twice} in {self.seconds:.1f} s"
        warm = self.warm_up
        how = "from a checkpoint" if warm.cached else "replayed once and kept"
        if warm.resumed_from is not None:
            how = f"replayed on from the checkpoint of {warm.resumed_from} and kept"
        head = f"{self.current.events:,} events: {warm.events:,} before the window {how} ({warm.seconds:.1f} s), "
        if self.method == "replayed":
            return head + f"the window replayed {twice} ({self.seconds:.1f} s in all)"
        if self.method == "recorded":
            return head + f"the window from the recording of its replay ({self.seconds:.1f} s in all)"
        if self.method == "judged on the recording":
            return head + (f"the window judged on the recording of its replay with the current set "
                           f"({self.candidate.seconds:.1f} s; {self.seconds:.1f} s in all)")
        return head + f"the window {self.method} ({self.seconds:.1f} s in all)"

    @property
    def window(self) -> str:
        if self.since is None and self.until is None:
            return "all of the replay"
        return f"{self.since or 'start'} to {self.until or 'end'}"

    @property
    def summary(self) -> list[Row]:
        """Every figure, current against candidate, in sections."""
        cur, cand = self.current, self.candidate
        rows = [
            Row("warnings", f"{level}: raised/escalated", cur.entering[level], cand.entering[level])
            for level in LEVELS
        ]
        rows.append(Row("warnings", "raised/escalated, all levels",
                        sum(cur.entering.values()), sum(cand.entering.values())))
        rows += [
            Row("warnings", f"{level}: every transition", cur.transitions[level], cand.transitions[level])
            for level in LEVELS
        ]
        rows.append(Row("warnings", "every transition, all levels", len(cur.warnings), len(cand.warnings)))
        rows += [
            Row("merchants", f"flagged ({FLAG_LEVEL} or above)", len(cur.flagged), len(cand.flagged)),
            Row("merchants", "flagged orange or red", _at_least(cur, "orange"), _at_least(cand, "orange")),
            Row("merchants", "flagged red", _at_least(cur, "red"), _at_least(cand, "red")),
        ]
        for section, attribute in (("driving indicator", "by_indicator"), ("town", "by_town"),
                                   ("industry", "by_industry")):
            a, b = getattr(cur, attribute), getattr(cand, attribute)
            for key in _keys(a, b):
                rows.append(Row(section, key, a.get(key, 0), b.get(key, 0)))
        if cur.quality is not None and cand.quality is not None:
            q, r = cur.quality, cand.quality
            rows += [
                Row("labels", f"recall (orange/red before collapse; {q.collapses} collapses)", q.recall, r.recall,
                    "share"),
                Row("labels", "median lead time", q.median_lead_days, r.median_lead_days, "days"),
                Row("labels", f"healthy merchants flagged orange/red (of {q.healthy})", q.healthy_flagged,
                    r.healthy_flagged),
                Row("labels", f"look-alikes flagged orange/red (of {q.lookalikes})", q.lookalikes_flagged,
                    r.lookalikes_flagged),
                Row("labels", "orange/red warnings on merchants that do not collapse", q.urgent_false_alarms,
                    r.urgent_false_alarms),
            ]
        return rows


# -- tallies ---------------------------------------------------------------------------------

def _local_date(moment: datetime) -> date:
    return moment.astimezone(SHANGHAI).date()


def _in_window(day: date, since: date | None, until: date | None) -> bool:
    return (since is None or day >= since) and (until is None or day <= until)


def driving(warning: Warning) -> str | None:
    """The code of the indicator that contributed most to ``warning``."""
    reasons = reasons_of(warning, top=1)
    return reasons[0].code if reasons else None


def reasons_of(warning: Warning, top: int = TOP_REASONS) -> tuple[Reason, ...]:
    """The ``top`` indicators of ``warning`` by contribution, strongest first."""
    readings = sorted(
        warning.indicators,
        key=lambda r: -(r.contribution if r.contribution is not None else r.score * (r.weight or 1.0)),
    )
    return tuple(
        Reason(r.code, r.contribution if r.contribution is not None else r.score, r.explanation_zh, r.explanation_en)
        for r in readings[:top]
    )


def tally(
    warnings: Iterable[Warning], *, label: str, version: str, since: date | None = None,
    until: date | None = None, labels: Sequence[dict] | None = None, events: int = 0, seconds: float = 0.0,
) -> Figures:
    """The figures of one replay's warnings within the window (see the module's doc)."""
    ordered = sorted(warnings, key=lambda w: w.raised_at)
    held: dict[str, Warning] = {}  # level held when the window opens: the warning that set it
    inside: list[Warning] = []
    for w in ordered:
        day = _local_date(w.raised_at)
        if since is not None and day < since:
            if w.transition == "cleared":
                held.pop(w.merchant_id, None)
            else:
                held[w.merchant_id] = w
        elif _in_window(day, since, until):
            inside.append(w)
    highest = {m: w.level for m, w in held.items()}
    flagging = dict(held)
    for w in inside:
        if w.transition != "cleared" and (w.merchant_id not in highest or RANK[w.level] > RANK[highest[w.merchant_id]]):
            highest[w.merchant_id] = w.level
            flagging[w.merchant_id] = w
    entering = [w for w in inside if w.transition in ENTERING]
    quality = None
    if labels is not None:
        upto = [w for w in ordered if until is None or _local_date(w.raised_at) <= until]
        quality = judge(labels, upto, inside, since=since, until=until)
    return Figures(
        label=label,
        version=version,
        events=events,
        seconds=seconds,
        warnings=inside,
        entering={level: sum(1 for w in entering if w.level == level) for level in LEVELS},
        transitions={level: sum(1 for w in inside if w.level == level) for level in LEVELS},
        by_indicator=dict(Counter(driving(w) or "(none)" for w in entering)),
        by_town=dict(Counter(w.district or "(unknown)" for w in entering)),
        by_industry=dict(Counter(w.industry or "(unknown)" for w in entering)),
        highest=highest,
        flagging=flagging,
        quality=quality,
    )


def _plain(warning: Warning) -> dict[str, Any]:
    """The fields :mod:`yujing.evaluation` reads, as the JSON of the warning has them."""
    return {"merchant_id": warning.merchant_id, "level": warning.level, "transition": warning.transition,
            "raised_at": warning.raised_at.isoformat()}


def judge(
    labels: Sequence[dict], upto_until: Sequence[Warning], in_window: Sequence[Warning], *,
    since: date | None, until: date | None,
) -> Quality:
    """Recall and lead time of the collapses dated in the window (any warning up to ``until``
    counts), false alarms of the others within the window; by :func:`yujing.evaluation.evaluate`."""
    collapses = [
        label for label in labels
        if label["kind"] == "collapse" and _in_window(date.fromisoformat(label["collapse_date"]), since, until)
    ]
    others = [label for label in labels if label["kind"] != "collapse"]
    caught = evaluate(collapses, [_plain(w) for w in upto_until]).overall
    window = [_plain(w) for w in in_window]
    alarms = evaluate(others, window)
    kinds = Counter(label["kind"] for label in others)

    def flagged(kind: str) -> int:
        return sum(s.flagged for s in alarms.scenarios.values() if s.kind == kind)

    return Quality(
        collapses=caught.merchants,
        caught=caught.caught,
        recall=caught.recall,
        median_lead_days=caught.median_lead_days,
        healthy=kinds["healthy"],
        healthy_flagged=flagged("healthy"),
        lookalikes=kinds["lookalike"],
        lookalikes_flagged=flagged("lookalike"),
        urgent_false_alarms=sum(urgent_alarms(others, window).values()),
    )


def merchant_changes(current: Figures, candidate: Figures) -> tuple[list[MerchantChange], list[MerchantChange]]:
    """(newly flagged, no longer flagged): merchants flagged under one side only, the highest
    level under each side, the reasons from the side that flags them; strongest first."""

    def change(merchant_id: str, flagging_side: Figures) -> MerchantChange:
        w = flagging_side.flagging[merchant_id]
        return MerchantChange(
            merchant_id=merchant_id, name=w.merchant_name, industry=w.industry, town=w.district,
            current_level=current.highest.get(merchant_id), candidate_level=candidate.highest.get(merchant_id),
            reasons=reasons_of(w), flagged_at=w.raised_at,
        )

    def order(item: MerchantChange) -> tuple[int, str]:
        level = item.candidate_level if item.merchant_id in candidate.flagged else item.current_level
        return -RANK[level or "blue"], item.merchant_id

    newly = [change(m, candidate) for m in candidate.flagged - current.flagged]
    gone = [change(m, current) for m in current.flagged - candidate.flagged]
    return sorted(newly, key=order), sorted(gone, key=order)


def read_labels(path: Path) -> list[dict]:
    """The simulator's ``labels.jsonl``."""
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


# -- the two replays ---------------------------------------------------------------------------

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

    >>> from yujing.thresholds import builtin_thresholds
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


@dataclass(frozen=True)
class WarmUp:
    """The history before the window, replayed once for both sides (or taken from the cache)."""

    events: int  # records replayed before the window's first moment
    seconds: float  # replaying them, or loading them from the cache
    cached: bool
    closed_through: date | None  # the last day closed before the window
    entry: Path | None = None  # where the cache keeps it
    resumed_from: date | None = None  # replayed on from the checkpoint of an earlier window's start


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
    side is that recording and the candidate is judged on its trace (:mod:`yujing.rejudge`), or
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
        if isinstance(recording, Recording):
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


# -- the retained topics as files ---------------------------------------------------------------

def _moment(record: dict, previous: float) -> float:
    text = record.get("occurred_at") or record.get("updated_at")
    try:
        return datetime.fromisoformat(text).timestamp() if isinstance(text, str) else previous
    except ValueError:
        return previous


def _merged(paths: Sequence[Path]) -> Iterator[bytes]:
    """Lines of per-partition files merged by event time, each partition kept in its own order
    (as :func:`yujing.backtest.iter_events` merges files): late records stay late."""

    def lines(index: int, path: Path) -> Iterator[tuple[float, int, int, bytes]]:
        moment = 0.0
        with path.open("rb") as source:
            for number, line in enumerate(source):
                moment = _moment(orjson.loads(line), moment)
                yield moment, index, number, line

    for *_, line in heapq.merge(*(lines(i, p) for i, p in enumerate(paths))):
        yield line


def download_topics(
    settings: Any, target: Path, *, on_record: Callable[[], None] | None = None,
) -> dict[str, int]:
    """Read the retained input topics (and feedback) into ``target`` as an events directory;
    returns records per file. Raises :class:`yujing.kafka_io.KafkaUnavailable`."""
    from yujing.kafka_io import input_topics, read_records

    target.mkdir(parents=True, exist_ok=True)
    names = {**INPUT_FILES, "feedback": FEEDBACK_FILE}
    counts: dict[str, int] = {}
    for kind, topic in input_topics(settings).items():
        partitions = settings.input_partitions
        parts = [target / f".{kind}.{p}.part" for p in range(partitions)]
        sinks = [part.open("wb") for part in parts]
        counts[names[kind]] = 0
        try:
            for record in read_records(topic, settings):
                merchant_id = record.get("merchant_id") if isinstance(record, dict) else None
                partition = partition_for(merchant_id, partitions) if isinstance(merchant_id, str) else 0
                sinks[partition].write(orjson.dumps(record) + b"\n")
                counts[names[kind]] += 1
                if on_record is not None:
                    on_record()
        finally:
            for sink in sinks:
                sink.close()
        with (target / names[kind]).open("wb") as out:
            for line in _merged(parts):
                out.write(line)
        for part in parts:
            part.unlink()
    return counts


# -- the HTML report -----------------------------------------------------------------------------

def cjk_font() -> str | None:
    """A font family with Chinese glyphs that matplotlib can use, or ``None``. Fonts installed
    after matplotlib built its font cache (fonts-noto-cjk, by deploy/local/setup.sh) are added."""
    from matplotlib import font_manager

    def known() -> str | None:
        names = {f.name for f in font_manager.fontManager.ttflist}
        return next((name for name in CJK_FONTS if name in names), None)

    found = known()
    if found is None:
        for path in font_manager.findSystemFonts():
            if "CJK" in Path(path).name or "wqy" in Path(path).name.lower():
                font_manager.fontManager.addfont(path)
        found = known()
    return found


def _bars(title: str, keys: Sequence[str], current: Figures, candidate: Figures, attribute: str,
          font: str | None) -> str:
    """Grouped bars, current against candidate, as a base64 PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a, b = getattr(current, attribute), getattr(candidate, attribute)
    style = {"font.family": [font, "DejaVu Sans"] if font else ["DejaVu Sans"]}
    with matplotlib.rc_context(style), python_warnings.catch_warnings():
        python_warnings.simplefilter("ignore", UserWarning)  # missing glyphs without a CJK font
        height = max(2.6, 0.38 * len(keys) + 1.2)
        fig, ax = plt.subplots(figsize=(8, height))
        positions = range(len(keys))
        ax.barh([p - 0.2 for p in positions], [a.get(k, 0) for k in keys], height=0.4,
                label=f"current {current.version}", color="#9aa5b1")
        ax.barh([p + 0.2 for p in positions], [b.get(k, 0) for k in keys], height=0.4,
                label=f"candidate {candidate.version}", color="#1f6feb")
        ax.set_yticks(list(positions), list(keys))
        ax.invert_yaxis()
        ax.set_xlabel("raised/escalated warnings in the window")
        ax.set_title(title)
        ax.legend(fontsize=8, loc="best")
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100)
        plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def plots(whatif: WhatIf, font: str | None) -> list[tuple[str, str]]:
    """(title, base64 PNG) of warnings per level, per driving indicator and per town."""
    cur, cand = whatif.current, whatif.candidate
    return [
        ("预警等级 · warnings per level", _bars("warnings per level", list(LEVELS), cur, cand, "entering", font)),
        ("驱动指标 · per driving indicator",
         _bars("per driving indicator", _keys(cur.by_indicator, cand.by_indicator), cur, cand, "by_indicator", font)),
        ("街镇 · per town", _bars("per town", _keys(cur.by_town, cand.by_town), cur, cand, "by_town", font)),
    ]


def render_html(whatif: WhatIf) -> str:
    """A self-contained HTML report: versions, the differing thresholds, the side-by-side
    table, plots (embedded PNG) and the merchants newly flagged and no longer flagged."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    from yujing.indicator_docs import indicator_rows

    font = cjk_font()
    environment = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    sections: dict[str, list[tuple[Row, tuple[str, str, str]]]] = {}
    for row in whatif.summary:
        sections.setdefault(row.section, []).append((row, row.cells()))
    return environment.get_template("whatif.html").render(
        w=whatif,
        sections=sections,
        plots=plots(whatif, font),
        font=font,
        names={row["code"]: row["name_zh"] for row in indicator_rows()},
        generated_at=datetime.now(UTC).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M"),
        number=_number,
    )


# -- formatting ------------------------------------------------------------------------------

def _keys(*counts: dict[str, int]) -> list[str]:
    """Keys of both tallies, largest first (by the larger of the two), then by name."""
    keys = set().union(*counts)
    return sorted(keys, key=lambda k: (-max(c.get(k, 0) for c in counts), k))


def _at_least(side: Figures, level: str) -> int:
    return sum(1 for held in side.highest.values() if RANK[held] >= RANK[level])


def _count(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _share(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _days(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f} d"


def _number(value: float | int | None) -> str:
    return "(none)" if value is None else f"{value:g}"


__all__ = [
    "Figures", "MerchantChange", "Quality", "Reason", "Row", "WhatIf", "compare", "count_events",
    "download_topics", "merchant_changes", "render_html", "tally",
]


# -- the terminal ----------------------------------------------------------------------------------

def terminal_table(whatif: WhatIf) -> Any:
    """The side-by-side figures as a rich table (current | candidate | change)."""
    from rich.table import Table

    table = Table(title=f"What-if, warnings of {whatif.window}: {whatif.current.label} → {whatif.candidate.label}",
                  title_justify="left")
    table.add_column("figure")
    table.add_column(f"current\n{whatif.current.version}", justify="right")
    table.add_column(f"candidate\n{whatif.candidate.version}", justify="right")
    table.add_column("change", justify="right")
    section = None
    for row in whatif.summary:
        if row.section != section:
            if section is not None:
                table.add_section()
            table.add_row(f"[bold]{row.section}[/bold]", "", "", "")
            section = row.section
        current, candidate, change = row.cells()
        colour = "yellow" if (row.change or 0) > 0 else "cyan" if (row.change or 0) < 0 else ""  # no good/bad
        table.add_row(f"  {row.figure}", current, candidate, f"[{colour}]{change}[/{colour}]" if colour else change)
    return table


def describe(item: MerchantChange) -> str:
    """One line for a merchant that changes: who, levels under each set, why."""
    who = f"{item.name} ({item.merchant_id})" if item.name else item.merchant_id
    why = "; ".join(f"{r.code} {r.explanation_zh} / {r.explanation_en}" for r in item.reasons)
    return (f"{who}, {item.town or '?'}, {item.industry or '?'}: {item.current_level or 'none'} → "
            f"{item.candidate_level or 'none'}; {why}")
