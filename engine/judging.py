"""Warnings judged against labelled outcomes by the referee's rules (``shared/pilot/score.py``).

An *alarm* is a warning at orange or red whose transition is not ``cleared``. For a collapsing
merchant only the first alarm no more than 180 days before the collapse date counts (later ones
included): before the collapse date it is *detected*, with a lead of collapse date − the local
(+08:00) date of its ``raised_at``; on the date or up to 7 days after it is *late*; otherwise
(none, or later still) the collapse is missed. A healthy merchant or a look-alike (the referee's
*trap*) with any alarm at any time is a false alarm. Precision counts the alarmed merchants
(labelled or not) that were detected or late collapses. A warning whose ``raised_at`` is not an
RFC 3339 time with an offset is left out, as the referee leaves it out.

>>> from contract.labels import load_label_rows
>>> labels = load_label_rows({
...     "a": {"kind": "run_away", "group": "collapse", "collapse_date": "2026-03-01"},
...     "b": {"kind": "run_away", "group": "collapse", "collapse_date": "2026-03-01"},
...     "r": {"kind": "renovation", "group": "trap", "collapse_date": None},
...     "h": {"kind": "healthy", "group": "healthy", "collapse_date": None, "quirks": ["late_custody"]}})
>>> def alarm(m, when, level="orange", transition="raised"):
...     return {"merchant_id": m, "level": level, "transition": transition, "raised_at": when}
>>> report = evaluate(labels, [alarm("a", "2026-02-01T23:30:00+08:00"),
...                            alarm("b", "2026-03-05T10:00:00+08:00"),
...                            alarm("r", "2026-01-10T10:00:00+08:00", "red", "cleared")])
>>> report.overall.recall, report.overall.median_lead_days, report.late_rate, report.precision
(0.5, 28, 0.5, 1.0)
>>> report.false_alarm_rate("healthy"), report.trap_rates()
(0.0, {'renovation': 0.0})
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import cast

import orjson

from contract.labels import Label, LabelRow, load_label_rows

ALARM_LEVELS = ("orange", "red")
WINDOW_DAYS = 180  # alarms longer before a collapse are ignored
LATE_DAYS = 7  # a first alarm up to this many days after the collapse date is late, not missed
LOCAL = timezone(timedelta(hours=8))  # the referee takes the day of raised_at at +08:00
# Labels as callers hold them: Label objects or file rows, keyed by merchant or listed.
Labels = Mapping[str, Label] | Mapping[str, LabelRow] | Iterable[LabelRow] | Iterable[Label]
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def median(values: list[int]) -> float | None:
    return statistics.median(values) if values else None


def quantile(values: list[int], q: float) -> float | None:
    """Linear interpolation between order statistics, one decimal (as the referee rounds it).

    >>> quantile([4, 8, 12, 40], 0.25)
    7.0
    """
    if not values:
        return None
    xs = sorted(values)
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return round(xs[lo] + (xs[hi] - xs[lo]) * (k - lo), 1)


@dataclass
class ScenarioFigures:
    """One row of the report: the merchants of one labelled kind (scenario)."""

    scenario: str  # the label's kind: run_away, renovation, healthy, ...
    group: str  # collapse | trap | healthy
    merchants: int = 0
    caught: int = 0  # collapses: first alarm in the window, before the collapse date
    late: int = 0  # collapses: first alarm on the collapse date or up to LATE_DAYS after
    missed: int = 0
    any_level: int = 0  # collapses: a warning of any level in the window, before the collapse date
    flagged: int = 0  # healthy and look-alikes: any alarm at any time
    lead_days: list[int] = field(default_factory=list)

    @property
    def kind(self) -> str:
        """The simulator's word for the group (``lookalike`` for a trap)."""
        return "lookalike" if self.group == "trap" else self.group

    @property
    def recall(self) -> float | None:
        return self.caught / self.merchants if self.group == "collapse" and self.merchants else None

    @property
    def false_alarm_rate(self) -> float | None:
        return self.flagged / self.merchants if self.group != "collapse" and self.merchants else None

    @property
    def median_lead_days(self) -> float | None:
        return median(self.lead_days)

    @property
    def p25_lead_days(self) -> float | None:
        return quantile(self.lead_days, 0.25)

    def add(self, other: ScenarioFigures) -> None:
        self.merchants += other.merchants
        self.caught += other.caught
        self.late += other.late
        self.missed += other.missed
        self.any_level += other.any_level
        self.flagged += other.flagged
        self.lead_days.extend(other.lead_days)


