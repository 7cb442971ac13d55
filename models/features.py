"""Point-in-time features of one merchant at the close of one day.

Every indicator reads a plain ``dict[str, float]`` built here, so indicators are small pure
functions and the same features feed the online detectors. A feature that cannot be computed
yet (too little history, no profile) is absent rather than zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice

from models.calendar import day_end, local_day, working_days_between
from models.state import HISTORY_DAYS, DaySummary, MerchantState

SURGE_WINDOW = 28
WEEKS_28D = SURGE_WINDOW // 7
MIN_STEP_SALES = 5000.0  # yuan over the four weeks, as for deep bonuses
BASELINE_MIN_DAYS = 56  # a merchant needs two months of its own history to have a baseline
CUSTODY_THRESHOLD_BALANCE = 200_000.0  # Shanghai 实施办法 Art. 10: balances above 200,000 yuan
CUSTODY_SHARE = 0.40
NEW_BUSINESS_DAYS = 365
REGISTRY_CHANGE_LOOKBACK_DAYS = 90
LEVEL_RANK = {"none": 0, "blue": 1, "yellow": 2, "orange": 3, "red": 4}


def _window(history: Sequence[DaySummary], last_day: int, days: int) -> list[DaySummary]:
    """The days of ``history`` (oldest first, as folded) in the ``days`` up to ``last_day``.

    >>> history = [DaySummary(day, *([0.0] * 13)) for day in range(1, 11)]
    >>> [h.day for h in _window(history, 9, 3)], [h.day for h in _between(history, 2, 4)]
    ([7, 8, 9], [2, 3, 4])
    """
    return _between(history, last_day - days + 1, last_day)


def _between(history: Sequence[DaySummary], first: int, last: int) -> list[DaySummary]:
    # Folded history holds one summary per day, consecutive: the window is then a slice found by
    # arithmetic (this was the replay's costliest function). Oldest first, as folded, so sums add
    # up in the same order. A history with a gap (never folded so) is scanned instead.
    if not history or first > last:
        return []
    newest = history[-1].day
    if history[0].day + len(history) - 1 == newest:
        skip = max(newest - last, 0)
        take = min(last, newest) - max(first, history[0].day) + 1
        if take <= 0:
            return []
        days = list(islice(reversed(history), skip, skip + take))
        days.reverse()
        return days
    days = []
    for summary in reversed(history):
        if summary.day < first:
            break
        if summary.day <= last:
            days.append(summary)
    days.reverse()
    return days


def custody_drawdown(reports: Sequence[tuple[int, float, float]], opened_on: int) -> float | None:
    """The latest custody report over each earlier one of the window, the lowest: how far the
    deposit was drawn down. Where the requirement fell between the two, the ratio is divided by
    the requirement's fall, so a deposit that follows a shrinking balance is no drawdown; where
    the requirement fell to nothing (below the tier) the pair is not judged. ``None``: no
    earlier report stating a deposit.

    ``reports``: (day, custody, prepaid balance that day began with), oldest first (MerchantState
    keeps them; the balance of the days before the report, whenever the report was read).

    >>> custody_drawdown([(10, 300_000, 600_000), (40, 180_000, 600_000)], opened_on=-1000)
    0.6
    >>> custody_drawdown([(10, 300_000, 600_000), (40, 150_000, 300_000)], opened_on=-1000)  # followed
    1.0
    >>> custody_drawdown([(10, 100_000, 600_000), (40, 10_000, 100_000)], opened_on=-1000) is None
    True
    >>> custody_drawdown([(10, 300_000, 600_000)], opened_on=-1000) is None
    True
    """
    if len(reports) < 2:
        return None
    day, custody, balance = reports[-1]
    required_now = custody_required(balance, day - opened_on)
    ratios = []
    for then, earlier, balance_then in reports[:-1]:
        if earlier <= 0:
            continue
        required_then = custody_required(balance_then, then - opened_on)
        fall = 1.0 if required_then <= 0 else min(1.0, required_now / required_then)
        if fall > 0:
            ratios.append(custody / earlier / fall)
    return round(min(ratios), 4) if ratios else None


def custody_required(prepaid_balance: float, business_age_days: int | None) -> float:
    """Custody the Shanghai tiers require for this balance.

    >>> custody_required(150_000, 800), custody_required(500_000, 800), custody_required(500_000, 90)
    (0.0, 200000.0, 500000.0)
    """
    if prepaid_balance <= CUSTODY_THRESHOLD_BALANCE:
        return 0.0
    if business_age_days is not None and business_age_days < NEW_BUSINESS_DAYS:
        return float(prepaid_balance)
    return CUSTODY_SHARE * prepaid_balance


def long_baseline(history: Sequence[DaySummary], day: int, observed: int) -> float:
    """Median redemptions of the 28-day windows ending 28, 35, 42, ... days before ``day``, over
    the observed part of the kept history (``observed`` >= 56 days gives at least one window).

    A slow decline drags a 90-day mean down with it, so the fall reads as a mild one; the median
    of half a year keeps the level the business had before it began (issue 14: the pilot's slow
    declines fell for three to four months under a baseline that followed them).

    >>> steady = [DaySummary(d, 0, 0, 0, 0, 0, 0, 100.0, 1, 0, 0, 0, 0, 0) for d in range(1, 121)]
    >>> falling = [h._replace(redeemed=40.0) if h.day > 80 else h for h in steady]
    >>> long_baseline(steady, 120, 120), long_baseline(falling, 120, 120)
    (2800.0, 2800.0)
    """
    earliest = max(day - observed + 1, day - HISTORY_DAYS + 1)
    by_day = {h.day: h.redeemed for h in _between(history, earliest, day - SURGE_WINDOW)}
    daily = [by_day.get(d, 0.0) for d in range(earliest, day - SURGE_WINDOW + 1)]  # oldest first
    # Windows ending at the newest day and every 7 days before it, each summed in day order.
    windows = sorted(sum(daily[end - SURGE_WINDOW:end]) for end in range(len(daily), SURGE_WINDOW - 1, -7))
    middle = len(windows) // 2
    return windows[middle] if len(windows) % 2 else (windows[middle - 1] + windows[middle]) / 2


@dataclass(frozen=True)
class PeerContext:
    """What the merchant's peers did up to the day before (:class:`PeerNorms`); None: not known."""

    sales_28d: float | None = None  # typical 28-day card sales of the peer group (industry and town)
    surge: float | None = None  # the industry's 28-day sales over their own baselines
    redemption_ratio: float | None = None  # the industry's 28-day redemptions over their own baselines
    deep_share: float | None = None  # share of the industry selling mostly at a deep bonus
    escalating_share: float | None = None  # share of the industry raising its bonus week by week

    def features(self) -> dict[str, float]:
        named = {"peer_sales_28d": self.sales_28d, "peer_surge": self.surge,
                 "peer_redemption_ratio": self.redemption_ratio, "peer_deep_share": self.deep_share,
                 "peer_escalating_share": self.escalating_share}
        return {name: value for name, value in named.items() if value is not None}


