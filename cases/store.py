"""What the case desk does to its database, one transaction per operation.

Every function takes an open connection inside a transaction (``with engine.begin() as conn``)
so the caller decides the unit of work; the consumer commits a warning's effects, including the
webhooks and feedback it causes (a transactional outbox), before it commits the Kafka offset.

Here: warnings in, the cases they open, the actions staff take, reading cases. Staff accounts
live in :mod:`cases.users`, routing rules and silences in :mod:`cases.routing`, webhooks and
feedback in :mod:`cases.outbox`; their operations are named here too (``__all__``), so that
every caller reaches the desk's database through this one module.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError

from alerts.cases import (
    OPEN_STATUSES,
    CaseActionInvalid,
    ResponsePolicy,
    check_action,
    highest,
    validate_disposition,
)
from alerts.policy import AlertPolicy, Decision, Incoming, case_group
from cases.db import NotFound
from cases.outbox import (
    claim_due,
    list_deliveries,
    mark_attempt_failed,
    mark_delivered,
    queue_feedback,
    queue_pushes,
    retry_delivery,
)
from cases.privacy import scrub
from cases.routing import (
    active_silences,
    add_routing_rule,
    add_silence,
    cancel_silence,
    delete_routing_rule,
    list_routing_rules,
    list_silences,
    route,
)
from cases.schema import case_events, case_merchants, cases, merchant_levels, outbox, warnings
from cases.users import User, add_user, get_user, list_users, user_by_password, user_by_token

__all__ = [
    # warnings in, cases worked and read (this module)
    "Ingested", "NotFound", "act", "case_id_for", "get_case", "ingest_warning", "list_cases",
    "merchant_history", "open_cases_after_silences", "overdue_cases",
    # staff (cases.users)
    "User", "add_user", "get_user", "list_users", "user_by_password", "user_by_token",
    # routing rules and silences (cases.routing)
    "add_routing_rule", "add_silence", "cancel_silence", "delete_routing_rule", "list_routing_rules",
    "list_silences", "route",
    # webhooks and feedback (cases.outbox)
    "claim_due", "list_deliveries", "mark_attempt_failed", "mark_delivered", "retry_delivery",
]

# -- ingesting warnings -------------------------------------------------------------------


def case_id_for(group_key: str, first_warning_id: str, raised_at: datetime) -> str:
    """Deterministic, readable case ids: a replay opens the same case, never a second one.

    >>> from datetime import timezone
    >>> case_id_for("merchant:m1", "w-1", datetime(2026, 3, 1, tzinfo=timezone.utc))
    'YJ-20260301-...'
    """
    digest = hashlib.sha256(f"{group_key}|{first_warning_id}".encode()).hexdigest()[:6].upper()
    return f"YJ-{raised_at:%Y%m%d}-{digest}"


def _event(
    conn: Connection, case_id: str, at: datetime, actor: str, action: str, *,
    from_status: str | None = None, to_status: str | None = None, note: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> None:
    conn.execute(insert(case_events).values(
        case_id=case_id, at=at, actor=actor, action=action, from_status=from_status,
        to_status=to_status, note=note, detail=dict(detail) if detail else None,
    ))


@dataclass(frozen=True)
class Ingested:
    """What reading one warning did."""

    warning_id: str
    action: str  # a Decision action, or "replay" when the warning was already read
    case_id: str | None
    reason: str


def ingest_warning(
    conn: Connection,
    warning: Mapping[str, Any],
    *,
    policy: AlertPolicy,
    response: ResponsePolicy,
    webhook_targets: Sequence[tuple[str, Sequence[str]]] = (),
    public_url: str = "",
    now: datetime,
    source: tuple[int, int] | None = None,
) -> Ingested:
    """Apply one warning (a validated contract record, as a JSON-ready dict) to the cases.

    Idempotent on ``warning_id``: a replayed or duplicated warning changes nothing.
    """
    warning_id = warning["warning_id"]
    merchant_id = warning["merchant_id"]
    chain_id = warning.get("chain_id")
    group = case_group(merchant_id, chain_id)
    # One writer per group at a time (several service instances, chain stores on other partitions).
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:g))"), {"g": group})
    if conn.execute(select(warnings.c.warning_id).where(warnings.c.warning_id == warning_id)).first():
        return Ingested(warning_id, "replay", None, "already read")

    held = conn.execute(
        select(merchant_levels.c.level).where(merchant_levels.c.merchant_id == merchant_id)
    ).scalar_one_or_none()
    open_case = conn.execute(
        select(cases).where(cases.c.group_key == group, cases.c.status.in_(OPEN_STATUSES)).with_for_update()
    ).first()
    incoming = Incoming(merchant_id, chain_id, warning["transition"], warning.get("previous_level"), warning["level"])
    decision = policy.decide(
        incoming,
        held_level=held,
        case_level=open_case.level if open_case else None,
        case_open=open_case is not None,
        silences=active_silences(conn, merchant_id, chain_id, now),
        now=now,
    )
    raised_at = _ts(warning["raised_at"])
    case_id = open_case.case_id if open_case else None

    if decision.action != "duplicate":
        _hold_level(conn, warning, silenced=decision.action == "silenced")
    if decision.action == "open":
        case_id = _open_case(
            conn, group, warning, decision, response=response, now=now, raised_at=raised_at,
        )
    elif decision.action in ("append", "escalate") and open_case is not None:
        _append(conn, open_case, warning, decision, response=response, now=now, raised_at=raised_at)
    if decision.push and case_id:
        queue_pushes(conn, case_id, warning, webhook_targets, raised_at=raised_at, public_url=public_url,
                     now=now)

    conn.execute(insert(warnings).values(
        warning_id=warning_id, merchant_id=merchant_id, case_id=case_id, level=warning["level"],
        previous_level=warning.get("previous_level"), transition=warning["transition"],
        score=warning["score"], raised_at=raised_at, emitted_at=_ts(warning["emitted_at"]),
        received_at=now, thresholds_version=warning["thresholds_version"], chain_id=chain_id,
        action=decision.action, reason=decision.reason, payload=scrub(dict(warning)),
        source_partition=source[0] if source else None, source_offset=source[1] if source else None,
    ))
    return Ingested(warning_id, decision.action, case_id, decision.reason)


def _ts(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _hold_level(conn: Connection, warning: Mapping[str, Any], *, silenced: bool) -> None:
    level = None if warning["transition"] == "cleared" else warning["level"]
    values = dict(
        level=level, chain_id=warning.get("chain_id"), merchant_name=warning.get("merchant_name"),
        district=warning.get("district"), industry=warning.get("industry"),
        last_warning_id=warning["warning_id"], last_raised_at=_ts(warning["raised_at"]),
        silenced=silenced and level is not None,
    )
    stmt = pg_insert(merchant_levels).values(merchant_id=warning["merchant_id"], **values)
    conn.execute(stmt.on_conflict_do_update(index_elements=["merchant_id"], set_=values))


def _open_case(
    conn: Connection, group: str, warning: Mapping[str, Any], decision: Decision, *,
    response: ResponsePolicy, now: datetime, raised_at: datetime,
) -> str:
    level = warning["level"]
    chain_id = warning.get("chain_id")
    name = warning.get("merchant_name") or warning["merchant_id"]
    title = f"连锁 {chain_id}（{name} 等）" if chain_id else name
    case_id = case_id_for(group, warning["warning_id"], raised_at)
    routed = route(conn, warning.get("district"), warning.get("industry"))
    status = "assigned" if routed else "new"
    conn.execute(insert(cases).values(
        case_id=case_id, group_key=group, title=title, status=status, level=level, max_level=level,
        district=warning.get("district"), industry=warning.get("industry"),
        assignee=routed[0] if routed else None, opened_at=now, first_raised_at=raised_at,
        last_raised_at=raised_at, due_at=response.due_at(level, now), updated_at=now,
    ))
    _merchant_row(conn, case_id, warning, raised_at)
    _event(conn, case_id, now, "system", "opened", to_status="new", detail={
        "warning_id": warning["warning_id"], "level": level, "reason": decision.reason,
    })
    if routed:
        _event(conn, case_id, now, "system", "assigned", from_status="new", to_status="assigned",
               detail={"assignee": routed[0], "routing_rule": routed[1]})
    return case_id


def _merchant_row(conn: Connection, case_id: str, warning: Mapping[str, Any], raised_at: datetime) -> None:
    values = dict(
        merchant_name=warning.get("merchant_name"), district=warning.get("district"),
        industry=warning.get("industry"),
        level=None if warning["transition"] == "cleared" else warning["level"],
        last_transition=warning["transition"], last_raised_at=raised_at,
        last_warning_id=warning["warning_id"],
    )
    stmt = pg_insert(case_merchants).values(case_id=case_id, merchant_id=warning["merchant_id"], **values)
    conn.execute(stmt.on_conflict_do_update(index_elements=["case_id", "merchant_id"], set_=values))


def _append(
    conn: Connection, case_row: Any, warning: Mapping[str, Any], decision: Decision, *,
    response: ResponsePolicy, now: datetime, raised_at: datetime,
) -> None:
    _merchant_row(conn, case_row.case_id, warning, raised_at)
    levels = conn.execute(
        select(case_merchants.c.level).where(case_merchants.c.case_id == case_row.case_id)
    ).scalars()
    level = highest(levels)
    changes: dict[str, Any] = {
        "level": level, "last_raised_at": max(case_row.last_raised_at, raised_at), "updated_at": now,
    }
    if decision.action == "escalate":
        changes["max_level"] = highest([case_row.max_level, warning["level"]])
        due = response.due_at(warning["level"], now)
        # A rise in level must be answered in the new level's time, or sooner if already due.
        changes["due_at"] = min(due, case_row.due_at) if case_row.due_at else due
    conn.execute(update(cases).where(cases.c.case_id == case_row.case_id).values(**changes))
    _event(conn, case_row.case_id, now, "system", "escalated" if decision.action == "escalate" else "warning",
           detail={"warning_id": warning["warning_id"], "merchant_id": warning["merchant_id"],
                   "transition": warning["transition"], "level": warning["level"], "reason": decision.reason})


# -- case actions -------------------------------------------------------------------------


def _case_for_update(conn: Connection, case_id: str) -> Any:
    row = conn.execute(select(cases).where(cases.c.case_id == case_id).with_for_update()).first()
    if row is None:
        raise NotFound(f"no case {case_id}")
    return row


def act(
    conn: Connection,
    case_id: str,
    actor: User,
    action: str,
    *,
    now: datetime,
    note: str | None = None,
    assignee: str | None = None,
    disposition: str | None = None,
    feedback_topic: str = "prepaid.feedback",
) -> str:
    """Do ``action`` (take, assign, start, note, resolve, close, reopen) as ``actor``; returns the
    case's status after it. Role and status rules: :func:`alerts.cases.check_action`."""
    row = _case_for_update(conn, case_id)
    status = check_action(actor.role, action, assignee=row.assignee, actor=actor.username, status=row.status)
    changes: dict[str, Any] = {"status": status, "updated_at": now}
    detail: dict[str, Any] = {}
    # The response clock stops at the assignee's first response (taking a case makes one the assignee).
    if action in ("take", "resolve") or (action in ("start", "note") and actor.username == row.assignee):
        changes["due_at"] = None
    if action == "take":
        changes["assignee"] = actor.username
    elif action == "assign":
        if not assignee:
            raise CaseActionInvalid("assign needs an assignee")
        target = get_user(conn, assignee)
        if target is None or target.role == "viewer":
            raise CaseActionInvalid(f"{assignee!r} is not a handler or supervisor")
        changes["assignee"] = assignee
        detail["assignee"] = assignee
        if assignee == row.assignee:
            changes["status"] = status = row.status  # re-assigning to the same person changes nothing
    elif action == "note":
        if not note or not note.strip():
            raise CaseActionInvalid("a note needs text")
    elif action == "resolve":
        changes["disposition"] = validate_disposition(disposition or "")
        changes["resolution"] = note
        changes["resolved_at"] = now
        changes["resolutions"] = row.resolutions + 1
        detail["disposition"] = disposition
        queue_feedback(conn, row, disposition or "", actor, now=now, topic=feedback_topic,
                       resolution_number=row.resolutions + 1)
    elif action == "close":
        changes["closed_at"] = now
    elif action == "reopen":
        changes.update(disposition=None, closed_at=None, resolved_at=None)
    try:
        with conn.begin_nested():
            conn.execute(update(cases).where(cases.c.case_id == case_id).values(**changes))
    except IntegrityError as exc:
        other = conn.execute(
            select(cases.c.case_id).where(cases.c.group_key == row.group_key, cases.c.status.in_(OPEN_STATUSES))
        ).scalar()
        raise CaseActionInvalid(f"cannot reopen: case {other} is already open for {row.group_key}") from exc
    _event(conn, case_id, now, actor.username, action, from_status=row.status, to_status=status,
           note=note, detail=detail or None)
    return status


