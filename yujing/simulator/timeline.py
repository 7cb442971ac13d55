"""A merchant's scripted behaviour over the window, independent of any randomness in the run.

A scenario is expressed as day-indexed multipliers and switches on top of the merchant's normal
business (calendar seasonality and promotions are applied separately by the engine): how many
cards it sells and with which bonus, whether it still honours visits and refunds, whether it is
serving at all, extra complaint rates per category, how it reports custody, and scheduled
profile changes (registry changes, status changes). Healthy merchants leave every field at its
default, so they share nothing but ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

BASE_REFUND_HONOUR = 0.93

_DEFAULTS: dict[str, float] = {
    "sales_mult": 1.0,
    "deal_bonus": 0.0,
    "deal_share": 0.0,
    "long_share": 0.0,
    "over_cap_share": 0.0,
    "visit_mult": 1.0,
    "honour": 1.0,
    "refund_mult": 1.0,
    "refund_honour": BASE_REFUND_HONOUR,
    "complaint_scale": 1.0,
}
#: Complaints that say the money is at risk; the rest are everyday grievances.
SEVERE_COMPLAINTS: tuple[str, ...] = ("refund_refused", "store_closed", "service_unavailable")
MILD_COMPLAINTS: dict[str, float] = {
    "service_quality": 0.4, "contract_dispute": 0.35, "false_advertising": 0.1, "other": 0.15,
}


@dataclass(frozen=True)
class Stranded:
    """How card holders react once the store is gone: who complains, how soon, about what."""

    share: float  # share of holders with a balance who complain
    mean_delay: float  # days after the collapse
    categories: dict[str, float]


@dataclass
class Timeline:
    """Day-indexed scenario overlay; list fields are ``None`` when at their default."""

    days: int
    active_from: int = -10_000  # first day the merchant exists in the data (pre-existing: far past)
    opened_day: int | None = None  # opening day inside the window (new openings)
    collapse_day: int | None = None
    signal_start: int | None = None
    sales_mult: list[float] | None = None
    deal_bonus: list[float] | None = None  # bonus depth of scenario deals (0.5 = 充1000送500)
    deal_share: list[float] | None = None  # share of sales that are such deals
    long_share: list[float] | None = None  # share of sales that are 5-/10-year or 终身 cards
    over_cap_share: list[float] | None = None  # share of sales above the caps
    visit_mult: list[float] | None = None  # how often holders come (decline, rush to use up)
    honour: list[float] | None = None  # probability a visit is served (redemption recorded)
    refund_mult: list[float] | None = None  # refund requests relative to normal
    refund_honour: list[float] | None = None  # probability a refund request is paid
    complaint_scale: list[float] | None = None  # scales complaints of refused visits/refunds
    selling: list[bool] | None = None  # None: selling whenever active and not collapsed
    serving: list[bool] | None = None  # None: serving whenever active and not collapsed
    complaint_rates: dict[str, list[float]] = field(default_factory=dict)  # extra per day
    complaint_channels: dict[str, float] | None = None
    custody_modes: list[tuple[int, str]] = field(default_factory=list)  # (from day, mode)
    profile_changes: list[tuple[int, int, dict[str, Any]]] = field(default_factory=list)
    stranded: Stranded | None = None
    season: list[float] | None = None  # replaces the industry curve (indexed like the calendar)
    promo_appetite: float | None = None  # overrides how often the merchant joins promotions
    deals_beyond_caps: bool = False  # its scenario deals credit past the gym caps (a distressed push)
    notes: dict[str, Any] = field(default_factory=dict)  # scenario parameters, for debugging
    episode: tuple[int, int] | None = None  # a look-alike's or quirk's days, for the labels
    tags: list[str] = field(default_factory=list)  # label notes: registry_change, fake_renovation...
    store_moves: list[tuple[int, str, str]] = field(default_factory=list)  # (day, closed, sister)

    def custody_mode(self, day: int) -> str:
        mode = "compliant"
        for first, name in self.custody_modes:
            if day >= first:
                mode = name
        return mode


class TimelineBuilder:
    """Shapes the day-indexed arrays with numpy, then freezes them into a :class:`Timeline`."""

    def __init__(self, days: int) -> None:
        self.days = days
        self._arrays: dict[str, np.ndarray] = {}
        self._selling: np.ndarray | None = None
        self._serving: np.ndarray | None = None
        self._complaints: dict[str, np.ndarray] = {}
        self.deals_beyond_caps = False  # see Timeline.deals_beyond_caps

    def _array(self, name: str) -> np.ndarray:
        if name not in self._arrays:
            self._arrays[name] = np.full(self.days, _DEFAULTS[name], dtype=float)
        return self._arrays[name]

    def _span(self, first: int, last: int) -> tuple[int, int]:
        return max(first, 0), min(last + 1, self.days)

    def ramp(
        self, name: str, first: int, last: int, begin: float, end: float, *, multiply: bool = False,
        power: float = 1.0,
    ) -> None:
        """Ramp from ``begin`` (at ``first``) to ``end`` (at ``last``), both inclusive: linear, or
        with ``power`` > 1 most of the change near ``last``."""
        array = self._array(name)
        lo, hi = self._span(first, last)
        if lo >= hi:
            return
        steps = np.arange(lo, hi, dtype=float)
        width = max(last - first, 1)
        values = begin + (end - begin) * ((steps - first) / width) ** power
        if multiply:
            array[lo:hi] *= values
        else:
            array[lo:hi] = values

    def hold(self, name: str, first: int, last: int, value: float, *, multiply: bool = False) -> None:
        self.ramp(name, first, last, value, value, multiply=multiply)

    def complaints(self, category: str, first: int, last: int, begin: float, end: float) -> None:
        """Add a ramp of extra complaints per day for one category."""
        array = self._complaints.setdefault(category, np.zeros(self.days))
        lo, hi = self._span(first, last)
        if lo >= hi:
            return
        steps = np.arange(lo, hi, dtype=float)
        array[lo:hi] += begin + (end - begin) * (steps - first) / max(last - first, 1)

    def reshape_complaints(self, before: int, intensity: float, severe_share: float) -> None:
        """Scale the extra complaints before day ``before`` by ``intensity``, re-split so that
        ``severe_share`` of them are severe (in the scripted proportions) and the rest mild.

        >>> b = TimelineBuilder(10)
        >>> b.complaints("refund_refused", 0, 9, 1.0, 1.0)
        >>> b.reshape_complaints(5, 2.0, 0.25)
        >>> t = b.build().complaint_rates
        >>> t["refund_refused"][4], t["refund_refused"][5], round(t["service_quality"][4], 2)
        (0.5, 1.0, 0.6)
        """
        hi = min(max(before, 0), self.days)
        if hi == 0 or not self._complaints:
            return
        total = sum(a[:hi] for a in self._complaints.values()) * intensity
        severe = {c: self._complaints.setdefault(c, np.zeros(self.days)) for c in SEVERE_COMPLAINTS}
        severe_total = sum(a[:hi] for a in severe.values())
        fallback = severe_total <= 0.0  # no severe script: they go to "service unavailable"
        for category, array in severe.items():
            weight = np.divide(array[:hi], severe_total, out=np.zeros(hi), where=~fallback)
            if category == "service_unavailable":
                weight[fallback] = 1.0
            array[:hi] = total * severe_share * weight
        for category, weight in MILD_COMPLAINTS.items():
            self._complaints.setdefault(category, np.zeros(self.days))[:hi] = (
                total * (1.0 - severe_share) * weight)

    def stop_selling(self, first: int, last: int | None = None) -> None:
        if self._selling is None:
            self._selling = np.ones(self.days, dtype=bool)
        lo, hi = self._span(first, self.days if last is None else last)
        self._selling[lo:hi] = False

    def stop_serving(self, first: int, last: int | None = None) -> None:
        if self._serving is None:
            self._serving = np.ones(self.days, dtype=bool)
        lo, hi = self._span(first, self.days if last is None else last)
        self._serving[lo:hi] = False

    def build(self, **fields: Any) -> Timeline:
        lists = {name: array.tolist() for name, array in self._arrays.items()}
        timeline = Timeline(days=self.days, **lists, **fields)
        timeline.deals_beyond_caps = self.deals_beyond_caps
        if self._selling is not None:
            timeline.selling = self._selling.tolist()
        if self._serving is not None:
            timeline.serving = self._serving.tolist()
        timeline.complaint_rates = {c: a.tolist() for c, a in self._complaints.items()}
        return timeline