NO_PEERS = PeerContext()


def merchant_features(state: MerchantState, day: int, peers: PeerContext = NO_PEERS) -> dict[str, float]:
    """Features of ``state`` after ``day`` has been folded into it; ``peers`` from the merchant's
    peer group (same industry and town), when the caller keeps :class:`PeerNorms`."""
    history = state.history
    observed = state.observed_days(day)
    f: dict[str, float] = {
        "history_days": float(state.history_days),
        "observed_days": float(observed),
        "prepaid_balance": max(state.prepaid_balance, 0.0),
    }
    recent = _window(history, day, SURGE_WINDOW)
    _add_trading(f, history, day, observed, recent)
    f.update(peers.features())
    last90 = _window(history, day, min(90, observed)) if observed else []
    if observed:
        f["monthly_redemptions"] = sum(h.redeemed for h in last90) * 30.0 / len(last90)
    _add_complaints(f, history, day, recent)
    if state.last_redemption_day is not None:
        _add_silence(f, state, day, state.last_redemption_day, last90)
    f.update(chain_features(state, day))
    _add_profile(f, state, day)
    return f


def _add_trading(
    f: dict[str, float], history: Sequence[DaySummary], day: int, observed: int, recent: list[DaySummary],
) -> None:
    """The 28-day sums and, with enough history, the merchant's own baselines."""
    # One pass, each sum added up in day order as ``sum`` would (0.0 + the first day + ...).
    sales = face = deep = redeemed = 0.0
    over_named = over_gym = refunds = 0
    weekly_paid = [0.0] * WEEKS_28D
    weekly_face = [0.0] * WEEKS_28D
    for h in recent:
        sales += h.sales_paid
        face += h.sales_face
        week = (day - h.day) // 7  # 0: the last seven days
        weekly_paid[week] += h.sales_paid
        weekly_face[week] += h.sales_face
        deep += h.deep_bonus_paid
        over_named += h.over_cap_sales
        over_gym += h.over_gym_cap_sales
        redeemed += h.redeemed
        refunds += h.refunds
    f["sales_28d"] = sales
    f["sales_face_28d"] = face
    f["deep_bonus_paid_28d"] = deep
    f["over_named_cap_sales_28d"] = float(over_named)
    f["over_gym_cap_sales_28d"] = float(over_gym)
    f["redeemed_28d"] = redeemed
    f["refunds_28d"] = float(refunds)
    _add_bonus_steps(f, sales, weekly_paid, weekly_face)

    # Own baseline: the (observed part of the) 90 days before the recent window, per 28 days.
    if observed >= BASELINE_MIN_DAYS:
        start = max(day - SURGE_WINDOW - 90 + 1, day - observed + 1)
        base = _between(history, start, day - SURGE_WINDOW)
        scale = SURGE_WINDOW / len(base)
        base_sales = base_redeemed = 0.0
        base_refunds = 0
        for h in base:
            base_sales += h.sales_paid
            base_redeemed += h.redeemed
            base_refunds += h.refunds
        f["sales_baseline_28d"] = base_sales * scale
        f["redeemed_baseline_28d"] = base_redeemed * scale
        f["refunds_baseline_28d"] = base_refunds * scale
        f["redeemed_long_baseline_28d"] = long_baseline(history, day, observed)