# -- when silences end -------------------------------------------------------------------


def open_cases_after_silences(
    conn: Connection, *, policy: AlertPolicy, response: ResponsePolicy,
    webhook_targets: Sequence[tuple[str, Sequence[str]]] = (), public_url: str = "", now: datetime,
) -> list[str]:
    """Merchants muted while at a case level whose silences have all ended get their case now."""
    muted = conn.execute(select(merchant_levels).where(merchant_levels.c.silenced)).all()
    opened: list[str] = []
    for m in muted:
        if active_silences(conn, m.merchant_id, m.chain_id, now):
            continue
        conn.execute(update(merchant_levels).where(merchant_levels.c.merchant_id == m.merchant_id)
                     .values(silenced=False))
        if not policy.opens_after_silence(m.level):
            continue
        group = case_group(m.merchant_id, m.chain_id)
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:g))"), {"g": group})
        if conn.execute(select(cases.c.case_id).where(
            cases.c.group_key == group, cases.c.status.in_(OPEN_STATUSES))).first():
            continue
        last = conn.execute(select(warnings.c.payload).where(warnings.c.warning_id == m.last_warning_id)).scalar_one()
        decision = Decision("open", f"silence ended with the merchant still at {m.level}", m.level in policy.push_levels)
        case_id = _open_case(conn, group, last, decision, response=response, now=now,
                             raised_at=m.last_raised_at)
        conn.execute(update(warnings).where(warnings.c.warning_id == m.last_warning_id).values(case_id=case_id))
        if decision.push:
            queue_pushes(conn, case_id, last, webhook_targets, raised_at=_ts(last["raised_at"]),
                         public_url=public_url, now=now)
        opened.append(case_id)
    return opened


