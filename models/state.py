"""Per-merchant state kept in event time.

Events are added to the bucket of their own day (:class:`DayTotals`). Because bucket updates
are sums, the order in which events of one day arrive does not matter; a day is folded into the
merchant's :class:`MerchantState` once the watermark has passed it, which makes live processing
and replays give the same result.

>>> from datetime import datetime
>>> day = DayTotals()
>>> day.add_transaction("card_sale", 1000.0, 1500.0, datetime.fromisoformat("2026-03-01T10:00:00+08:00"))
>>> day.add_transaction("redemption", 200.0, 200.0, datetime.fromisoformat("2026-03-01T11:00:00+08:00"))
>>> state = MerchantState("m1", partition=0, first_day=739311)
>>> _ = state.fold(739311, day)
>>> state.prepaid_balance, state.history[-1].deep_bonus_paid, state.last_redemption_day
(1300.0, 1000.0, 739311)
"""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass, field, fields
from datetime import date, datetime, time, timedelta
from typing import NamedTuple

from models.calendar import SHANGHAI

HISTORY_DAYS = 180
RECENT_ID_DAYS = 35
DEEP_BONUS_RATIO = 1.3  # stored value >= 1.3 x paid: "充1000送300" and deeper
NAMED_CARD_CAP = 5000.0  # MOFCOM 2012: named cards <= 5,000 yuan
GYM_PACKAGE_CAP = 20000.0  # Shanghai gyms from 2025-03: class packages <= 20,000 yuan
CUSTODY_REPORT_DAYS = 180  # custody_drawdown compares with the reports of about half a year
CUSTODY_REPORTS_KEPT = 8  # monthly reports of 180 days and a few corrections; bounds the state
SEVERE_COMPLAINTS = frozenset({"refund_refused", "store_closed", "service_unavailable"})


def id_digest(event_id: str) -> int:
    """The 64-bit digest an event id is remembered by once its day is closed: 8 bytes however
    long the id (the state's size is what the worker's changelog carries every day). Two
    different ids share a digest with probability 2**-64 per pair: with the ~1,500 ids the
    busiest merchant keeps, a new event is taken for a duplicate about once in 10**16 events.

    >>> id_digest("tx-91310120MARQ8FFK38-0000001")
    2666254388554605503
    >>> id_digest("tx-91310120MARQ8FFK38-0000002") != id_digest("tx-91310120MARQ8FFK38-0000001")
    True
    """
    return int.from_bytes(hashlib.blake2b(event_id.encode("utf-8"), digest_size=8).digest(), "little")


@dataclass
class DayTotals:
    """What happened at one merchant on one event-time day (mutable until the day is closed)."""

    sales_paid: float = 0.0
    sales_face: float = 0.0
    deep_bonus_paid: float = 0.0
    card_sales: int = 0
    over_cap_sales: int = 0
    over_gym_cap_sales: int = 0
    redeemed: float = 0.0
    redemptions: int = 0
    refunded_paid: float = 0.0
    refunded_face: float = 0.0
    refunds: int = 0
    complaints: dict[str, int] = field(default_factory=dict)
    complaint_amount: float = 0.0
    last_event_at: datetime | None = None
    # The day's events by models.state.id_digest: the bucket is changelogged at every event, and
    # 8-byte digests weigh a third of the ids. (A bucket written before may hold the ids.)
    event_ids: set[int | str] = field(default_factory=set)

    def _touch(self, occurred_at: datetime) -> None:
        if self.last_event_at is None or occurred_at > self.last_event_at:
            self.last_event_at = occurred_at

    def add_transaction(
        self, kind: str, amount: float, stored_value: float, occurred_at: datetime
    ) -> None:
        if kind == "card_sale":
            self.sales_paid += amount
            self.sales_face += stored_value
            self.card_sales += 1
            if amount > 0 and stored_value >= DEEP_BONUS_RATIO * amount:
                self.deep_bonus_paid += amount
            # Caps apply to the money a consumer puts at risk: the price paid, not the bonus.
            if amount > NAMED_CARD_CAP:
                self.over_cap_sales += 1
            if amount > GYM_PACKAGE_CAP:
                self.over_gym_cap_sales += 1
        elif kind == "redemption":
            self.redeemed += amount
            self.redemptions += 1
        elif kind == "refund":
            self.refunded_paid += amount
            self.refunded_face += stored_value
            self.refunds += 1
        self._touch(occurred_at)

    def add_complaint(self, category: str, amount: float | None, occurred_at: datetime) -> None:
        self.complaints[category] = self.complaints.get(category, 0) + 1
        self.complaint_amount += amount or 0.0
        self._touch(occurred_at)


