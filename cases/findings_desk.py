"""The compliance desk's side of the findings register: what staff read and what they do.

Findings themselves are opened, followed and cleared by the merchant-day history
(:mod:`cases.findings`); staff acknowledge a finding (seen, being looked into) or resolve
it (dealt with: rectified, referred, accepted), always with a note. Viewers read only. The same
rules hold for the JSON API, the web page and the CLI, which all come through :func:`handle`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, func, insert, select, update

from alerts.cases import CaseActionDenied, CaseActionInvalid
from cases.findings import CODES, STATUSES
from cases.schema import compliance_finding_notes, compliance_findings
from cases.store import NotFound, User

ATTENTION = ("open", "acknowledged")  # listed unless asked otherwise
ORDERS = ("newest", "longest")
MAX_NOTE = 4000
# A finding's status -> the handlings staff may give it.
ALLOWED = {"open": ("acknowledged", "resolved"), "acknowledged": ("resolved",)}


def check_handling(role: str, handling: str, status: str, note: str) -> None:
    """Raise when a ``role`` may not give ``handling`` to a finding in ``status``.

    >>> check_handling("handler", "resolved", "acknowledged", "referred to the district bureau")
    >>> check_handling("viewer", "acknowledged", "open", "seen")
    Traceback (most recent call last):
    ...
    alerts.cases.CaseActionDenied: role viewer may only read findings
    >>> check_handling("supervisor", "acknowledged", "cleared", "seen")
    Traceback (most recent call last):
    ...
    alerts.cases.CaseActionInvalid: a cleared finding cannot be acknowledged
    """
    if role not in ("handler", "supervisor"):
        raise CaseActionDenied(f"role {role} may only read findings")
    if handling not in ("acknowledged", "resolved"):
        raise CaseActionInvalid(f"unknown handling {handling!r}: acknowledged or resolved")
    if handling not in ALLOWED.get(status, ()):
        raise CaseActionInvalid(f"a{'n' if status[0] in 'aeiou' else ''} {status} finding cannot be {handling}")
    if not note.strip():
        raise CaseActionInvalid("a note is required: what was seen or done")
    if len(note) > MAX_NOTE:
        raise CaseActionInvalid(f"the note is longer than {MAX_NOTE} characters")


def list_findings(
    conn: Connection, *, statuses: Sequence[str] | None = ATTENTION, code: str | None = None,
    district: str | None = None, industry: str | None = None, merchant_id: str | None = None,
    order: Literal["newest", "longest"] = "newest", limit: int = 500,
) -> list[dict[str, Any]]:
    """Findings, newest episode first (or the longest running first); ``statuses`` None: all."""
    t = compliance_findings
    query = select(t)
    if statuses is not None:
        query = query.where(t.c.status.in_(list(statuses)))
    for column, wanted in ((t.c.code, code), (t.c.district, district), (t.c.industry, industry),
                           (t.c.merchant_id, merchant_id)):
        if wanted:
            query = query.where(column == wanted)
    first = t.c.opened_day.desc() if order == "newest" else t.c.opened_day.asc()
    query = query.order_by(first, t.c.last_day.desc(), t.c.merchant_id, t.c.code).limit(limit)
    return [_public(dict(r)) for r in conn.execute(query).mappings()]


def _public(row: dict[str, Any]) -> dict[str, Any]:
    """A finding as staff see it: days running counted on event time, through its last breach."""
    row["days_running"] = (row["last_day"] - row["opened_day"]).days + 1
    return row


def get_finding(conn: Connection, merchant_id: str, code: str) -> dict[str, Any]:
    """One finding with its notes, oldest first."""
    row = conn.execute(select(compliance_findings).where(
        compliance_findings.c.merchant_id == merchant_id, compliance_findings.c.code == code)).mappings().first()
    if row is None:
        raise NotFound(f"no compliance finding {code} for merchant {merchant_id}")
    n = compliance_finding_notes
    notes = conn.execute(select(n.c.at, n.c.actor, n.c.action, n.c.note, n.c.opened_day).where(
        n.c.merchant_id == merchant_id, n.c.code == code).order_by(n.c.note_id)).mappings()
    return {**_public(dict(row)), "notes": [dict(x) for x in notes]}


def handle(conn: Connection, merchant_id: str, code: str, user: User, handling: str, note: str, *,
           now: datetime) -> str:
    """Acknowledge or resolve a finding for ``user``, with ``note``; returns its new status."""
    t = compliance_findings
    row = conn.execute(select(t.c.status, t.c.last_day, t.c.opened_day).where(
        t.c.merchant_id == merchant_id, t.c.code == code).with_for_update()).first()
    if row is None:
        raise NotFound(f"no compliance finding {code} for merchant {merchant_id}")
    check_handling(user.role, handling, row.status, note)
    conn.execute(update(t).where(t.c.merchant_id == merchant_id, t.c.code == code).values(
        status=handling, handling=handling, handled_by=user.username, handled_at=now,
        handled_through=row.last_day, handling_note=note.strip(), updated_at=now))
    conn.execute(insert(compliance_finding_notes).values(
        merchant_id=merchant_id, code=code, opened_day=row.opened_day, at=now, actor=user.username,
        action=handling, note=note.strip()))
    return handling


def counts(conn: Connection) -> dict[tuple[str, str], int]:
    """Findings by (code, status), every pair present (0 when none)."""
    found = dict.fromkeys(((c, s) for c in CODES for s in STATUSES), 0)
    t = compliance_findings
    for code, status, n in conn.execute(select(t.c.code, t.c.status, func.count()).group_by(t.c.code, t.c.status)):
        if (code, status) in found:
            found[(code, status)] = n
    return found


def facets(conn: Connection) -> dict[str, list[str]]:
    """Towns and industries that have findings open or acknowledged (the page's filters)."""
    t = compliance_findings
    live = t.c.status.in_(ATTENTION)
    return {
        "districts": [d for d in conn.scalars(select(t.c.district).where(live).distinct().order_by(t.c.district)) if d],
        "industries": [i for i in conn.scalars(select(t.c.industry).where(live).distinct().order_by(t.c.industry)) if i],
    }
