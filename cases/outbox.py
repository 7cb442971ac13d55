"""The outbox: webhooks and feedback queued in the same transaction as the change that causes
them, then delivered by the service's dispatchers (:mod:`cases.service`) with retries.

A message is queued once (``dedup_key``), claimed by one dispatcher at a time, marked delivered
or retried with a doubling wait; after the last attempt it is kept as failed for a supervisor
to retry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from alerts.cases import CaseActionDenied, highest
from alerts.levels import RANK
from cases.db import NotFound
from cases.schema import case_merchants, cases, outbox, warnings
from cases.users import User
from contract.records import Feedback
from models.calendar import SHANGHAI

# -- queueing -----------------------------------------------------------------------------


def queue_pushes(
    conn: Connection, case_id: str, warning: Mapping[str, Any],
    targets: Sequence[tuple[str, Sequence[str]]], *, raised_at: datetime, public_url: str, now: datetime,
) -> None:
    """A webhook to each target that wants the warning's level, once per case and level (a case
    pushed at red is not pushed again at orange)."""
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
        "raised_at": raised_at.isoformat(),
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


def queue_feedback(
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


# -- delivering ---------------------------------------------------------------------------


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