def _add_bonus_steps(f: dict[str, float], sales: float, weekly_paid: list[float],
                     weekly_face: list[float]) -> None:
    """How the bonus on card sales (stored value ÷ price) moved week by week over 28 days.

    ``bonus_rise_21d`` is the smallest of the three week-on-week rises: positive only when the
    bonus went up three weeks running, which a distressed merchant's ever deeper offers do and a
    promotion held at one offer does not. Absent when a week sold nothing or the four weeks
    sold less than ``MIN_STEP_SALES`` (a handful of cards proves nothing).

    >>> f = {}
    >>> _add_bonus_steps(f, 8_000.0, [2_000.0] * 4, [3_400.0, 3_000.0, 2_600.0, 2_200.0])
    >>> round(f["bonus_ratio_7d"], 2), round(f["bonus_rise_21d"], 2)
    (1.7, 0.2)
    >>> f = {}
    >>> _add_bonus_steps(f, 8_000.0, [2_000.0, 2_000.0, 4_000.0, 0.0], [3_000.0] * 4)
    >>> f
    {}
    """
    if sales < MIN_STEP_SALES or min(weekly_paid) <= 0.0:
        return
    ratios = [face / paid for face, paid in zip(weekly_face, weekly_paid, strict=True)]
    f["bonus_ratio_7d"] = ratios[0]
    f["bonus_rise_21d"] = min(ratios[k] - ratios[k + 1] for k in range(WEEKS_28D - 1))


def _weighted_complaints(items: list[DaySummary]) -> float:
    # Refund refusals, closures and unavailable service weigh three times the others.
    return float(sum(h.complaints + 2 * h.severe_complaints for h in items))