@dataclass
class Report:
    """Figures of one labelled set (or several pooled merchant by merchant)."""

    scenarios: dict[str, ScenarioFigures]
    overall: ScenarioFigures  # every collapse
    alarmed: int = 0  # merchants with an alarm, labelled or not
    alarmed_useful: int = 0  # of them, collapses detected or late
    unknown_merchants: int = 0  # warned (any level) but not in the labels
    warnings: int = 0
    unreadable: int = 0  # warnings left out: merchant_id not a string or raised_at not RFC 3339 with an offset
    quirks: dict[str, list[int]] = field(default_factory=dict)  # healthy quirk -> [merchants, flagged]
    quirky: list[int] = field(default_factory=lambda: [0, 0])  # healthy merchants with any quirk

    def false_alarm_rate(self, group: str) -> float:
        """Share of ``healthy`` or ``trap`` (also ``lookalike``) merchants with an alarm."""
        group = "trap" if group == "lookalike" else group
        rows = [s for s in self.scenarios.values() if s.group == group]
        merchants = sum(s.merchants for s in rows)
        return sum(s.flagged for s in rows) / merchants if merchants else 0.0

    def trap_rates(self) -> dict[str, float]:
        """False-alarm rate per look-alike kind."""
        return {k: s.flagged / s.merchants for k, s in self.scenarios.items() if s.group == "trap" and s.merchants}

    @property
    def late_rate(self) -> float:
        return self.overall.late / self.overall.merchants if self.overall.merchants else 0.0

    @property
    def recall_any_level(self) -> float:
        return self.overall.any_level / self.overall.merchants if self.overall.merchants else 0.0

    @property
    def precision(self) -> float | None:
        return self.alarmed_useful / self.alarmed if self.alarmed else None

    def summary(self) -> dict[str, object]:
        """The figures under the names and roundings of the referee's ``--json`` summary."""
        traps = {k: round(v, 4) for k, v in sorted(self.trap_rates().items())}
        n_healthy = sum(s.merchants for s in self.scenarios.values() if s.group == "healthy")

        def share(a: int, b: int) -> float:
            return round(a / b, 4) if b else 0.0

        overall = self.overall
        return {
            "recall": share(overall.caught, overall.merchants),
            "median_lead_days": overall.median_lead_days,
            "p25_lead_days": overall.p25_lead_days,
            "late_detection_rate": share(overall.late, overall.merchants),
            "recall_any_level": share(overall.any_level, overall.merchants),
            "false_alarm_rate_healthy": round(self.false_alarm_rate("healthy"), 4),
            "false_alarm_rate_by_trap": traps,
            "false_alarm_rate_trap_max": max(traps.values()) if traps else 0.0,
            "false_alarm_rate_healthy_quirky": share(self.quirky[1], self.quirky[0]),
            "false_alarms_by_quirk": {q: f"{v[1]}/{v[0]}" for q, v in sorted(self.quirks.items())},
            "precision": round(self.precision, 4) if self.precision is not None else None,
            "n_collapse": overall.merchants, "n_detected": overall.caught, "n_late": overall.late,
            "n_healthy": n_healthy, "n_alarmed_merchants": self.alarmed, "n_warnings": self.warnings,
            "unknown_merchants": self.unknown_merchants, "n_unreadable_warnings": self.unreadable,
            "per_kind": {
                k: {"group": r.group, "n": r.merchants, "detected": r.caught, "late": r.late, "missed": r.missed,
                    "any_level": r.any_level, "false_alarms": r.flagged, "median_lead_days": r.median_lead_days,
                    "p25_lead_days": r.p25_lead_days}
                for k, r in sorted(self.scenarios.items(), key=lambda kv: (kv[1].group, kv[0]))
            },
            "window_days": WINDOW_DAYS, "late_days": LATE_DAYS,
        }


