"""Who works the desk: staff accounts, their roles, and how they sign in.

A user signs in to the web inbox with a password, or calls the API with a token (``yj_...``,
shown once by :func:`add_user`; only its hash is stored). Deactivated users are never found.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from alerts.cases import ROLES, CaseActionInvalid
from cases.schema import users

_hasher = PasswordHasher()


@dataclass(frozen=True)
class User:
    username: str
    display_name: str
    role: str


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