def _add_complaints(f: dict[str, float], history: Sequence[DaySummary], day: int, recent: list[DaySummary]) -> None:
    """Complaints of the last two and four weeks against their usual level, and the liability a
    28-day push adds."""
    fortnight = _window(history, day, 14)
    f["complaints_weighted_14d"] = _weighted_complaints(fortnight)
    f["severe_complaints_14d"] = float(sum(h.severe_complaints for h in fortnight))
    f["severe_complaints_28d"] = float(sum(h.severe_complaints for h in recent))
    f["closure_complaints_14d"] = float(sum(h.closure_complaints for h in fortnight))
    # Stored value sold beyond the service given: the liability a 28-day push adds, in units of
    # the merchant's usual 28 days of service.
    if "redeemed_baseline_28d" in f:
        f["net_liability_28d"] = f["sales_face_28d"] - f["redeemed_28d"]
    before = _between(history, day - 14 - 90 + 1, day - 14)
    if before:
        f["complaints_weighted_baseline_14d"] = _weighted_complaints(before) * 14.0 / len(before)


def _add_silence(
    f: dict[str, float], state: MerchantState, day: int, last_redemption_day: int, last90: list[DaySummary],
) -> None:
    """Silence, judged at the end of the day in event time, once trading has been observed."""
    # Closing for the Spring Festival break is normal; those days do not count as silence.
    f["silent_days"] = float(working_days_between(last_redemption_day + 1, day))
    active = [h for h in last90 if h.redemptions > 0]
    f["redemption_days_90d"] = float(len(active))
    # The usual gap is judged on the 90 days up to the last redemption: counting the silence
    # itself would let a long silence raise its own threshold and switch the alarm off.
    before = _window(state.history, last_redemption_day, 90)
    trading = [h for h in before if state.first_redemption_day is not None and h.day >= state.first_redemption_day]
    f["expected_redemption_gap_days"] = len(trading) / max(sum(1 for h in trading if h.redemptions > 0), 1)


def _add_profile(f: dict[str, float], state: MerchantState, day: int) -> None:
    """What the registered profile in force says: business age, custody, pauses, registry changes."""
    close = day_end(day)
    profile = state.profile_at(close)
    if profile is None:
        return
    age = day - profile.opened_on
    f["business_age_days"] = float(age)
    required = custody_required(f["prepaid_balance"], age)
    f["custody_required"] = required
    if state.custody_report is not None:
        report_day, custody, balance_then = state.custody_report
        f["custody_balance"] = custody
        f["custody_report_age_days"] = float(day - report_day)
        f["custody_required_at_report"] = custody_required(balance_then, report_day - profile.opened_on)
        drawdown = custody_drawdown(state.custody_reports or [], profile.opened_on)
        if drawdown is not None:
            f["custody_drawdown"] = drawdown
    else:
        f["custody_report_age_days"] = float(day - max(state.first_day, profile.opened_on))
    f["suspended_notice_days"] = _suspension_notice(state, day, close)
    f["registered_pause"] = 1.0 if profile.status in PAUSED else 0.0
    reopened = _reopened_pause_days(state, day, close)
    if reopened:
        f["reopened_pause_days_28d"] = reopened
    f["days_since_registry_change"] = _days_since_registry_change(state, close)
    # Gyms may sell class packages up to 20,000 yuan; other named cards stop at 5,000.
    f["over_cap_sales_28d"] = (
        f["over_gym_cap_sales_28d"] if profile.industry == "fitness" else f["over_named_cap_sales_28d"]
    )


# Features fed by other merchants' levels (chain signals): the only ones that depend on thresholds.
CHAIN_FEATURES = frozenset({"chain_peer_level", "chain_peers_urgent", "representative_linked_urgent"})


