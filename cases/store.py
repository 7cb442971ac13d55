"""What the case desk does to its database, one transaction per operation.

Every function takes an open connection inside a transaction (``with engine.begin() as conn``)
so the caller decides the unit of work; the consumer commits a warning's effects, including the
webhooks and feedback it causes (a transactional outbox), before it commits the Kafka offset.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlalchemy import Connection, and_, case, func, insert, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError

from alerts.cases import (
    OPEN_STATUSES,
    ROLES,
    CaseActionDenied,
    CaseActionInvalid,
    ResponsePolicy,
    check_action,
    highest,
    validate_disposition,
)
from alerts.levels import RANK
from alerts.policy import AlertPolicy, Decision, Incoming, Silence, case_group
from cases.schema import (
    case_events,
    case_merchants,
    cases,
    merchant_levels,
    outbox,
    routing_rules,
    silences,
    users,
    warnings,
)
from contract.records import Feedback
from models.calendar import SHANGHAI

_hasher = PasswordHasher()


class NotFound(Exception):
    """No such case, user, silence, rule or delivery."""


@dataclass(frozen=True)
class User:
    username: str
    display_name: str
    role: str


# -- users and authentication -------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_user(
    conn: Connection, username: str, role: str, *, display_name: str | None = None,
    password: str | None = None,
) -> str:
    """Create a user; returns their API token (shown once; only its hash is stored)."""
    if role not in ROLES:
        raise CaseActionInvalid(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    token = "yj_" + secrets.token_urlsafe(24)
    try:
        conn.execute(insert(users).values(
            username=username, display_name=display_name or username, role=role,
            password_hash=_hasher.hash(password) if password else None,
            token_hash=_token_hash(token),
        ))
    except IntegrityError as exc:
        raise CaseActionInvalid(f"user {username!r} already exists") from exc
    return token


def user_by_token(conn: Connection, token: str) -> User | None:
    row = conn.execute(
        select(users.c.username, users.c.display_name, users.c.role)
        .where(users.c.token_hash == _token_hash(token), users.c.active)
    ).first()
    return User(*row) if row else None


def user_by_password(conn: Connection, username: str, password: str) -> User | None:
    row = conn.execute(
        select(users.c.username, users.c.display_name, users.c.role, users.c.password_hash)
        .where(users.c.username == username, users.c.active)
    ).first()
    if row is None or not row.password_hash:
        return None
    try:
        _hasher.verify(row.password_hash, password)
    except VerificationError:
        return None
    return User(row.username, row.display_name, row.role)


def get_user(conn: Connection, username: str) -> User | None:
    """An active user (a deactivated one is None: no session login, not assignable)."""
    row = conn.execute(
        select(users.c.username, users.c.display_name, users.c.role)
        .where(users.c.username == username, users.c.active)
    ).first()
    return User(*row) if row else None


def list_users(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(users.c.username, users.c.display_name, users.c.role, users.c.active).order_by(users.c.username)
    )
    return [dict(r._mapping) for r in rows]


# -- ingesting warnings -------------------------------------------------------------------


def case_id_for(group_key: str, first_warning_id: str, raised_at: datetime) -> str:
    """Deterministic, readable case ids: a replay opens the same case, never a second one.

    >>> from datetime import timezone
    >>> case_id_for("merchant:m1", "w-1", datetime(2026, 3, 1, tzinfo=timezone.utc))
    'YJ-20260301-...'
    """
    digest = hashlib.sha256(f"{group_key}|{first_warning_id}".encode()).hexdigest()[:6].upper()
    return f"YJ-{raised_at:%Y%m%d}-{digest}"


def _active_silences(conn: Connection, merchant_id: str, chain_id: str | None, now: datetime) -> list[Silence]:
    targets = [and_(silences.c.target_kind == "merchant", silences.c.target_id == merchant_id)]
    if chain_id:
        targets.append(and_(silences.c.target_kind == "chain", silences.c.target_id == chain_id))
    rows = conn.execute(
        select(silences).where(
            or_(*targets), silences.c.cancelled_at.is_(None),
            silences.c.starts_at <= now, silences.c.ends_at > now,
        ).order_by(silences.c.silence_id)
    )
    return [_silence(r) for r in rows]


def _silence(row: Any) -> Silence:
    return Silence(
        row.silence_id, row.target_kind, row.target_id, row.reason, row.created_by,
        row.starts_at, row.ends_at, row.cancelled_at,
    )


def route(conn: Connection, district: str | None, industry: str | None) -> tuple[str, int] | None:
    """The assignee for a new case: the most specific routing rule matching its town and industry."""
    row = conn.execute(
        select(routing_rules.c.assignee, routing_rules.c.rule_id)
        .join(users, users.c.username == routing_rules.c.assignee)
        .where(
            users.c.active,
            or_(routing_rules.c.district.is_(None), routing_rules.c.district == district),
            or_(routing_rules.c.industry.is_(None), routing_rules.c.industry == industry),
        )
        .order_by(
            routing_rules.c.district.is_(None), routing_rules.c.industry.is_(None), routing_rules.c.rule_id
        )
        .limit(1)
    ).first()
    return (row.assignee, row.rule_id) if row else None


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
        silences=_active_silences(conn, merchant_id, chain_id, now),
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
        _queue_pushes(conn, case_id, warning, webhook_targets, public_url=public_url, now=now)

    conn.execute(insert(warnings).values(
        warning_id=warning_id, merchant_id=merchant_id, case_id=case_id, level=warning["level"],
        previous_level=warning.get("previous_level"), transition=warning["transition"],
        score=warning["score"], raised_at=raised_at, emitted_at=_ts(warning["emitted_at"]),
        received_at=now, thresholds_version=warning["thresholds_version"], chain_id=chain_id,
        action=decision.action, reason=decision.reason, payload=dict(warning),
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


def _queue_pushes(
    conn: Connection, case_id: str, warning: Mapping[str, Any],
    targets: Sequence[tuple[str, Sequence[str]]], *, public_url: str, now: datetime,
) -> None:
    level = warning["level"]
    row = conn.execute(select(cases).where(cases.c.case_id == case_id)).one()
    if row.pushed_level and RANK[row.pushed_level] >= RANK[level]:
        return
    conn.execute(update(cases).where(cases.c.case_id == case_id).values(pushed_level=level))
    payload = {
        "event": "case.opened" if row.pushed_level is None else "case.escalated",
        "case_id": case_id,
        "level": level,
        "title": row.title,
        "merchant_id": warning["merchant_id"],
        "merchant_name": warning.get("merchant_name"),
        "district": row.district,
        "industry": row.industry,
        "raised_at": _ts(warning["raised_at"]).isoformat(),
        "due_at": row.due_at.isoformat() if row.due_at else None,
        "warning_id": warning["warning_id"],
        "reasons_zh": [i.get("explanation_zh") for i in warning.get("indicators", [])][:5],
        "url": f"{public_url.rstrip('/')}/cases/{case_id}",
    }
    for name, levels in targets:
        if level in levels:
            conn.execute(pg_insert(outbox).values(
                kind="webhook", target=name, dedup_key=f"webhook:{name}:{case_id}:{level}",
                case_id=case_id, payload=payload, status="pending", next_attempt_at=now, created_at=now,
            ).on_conflict_do_nothing(index_elements=["dedup_key"]))


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
        _queue_feedback(conn, row, disposition or "", actor, now=now, topic=feedback_topic,
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


def _queue_feedback(
    conn: Connection, row: Any, disposition: str, actor: User, *, now: datetime, topic: str,
    resolution_number: int,
) -> None:
    """One Feedback per merchant of the case, about the warnings the staff saw."""
    merchants = conn.execute(
        select(case_merchants.c.merchant_id).where(case_merchants.c.case_id == row.case_id)
    ).scalars().all()
    # The decision's place in event time: the newest event time the desk has seen on the disposal
    # queue (in real time, about today). The scoring side applies the feedback from the day after,
    # so a replay of the same feedback changes the same days.
    desk_clock = conn.execute(select(func.max(warnings.c.raised_at))).scalar_one()
    for merchant_id in merchants:
        seen = conn.execute(
            select(warnings.c.warning_id, warnings.c.level, warnings.c.transition, warnings.c.score,
                   warnings.c.raised_at, warnings.c.payload)
            .where(warnings.c.case_id == row.case_id, warnings.c.merchant_id == merchant_id)
            .order_by(warnings.c.raised_at, warnings.c.warning_id)
        ).all()
        if not seen:
            continue
        rising = [w for w in seen if w.transition in ("raised", "escalated")] or seen
        newest = rising[-1]
        feedback_id = "fb-" + hashlib.sha256(
            f"{row.case_id}|{resolution_number}|{merchant_id}".encode()
        ).hexdigest()[:24]
        record = Feedback(
            feedback_id=feedback_id, merchant_id=merchant_id, case_id=row.case_id,
            disposition=disposition,  # type: ignore[arg-type]
            level=highest(w.level for w in rising),  # type: ignore[arg-type]
            score=newest.score,
            indicator_codes=[i["code"] for i in newest.payload.get("indicators", [])],
            warning_ids=[w.warning_id for w in seen],
            effective_from=max([desk_clock, *(w.raised_at for w in seen)]).astimezone(SHANGHAI),
            decided_at=now,
            decided_by_role=actor.role,
        )
        conn.execute(pg_insert(outbox).values(
            kind="feedback", target=topic, dedup_key=f"feedback:{feedback_id}", case_id=row.case_id,
            payload=record.model_dump(mode="json"), status="pending", next_attempt_at=now, created_at=now,
        ).on_conflict_do_nothing(index_elements=["dedup_key"]))


# -- silences -----------------------------------------------------------------------------


def add_silence(
    conn: Connection, actor: User, target_kind: str, target_id: str, *, reason: str,
    ends_at: datetime, now: datetime, starts_at: datetime | None = None,
) -> int:
    if actor.role != "supervisor":
        raise CaseActionDenied(f"role {actor.role} may not silence merchants")
    if target_kind not in ("merchant", "chain"):
        raise CaseActionInvalid("a silence targets a merchant or a chain")
    if not reason.strip():
        raise CaseActionInvalid("a silence needs a reason")
    starts = starts_at or now
    if ends_at <= starts:
        raise CaseActionInvalid("a silence must end after it starts")
    if ends_at - starts > timedelta(days=90):
        raise CaseActionInvalid("a silence may last at most 90 days; renew it if still needed")
    return int(conn.execute(insert(silences).values(
        target_kind=target_kind, target_id=target_id, reason=reason, created_by=actor.username,
        created_at=now, starts_at=starts, ends_at=ends_at,
    ).returning(silences.c.silence_id)).scalar_one())


def cancel_silence(conn: Connection, actor: User, silence_id: int, *, now: datetime) -> None:
    if actor.role != "supervisor":
        raise CaseActionDenied(f"role {actor.role} may not lift silences")
    done = conn.execute(update(silences).where(
        silences.c.silence_id == silence_id, silences.c.cancelled_at.is_(None)
    ).values(cancelled_at=now, cancelled_by=actor.username))
    if done.rowcount == 0:
        raise NotFound(f"no active silence #{silence_id}")


def list_silences(conn: Connection, *, now: datetime, include_ended: bool = False) -> list[dict[str, Any]]:
    query = select(silences).order_by(silences.c.ends_at)
    if not include_ended:
        query = query.where(silences.c.cancelled_at.is_(None), silences.c.ends_at > now)
    return [dict(r._mapping) for r in conn.execute(query)]


def open_cases_after_silences(
    conn: Connection, *, policy: AlertPolicy, response: ResponsePolicy,
    webhook_targets: Sequence[tuple[str, Sequence[str]]] = (), public_url: str = "", now: datetime,
) -> list[str]:
    """Merchants muted while at a case level whose silences have all ended get their case now."""
    muted = conn.execute(select(merchant_levels).where(merchant_levels.c.silenced)).all()
    opened: list[str] = []
    for m in muted:
        if _active_silences(conn, m.merchant_id, m.chain_id, now):
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
            _queue_pushes(conn, case_id, last, webhook_targets, public_url=public_url, now=now)
        opened.append(case_id)
    return opened


# -- routing rules ------------------------------------------------------------------------


def add_routing_rule(
    conn: Connection, actor: User, assignee: str, *, district: str | None, industry: str | None, now: datetime
) -> int:
    if actor.role != "supervisor":
        raise CaseActionDenied(f"role {actor.role} may not change routing")
    target = get_user(conn, assignee)
    if target is None or target.role == "viewer":
        raise CaseActionInvalid(f"{assignee!r} is not a handler or supervisor")
    return int(conn.execute(insert(routing_rules).values(
        district=district, industry=industry, assignee=assignee, created_by=actor.username, created_at=now,
    ).returning(routing_rules.c.rule_id)).scalar_one())


def list_routing_rules(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(select(routing_rules).order_by(routing_rules.c.rule_id))]


def delete_routing_rule(conn: Connection, actor: User, rule_id: int) -> None:
    if actor.role != "supervisor":
        raise CaseActionDenied(f"role {actor.role} may not change routing")
    if conn.execute(routing_rules.delete().where(routing_rules.c.rule_id == rule_id)).rowcount == 0:
        raise NotFound(f"no routing rule #{rule_id}")


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


# -- the outbox ---------------------------------------------------------------------------


def list_deliveries(conn: Connection, *, status: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
    query = select(outbox).order_by(outbox.c.message_id.desc()).limit(500)
    if status:
        query = query.where(outbox.c.status == status)
    if kind:
        query = query.where(outbox.c.kind == kind)
    return [dict(r._mapping) for r in conn.execute(query)]


def claim_due(conn: Connection, kind: str, *, now: datetime) -> Any | None:
    """Lock one due outbox message (other dispatchers skip it) for delivery in this transaction."""
    return conn.execute(
        select(outbox).where(outbox.c.kind == kind, outbox.c.status == "pending", outbox.c.next_attempt_at <= now)
        .order_by(outbox.c.next_attempt_at, outbox.c.message_id).limit(1).with_for_update(skip_locked=True)
    ).first()


def mark_delivered(conn: Connection, message_id: int, *, now: datetime) -> None:
    conn.execute(update(outbox).where(outbox.c.message_id == message_id).values(
        status="delivered", delivered_at=now, attempts=outbox.c.attempts + 1, last_error=None))


def mark_attempt_failed(
    conn: Connection, message_id: int, error: str, *, now: datetime, max_attempts: int,
    backoff_seconds: float, backoff_max_seconds: float,
) -> str:
    """Record a failed attempt; the next one waits twice as long. After ``max_attempts`` the
    message is marked failed (kept and listed; a supervisor can retry it)."""
    attempts = int(conn.execute(select(outbox.c.attempts).where(outbox.c.message_id == message_id)).scalar_one()) + 1
    delay = min(backoff_max_seconds, backoff_seconds * 2 ** (attempts - 1))
    status = "failed" if attempts >= max_attempts else "pending"
    conn.execute(update(outbox).where(outbox.c.message_id == message_id).values(
        attempts=attempts, last_error=error[:500], status=status,
        next_attempt_at=now + timedelta(seconds=delay)))
    return status


def retry_delivery(conn: Connection, actor: User, message_id: int, *, now: datetime) -> None:
    if actor.role != "supervisor":
        raise CaseActionDenied(f"role {actor.role} may not retry deliveries")
    done = conn.execute(update(outbox).where(
        outbox.c.message_id == message_id, outbox.c.status == "failed"
    ).values(status="pending", next_attempt_at=now, attempts=0))
    if done.rowcount == 0:
        raise NotFound(f"no failed delivery #{message_id}")
