"""The simulator's labels in two layouts: ``labels.jsonl`` (ours) and ``labels.json`` (the referee's).

``labels.jsonl`` has one object per merchant with ``scenario`` and ``kind`` = collapse | lookalike |
healthy. ``labels.json`` is the pilot's layout, so the referee's ``score.py`` runs on our worlds as
on the pilot: one object keyed by merchant id, ``kind`` = our scenario name and ``group`` =
collapse | trap | healthy (a look-alike is a trap). Both carry ``quirks`` (harmless oddities of
healthy merchants) and ``signal_start`` (the first sign, in hindsight).

>>> to_referee([{"merchant_id": "m1", "scenario": "legal_promotion", "kind": "lookalike",
...              "collapse_date": None, "signal_start": "2025-10-01", "chain_id": None,
...              "industry": "beauty", "district": "南桥镇", "quirks": [],
...              "episode": ["2025-10-01", "2025-10-12"], "notes": [], "strength": None,
...              "has_profile": True, "custody_enrolled": True}])["m1"]["group"]
'trap'
"""

from __future__ import annotations

from typing import Any

from .calendar import SimCalendar
from .config import scenario_kind
from .merchants import MerchantPlan

_GROUP = {"collapse": "collapse", "lookalike": "trap", "healthy": "healthy"}
#: The referee's fields, in its order.
REFEREE_FIELDS: tuple[str, ...] = (
    "kind", "group", "collapse_date", "chain_id", "industry", "district", "has_profile",
    "custody_enrolled", "quirks", "signal_start", "strength", "episode", "notes",
)


def label_rows(merchants: list[MerchantPlan], cal: SimCalendar) -> list[dict[str, Any]]:
    """``labels.jsonl`` rows, one per merchant, in plan order."""

    def iso(day: int | None) -> str | None:
        return None if day is None else cal.date_of(day).isoformat()

    rows = []
    for m in merchants:
        tl = m.timeline
        strength = tl.notes.get("strength")
        rows.append({
            "merchant_id": m.merchant_id,
            "scenario": m.scenario,
            "kind": scenario_kind(m.scenario),
            "collapse_date": iso(tl.collapse_day),
            "signal_start": iso(tl.signal_start),
            "chain_id": m.chain_id,
            "industry": m.industry,
            "district": m.district,
            "quirks": list(m.quirks),
            "episode": None if tl.episode is None else [iso(tl.episode[0]), iso(tl.episode[1])],
            "notes": list(tl.tags),
            "strength": None if strength is None else round(float(strength), 3),
            "has_profile": m.has_profile,
            "custody_enrolled": m.custody_enrolled,
        })
    return rows


def to_referee(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The pilot's ``labels.json`` layout from ``labels.jsonl`` rows."""
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = {name: row.get(name) for name in REFEREE_FIELDS}
        entry["kind"] = row["scenario"]
        entry["group"] = _GROUP[row["kind"]]
        out[row["merchant_id"]] = entry
    return out
