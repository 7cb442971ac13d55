"""Evidence before weights: how often each indicator fires on collapsing, healthy and look-alike
merchants of a labelled world, its lift, and how early it fires before a collapse.

A reading *fires* on a merchant-day when its score exceeds ``fire_at`` (0: above its threshold).
For a collapsing merchant only the 180 days before its collapse date count (the referee's
window); for healthy merchants and look-alikes the whole period counts, as one firing anywhere is
what a false alarm would rest on. Lift is the firing rate among collapses over the rate among
healthy merchants (the healthy rate floored at half a merchant, so that lift stays finite).

>>> import numpy as np
>>> from datetime import date
>>> from contract.labels import Label
>>> from engine.recording import MerchantDays
>>> c = date(2025, 5, 1).toordinal()
>>> days = MerchantDays(np.array(["a", "a", "h"], dtype=object), np.array([c - 30, c - 5, c - 5], dtype=np.int32),
...                     ("silence",), np.array([[0.0], [0.7], [0.0]], dtype=np.float32),
...                     np.zeros(3, dtype=np.float32), (), np.zeros((3, 0), dtype=np.float32))
>>> labels = {"a": Label("a", "run_away", "collapse", date(2025, 5, 1)), "h": Label("h", "healthy", "healthy", None)}
>>> row = evidence_table(days, labels)[0]
>>> row.code, row.collapse_rate, row.healthy_rate, row.median_lead_days, row.lift
('silence', 1.0, 0.0, 5.0, 2.0)
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from contract.labels import Label
from engine.recording import MerchantDays

WINDOW_DAYS = 180  # the referee ignores alarms more than 180 days before a collapse


@dataclass
class EvidenceRow:
    code: str
    collapse_rate: float  # share of collapsing merchants it fired on, before the collapse
    healthy_rate: float
    trap_rates: dict[str, float] = field(default_factory=dict)  # per look-alike kind
    median_lead_days: float | None = None  # collapse date - first firing, over those it fired on
    lift: float = 0.0

    @property
    def worst_trap(self) -> tuple[str, float] | None:
        return max(self.trap_rates.items(), key=lambda kv: kv[1]) if self.trap_rates else None

    def to_json(self) -> dict[str, object]:
        return {"code": self.code, "collapse_rate": round(self.collapse_rate, 4),
                "healthy_rate": round(self.healthy_rate, 4),
                "trap_rates": {k: round(v, 4) for k, v in self.trap_rates.items()},
                "median_lead_days": self.median_lead_days, "lift": round(self.lift, 2)}


def first_firing(days: MerchantDays, labels: Mapping[str, Label], fire_at: float = 0.0) -> dict[str, np.ndarray]:
    """Per labelled merchant: the first day (ordinal, -1 never) each reading fired in the counted
    period (see the module doc), as an int array in ``days.codes`` order."""
    order = np.lexsort((days.days, days.merchant_ids.astype(str)))
    merchants = days.merchant_ids[order]
    boundaries = np.flatnonzero(merchants[1:] != merchants[:-1]) + 1
    first: dict[str, np.ndarray] = {}
    for chunk in np.split(order, boundaries):
        if not len(chunk):
            continue
        label = labels.get(str(days.merchant_ids[chunk[0]]))
        if label is None:
            continue
        day_column = days.days[chunk]
        readings = days.readings[chunk]
        if label.group == "collapse" and label.collapse_date is not None:
            end = label.collapse_date.toordinal()
            keep = (day_column < end) & (day_column >= end - WINDOW_DAYS)
            day_column, readings = day_column[keep], readings[keep]
            if not len(day_column):  # nothing recorded in its window: it counts, never fired
                first[label.merchant_id] = np.full(len(days.codes), -1, dtype=np.int64)
                continue
        fired = readings > fire_at
        any_fired = fired.any(axis=0)
        first_index = fired.argmax(axis=0)
        first[label.merchant_id] = np.where(any_fired, day_column[first_index] if len(day_column) else -1, -1)
    return first


def evidence_table(days: MerchantDays, labels: Mapping[str, Label], fire_at: float = 0.0) -> list[EvidenceRow]:
    """One :class:`EvidenceRow` per reading code, strongest lift first."""
    first = first_firing(days, labels, fire_at)
    by_group: dict[str, list[str]] = {}
    for merchant_id in first:
        label = labels[merchant_id]
        key = label.group if label.group != "trap" else f"trap:{label.kind}"
        by_group.setdefault(key, []).append(merchant_id)
    rows = []
    for j, code in enumerate(days.codes):
        def rate(group: str, j: int = j) -> float:
            members = by_group.get(group, [])
            return sum(1 for m in members if first[m][j] >= 0) / len(members) if members else 0.0

        leads = []
        for m in by_group.get("collapse", []):
            label = labels[m]
            if first[m][j] >= 0 and label.collapse_date is not None:
                leads.append(float(label.collapse_date.toordinal() - first[m][j]))
        healthy_n = len(by_group.get("healthy", []))
        healthy = rate("healthy")
        collapse = rate("collapse")
        floor = 0.5 / healthy_n if healthy_n else 1.0
        rows.append(EvidenceRow(
            code=code,
            collapse_rate=collapse,
            healthy_rate=healthy,
            trap_rates={g.split(":", 1)[1]: rate(g) for g in sorted(by_group) if g.startswith("trap:")},
            median_lead_days=float(statistics.median(leads)) if leads else None,
            lift=collapse / max(healthy, floor),
        ))
    rows.sort(key=lambda r: (-r.lift, r.code))
    return rows


def render_rows(rows: list[EvidenceRow]) -> list[list[str]]:
    """Text cells for a table: code, collapse %, healthy %, worst look-alike, lift, median lead."""
    out = []
    for r in rows:
        worst = r.worst_trap
        out.append([
            r.code, f"{r.collapse_rate:.0%}", f"{r.healthy_rate:.1%}",
            f"{worst[0]} {worst[1]:.0%}" if worst else "",
            f"{r.lift:.1f}", "" if r.median_lead_days is None else f"{r.median_lead_days:.0f}",
        ])
    return out
