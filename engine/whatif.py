"""What-if before apply (阈值调整预演): replay history with two threshold sets, side by side.

``yujing backtest --thresholds candidate.yaml --compare current`` replays the same events twice,
once with each set (two processes at once), and compares what each would have told the case
desk within a window of event time: warnings per level, per driving indicator, per town and per
industry; merchants newly flagged and no longer flagged, with the indicators that flag them;
and, when the simulator's ``labels.jsonl`` is at hand, recall, lead time and false alarms
(:mod:`engine.judging`).

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

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

import orjson

from alerts.levels import LEVELS, RANK
from alerts.threshold_set import Change, ThresholdSet, diff
from contract.labels import LabelRow
from contract.records import Warning
from engine.judging import evaluate, urgent_alarms
from models.calendar import SHANGHAI

FLAG_LEVEL = "yellow"  # flagged: held this level or a higher one in the window
ENTERING = ("raised", "escalated")
TOP_REASONS = 3
# CJK fonts matplotlib may find, preferred first; fonts-noto-cjk provides the first two.
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
            return share_text(self.current), share_text(self.candidate), delta
        if self.unit == "days":
            delta = "" if change is None else f"{change:+.0f} d" if change else "0"
            return days_text(self.current), days_text(self.candidate), delta
        delta = "" if change is None else f"{change:+.0f}" if change else "0"
        return count_text(self.current), count_text(self.candidate), delta


@dataclass(frozen=True)
class WarmUp:
    """The history before the window, replayed once for both sides (or taken from the cache)."""

    events: int  # records replayed before the window's first moment
    seconds: float  # replaying them, or loading them from the cache
    cached: bool
    closed_through: date | None  # the last day closed before the window
    entry: Path | None = None  # where the cache keeps it
    resumed_from: date | None = None  # replayed on from the checkpoint of an earlier window's start


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
            Row("merchants", "flagged orange or red", at_least(cur, "orange"), at_least(cand, "orange")),
            Row("merchants", "flagged red", at_least(cur, "red"), at_least(cand, "red")),
        ]
        for section, attribute in (("driving indicator", "by_indicator"), ("town", "by_town"),
                                   ("industry", "by_industry")):
            a, b = getattr(cur, attribute), getattr(cand, attribute)
            for key in keys_of(a, b):
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
    until: date | None = None, labels: Sequence[LabelRow] | None = None, events: int = 0, seconds: float = 0.0,
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
    highest: dict[str, str] = {m: w.level for m, w in held.items()}
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
    labels: Sequence[LabelRow], upto_until: Sequence[Warning], in_window: Sequence[Warning], *,
    since: date | None, until: date | None,
) -> Quality:
    """Recall and lead time of the collapses dated in the window (any warning up to ``until``
    counts), false alarms of the others within the window; by :func:`engine.judging.evaluate`."""
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


def read_labels(path: Path) -> list[LabelRow]:
    """The simulator's ``labels.jsonl``."""
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


# -- figures as text (the report, the terminal and the rows share them) ---------------------------

def keys_of(*counts: dict[str, int]) -> list[str]:
    """Keys of both tallies, largest first (by the larger of the two), then by name."""
    keys = set().union(*counts)
    return sorted(keys, key=lambda k: (-max(c.get(k, 0) for c in counts), k))


def at_least(side: Figures, level: str) -> int:
    return sum(1 for held in side.highest.values() if RANK[held] >= RANK[level])


def count_text(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def share_text(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def days_text(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f} d"


def number_text(value: float | int | None) -> str:
    return "(none)" if value is None else f"{value:g}"
