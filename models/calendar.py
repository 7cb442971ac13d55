"""Event-time days in Shanghai time (UTC+8), the unit in which merchants are scored.

>>> from datetime import datetime
>>> d = local_day(datetime.fromisoformat("2026-03-01T23:30:00+08:00"))
>>> day_date(d).isoformat(), day_date(local_day(datetime.fromisoformat("2026-03-01T16:30:00+00:00"))).isoformat()
('2026-03-01', '2026-03-02')
>>> day_end(d).isoformat()
'2026-03-02T00:00:00+08:00'
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from datetime import date, datetime, time, timedelta, timezone

SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")

# Spring Festival (春节) days: salons and gyms commonly close for the holiday week.
SPRING_FESTIVAL = (
    date(2024, 2, 10), date(2025, 1, 29), date(2026, 2, 17), date(2027, 2, 6), date(2028, 1, 26),
    date(2029, 2, 13), date(2030, 2, 3),
)
HOLIDAY_BEFORE, HOLIDAY_AFTER = 2, 8  # eve and the days around it, the first week of the year


def is_spring_festival_break(day: int) -> bool:
    """Whether ``day`` falls in the Spring Festival break, when many small shops close.

    >>> is_spring_festival_break(date(2026, 2, 20).toordinal()), is_spring_festival_break(date(2026, 3, 20).toordinal())
    (True, False)
    """
    for festival in SPRING_FESTIVAL:
        offset = day - festival.toordinal()
        if -HOLIDAY_BEFORE <= offset <= HOLIDAY_AFTER:
            return True
    return False


# Every break day, sorted, for counting them in a range without walking it day by day.
_BREAK_DAYS = sorted(
    festival.toordinal() + offset for festival in SPRING_FESTIVAL for offset in range(-HOLIDAY_BEFORE, HOLIDAY_AFTER + 1)
)


def working_days_between(first: int, last: int) -> int:
    """Days from ``first`` to ``last`` (both included) outside the Spring Festival break.

    >>> first, last = date(2026, 2, 1).toordinal(), date(2026, 3, 31).toordinal()
    >>> working_days_between(first, last) == sum(not is_spring_festival_break(d) for d in range(first, last + 1))
    True
    >>> working_days_between(first, last), working_days_between(last, first)
    (48, 0)
    """
    if last < first:
        return 0
    breaks = bisect_right(_BREAK_DAYS, last) - bisect_left(_BREAK_DAYS, first)
    return last - first + 1 - breaks


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