def chain_features(state: MerchantState, day: int) -> dict[str, float]:
    """What linked merchants' levels say on ``day``: the highest level among sister stores and how
    many of them are orange/red; merchants behind the same legal representative ever at orange/red.

    >>> state = MerchantState("m1", partition=0, first_day=1)
    >>> state.chain_levels = {"c1|m2": [(5, "orange")], "c1|m3": [(9, "red")], "rep:x|m4": [(3, "red")]}
    >>> chain_features(state, 6)
    {'chain_peer_level': 3.0, 'chain_peers_urgent': 1.0, 'representative_linked_urgent': 1.0}
    """
    f: dict[str, float] = {}
    if not state.chain_levels:
        return f
    # Linked merchants' levels, keyed "group|merchant"; signals take effect on their own day.
    ranks, linked_urgent = [], set()
    for key, entries in state.chain_levels.items():
        group, source = key.rsplit("|", 1)
        seen = [LEVEL_RANK.get(level, 0) for effective, level in entries if effective <= day]
        if not seen:
            continue
        if group.startswith("rep:"):
            # A representative's record does not heal: any orange/red merchant behind them counts.
            if max(seen) >= LEVEL_RANK["orange"]:
                linked_urgent.add(source)
        else:
            ranks.append(seen[-1])  # a sister store: its level in force today
    if ranks:
        f["chain_peer_level"] = float(max(ranks))
        f["chain_peers_urgent"] = float(sum(1 for r in ranks if r >= LEVEL_RANK["orange"]))
    sisters = {key.rsplit("|", 1)[1] for key in state.chain_levels if not key.startswith("rep:")}
    linked_urgent -= sisters  # a sister under the same representative counts once, as a sister
    if linked_urgent:
        f["representative_linked_urgent"] = float(len(linked_urgent))
    return f


CASE_FIGURES = (
    "prepaid_balance", "sales_28d", "redeemed_28d", "refunds_28d", "complaints_28d", "custody_balance",
    "custody_required",
)


def case_figures(state: MerchantState, day: int, features: dict[str, float]) -> dict[str, float | None]:
    """The merchant's recent figures at the close of ``day``, for the case desk (in a warning).

    ``features`` are :func:`merchant_features` of the same state and day. Money in yuan, rounded
    to fen: outstanding stored value, 28-day card sales (paid), redemptions and refunds (money
    returned), the complaints of those 28 days, the last custody report (a report of null, "no
    custody account", reads as 0 as in ``custody_coverage``) and what the custody tier requires
    of today's balance. ``None``: not known yet (no custody report, no profile).

    >>> from models.state import DayTotals
    >>> from datetime import datetime
    >>> state = MerchantState("m1", partition=0, first_day=739311)
    >>> day = DayTotals()
    >>> at = datetime.fromisoformat("2026-03-01T10:00:00+08:00")
    >>> day.add_transaction("card_sale", 1000.0, 1500.0, at)
    >>> day.add_transaction("refund", 100.004, 150.0, at)
    >>> day.add_complaint("refund_refused", None, at)
    >>> _ = state.fold(739311, day)
    >>> case_figures(state, 739311, merchant_features(state, 739311))
    {'prepaid_balance': 1350.0, 'sales_28d': 1000.0, 'redeemed_28d': 0.0, 'refunds_28d': 100.0,
     'complaints_28d': 1.0, 'custody_balance': None, 'custody_required': None}
    """
    recent = _window(state.history, day, SURGE_WINDOW)
    figures: dict[str, float | None] = {
        "prepaid_balance": features.get("prepaid_balance"),
        "sales_28d": features.get("sales_28d"),
        "redeemed_28d": features.get("redeemed_28d"),
        "refunds_28d": sum(h.refunded_paid for h in recent),
        "complaints_28d": float(sum(h.complaints for h in recent)),
        "custody_balance": features.get("custody_balance"),
        "custody_required": features.get("custody_required"),
    }
    return {name: None if value is None else round(value, 2) for name, value in figures.items()}


PAUSED = frozenset({"suspended", "closed"})  # registered statuses that announce a stop