def merge_day_totals(into: DayTotals, other: DayTotals) -> DayTotals:
    """``into`` with ``other``'s events added (both days' events counted as one day's).

    >>> from datetime import UTC
    >>> a, b = DayTotals(), DayTotals()
    >>> a.add_complaint("refund_refused", 100.0, datetime(2025, 3, 1, tzinfo=UTC))
    >>> b.add_complaint("refund_refused", None, datetime(2025, 3, 2, tzinfo=UTC))
    >>> b.add_transaction("redemption", 50.0, 50.0, datetime(2025, 3, 2, tzinfo=UTC))
    >>> b.event_ids.add("e2")
    >>> merged = merge_day_totals(a, b)
    >>> merged.complaints, merged.redeemed, merged.redemptions, merged.event_ids, merged.last_event_at.day
    ({'refund_refused': 2}, 50.0, 1, {'e2'}, 2)
    """
    for item in fields(DayTotals):
        name, mine, theirs = item.name, getattr(into, item.name), getattr(other, item.name)
        if name == "complaints":
            for category, count in theirs.items():
                mine[category] = mine.get(category, 0) + count
        elif name == "event_ids":
            mine |= theirs
        elif name == "last_event_at":
            if theirs is not None and (mine is None or theirs > mine):
                into.last_event_at = theirs
        else:
            setattr(into, name, mine + theirs)
    return into


class DaySummary(NamedTuple):
    """A closed day, as kept in the merchant's rolling history."""

    day: int
    sales_paid: float
    sales_face: float
    deep_bonus_paid: float
    card_sales: int
    over_cap_sales: int
    over_gym_cap_sales: int
    redeemed: float
    redemptions: int
    refunded_paid: float
    refunds: int
    complaints: int
    severe_complaints: int
    refund_refused_complaints: int
    # "Store closed" complaints on their own: consumers saying the door is shut (default: states
    # pickled before this field read it as 0).
    closure_complaints: int = 0
    # Stored value taken off the card book by the day's refunds (the balance moves by
    # sales_face - redeemed - refunded_face): the balance of any kept day can be told again.
    refunded_face: float = 0.0


class ProfileVersion(NamedTuple):
    """One record of the merchant topic, reduced to what scoring needs.

    ``reported_at``: for a version read after its day was closed (counted from the first open
    day, ``updated_at``), the time it was registered: a custody report keeps its own day.
    """

    updated_at: datetime
    name: str
    industry: str
    district: str
    chain_id: str | None
    opened_on: int
    status: str
    custody_balance: float | None
    legal_representative: str | None
    registered_capital: float | None
    reported_at: datetime | None = None


