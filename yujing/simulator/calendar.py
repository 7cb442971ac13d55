"""Calendar of the simulation: day indexes, timestamps, seasonality and promotions.

Day ``0`` is ``config.start``; negative days are the history before the window (used for the
opening card book). All times are Shanghai local time (+08:00, no daylight saving).

Modelling choices:

* Yearly seasonality is a per-industry monthly curve, interpolated between mid-months, then
  Spring Festival effects on top: salons and hair salons are busy in the three weeks before it,
  nearly everyone closes from New Year's Eve for about a week, hair salons stay quiet during the
  first lunar month (正月不剃头), gyms are quiet in the summer holidays and over the festival and
  busy in January and March-May.
* Weekly seasonality: salons are busiest at weekends; gyms on weekday evenings.
* Promotion windows (classic world: 618, Double 11, pre-Spring-Festival, Women's Day for beauty,
  New Year for gyms; a drawn world has its own calendar, lengths and boosts) raise card sales and
  bonus depth for the merchants taking part. The complaint peak's height is the world's too.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from .assumptions import CLASSIC, WorldAssumptions

INDUSTRIES: tuple[str, ...] = ("beauty", "hairdressing", "fitness", "other")

#: Lunar New Year's Day (春节) by Gregorian year.
SPRING_FESTIVAL: dict[int, date] = {
    2023: date(2023, 1, 22),
    2024: date(2024, 2, 10),
    2025: date(2025, 1, 29),
    2026: date(2026, 2, 17),
    2027: date(2027, 2, 6),
    2028: date(2028, 1, 26),
    2029: date(2029, 2, 13),
    2030: date(2030, 2, 3),
    2031: date(2031, 1, 23),
    2032: date(2032, 2, 11),
    2033: date(2033, 1, 31),
    2034: date(2034, 2, 19),
    2035: date(2035, 2, 8),
}

#: Monthly activity (Jan..Dec) per industry, 1.0 = an average month.
MONTHLY_ACTIVITY: dict[str, tuple[float, ...]] = {
    "beauty": (1.05, 0.95, 1.05, 1.0, 1.0, 1.0, 0.9, 0.9, 1.0, 1.05, 1.05, 1.1),
    "hairdressing": (1.05, 0.9, 1.0, 1.0, 1.0, 1.05, 1.05, 1.0, 1.0, 1.0, 0.95, 1.05),
    "fitness": (1.15, 0.9, 1.2, 1.25, 1.2, 1.05, 0.78, 0.75, 1.0, 0.95, 0.95, 0.85),
    "other": (1.0, 0.95, 1.0, 1.0, 1.0, 1.0, 0.95, 0.95, 1.0, 1.0, 1.0, 1.05),
}

#: Relative weight of Monday..Sunday for visits and sales.
WEEKDAY_ACTIVITY: dict[str, tuple[float, ...]] = {
    "beauty": (0.8, 0.85, 0.9, 0.9, 1.05, 1.3, 1.25),
    "hairdressing": (0.75, 0.85, 0.9, 0.9, 1.05, 1.35, 1.3),
    "fitness": (1.1, 1.05, 1.0, 1.0, 0.85, 1.05, 0.95),
    "other": (0.85, 0.9, 0.9, 0.95, 1.05, 1.2, 1.15),
}

#: Relative weight of each opening hour (hour -> weight) for services and sales.
HOURLY_ACTIVITY: dict[str, dict[int, float]] = {
    "beauty": {10: 0.6, 11: 0.8, 12: 0.7, 13: 0.9, 14: 1.0, 15: 1.0, 16: 1.0, 17: 0.9,
               18: 0.8, 19: 0.9, 20: 0.6},
    "hairdressing": {9: 0.4, 10: 0.7, 11: 0.8, 12: 0.6, 13: 0.8, 14: 0.9, 15: 0.9, 16: 0.9,
                     17: 0.9, 18: 1.0, 19: 1.1, 20: 0.9, 21: 0.4},
    "fitness": {6: 0.3, 7: 0.6, 8: 0.4, 9: 0.3, 10: 0.3, 11: 0.3, 12: 0.5, 13: 0.3, 14: 0.3,
                15: 0.3, 16: 0.4, 17: 0.8, 18: 1.2, 19: 1.3, 20: 1.1, 21: 0.7, 22: 0.2},
    "other": {10: 0.6, 11: 0.7, 12: 0.6, 13: 0.8, 14: 0.9, 15: 1.0, 16: 1.0, 17: 0.9,
              18: 0.9, 19: 1.0, 20: 0.8, 21: 0.5},
}
#: Hotline and online complaints: mostly office hours, some in the evening.
COMPLAINT_HOURS: dict[int, float] = {
    8: 0.5, 9: 1.0, 10: 1.1, 11: 1.0, 12: 0.6, 13: 0.9, 14: 1.0, 15: 1.0, 16: 0.9, 17: 0.7,
    18: 0.4, 19: 0.4, 20: 0.4, 21: 0.3, 22: 0.2,
}

#: Seconds of the day rendered once: "HH:MM:SS+08:00" (timestamps are built by concatenation).
CLOCK: tuple[str, ...] = tuple(
    f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}+08:00" for s in range(86_400)
)
_EPOCH_OFFSET_S = 8 * 3600


class HourSampler:
    """Draws a second of the day from an hourly weight profile."""

    __slots__ = ("_cumulative", "_hours")

    def __init__(self, weights: dict[int, float]) -> None:
        self._hours = sorted(weights)
        total = 0.0
        cumulative = []
        for hour in self._hours:
            total += weights[hour]
            cumulative.append(total)
        self._cumulative = [c / total for c in cumulative]

    def second(self, rng: random.Random, after: int = -1) -> int:
        """A second of the day, strictly later than ``after`` when possible."""
        slot = bisect.bisect_left(self._cumulative, rng.random())
        sec = self._hours[min(slot, len(self._hours) - 1)] * 3600 + int(rng.random() * 3600)
        if sec <= after:
            sec = min(86_399, after + 1 + rng.randrange(1800))
        return sec


SERVICE_HOURS = {industry: HourSampler(w) for industry, w in HOURLY_ACTIVITY.items()}
COMPLAINT_SAMPLER = HourSampler(COMPLAINT_HOURS)


@dataclass(frozen=True)
class Promotion:
    """One promotion window of one year, for some industries."""

    name: str
    first: int  # day index, inclusive
    last: int  # day index, inclusive
    industries: tuple[str, ...]
    peak_boost: float  # sales multiplier at the peak (the last day)


class SimCalendar:
    """Day indexes, timestamps and per-industry seasonality for ``[-history, days + margin)``."""

    def __init__(
        self,
        start: date,
        days: int,
        history: int = 730,
        margin: int = 400,
        world: WorldAssumptions = CLASSIC,
    ) -> None:
        self.start = start
        self.world = world
        self.days = days
        self.history = history
        self.offset = history  # list position of day 0
        span = history + days + margin
        self.dates: list[date] = [start + timedelta(days=i - history) for i in range(span)]
        self.day_prefix: list[str] = [d.isoformat() + "T" for d in self.dates]
        self.epoch_days: list[int] = [d.toordinal() - 719_163 for d in self.dates]
        self.weekday: list[int] = [d.weekday() for d in self.dates]
        self.spring_festivals: list[int] = [
            self.index(sf)
            for year, sf in sorted(SPRING_FESTIVAL.items())
            if self.dates[0] - timedelta(days=60) <= sf <= self.dates[-1] + timedelta(days=60)
        ]
        self.activity: dict[str, list[float]] = {i: self._activity(i) for i in INDUSTRIES}
        # Complaints peak around Spring Festival (closures, refunds before the holiday).
        self._complaint_season = [1.0] * span
        for sf in self.spring_festivals:
            for i in range(sf - 20 + self.offset, sf + 21 + self.offset):
                if 0 <= i < span:
                    self._complaint_season[i] = world.complaints.spring_festival_peak
        self.promotions: list[Promotion] = self._promotions()
        # Per industry, the promotion (index into self.promotions) running on each day, or -1.
        self.promotion_on: dict[str, list[int]] = {}
        for industry in INDUSTRIES:
            running = [-1] * span
            for number, promo in enumerate(self.promotions):
                if industry in promo.industries:
                    for i in range(promo.first, promo.last + 1):
                        if 0 <= i + self.offset < span:
                            running[i + self.offset] = number
            self.promotion_on[industry] = running

    # -- indexes and time -------------------------------------------------------------------
    def index(self, day: date) -> int:
        return (day - self.start).days

    def date_of(self, index: int) -> date:
        return self.start + timedelta(days=index)

    def timestamp(self, index: int, second: int) -> str:
        """RFC 3339 local timestamp of ``second`` on day ``index``."""
        return self.day_prefix[index + self.offset] + CLOCK[second]

    def epoch_ms(self, index: int, second: int) -> int:
        return ((self.epoch_days[index + self.offset] * 86_400) + second - _EPOCH_OFFSET_S) * 1000

    def weekday_of(self, index: int) -> int:
        return self.weekday[index + self.offset]

    def month_of(self, index: int) -> int:
        return self.dates[index + self.offset].month

    # -- seasonality --------------------------------------------------------------------------
    def _monthly_curve(self, monthly: tuple[float, ...]) -> np.ndarray:
        """Interpolate a Jan..Dec curve between mid-months, wrapping around the year."""
        position = np.array(
            [d.month - 1 + (d.day - 0.5) / 31.0 - 0.5 for d in self.dates], dtype=float
        )
        knots = np.arange(-1, 13, dtype=float)
        values = np.array([monthly[11], *monthly, monthly[0]], dtype=float)
        return np.interp(position, knots, values)

    def _activity(self, industry: str) -> list[float]:
        curve = self._monthly_curve(MONTHLY_ACTIVITY[industry])
        for sf in self.spring_festivals:
            lo = sf + self.offset
            pre = {"beauty": 1.35, "hairdressing": 1.6, "fitness": 0.95, "other": 1.15}[industry]
            self._scale(curve, lo - 21, lo - 2, pre)
            holiday = {"beauty": 0.3, "hairdressing": 0.35, "fitness": 0.4, "other": 0.35}[industry]
            self._scale(curve, lo - 1, lo + 6, holiday)
            if industry == "hairdressing":
                self._scale(curve, lo + 7, lo + 28, 0.65)  # 正月不剃头
            elif industry == "fitness":
                self._scale(curve, lo + 7, lo + 14, 0.85)
        for i, d in enumerate(self.dates):  # National Day golden week
            if d.month == 10 and d.day <= 7:
                curve[i] *= 0.7 if industry == "fitness" else 1.1
        return curve.tolist()

    @staticmethod
    def _scale(curve: np.ndarray, first: int, last: int, factor: float) -> None:
        lo, hi = max(first, 0), min(last + 1, len(curve))
        if lo < hi:
            curve[lo:hi] *= factor

    def monthly_profile(self, monthly: tuple[float, ...]) -> list[float]:
        """A custom monthly curve over the calendar's span (e.g. a seasonal gym)."""
        return self._monthly_curve(monthly).tolist()

    # -- promotions ---------------------------------------------------------------------------
    def _promotions(self) -> list[Promotion]:
        """The world's yearly promotion windows, for every year of the span."""
        promos: list[Promotion] = []
        for year in range(self.dates[0].year, self.dates[-1].year + 1):
            for window in self.world.promotions.windows:
                if window.spring_offset is not None:
                    sf = SPRING_FESTIVAL.get(year)
                    if sf is None:
                        continue
                    last = sf + timedelta(days=window.spring_offset)
                else:
                    last = date(year, window.month, min(window.day, 28 if window.month == 2 else 30
                                                        if window.month in (4, 6, 9, 11) else 31))
                first = last - timedelta(days=window.length - 1)
                promos.append(Promotion(window.name, self.index(first), self.index(last),
                                        window.industries, window.boost))
        return promos

    def complaint_season(self, index: int) -> float:
        return self._complaint_season[index + self.offset]

    def promotion(self, industry: str, index: int) -> int:
        return self.promotion_on[industry][index + self.offset]
