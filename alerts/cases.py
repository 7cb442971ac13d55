"""Cases: the life of a case, who may do what to it, and its response deadline.

A case is what consumer-protection staff work on: one per merchant (or per chain) while open,
collecting every later warning. Its life::

    new ──take/assign──> assigned ──start──> in_progress ──resolve──> resolved ──close──> closed
     └───────────take──────────────────────────┘   ^                     │              │
                                                   └──────reopen─────────┴──────────────┘

Roles: a *viewer* (regulators) reads; a *handler* works the cases assigned to them and may take
an unassigned one; a *supervisor* does everything, and alone assigns, closes (the second pair
of eyes on a resolution), reopens and silences.

>>> check_action("handler", "resolve", assignee="wang", actor="wang", status="in_progress")
'resolved'
>>> check_action("handler", "resolve", assignee="li", actor="wang", status="in_progress")
Traceback (most recent call last):
...
alerts.cases.CaseActionDenied: handler wang may only work cases assigned to them (this one is li's)
>>> check_action("viewer", "note", assignee=None, actor="zhao", status="new")
Traceback (most recent call last):
...
alerts.cases.CaseActionDenied: role viewer may not note cases
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Literal

from alerts.levels import LEVELS, RANK
from models.calendar import SHANGHAI

Role = Literal["viewer", "handler", "supervisor"]
ROLES: tuple[Role, ...] = ("viewer", "handler", "supervisor")
STATUSES = ("new", "assigned", "in_progress", "resolved", "closed")
OPEN_STATUSES = frozenset({"new", "assigned", "in_progress"})
DISPOSITIONS = ("confirmed_risk", "false_alarm", "rectified", "referred_to_enforcement")

# action -> (statuses it applies to, status after it; None keeps the status)
ACTIONS: dict[str, tuple[frozenset[str], str | None]] = {
    "take": (frozenset({"new", "assigned"}), "in_progress"),
    "assign": (frozenset({"new", "assigned", "in_progress"}), "assigned"),
    "start": (frozenset({"assigned"}), "in_progress"),
    "note": (frozenset(STATUSES) - {"closed"}, None),
    "resolve": (frozenset({"new", "assigned", "in_progress"}), "resolved"),
    "close": (frozenset({"resolved"}), "closed"),
    "reopen": (frozenset({"resolved", "closed"}), "in_progress"),
}
# Who may do each action at all; handlers are further limited to their own cases.
ALLOWED: dict[str, frozenset[str]] = {
    "take": frozenset({"handler", "supervisor"}),
    "assign": frozenset({"supervisor"}),
    "start": frozenset({"handler", "supervisor"}),
    "note": frozenset({"handler", "supervisor"}),
    "resolve": frozenset({"handler", "supervisor"}),
    "close": frozenset({"supervisor"}),
    "reopen": frozenset({"supervisor"}),
}


class CaseActionDenied(Exception):
    """The actor's role or relation to the case does not allow the action."""


class CaseActionInvalid(Exception):
    """The action does not apply to a case in this status (e.g. resolving a closed case)."""