def _suspension_notice(state: MerchantState, day: int, close: datetime) -> float:
    """Days between registering the current suspension or closure and the start of the silence
    (-1: none in force; negative below that when registered after the store went quiet)."""
    versions = [p for p in state.profiles if p.updated_at < close]
    if not versions or versions[-1].status not in PAUSED:
        return -1.0
    since = versions[-1].updated_at
    for p in reversed(versions):
        if p.status not in PAUSED:
            break
        since = p.updated_at
    silence_start = (state.last_redemption_day or state.first_day) + 1
    return float(silence_start - since.astimezone(close.tzinfo).date().toordinal())


def paused_days_within(changes: Sequence[tuple[int, str]], first: int, last: int) -> int | None:
    """Days of ``first..last`` under a registered suspension or closure that has ended, from the
    status ``changes`` (day registered, status) in order; None while a pause is still in force.

    >>> paused_days_within([(1, "open"), (10, "suspended"), (31, "open")], 20, 47)
    11
    >>> paused_days_within([(1, "open"), (40, "suspended")], 20, 47) is None
    True
    >>> paused_days_within([(1, "open")], 20, 47)
    0
    """
    paused_from: int | None = None
    days = 0
    for on, status in changes:
        if status in PAUSED:
            paused_from = on if paused_from is None else paused_from
        elif paused_from is not None:
            days += max(0, min(on - 1, last) - max(paused_from, first) + 1)
            paused_from = None
    return None if paused_from is not None else days


def _reopened_pause_days(state: MerchantState, day: int, close: datetime) -> float:
    """Days of the last 28 the store was registered paused, once it has reopened (0: none, or the
    pause still in force): a renovation's closed weeks are not a fall of the business that
    reopened after them (issue 14: a pilot salon alarmed a week after its renovation ended)."""
    if not any(p.status in PAUSED for p in state.profiles):
        return 0.0
    changes = [(local_day(p.updated_at), p.status) for p in state.profiles if p.updated_at < close]
    return float(paused_days_within(changes, day - SURGE_WINDOW + 1, day) or 0)


def _days_since_registry_change(state: MerchantState, close: datetime) -> float:
    """Days since the legal representative changed or registered capital was cut (-1: none)."""
    latest = -1.0
    # Compare each version with the last known value, so a record that leaves the field out
    # (null) does not hide a change across it.
    representative: str | None = None
    capital: float | None = None
    for version in (p for p in state.profiles if p.updated_at < close):
        rep_changed = (
            representative is not None
            and version.legal_representative is not None
            and version.legal_representative != representative
        )
        capital_cut = capital is not None and version.registered_capital is not None and version.registered_capital < capital
        if rep_changed or capital_cut:
            latest = (close - version.updated_at).total_seconds() / 86400
        representative = version.legal_representative or representative
        capital = version.registered_capital if version.registered_capital is not None else capital
    if latest > REGISTRY_CHANGE_LOOKBACK_DAYS:
        return -1.0
    return float(int(latest)) if latest >= 0 else -1.0


MIN_PEERS = 5
ANY_INDUSTRY = "*"  # the group of every established merchant, whatever its trade


