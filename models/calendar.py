"""Event-time days in Shanghai time (UTC+8), the unit in which merchants are scored.

>>> from datetime import datetime
>>> d = local_day(datetime.fromisoformat("2026-03-01T23:30:00+08:00"))
>>> day_date(d).isoformat(), day_date(local_day(datetime.fromisoformat("2026-03-01T16:30:00+00:00"))).isoformat()
('2026-03-01', '2026-03-02')
>>> day_end(d).isoformat()
'2026-03-02T00:00:00+08:00'
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")


def local_day(moment: datetime) -> int:
    """Ordinal of the Shanghai calendar day that ``moment`` (timezone-aware) falls on."""
    return moment.astimezone(SHANGHAI).date().toordinal()


def day_date(day: int) -> date:
    return date.fromordinal(day)


def day_start(day: int) -> datetime:
    return datetime.combine(date.fromordinal(day), time(), SHANGHAI)


def day_end(day: int) -> datetime:
    """The instant a day ends (exclusive): midnight of the next day."""
    return day_start(day + 1)