def as_labels(labels: Labels) -> dict[str, Label]:
    """Labels given as :class:`Label` objects, or rows of either file layout (see :mod:`contract.labels`)."""
    # Anything but all Label objects is read as rows (a stray Label among rows fails there).
    if isinstance(labels, Mapping):
        keyed = {k: v for k, v in labels.items() if isinstance(v, Label)}
        if keyed and len(keyed) == len(labels):
            return keyed
        return load_label_rows(cast(Mapping[str, LabelRow], labels))
    items = list(labels)
    listed = [v for v in items if isinstance(v, Label)]
    if listed and len(listed) == len(items):
        return {v.merchant_id: v for v in listed}
    return load_label_rows(cast(list[LabelRow], items))


def _local_day(raised_at: object) -> date | None:
    """The +08:00 day of a contract timestamp (string or aware datetime), None when unreadable."""
    if isinstance(raised_at, datetime):
        moment = raised_at
    elif isinstance(raised_at, str) and _RFC3339.match(raised_at):
        moment = datetime.fromisoformat(raised_at.replace("Z", "+00:00").replace("z", "+00:00"))
    else:
        return None
    return moment.astimezone(LOCAL).date() if moment.tzinfo is not None else None


def alarm_days(warnings: Iterable[object]) -> tuple[dict[str, list[date]], dict[str, list[date]], int, int]:
    """(alarm days per merchant, warning days of any level per merchant, readable warnings,
    unreadable warnings), days in time order; ``cleared`` transitions left out of both."""
    timed: list[tuple[datetime, str, str, str]] = []
    unreadable = 0
    for w in warnings:
        if not isinstance(w, Mapping):  # a line that is not a JSON object
            unreadable += 1
            continue
        raised, merchant = w.get("raised_at"), w.get("merchant_id")
        day = _local_day(raised)
        if day is None or not isinstance(merchant, str):
            unreadable += 1
            continue
        moment = raised if isinstance(raised, datetime) else datetime.fromisoformat(
            str(raised).replace("Z", "+00:00").replace("z", "+00:00"))
        timed.append((moment, merchant, str(w.get("level")), str(w.get("transition"))))
    alarms: dict[str, list[date]] = {}
    any_level: dict[str, list[date]] = {}
    for moment, merchant, level, transition in sorted(timed, key=lambda t: t[0]):
        if transition == "cleared":
            continue
        day = moment.astimezone(LOCAL).date()
        any_level.setdefault(merchant, []).append(day)
        if level in ALARM_LEVELS:
            alarms.setdefault(merchant, []).append(day)
    return alarms, any_level, len(timed), unreadable


def _first_in_window(days: list[date] | None, collapse: date) -> date | None:
    for day in days or ():
        if (collapse - day).days <= WINDOW_DAYS:
            return day
    return None