def check_action(
    role: str, action: str, *, assignee: str | None, actor: str, status: str
) -> str:
    """Check that ``actor`` (with ``role``) may do ``action`` now; returns the status after it.

    >>> check_action("handler", "take", assignee=None, actor="wang", status="new")
    'in_progress'
    >>> check_action("supervisor", "note", assignee="li", actor="chen", status="resolved")
    'resolved'
    >>> check_action("supervisor", "resolve", assignee=None, actor="chen", status="closed")
    Traceback (most recent call last):
    ...
    alerts.cases.CaseActionInvalid: cannot resolve a case that is closed
    """
    if action not in ACTIONS:
        raise CaseActionInvalid(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    if role not in ALLOWED[action]:
        raise CaseActionDenied(f"role {role} may not {action} cases")
    if role == "handler" and action != "take" and assignee != actor:
        owner = f"this one is {assignee}'s" if assignee else "this one is unassigned; take it first"
        raise CaseActionDenied(f"handler {actor} may only work cases assigned to them ({owner})")
    if role == "handler" and action == "take" and assignee not in (None, actor):
        raise CaseActionDenied(f"case is assigned to {assignee}; only a supervisor can reassign it")
    applies_to, after = ACTIONS[action]
    if status not in applies_to:
        raise CaseActionInvalid(f"cannot {action} a case that is {status}")
    return after or status


def validate_disposition(disposition: str) -> str:
    """
    >>> validate_disposition("false_alarm")
    'false_alarm'
    >>> validate_disposition("fine")
    Traceback (most recent call last):
    ...
    alerts.cases.CaseActionInvalid: unknown disposition 'fine'; one of confirmed_risk, false_alarm, rectified, referred_to_enforcement
    """
    if disposition not in DISPOSITIONS:
        raise CaseActionInvalid(f"unknown disposition {disposition!r}; one of {', '.join(DISPOSITIONS)}")
    return disposition


# -- response deadlines in working hours ---------------------------------------------------


def _official_workday(day: date) -> bool | None:
    """China's official calendar (holidays and make-up working days, 调休) where it is known."""
    try:
        import chinese_calendar
    except ImportError:  # pragma: no cover - a declared dependency
        return None
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:  # a year the library has no data for yet
        return None


@dataclass(frozen=True)
class WorkingCalendar:
    """Office hours in Shanghai time: weekdays, two sessions, China's public holidays.

    Public holidays and make-up working days come from the ``chinesecalendar`` package for the
    years it knows; ``holidays`` / ``extra_workdays`` add the district's own or a year it lacks.

    >>> cal = WorkingCalendar()
    >>> cal.is_workday(date(2026, 10, 1)), cal.is_workday(date(2026, 10, 9))  # National Day; a Friday
    (False, True)
    >>> friday_4pm = datetime(2026, 3, 6, 16, 0, tzinfo=SHANGHAI)
    >>> cal.add_working_hours(friday_4pm, 4).isoformat()  # 2 h on Friday, 2 h on Monday
    '2026-03-09T11:00:00+08:00'
    """

    sessions: tuple[tuple[time, time], ...] = ((time(9, 0), time(12, 0)), (time(13, 30), time(18, 0)))
    holidays: frozenset[date] = frozenset()
    extra_workdays: frozenset[date] = frozenset()

    def is_workday(self, day: date) -> bool:
        if day in self.holidays:
            return False
        if day in self.extra_workdays:
            return True
        official = _official_workday(day)
        return official if official is not None else day.weekday() < 5

    def add_working_hours(self, start: datetime, hours: float) -> datetime:
        """The moment ``hours`` of office time after ``start`` (counting from the next session)."""
        local = start.astimezone(SHANGHAI)
        remaining = timedelta(hours=hours)
        day = local.date()
        for _ in range(3660):  # ten years of days: a bound, never reached with sane settings
            if self.is_workday(day):
                for opens, closes in self.sessions:
                    begin = max(datetime.combine(day, opens, SHANGHAI), local)
                    end = datetime.combine(day, closes, SHANGHAI)
                    if begin >= end:
                        continue
                    if begin + remaining <= end:
                        return begin + remaining
                    remaining -= end - begin
            day += timedelta(days=1)
        raise ValueError("working calendar has no working hours")


@dataclass(frozen=True)
class ResponsePolicy:
    """How fast a case must be taken up, by its level, in working hours.

    >>> policy = ResponsePolicy()
    >>> opened = datetime(2026, 3, 4, 10, 0, tzinfo=SHANGHAI)  # a Wednesday
    >>> policy.due_at("red", opened).isoformat(), policy.due_at("yellow", opened).isoformat()
    ('2026-03-04T15:30:00+08:00', '2026-03-09T10:00:00+08:00')
    """

    working_hours: dict[str, float] = field(
        default_factory=lambda: {"red": 4.0, "orange": 7.5, "yellow": 22.5, "blue": 75.0}
    )
    calendar: WorkingCalendar = field(default_factory=WorkingCalendar)

    def due_at(self, level: str, since: datetime) -> datetime:
        return self.calendar.add_working_hours(since, self.working_hours[level])


def highest(levels: Iterable[str | None]) -> str | None:
    """The most severe of some levels (None when none is set).

    >>> highest(["yellow", None, "orange"]), highest([None])
    ('orange', None)
    """
    ranked = [level for level in levels if level]
    return max(ranked, key=RANK.__getitem__) if ranked else None


__all__ = [
    "ACTIONS", "DISPOSITIONS", "LEVELS", "OPEN_STATUSES", "ROLES", "STATUSES",
    "CaseActionDenied", "CaseActionInvalid", "ResponsePolicy", "WorkingCalendar",
    "check_action", "highest", "validate_disposition",
]