class PeerNorms:
    """Typical 28-day card sales of each peer group, from merchants with their own baseline.

    A group is industry and town; with fewer than ``MIN_PEERS`` established members the
    industry as a whole stands in. The industry-wide ratios (surge, redemptions, deep and
    escalating shares) fall back to every established merchant of the partition when the
    industry has too few, or when the merchant's industry is not known (no profile): a
    calendar that moves every trade (the Spring Festival) is still taken out of its figures.
    Norms are rebuilt at the close of each day from that day's figures and used the next day,
    so every merchant of a day is compared with the same norms whatever order they are scored in.

    >>> norms = PeerNorms()
    >>> for i in range(6):
    ...     norms.add("beauty", "南桥镇", 10_000.0 + 1000 * i)
    >>> norms.add("fitness", "海湾镇", 30_000.0)
    >>> table = norms.finish()
    >>> PeerNorms.lookup(table, "beauty", "南桥镇"), PeerNorms.lookup(table, "beauty", "四团镇")
    (12500.0, 12500.0)
    >>> PeerNorms.lookup(table, "fitness", "海湾镇") is None  # one peer is not a group
    True
    >>> norms = PeerNorms()
    >>> for i in range(5):
    ...     norms.add("fitness", "海湾镇", 10_000.0, deep=i < 2)  # two of five run a deep promotion
    >>> PeerNorms.industry_norm(norms.finish(), "deep", "fitness")
    0.4
    >>> norms = PeerNorms()
    >>> for i in range(6):  # six salons whose redemptions fell by half over the festival
    ...     norms.add("beauty", "南桥镇", 10_000.0, redeemed=0.5)
    >>> table = norms.finish()
    >>> PeerNorms.context(table, "fitness", "海湾镇").redemption_ratio  # too few gyms: everyone's
    0.5
    >>> PeerNorms.context(table, None, None).redemption_ratio, PeerNorms.context(table, None, None).sales_28d
    (0.5, None)
    """

    def __init__(self) -> None:
        self._groups: dict[str, list[float]] = {}
        self._shares: dict[str, list[bool]] = {}  # yes/no per peer: a norm is the share of yes

    def add(
        self, industry: str, town: str, sales_28d: float, surge: float | None = None, redeemed: float | None = None,
        deep: bool | None = None, escalating: bool | None = None,
    ) -> None:
        for key in (f"{industry}|{town}", industry):
            self._groups.setdefault(key, []).append(sales_28d)
        for group in (industry, ANY_INDUSTRY):  # the industry's, and everyone's as its stand-in
            if surge is not None:  # the industry's own surge: calendar promotions lift every peer
                self._groups.setdefault(f"surge|{group}", []).append(surge)
            if redeemed is not None:  # the industry's redemptions against their baseline
                self._groups.setdefault(f"redeemed|{group}", []).append(redeemed)
            if deep is not None:  # whether it sells mostly at a deep bonus (a calendar promotion?)
                self._shares.setdefault(f"deep|{group}", []).append(deep)
            if escalating is not None:  # whether it raised its bonus three weeks running (a calendar promotion?)
                self._shares.setdefault(f"escalating|{group}", []).append(escalating)

    def finish(self) -> dict[str, float]:
        norms = {}
        for key, values in self._groups.items():
            if len(values) >= MIN_PEERS:
                ordered = sorted(values)
                middle = len(ordered) // 2
                norms[key] = (
                    ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
                )
        for key, answers in self._shares.items():
            if len(answers) >= MIN_PEERS:
                norms[key] = sum(answers) / len(answers)
        return norms

    @staticmethod
    def context(norms: dict[str, float], industry: str | None, town: str | None) -> PeerContext:
        """What a merchant of ``industry`` in ``town`` is compared with, from :meth:`finish`'s
        ``norms``; ``industry`` None when the merchant has no profile yet."""
        def norm(what: str) -> float | None:
            return PeerNorms.industry_norm(norms, what, industry)

        return PeerContext(
            sales_28d=PeerNorms.lookup(norms, industry, town) if industry is not None and town is not None else None,
            surge=norm("surge"), redemption_ratio=norm("redeemed"), deep_share=norm("deep"),
            escalating_share=norm("escalating"),
        )

    @staticmethod
    def lookup(norms: dict[str, float], industry: str, town: str) -> float | None:
        return norms.get(f"{industry}|{town}", norms.get(industry))

    @staticmethod
    def industry_norm(norms: dict[str, float], what: str, industry: str | None) -> float | None:
        """The industry's norm of ``what``, else every established merchant's: the median ratio of
        28-day sales (``surge``) or redemptions (``redeemed``) to their own baselines, or the share
        selling mostly at a deep bonus (``deep``) or raising it week by week (``escalating``)."""
        if industry is not None and f"{what}|{industry}" in norms:
            return norms[f"{what}|{industry}"]
        return norms.get(f"{what}|{ANY_INDUSTRY}")