def evaluate(labels: Labels, warnings: Iterable[object]) -> Report:
    """Judge ``warnings`` (contract dicts) against ``labels`` (see :func:`as_labels`)."""
    labelled = as_labels(labels)
    alarms, any_level, readable, unreadable = alarm_days(warnings)
    scenarios: dict[str, ScenarioFigures] = {}
    overall = ScenarioFigures("all collapses", "collapse")
    useful: set[str] = set()
    quirks: dict[str, list[int]] = {}
    quirky = [0, 0]
    for merchant_id, label in labelled.items():
        row = scenarios.setdefault(label.kind, ScenarioFigures(label.kind, label.group))
        row.merchants += 1
        if label.group == "collapse" and label.collapse_date is not None:
            overall.merchants += 1
            collapse = label.collapse_date
            first = _first_in_window(alarms.get(merchant_id), collapse)
            if first is not None and first < collapse:
                for target in (row, overall):
                    target.caught += 1
                    target.lead_days.append((collapse - first).days)
                useful.add(merchant_id)
            elif first is not None and (first - collapse).days <= LATE_DAYS:
                row.late += 1
                overall.late += 1
                useful.add(merchant_id)
            else:
                row.missed += 1
                overall.missed += 1
            first_any = _first_in_window(any_level.get(merchant_id), collapse)
            if first_any is not None and first_any < collapse:
                row.any_level += 1
                overall.any_level += 1
        else:
            hit = merchant_id in alarms
            row.flagged += hit
            if label.group == "healthy":
                for quirk in label.quirks:
                    counts = quirks.setdefault(quirk, [0, 0])
                    counts[0] += 1
                    counts[1] += hit
                if label.quirks:
                    quirky[0] += 1
                    quirky[1] += hit
    return Report(
        scenarios=dict(sorted(scenarios.items())), overall=overall, alarmed=len(alarms),
        alarmed_useful=len(set(alarms) & useful), unknown_merchants=len(set(any_level) - set(labelled)),
        warnings=readable, unreadable=unreadable, quirks=quirks, quirky=quirky,
    )


def read_warnings(path: Path) -> list[object]:
    """The lines of a warnings file (JSON Lines), parsed; a line that is not JSON becomes None
    (judged unreadable, as the referee skips it). ``OSError`` when the file cannot be read."""
    out: list[object] = []
    with open(path, "rb") as source:
        for line in source:
            if not line.strip():
                continue
            try:
                out.append(orjson.loads(line.decode("utf-8", "replace")))  # the referee reads with errors="replace"
            except orjson.JSONDecodeError:
                out.append(None)
    return out


def combine(reports: Iterable[Report]) -> Report:
    """Pool several reports (worlds, seeds) merchant by merchant, as if judged in one file."""
    pooled = Report({}, ScenarioFigures("all collapses", "collapse"))
    for report in reports:
        for name, row in report.scenarios.items():
            pooled.scenarios.setdefault(name, ScenarioFigures(name, row.group)).add(row)
        pooled.overall.add(report.overall)
        pooled.alarmed += report.alarmed
        pooled.alarmed_useful += report.alarmed_useful
        pooled.unknown_merchants += report.unknown_merchants
        pooled.warnings += report.warnings
        pooled.unreadable += report.unreadable
        for quirk, (n, hit) in report.quirks.items():
            counts = pooled.quirks.setdefault(quirk, [0, 0])
            counts[0] += n
            counts[1] += hit
        pooled.quirky = [pooled.quirky[0] + report.quirky[0], pooled.quirky[1] + report.quirky[1]]
    pooled.scenarios = dict(sorted(pooled.scenarios.items()))
    return pooled


URGENT = ("orange", "red")


def _simulator_kind(label: Label) -> str:
    return "lookalike" if label.group == "trap" else label.group


def urgent_alarms(labels: Iterable[LabelRow] | Iterable[Label], warnings: Iterable[Mapping[str, object]]) -> dict[str, int]:
    """Orange/red raises and escalations per merchant kind (every one, not only the first):
    what the case desk receives.

    >>> urgent_alarms([{"merchant_id": "b", "kind": "healthy"}],
    ...               [{"merchant_id": "b", "level": "orange", "transition": "raised"},
    ...                {"merchant_id": "b", "level": "orange", "transition": "de-escalated"}])
    {'healthy': 1}
    """
    kind_of: dict[object, str] = dict(
        (label.merchant_id, _simulator_kind(label)) if isinstance(label, Label) else (label["merchant_id"], label["kind"])
        for label in labels
    )
    counts: dict[str, int] = dict.fromkeys(sorted(set(kind_of.values())), 0)
    for w in warnings:
        merchant = w["merchant_id"]
        if w["level"] in URGENT and w["transition"] in ("raised", "escalated") and merchant in kind_of:
            counts[kind_of[merchant]] += 1
    return counts
