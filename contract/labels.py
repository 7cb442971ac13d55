"""Labelled outcomes of a world, read alike from our simulator and from other hands' exports.

Two layouts exist: the simulator's ``labels.jsonl`` (one object per merchant, ``scenario`` and
``kind`` = collapse | lookalike | healthy) and the pilot's ``labels.json`` (one object keyed by
merchant, ``kind`` = the scenario, ``group`` = collapse | trap | healthy). Both become
:class:`Label`, with ``group`` in the referee's words (a look-alike is a ``trap``).

>>> rows = load_label_rows({"m1": {"kind": "run_away", "group": "collapse", "collapse_date": "2025-04-29"},
...                         "m2": {"kind": "renovation", "group": "trap", "collapse_date": None}})
>>> [(l.merchant_id, l.kind, l.group, l.collapse_date) for l in rows.values()]
[('m1', 'run_away', 'collapse', datetime.date(2025, 4, 29)), ('m2', 'renovation', 'trap', None)]
>>> load_label_rows([{"merchant_id": "a", "scenario": "legal_promotion", "kind": "lookalike",
...                   "collapse_date": None}])["a"].group
'trap'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import orjson

GROUPS = ("collapse", "trap", "healthy")
LABEL_FILES = ("labels.json", "labels.jsonl")

# One merchant's row as parsed from a labels file: JSON from other hands, so values are unchecked.
LabelRow = Mapping[str, Any]


@dataclass(frozen=True)
class Label:
    merchant_id: str
    kind: str  # the scenario: run_away, renovation, healthy, ...
    group: str  # collapse | trap | healthy
    collapse_date: date | None
    quirks: tuple[str, ...] = field(default=())


def _group(row: LabelRow) -> str:
    group = row.get("group")
    if group in GROUPS:
        return str(group)
    if row.get("collapse_date"):
        return "collapse"
    kind = row.get("kind")
    if kind == "lookalike" or row.get("episode"):
        return "trap"
    return "collapse" if kind == "collapse" else "healthy"


def load_label_rows(data: Mapping[str, LabelRow] | Iterable[LabelRow]) -> dict[str, Label]:
    """Labels from parsed content of either layout (see the module doc)."""
    items: Iterable[tuple[str, LabelRow]]
    if isinstance(data, Mapping):
        items = data.items()
    else:
        items = ((row["merchant_id"], row) for row in data)
    labels = {}
    for merchant_id, row in items:
        kind = row.get("scenario") or row.get("kind") or "unknown"
        collapse = row.get("collapse_date")
        labels[merchant_id] = Label(
            merchant_id=merchant_id,
            kind=str(kind),
            group=_group(row),
            collapse_date=date.fromisoformat(collapse) if collapse else None,
            quirks=tuple(row.get("quirks") or ()),
        )
    return labels


def find_labels(events_dir: Path) -> Path | None:
    """The labels file of an events directory, preferring the referee's layout."""
    for name in LABEL_FILES:
        if (events_dir / name).is_file():
            return events_dir / name
    return None


def load_labels(path: Path) -> dict[str, Label]:
    """Read ``labels.json`` (keyed object) or ``labels.jsonl`` (one object per line).

    Raises ``ValueError`` with a readable reason when the file is not one of the two."""
    raw = path.read_bytes()
    try:
        if path.suffix == ".jsonl":
            return load_label_rows([orjson.loads(line) for line in raw.splitlines() if line.strip()])
        return load_label_rows(orjson.loads(raw))
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: not a labels file ({exc})") from exc
