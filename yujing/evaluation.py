"""Detection quality of a set of warnings against simulator labels.

A collapse counts as caught when the merchant is raised or escalated to orange or red before its
collapse date; the lead time is the number of days between that warning (event time) and the
collapse. Any orange or red warning on a healthy merchant or a look-alike is a false alarm.

>>> labels = [{"merchant_id": "a", "scenario": "runaway_after_surge", "kind": "collapse",
...            "collapse_date": "2026-03-01"},
...           {"merchant_id": "b", "scenario": "healthy", "kind": "healthy", "collapse_date": None}]
>>> warnings = [{"merchant_id": "a", "level": "red", "transition": "raised",
...              "raised_at": "2026-02-01T10:00:00+08:00"}]
>>> report = evaluate(labels, warnings)
>>> report.overall.recall, report.overall.median_lead_days, report.false_alarm_rate("healthy")
(1.0, 28.0, 0.0)
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

URGENT = ("orange", "red")


@dataclass
class ScenarioFigures:
    scenario: str
    kind: str
    merchants: int = 0
    caught: int = 0  # collapses: orange/red before the collapse date
    late: int = 0  # collapses: first orange/red on or after the collapse date
    flagged: int = 0  # healthy and look-alikes: any orange/red
    lead_days: list[float] = field(default_factory=list)

    @property
    def recall(self) -> float | None:
        return self.caught / self.merchants if self.kind == "collapse" and self.merchants else None

    @property
    def false_alarm_rate(self) -> float | None:
        return self.flagged / self.merchants if self.kind != "collapse" and self.merchants else None

    @property
    def median_lead_days(self) -> float | None:
        return float(statistics.median(self.lead_days)) if self.lead_days else None

    @property
    def p25_lead_days(self) -> float | None:
        if len(self.lead_days) < 2:
            return self.median_lead_days
        return float(statistics.quantiles(self.lead_days, n=4, method="inclusive")[0])


@dataclass
class Report:
    scenarios: dict[str, ScenarioFigures]
    overall: ScenarioFigures

    def false_alarm_rate(self, kind: str) -> float:
        rows = [s for s in self.scenarios.values() if s.kind == kind]
        merchants = sum(s.merchants for s in rows)
        return sum(s.flagged for s in rows) / merchants if merchants else 0.0


def first_urgent(warnings: Iterable[dict]) -> dict[str, date]:
    """Event-time day of each merchant's first orange or red warning."""
    first: dict[str, date] = {}
    for w in warnings:
        if w["level"] in URGENT and w["transition"] in ("raised", "escalated"):
            day = date.fromisoformat(w["raised_at"][:10])
            if w["merchant_id"] not in first or day < first[w["merchant_id"]]:
                first[w["merchant_id"]] = day
    return first


def evaluate(labels: Iterable[dict], warnings: Iterable[dict]) -> Report:
    first = first_urgent(warnings)
    scenarios: dict[str, ScenarioFigures] = {}
    overall = ScenarioFigures("all collapses", "collapse")
    for label in labels:
        row = scenarios.setdefault(label["scenario"], ScenarioFigures(label["scenario"], label["kind"]))
        row.merchants += 1
        warned = first.get(label["merchant_id"])
        if label["kind"] == "collapse":
            overall.merchants += 1
            collapse = date.fromisoformat(label["collapse_date"])
            if warned is not None and warned < collapse:
                for target in (row, overall):
                    target.caught += 1
                    target.lead_days.append(float((collapse - warned).days))
            elif warned is not None:
                row.late += 1
                overall.late += 1
        elif warned is not None:
            row.flagged += 1
    return Report(dict(sorted(scenarios.items())), overall)