@dataclass
class MerchantState:
    """Everything yujing remembers about one merchant, as of its last closed day."""

    merchant_id: str
    partition: int
    first_day: int
    last_closed_day: int | None = None
    prepaid_balance: float = 0.0
    last_redemption_day: int | None = None
    # Trading is observed from the first redemption on: before it the platform shows only a card
    # book being built (pre-opening sales, or cards carried over from before yujing's data).
    first_redemption_day: int | None = None
    history: deque[DaySummary] = field(default_factory=lambda: deque(maxlen=HISTORY_DAYS))
    profiles: list[ProfileVersion] = field(default_factory=list)
    # Ids of the events of the last RECENT_ID_DAYS closed days (id_digest -> day folded), to
    # recognise a re-delivered event after its day bucket is gone.
    recent_ids: dict[int, int] = field(default_factory=dict)
    # Last custody report, judged against the balance on the day it was made: (day, custody,
    # prepaid balance that day).
    custody_report: tuple[int, float, float] | None = None
    custody_seen_through: datetime | None = None  # newest profile version taken as a report
    # Custody reports of the last CUSTODY_REPORT_DAYS that stated an amount, oldest first, as
    # (day, custody, prepaid balance the report's day began with): at most CUSTODY_REPORTS_KEPT,
    # for custody_drawdown. A plain default: states pickled before this field read it as None.
    custody_reports: list[tuple[int, float, float]] | None = None
    # Levels of sister stores of the same chain: source merchant -> [(effective day, level)].
    chain_levels: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    # Owned by the online detectors and by alerts/; opaque here.
    detector: object | None = None
    joint_detector: object | None = None
    linked_level: str = "none"  # level on own evidence last told to linked merchants
    late_profiles: set[float] = field(default_factory=set)  # original times of late versions
    alert: object | None = None
    # Case dispositions by staff (alerts/feedback.py MerchantFeedback); opaque here. A plain
    # default: states pickled before this field existed read it as None.
    feedback: object | None = None
    # Reading scores (code -> score) of the merchant's last raise or escalation: what a case
    # outcome about that warning teaches the partition's learner (models/online.py). A plain
    # default, as above.
    last_readings: dict[str, float] | None = None

    def fold(self, day: int, totals: DayTotals | None) -> DaySummary:
        """Close ``day``: add its totals to the running balance and the rolling history."""
        t = totals or DayTotals()
        opening = self.prepaid_balance  # the balance the day began with (custody reports)
        self.prepaid_balance += t.sales_face - t.redeemed - t.refunded_face
        if t.redemptions:
            self.last_redemption_day = day
            if self.first_redemption_day is None:
                self.first_redemption_day = day
        severe = sum(n for c, n in t.complaints.items() if c in SEVERE_COMPLAINTS)
        summary = DaySummary(
            day=day,
            sales_paid=t.sales_paid,
            sales_face=t.sales_face,
            deep_bonus_paid=t.deep_bonus_paid,
            card_sales=t.card_sales,
            over_cap_sales=t.over_cap_sales,
            over_gym_cap_sales=t.over_gym_cap_sales,
            redeemed=t.redeemed,
            redemptions=t.redemptions,
            refunded_paid=t.refunded_paid,
            refunds=t.refunds,
            complaints=sum(t.complaints.values()),
            severe_complaints=severe,
            refund_refused_complaints=t.complaints.get("refund_refused", 0),
            closure_complaints=t.complaints.get("store_closed", 0),
            refunded_face=t.refunded_face,
        )
        self.history.append(summary)
        self.last_closed_day = day
        self._note_custody_report(day, opening)
        for event_id in t.event_ids:
            self.recent_ids[id_digest(event_id) if isinstance(event_id, str) else event_id] = day
        if len(self.recent_ids) > 64:
            horizon = day - RECENT_ID_DAYS
            self.recent_ids = {k: d for k, d in self.recent_ids.items() if d >= horizon}
        return summary

    def _note_custody_report(self, day: int, opening: float) -> None:
        """Take in the profile versions up to the end of ``day`` not yet seen, including a late
        one for an already closed day: the newest is the report in force.

        ``opening``: the balance ``day`` began with. A report kept for custody_drawdown is set
        against the balance the day it was registered on began with, not the one it ended with:
        a live worker may read a registration just after the merchant's first sales and count it
        on that day, where a replay takes it on its own earlier day, before any sale. A version
        read only after its day was closed keeps that day (``reported_at``), and its balances are
        told again from the days kept since, so several late versions are kept as a day-by-day
        replay keeps them, one per day. The reading no longer depends on the order topics were
        read in.

        >>> from models.calendar import day_start
        >>> state = MerchantState("m1", partition=0, first_day=739311)
        >>> state.add_profile(ProfileVersion(day_start(739311).replace(hour=9), "m", "fitness", "d", None,
        ...                                  738000, "open", 50_000.0, None, None))
        >>> sale = DayTotals()
        >>> sale.add_transaction("card_sale", 300_000.0, 300_000.0, day_start(739311).replace(hour=11))
        >>> _ = state.fold(739311, sale)
        >>> state.custody_reports, state.custody_report
        ([(739311, 50000.0, 0.0)], (739311, 50000.0, 300000.0))

        A version of day 739311 read late, counted from day 739313 on:

        >>> late = ProfileVersion(day_start(739313), "m", "fitness", "d", None, 738000, "open", 40_000.0,
        ...                       None, None, reported_at=day_start(739311).replace(hour=20))
        >>> _ = state.fold(739312, DayTotals(redeemed=1000.0, redemptions=1))
        >>> state.add_profile(late)
        >>> _ = state.fold(739313, DayTotals(redeemed=500.0, redemptions=1))
        >>> state.custody_reports, state.custody_report
        ([(739311, 40000.0, 0.0)], (739311, 40000.0, 300000.0))
        """
        end = datetime.combine(date.fromordinal(day), time(), SHANGHAI) + timedelta(days=1)
        seen = self.custody_seen_through
        # Every version is taken as the merchant's custody standing as registered; null means no
        # custody account (below the tier, platforms report null), i.e. a report of 0.
        if not self.profiles or (seen is not None and self.profiles[-1].updated_at <= seen):
            return  # nothing new (versions are kept sorted by time): most days of most merchants
        reports = [p for p in self.profiles if p.updated_at < end and (seen is None or p.updated_at > seen)]
        if not reports:
            return
        self.custody_seen_through = reports[-1].updated_at
        newest_of_day: dict[int, ProfileVersion] = {}
        for version in sorted(reports, key=lambda p: p.reported_at or p.updated_at):
            newest_of_day[min(day, (version.reported_at or version.updated_at).astimezone(SHANGHAI).date().toordinal())] = version
        for report_day, version in sorted(newest_of_day.items()):
            if version.custody_balance is not None:
                began = opening if report_day == day else self.balance_before(report_day)
                self._keep_custody_report((report_day, version.custody_balance, round(max(began, 0.0), 2)))
        # The newest report is the one in force, judged against the balance its day ended with.
        report_day, newest = max(newest_of_day.items())
        ended = self.prepaid_balance if report_day == day else self.balance_before(report_day + 1)
        self.custody_report = (report_day, newest.custody_balance or 0.0, round(max(ended, 0.0), 2))

    def balance_before(self, day: int) -> float:
        """The card book's balance as ``day`` began (a day of the kept history, or a later one),
        told again from the balance now and the days folded since.

        >>> state = MerchantState("m1", partition=0, first_day=10)
        >>> for d, sold in ((10, 500.0), (11, 200.0), (12, 0.0)):
        ...     _ = state.fold(d, DayTotals(sales_paid=sold, sales_face=sold, card_sales=1))
        >>> state.balance_before(11), state.balance_before(13), state.prepaid_balance
        (500.0, 700.0, 700.0)
        """
        balance = self.prepaid_balance
        for summary in reversed(self.history):
            if summary.day < day:
                break
            balance -= summary.sales_face - summary.redeemed - summary.refunded_face
        return balance

    def _keep_custody_report(self, report: tuple[int, float, float]) -> None:
        """Add a report that stated an amount to the recent ones; a later version of the same
        day replaces the earlier one, and reports older than the window fall out."""
        kept = [r for r in self.custody_reports or () if r[0] != report[0]]
        kept.append(report)
        kept.sort(key=lambda r: r[0])
        horizon = kept[-1][0] - CUSTODY_REPORT_DAYS
        self.custody_reports = [r for r in kept if r[0] >= horizon][-CUSTODY_REPORTS_KEPT:]

    def add_profile(self, version: ProfileVersion) -> None:
        """Keep profile versions sorted by time; an identical re-delivery is ignored."""
        if version in self.profiles:
            return
        self.profiles.append(version)
        self.profiles.sort(key=lambda p: p.updated_at)

    def profile_at(self, moment: datetime) -> ProfileVersion | None:
        """The profile as registered at ``moment`` (point in time), if any was known by then."""
        current = None
        for version in self.profiles:
            if version.updated_at >= moment:
                break
            current = version
        return current

    def prune_profiles(self, moment: datetime, keep_days: int = 400) -> None:
        """Drop versions superseded long ago; the one in force and recent ones stay."""
        if len(self.profiles) <= 24:
            return
        cutoff = moment.timestamp() - keep_days * 86400
        in_force = self.profile_at(moment)
        self.profiles = [
            p for p in self.profiles if p.updated_at.timestamp() >= cutoff or p is in_force
        ]

    @property
    def history_days(self) -> int:
        return len(self.history)

    def observed_days(self, day: int) -> int:
        """Days of observed trading up to ``day`` (0 before the first redemption)."""
        if self.first_redemption_day is None:
            return 0
        return day - self.first_redemption_day + 1
