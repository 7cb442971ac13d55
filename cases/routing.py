"""Where a new case goes: routing rules say who gets it, silences say whether it opens at all.

Supervisors set both. A routing rule gives the new cases of a town and industry to a handler
(the most specific rule wins); a silence mutes a merchant or a chain for a while, at most 90 days,
with a reason. Warnings are still recorded while muted; :func:`cases.store.open_cases_after_silences`
opens the case if the merchant is still at risk when the silence ends.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, insert, or_, select, update

from alerts.cases import CaseActionDenied, CaseActionInvalid
from alerts.policy import Silence
from cases.db import NotFound
from cases.schema import routing_rules, silences, users
from cases.users import User, get_user

# -- silences -----------------------------------------------------------------------------


def active_silences(conn: Connection, merchant_id: str, chain_id: str | None, now: datetime) -> list[Silence]:
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



# -- routing rules ------------------------------------------------------------------------


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

