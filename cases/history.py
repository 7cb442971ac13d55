"""Writes the worker's merchant-day history (``engine.merchant_days.MerchantDay``) and the published
threshold versions to PostgreSQL, where Grafana reads them.

Upserts keyed by merchant and day (and indicator code): a redelivered or replayed record
rewrites the same row, so the history topic can be re-read from the start at any time. In the
same transaction the compliance findings register (``cases/findings.py``) reads the days.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, delete, tuple_
from sqlalchemy.dialects.postgresql import insert

from alerts.threshold_history import Publication
from cases.findings import record_findings, stored_days
from cases.schema import merchant_days, merchant_indicator_days, threshold_versions
from engine.merchant_days import MerchantDay

_DAY_COLUMNS = [c.name for c in merchant_days.columns if c.name not in ("merchant_id", "day")]
_INDICATOR_COLUMNS = ("value", "threshold", "reading", "contribution")
# PostgreSQL takes at most 65,535 bound parameters per statement.
_ROWS_PER_STATEMENT = 2000


def record_days(conn: Connection, records: Sequence[MerchantDay], *, now: datetime) -> int:
    """Upsert ``records`` (the last of several for one merchant-day wins) and bring the
    compliance findings up to date with them; returns rows written."""
    latest = {(r.merchant_id, r.day): r for r in records}
    if not latest:
        return 0
    before = stored_days(conn, list(latest))
    rows = [
        {**r.model_dump(exclude={"indicators"}), "recorded_at": now}
        for r in latest.values()
    ]
    for chunk in _chunks(rows):
        statement = insert(merchant_days).values(chunk)
        conn.execute(statement.on_conflict_do_update(
            index_elements=[merchant_days.c.merchant_id, merchant_days.c.day],
            set_={name: statement.excluded[name] for name in _DAY_COLUMNS},
        ))
    readings = [
        {"merchant_id": r.merchant_id, "day": r.day, **i.model_dump()}
        for r in latest.values() for i in r.indicators
    ]
    for chunk in _chunks(readings):
        statement = insert(merchant_indicator_days).values(chunk)
        conn.execute(statement.on_conflict_do_update(
            index_elements=[merchant_indicator_days.c.merchant_id, merchant_indicator_days.c.day,
                            merchant_indicator_days.c.code],
            set_={name: statement.excluded[name] for name in _INDICATOR_COLUMNS},
        ))
    # A day sent again without a reading it had (an indicator that no longer applies) loses it:
    # the stored day is then what was sent last, which the findings register replays from.
    stale = [(m, d, code) for (m, d), stored in before.items()
             for code in stored.keys() - {i.code for i in latest[(m, d)].indicators}]
    for i in range(0, len(stale), _ROWS_PER_STATEMENT):
        t = merchant_indicator_days
        conn.execute(delete(t).where(tuple_(t.c.merchant_id, t.c.day, t.c.code).in_(stale[i:i + _ROWS_PER_STATEMENT])))
    record_findings(conn, list(latest.values()), before, now=now)
    return len(rows)


def _chunks(rows: list[dict]) -> list[list[dict]]:
    return [rows[i:i + _ROWS_PER_STATEMENT] for i in range(0, len(rows), _ROWS_PER_STATEMENT)]


def record_publication(conn: Connection, published: Publication, status: str, detail: str, *, now: datetime) -> None:
    """Upsert one threshold publication as the workers judged it (applied, or refused and why)."""
    row = {
        "publication_id": published.publication_id, "version": published.version, "author": published.author,
        "reason": published.reason, "published_at": published.published_at,
        "effective_from": published.effective_from, "status": status, "detail": detail, "recorded_at": now,
    }
    statement = insert(threshold_versions).values(row)
    conn.execute(statement.on_conflict_do_update(
        index_elements=[threshold_versions.c.publication_id],
        set_={k: statement.excluded[k] for k in ("status", "detail", "recorded_at")},
    ))
