"""The compliance findings register: cap breaches, missing custody reports and custody
shortfalls, kept for the compliance desk apart from the risk level (issue 14, item 4).

One finding per merchant and compliance code (:data:`models.scoring.COMPLIANCE`), read from the
merchant-day history the case service records (``merchant_days``, ``merchant_indicator_days``):
it opens on the first event-time day whose reading is above 0, follows the breach while it lasts
(last day, latest value and threshold, days seen), clears on a later day that reads 0 and reopens
if the breach recurs. Staff acknowledge or resolve a finding with a note; that handling holds for
the episode it was given on, and a recurrence after a clear opens the finding again.

The register is a function of the stored history, ordered by event-time day, never by arrival:

* a batch whose new days all lie after what the register has read for a merchant is folded on
  (the live case: one merchant-day after another);
* a day at or before that point which changes a compliance reading, or a merchant the register
  has not read yet, is replayed from the merchant's whole stored history;
* a redelivered or replayed day that changes nothing does nothing, so re-reading the history
  topic from its start leaves the register as it was, at the cost of one lookup per batch.

:func:`step` decides each transition, without a database; the rest reads and writes PostgreSQL.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, delete, select, tuple_
from sqlalchemy.dialects.postgresql import insert

from cases.schema import (
    compliance_findings,
    compliance_merchants,
    merchant_days,
    merchant_indicator_days,
)
from engine.merchant_days import MerchantDay
from models.scoring import COMPLIANCE

CODES = tuple(sorted(COMPLIANCE))
STATUSES = ("open", "acknowledged", "resolved", "cleared")
HANDLINGS = ("acknowledged", "resolved")
TRANSITIONS = ("opened", "updated", "cleared", "reopened", "none")
# Stored readings of one merchant-day that matter to the register: positive compliance readings
# only (a zero's value and threshold change nothing), code -> (reading, value, threshold).
Breaches = dict[str, tuple[float, float | None, float | None]]


class Observation(NamedTuple):
    """One compliance code on one scored merchant-day; ``reading`` 0 means no breach."""

    day: date
    reading: float
    value: float | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class Finding:
    """What the history says of one merchant and code (staff handling is kept beside it)."""

    code: str
    first_day: date  # first breach ever
    opened_day: date  # first day of the current (latest) episode
    last_day: date  # latest day in breach
    cleared_day: date | None  # the day that read 0 after the latest episode; None: still open
    value: float | None  # as of last_day
    threshold: float | None
    reading: float
    days_seen: int  # days in breach, every episode
    episodes: int

    @property
    def is_open(self) -> bool:
        return self.cleared_day is None


def step(finding: Finding | None, code: str, seen: Observation) -> tuple[Finding | None, str]:
    """The finding after one more day, and what happened: opened, updated, cleared, reopened or
    none. Days must come in event-time order (a day not after the finding's is refused).

    >>> d = date.fromisoformat
    >>> f, what = step(None, "over_cap_cards", Observation(d("2026-03-01"), 0.5, 3.0, 1.0))
    >>> what, f.opened_day.isoformat(), f.days_seen
    ('opened', '2026-03-01', 1)
    >>> f, what = step(f, "over_cap_cards", Observation(d("2026-03-02"), 0.75, 4.0, 1.0))
    >>> what, f.last_day.isoformat(), f.value
    ('updated', '2026-03-02', 4.0)
    >>> f, what = step(f, "over_cap_cards", Observation(d("2026-03-03"), 0.0, 1.0, 1.0))
    >>> what, f.cleared_day.isoformat(), f.value  # the breach's last value is kept
    ('cleared', '2026-03-03', 4.0)
    >>> f, what = step(f, "over_cap_cards", Observation(d("2026-03-09"), 0.25, 2.0, 1.0))
    >>> what, f.first_day.isoformat(), f.opened_day.isoformat(), f.days_seen, f.episodes
    ('reopened', '2026-03-01', '2026-03-09', 3, 2)
    >>> step(None, "over_cap_cards", Observation(d("2026-03-01"), 0.0))
    (None, 'none')
    >>> step(f, "over_cap_cards", Observation(d("2026-03-05"), 0.0))
    Traceback (most recent call last):
    ...
    ValueError: over_cap_cards: day 2026-03-05 is not after 2026-03-09; replay the history in day order
    """
    breach = seen.reading > 0
    if finding is None:
        if not breach:
            return None, "none"
        return Finding(code, seen.day, seen.day, seen.day, None, seen.value, seen.threshold,
                       seen.reading, 1, 1), "opened"
    latest = max(finding.last_day, finding.cleared_day or finding.last_day)
    if seen.day <= latest:
        raise ValueError(f"{code}: day {seen.day} is not after {latest}; replay the history in day order")
    if breach:
        moved = replace(finding, last_day=seen.day, value=seen.value, threshold=seen.threshold,
                        reading=seen.reading, days_seen=finding.days_seen + 1)
        if finding.is_open:
            return moved, "updated"
        return replace(moved, opened_day=seen.day, cleared_day=None, episodes=finding.episodes + 1), "reopened"
    if finding.is_open:
        return replace(finding, cleared_day=seen.day), "cleared"
    return finding, "none"


def fold(code: str, seen: Iterable[Observation], finding: Finding | None = None) -> Finding | None:
    """``finding`` after every day of ``seen``, taken in day order (the last of a repeated day wins).

    >>> d = date.fromisoformat
    >>> days = [Observation(d("2026-03-03"), 0.0), Observation(d("2026-03-01"), 0.5, 3.0, 1.0),
    ...         Observation(d("2026-03-02"), 0.5, 3.0, 1.0)]
    >>> f = fold("over_cap_cards", days)
    >>> f.first_day.isoformat(), f.last_day.isoformat(), f.cleared_day.isoformat(), f.days_seen
    ('2026-03-01', '2026-03-02', '2026-03-03', 2)
    """
    by_day = {o.day: o for o in seen}
    for day in sorted(by_day):
        finding, _ = step(finding, code, by_day[day])
    return finding


def desk_status(finding: Finding, handling: str | None, handled_through: date | None) -> str:
    """open, acknowledged, resolved or cleared. Handling given when the finding's days ran to
    ``handled_through`` holds for the episode containing that day, not for a later one.

    >>> d = date.fromisoformat
    >>> f = Finding("custody_coverage", d("2026-01-05"), d("2026-03-01"), d("2026-03-20"), None,
    ...             0.2, 0.9, 0.7, 40, 2)
    >>> desk_status(f, "resolved", d("2026-03-10")), desk_status(f, "resolved", d("2026-02-01"))
    ('resolved', 'open')
    >>> desk_status(replace(f, cleared_day=d("2026-03-21")), "acknowledged", d("2026-03-10"))
    'cleared'
    """
    if not finding.is_open:
        return "cleared"
    if handling in HANDLINGS and handled_through is not None and handled_through >= finding.opened_day:
        return handling
    return "open"


# -- the database side ---------------------------------------------------------------------

_FINDING_FIELDS = ("first_day", "opened_day", "last_day", "cleared_day", "value", "threshold", "reading",
                   "days_seen", "episodes")
_PROFILE_FIELDS = ("merchant_name", "district", "industry", "chain_id")


def breaches_of(record: MerchantDay) -> Breaches:
    """The positive compliance readings of one merchant-day record."""
    return {i.code: (i.reading, i.value, i.threshold) for i in record.indicators
            if i.code in COMPLIANCE and i.reading > 0}


def stored_days(conn: Connection, keys: Sequence[tuple[str, date]]) -> dict[tuple[str, date], dict[str, Any]]:
    """Before a batch is written: which of its merchant-days are stored already, with every
    indicator reading they hold (code -> (reading, value, threshold))."""
    found: dict[tuple[str, date], dict[str, Any]] = {}
    md, mi = merchant_days, merchant_indicator_days
    for i in range(0, len(keys), 5000):  # two bound parameters per key; PostgreSQL takes 65,535
        chunk = keys[i:i + 5000]
        rows = conn.execute(
            select(md.c.merchant_id, md.c.day, mi.c.code, mi.c.reading, mi.c.value, mi.c.threshold)
            .outerjoin(mi, (mi.c.merchant_id == md.c.merchant_id) & (mi.c.day == md.c.day))
            .where(tuple_(md.c.merchant_id, md.c.day).in_(chunk))
        )
        for merchant_id, day, code, reading, value, threshold in rows:
            readings = found.setdefault((merchant_id, day), {})
            if code is not None:
                readings[code] = (reading, value, threshold)
    return found


def _positive(readings: Mapping[str, tuple[float, float | None, float | None]]) -> Breaches:
    return {code: r for code, r in readings.items() if code in COMPLIANCE and r[0] > 0}


def record_findings(conn: Connection, records: Sequence[MerchantDay],
                    before: Mapping[tuple[str, date], Mapping[str, Any]], *, now: datetime) -> dict[str, int]:
    """Bring the register up to date with ``records`` (already written to the history tables, in
    this transaction); ``before`` is :func:`stored_days` as it was before they were written.
    Returns how many findings each transition touched (``replayed``: merchants read again)."""
    by_merchant: dict[str, list[MerchantDay]] = defaultdict(list)
    for r in records:
        by_merchant[r.merchant_id].append(r)
    if not by_merchant:
        return {}
    read_through = dict(conn.execute(
        select(compliance_merchants.c.merchant_id, compliance_merchants.c.observed_through)
        .where(compliance_merchants.c.merchant_id.in_(sorted(by_merchant)))
        .with_for_update()
    ).all())
    fold_on: dict[str, list[MerchantDay]] = {}
    replay: list[str] = []
    for merchant_id, days in by_merchant.items():
        through = read_through.get(merchant_id)
        changed_before = through is not None and any(
            r.day <= through and ((r.merchant_id, r.day) not in before
                                  or breaches_of(r) != _positive(before[(r.merchant_id, r.day)]))
            for r in days
        )
        if through is None or changed_before:
            replay.append(merchant_id)
        elif any(r.day > through for r in days):
            fold_on[merchant_id] = sorted((r for r in days if r.day > through), key=lambda r: r.day)
    counts = dict.fromkeys((*TRANSITIONS, "replayed"), 0)
    if fold_on:
        _fold_on(conn, fold_on, counts, now=now)
    if replay:
        replay_merchants(conn, replay, now=now, counts=counts)
    return counts


def _existing(conn: Connection, merchant_ids: Sequence[str]) -> dict[tuple[str, str], dict[str, Any]]:
    rows = conn.execute(
        select(compliance_findings).where(compliance_findings.c.merchant_id.in_(merchant_ids)).with_for_update()
    ).mappings()
    return {(r["merchant_id"], r["code"]): dict(r) for r in rows}


def _as_finding(row: Mapping[str, Any]) -> Finding:
    return Finding(row["code"], *(row[f] for f in _FINDING_FIELDS))


def _fold_on(conn: Connection, batches: Mapping[str, list[MerchantDay]], counts: dict[str, int], *,
             now: datetime) -> None:
    """The live path: every new day lies after what the register has read for its merchant."""
    existing = _existing(conn, sorted(batches))
    writes: list[dict[str, Any]] = []
    for merchant_id, days in sorted(batches.items()):
        profile = days[-1]
        for code in CODES:
            row = existing.get((merchant_id, code))
            finding = _as_finding(row) if row else None
            for r in days:
                reading, value, threshold = breaches_of(r).get(code, (0.0, None, None))
                finding, what = step(finding, code, Observation(r.day, reading, value, threshold))
                if what != "none":
                    counts[what] += 1
            if finding is not None:
                new = _row(merchant_id, finding, profile, row, now=now)
                if row is None or any(new[k] != row[k] for k in (*_FINDING_FIELDS, *_PROFILE_FIELDS, "status")):
                    writes.append(new)
    _watermarks(conn, {merchant_id: days[-1].day for merchant_id, days in batches.items()}, now=now)
    _write(conn, writes)


def replay_merchants(conn: Connection, merchant_ids: Sequence[str], *, now: datetime,
                     counts: dict[str, int] | None = None) -> None:
    """Rebuild these merchants' findings from their whole stored history (staff handling kept
    where its episode still stands); findings the history no longer supports are removed."""
    md, mi = merchant_days, merchant_indicator_days
    seen: dict[str, dict[str, list[Observation]]] = defaultdict(lambda: defaultdict(list))
    newest: dict[str, tuple[date, dict[str, Any]]] = {}
    rows = conn.execute(
        select(md.c.merchant_id, md.c.day, *(md.c[f] for f in _PROFILE_FIELDS),
               mi.c.code, mi.c.reading, mi.c.value, mi.c.threshold)
        .outerjoin(mi, (mi.c.merchant_id == md.c.merchant_id) & (mi.c.day == md.c.day)
                   & mi.c.code.in_(CODES))
        .where(md.c.merchant_id.in_(merchant_ids))
    ).mappings()
    for r in rows:
        merchant_id, day = r["merchant_id"], r["day"]
        if merchant_id not in newest or day > newest[merchant_id][0]:
            newest[merchant_id] = (day, {f: r[f] for f in _PROFILE_FIELDS})
        if r["code"] is not None:
            seen[merchant_id][r["code"]].append(Observation(day, r["reading"], r["value"], r["threshold"]))
    existing = _existing(conn, merchant_ids)
    writes, gone = [], []
    for merchant_id in sorted(merchant_ids):
        if merchant_id not in newest:
            continue
        profile = newest[merchant_id][1]
        for code in CODES:
            finding = fold(code, seen[merchant_id][code])
            row = existing.get((merchant_id, code))
            if finding is None:
                if row is not None:
                    gone.append((merchant_id, code))
                continue
            writes.append(_row(merchant_id, finding, profile, row, now=now))
    if newest:
        _watermarks(conn, {m: through for m, (through, _) in newest.items()}, now=now)
    if counts is not None:
        counts["replayed"] += len(newest)
    if gone:
        conn.execute(delete(compliance_findings).where(
            tuple_(compliance_findings.c.merchant_id, compliance_findings.c.code).in_(gone)))
    _write(conn, writes)


def rebuild(conn: Connection, *, now: datetime, batch: int = 200) -> int:
    """Replay every merchant of the stored history (after the compliance codes changed, or to
    read history recorded before the register existed); returns merchants read."""
    merchant_ids = list(conn.scalars(select(merchant_days.c.merchant_id).distinct().order_by(
        merchant_days.c.merchant_id)))
    for i in range(0, len(merchant_ids), batch):
        replay_merchants(conn, merchant_ids[i:i + batch], now=now)
    return len(merchant_ids)


def _row(merchant_id: str, finding: Finding, profile: Any, row: Mapping[str, Any] | None, *,
         now: datetime) -> dict[str, Any]:
    get = profile.get if isinstance(profile, Mapping) else lambda f: getattr(profile, f)
    handling = row["handling"] if row else None
    handled_through = row["handled_through"] if row else None
    return {
        "merchant_id": merchant_id, "code": finding.code,
        **{f: getattr(finding, f) for f in _FINDING_FIELDS},
        **{f: get(f) for f in _PROFILE_FIELDS},
        "status": desk_status(finding, handling, handled_through),
        "recorded_at": row["recorded_at"] if row else now, "updated_at": now,
    }


def _write(conn: Connection, rows: list[dict[str, Any]]) -> None:
    columns = [*_FINDING_FIELDS, *_PROFILE_FIELDS, "status", "updated_at"]
    for i in range(0, len(rows), 1000):
        statement = insert(compliance_findings).values(rows[i:i + 1000])
        conn.execute(statement.on_conflict_do_update(
            index_elements=[compliance_findings.c.merchant_id, compliance_findings.c.code],
            set_={c: statement.excluded[c] for c in columns},
        ))


def _watermarks(conn: Connection, through: Mapping[str, date], *, now: datetime) -> None:
    rows = [{"merchant_id": m, "observed_through": d, "updated_at": now} for m, d in through.items()]
    statement = insert(compliance_merchants).values(rows)
    conn.execute(statement.on_conflict_do_update(
        index_elements=[compliance_merchants.c.merchant_id],
        set_={"observed_through": statement.excluded.observed_through, "updated_at": now},
    ))
