"""The login's lockout: too many wrong passwords for one username, or too many failed logins from
one client address, within a window, and further attempts are refused for a while (HTTP 429)
without the password even being checked.

Counted in PostgreSQL (table ``login_failures``), not in memory: the desk may run as several
replicas behind one address, and a guesser spread over them must meet one count. A successful
login clears its username's count, not its address's: one's own valid account must not buy more
guesses at someone else's. Keys are HMACs with the session secret (which every replica shares
anyway, or logins would not survive a hop between them), so neither a password mistyped into the
username field nor a client's address is kept readable.

Behind a reverse proxy every request comes from the proxy's address unless uvicorn is told to
trust it (``--proxy-headers --forwarded-allow-ips``); then set the address limit high enough or
the proxy locks everyone out together.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, case, delete, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert

from cases.config import CaseSettings
from cases.schema import login_failures as table


@dataclass(frozen=True)
class LoginThrottle:
    """How many failures, counted over what window, lock out for how long."""

    secret: str
    max_failures: int = 5
    address_max_failures: int = 30
    window: timedelta = timedelta(minutes=15)
    lockout: timedelta = timedelta(minutes=15)

    @classmethod
    def from_settings(cls, cases: CaseSettings) -> LoginThrottle:
        return cls(cases.cookie_secret(), cases.login_max_failures, cases.login_address_max_failures,
                   timedelta(minutes=cases.login_window_minutes), timedelta(minutes=cases.login_lockout_minutes))

    def _key(self, kind: str, value: str) -> str:
        return hmac.new(self.secret.encode(), f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()

    def _limits(self, username: str, address: str) -> list[tuple[str, int]]:
        return [(self._key("user", username), self.max_failures),
                (self._key("addr", address), self.address_max_failures)]

    def locked_until(self, conn: Connection, username: str, address: str, now: datetime) -> datetime | None:
        """The end of the lockout in force for this username or address, if any."""
        keys = [key for key, _ in self._limits(username, address)]
        until: datetime | None = conn.execute(
            select(func.max(table.c.locked_until)).where(table.c.key.in_(keys), table.c.locked_until > now)
        ).scalar_one_or_none()
        return until

    def failed(self, conn: Connection, username: str, address: str, now: datetime) -> datetime | None:
        """Count one failed login; returns the end of the lockout it started, if it did."""
        # Forget what is past its window and not locked: the table stays the size of an attack.
        conn.execute(delete(table).where(
            table.c.window_started_at < now - self.window,
            or_(table.c.locked_until.is_(None), table.c.locked_until <= now),
        ))
        locked = None
        for key, limit in self._limits(username, address):
            # One statement, so concurrent failures on two replicas both count.
            stale = table.c.window_started_at < now - self.window
            upsert = insert(table).values(key=key, failures=1, window_started_at=now, locked_until=None)
            failures = conn.execute(upsert.on_conflict_do_update(
                index_elements=[table.c.key],
                set_={"failures": case((stale, literal(1)), else_=table.c.failures + 1),
                      "window_started_at": case((stale, literal(now, type_=table.c.window_started_at.type)),
                                                else_=table.c.window_started_at)},
            ).returning(table.c.failures)).scalar_one()
            if failures >= limit:
                # Locked, and counting starts afresh when the lockout ends.
                locked = now + self.lockout
                conn.execute(update(table).where(table.c.key == key).values(
                    locked_until=locked, failures=0, window_started_at=now))
        return locked

    def succeeded(self, conn: Connection, username: str) -> None:
        """A right password: the username's count starts again (the address's does not)."""
        # Only reached when no lockout is in force (a locked login is refused before this).
        conn.execute(delete(table).where(table.c.key == self._key("user", username)))


def lockout_message(until: datetime, now: datetime, local: str) -> str:
    """What a locked-out visitor reads (``local``: the lockout's end on the staff's clock).

    >>> from datetime import UTC
    >>> t = datetime(2026, 3, 4, 2, 0, tzinfo=UTC)
    >>> lockout_message(t + timedelta(minutes=14, seconds=5), t, "10:15")
    '登录失败次数过多,已暂时锁定,请于 10:15 后再试(约15分钟)。Too many failed logins: locked for now; try again after 10:15 (about 15 minutes).'
    """
    minutes = max(1, math.ceil((until - now).total_seconds() / 60))
    return (f"登录失败次数过多,已暂时锁定,请于 {local} 后再试(约{minutes}分钟)。"
            f"Too many failed logins: locked for now; try again after {local} (about {minutes} minutes).")