# -- reading cases ------------------------------------------------------------------------

LEVEL_ORDER = case({"red": 3, "orange": 2, "yellow": 1, "blue": 0}, value=cases.c.level, else_=-1)


def list_cases(
    conn: Connection, *, status: Sequence[str] | None = None, assignee: str | None = None,
    level: str | None = None, unassigned: bool = False, limit: int = 200,
) -> list[dict[str, Any]]:
    """Cases sorted as a queue: most severe first, then the nearest deadline, then the oldest."""
    query = select(cases, func.count(case_merchants.c.merchant_id).label("merchants")).outerjoin(
        case_merchants, case_merchants.c.case_id == cases.c.case_id
    ).group_by(cases.c.case_id)
    if status:
        query = query.where(cases.c.status.in_(list(status)))
    if assignee:
        query = query.where(cases.c.assignee == assignee)
    if unassigned:
        query = query.where(cases.c.assignee.is_(None))
    if level:
        query = query.where(cases.c.level == level)
    query = query.order_by(LEVEL_ORDER.desc(), cases.c.due_at.asc().nulls_last(), cases.c.opened_at).limit(limit)
    return [dict(r._mapping) for r in conn.execute(query)]


def get_case(conn: Connection, case_id: str) -> dict[str, Any]:
    row = conn.execute(select(cases).where(cases.c.case_id == case_id)).first()
    if row is None:
        raise NotFound(f"no case {case_id}")
    result = dict(row._mapping)
    result["merchants"] = [dict(r._mapping) for r in conn.execute(
        select(case_merchants).where(case_merchants.c.case_id == case_id).order_by(case_merchants.c.merchant_id)
    )]
    result["warnings"] = [dict(r._mapping) for r in conn.execute(
        select(warnings.c.warning_id, warnings.c.merchant_id, warnings.c.level, warnings.c.previous_level,
               warnings.c.transition, warnings.c.score, warnings.c.raised_at, warnings.c.action,
               warnings.c.reason, warnings.c.thresholds_version, warnings.c.payload)
        .where(warnings.c.case_id == case_id).order_by(warnings.c.raised_at.desc(), warnings.c.warning_id)
    )]
    result["events"] = [dict(r._mapping) for r in conn.execute(
        select(case_events).where(case_events.c.case_id == case_id).order_by(case_events.c.event_id)
    )]
    result["deliveries"] = [dict(r._mapping) for r in conn.execute(
        select(outbox.c.message_id, outbox.c.kind, outbox.c.target, outbox.c.status, outbox.c.attempts,
               outbox.c.last_error, outbox.c.created_at, outbox.c.delivered_at, outbox.c.next_attempt_at)
        .where(outbox.c.case_id == case_id).order_by(outbox.c.message_id)
    )]
    return result


def merchant_history(conn: Connection, merchant_id: str, limit: int = 100) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(
        select(warnings.c.warning_id, warnings.c.case_id, warnings.c.level, warnings.c.previous_level,
               warnings.c.transition, warnings.c.score, warnings.c.raised_at, warnings.c.action,
               warnings.c.reason)
        .where(warnings.c.merchant_id == merchant_id).order_by(warnings.c.raised_at.desc()).limit(limit)
    )]


def overdue_cases(conn: Connection, *, now: datetime) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(
        select(cases).where(cases.c.status.in_(OPEN_STATUSES), cases.c.due_at < now)
        .order_by(cases.c.due_at)
    )]


