"""Edge cases of every indicator in ``ALL_INDICATORS``, on features built the way production builds
them (``MerchantState`` + ``merchant_features``, or the ``PartitionEngine`` itself).

Expectations are derived from each indicator instance's own ``threshold`` / ``saturation`` (or
from monotonic relations) so retuning the thresholds does not break these tests; only behaviour
does. Known bugs are ``xfail(strict=True)`` with the reason spelled out.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import pytest

from contract.records import InputEvent, Transaction
from engine.partition import Outcome, PartitionEngine
from models.calendar import SHANGHAI
from models.features import (
    CUSTODY_SHARE,
    CUSTODY_THRESHOLD_BALANCE,
    NEW_BUSINESS_DAYS,
    REGISTRY_CHANGE_LOOKBACK_DAYS,
    merchant_features,
)
from models.indicators import (
    ALL_INDICATORS,
    AnnouncedPause,
    BonusEscalation,
    ChainContagion,
    ClosureComplaints,
    ComplaintSurge,
    CustodyCoverage,
    CustodyDrawdown,
    CustodyReportMissing,
    DeepDiscountShare,
    Indicator,
    LiabilityGrowth,
    LiabilityMonths,
    OverCapCards,
    PeerSalesSurge,
    RedemptionDecline,
    RefundPressure,
    RegistryChange,
    RepresentativeLink,
    SalesDecline,
    SalesSurge,
    SevereComplaints,
    Silence,
)
from models.indicators.base import BaselineRatio
from models.indicators.liability_months import MIN_BALANCE as LIABILITY_MIN_BALANCE
from models.indicators.silence import MIN_BALANCE as SILENCE_MIN_BALANCE
from models.state import GYM_PACKAGE_CAP, NAMED_CARD_CAP, DayTotals, MerchantState, ProfileVersion
from tests.factories import START, at, complaint, profile, redemption, sale

# ---------------------------------------------------------------------------------------------
# Helpers: merchant state built day by day (pure), and the engine replaying plain events
# ---------------------------------------------------------------------------------------------

BASE = date(2026, 3, 2).toordinal()  # day 0 of state-level tests, clear of the Spring Festival
OPENED_LONG_AGO = date(2023, 1, 1).toordinal()
BASELINE_CODES = {c.code for c in ALL_INDICATORS if issubclass(c, BaselineRatio)}


def moment(day: int, hour: int = 12) -> datetime:
    return datetime.combine(date.fromordinal(BASE + day), time(hour), SHANGHAI)


def activity(
    day: int,
    *,
    sales: tuple[tuple[float, float], ...] = (),
    redemptions: tuple[float, ...] = (),
    refunds: int = 0,
    complaints: tuple[str, ...] = (),
) -> DayTotals:
    """One day's bucket; ``sales`` are ``(paid, stored value)`` pairs."""
    totals = DayTotals()
    for paid, face in sales:
        totals.add_transaction("card_sale", paid, face, moment(day, 11))
    for amount in redemptions:
        totals.add_transaction("redemption", amount, amount, moment(day, 15))
    for _ in range(refunds):
        totals.add_transaction("refund", 100.0, 100.0, moment(day, 16))
    for category in complaints:
        totals.add_complaint(category, 1000.0, moment(day, 10))
    return totals


def version(
    day: int,
    *,
    custody: float | None = None,
    opened_on: int = OPENED_LONG_AGO,
    industry: str = "beauty",
    rep: str | None = "rep-1",
    status: str = "open",
) -> ProfileVersion:
    """A profile version published at 09:00 of ``day`` (a custody report if ``day`` is folded)."""
    return ProfileVersion(
        updated_at=moment(day, 9), name="m 美容", industry=industry, district="南桥镇", chain_id=None,
        opened_on=opened_on, status=status, custody_balance=custody, legal_representative=rep,
        registered_capital=1_000_000.0,
    )


def merchant(
    days: int,
    by_day: dict[int, DayTotals] | None = None,
    profiles: tuple[ProfileVersion, ...] = (),
) -> MerchantState:
    """A merchant with days ``0 .. days-1`` folded (empty days where ``by_day`` has none)."""
    state = MerchantState("m", partition=0, first_day=BASE)
    for p in profiles:
        state.add_profile(p)
    for day in range(days):
        state.fold(BASE + day, (by_day or {}).get(day))
    return state


def features_of(state: MerchantState) -> dict[str, float]:
    assert state.last_closed_day is not None
    return merchant_features(state, state.last_closed_day)


def daily_features(days: int, by_day: dict[int, DayTotals]) -> list[dict[str, float]]:
    """Features after each day ``0 .. days-1`` is folded, in order."""
    state = MerchantState("m", partition=0, first_day=BASE)
    out = []
    for day in range(days):
        state.fold(BASE + day, by_day.get(day))
        out.append(merchant_features(state, BASE + day))
    return out


def score(indicator: Indicator, features: dict[str, float]) -> float:
    """The indicator's score, 0 where it does not apply."""
    reading = indicator.evaluate(features)
    return 0.0 if reading is None else reading.score


def non_decreasing(values: list[float]) -> bool:
    return all(a <= b + 1e-9 for a, b in zip(values, values[1:], strict=False))


M = "m1"  # the merchant of the engine tests (relative days of tests.factories: day 0 = START)


def ordinal(day: int) -> int:
    return (START + timedelta(days=day)).toordinal()


def refund(mid: str, day: int, amount: float, n: int = 0) -> Transaction:
    return Transaction(event_id=f"{mid}-f-{day}-{n}", type="refund", merchant_id=mid, store_id="s1",
                       card_id="c", consumer_id="u", amount=amount, occurred_at=at(day, 16))


def trading(last_day: int, extra: dict[int, list[InputEvent]] | None = None,
            redeem_until: int | None = None) -> list[InputEvent]:
    """A beauty salon trading every day ``0 .. last_day`` (a sale at 11:00, a redemption at 15:00
    until ``redeem_until``), with ``extra`` events delivered right after those of a day. After
    day ``d``'s events the watermark has closed every day before ``d``; ``d`` itself is open."""
    events: list[InputEvent] = [profile(M, 0, None, industry="beauty")]
    events += [sale(M, 0, 4000, n=n) for n in range(1, 6)]  # 20,000 yuan outstanding from day 0
    for day in range(last_day + 1):
        events.append(sale(M, day, 1000))
        if redeem_until is None or day < redeem_until:
            events.append(redemption(M, day, 500))
        events += (extra or {}).get(day, [])
    return events


@dataclass
class Replay:
    engine: PartitionEngine
    events: list[InputEvent]
    outcomes: list[Outcome]
    scored: dict[tuple[str, int], dict[str, float]]  # (merchant, day ordinal) -> features

    def features(self, day: int, mid: str = M) -> dict[str, float]:
        return self.scored[(mid, ordinal(day))]

    def outcomes_of(self, event: InputEvent) -> list[Outcome]:
        return [o for e, o in zip(self.events, self.outcomes, strict=True) if e is event]


def replay(events: list[InputEvent]) -> Replay:
    scored: dict[tuple[str, int], dict[str, float]] = {}
    engine = PartitionEngine(
        buckets={}, merchants={}, clocks={}, allowed_lateness=timedelta(hours=6),
        on_day_scored=lambda r: scored.__setitem__((r.merchant_id, r.day), r.score.features),
    )
    outcomes = [engine.process(event, 0) for event in events]
    return Replay(engine, events, outcomes, scored)


# ---------------------------------------------------------------------------------------------
# 1. No history: a brand-new merchant
# ---------------------------------------------------------------------------------------------

NEW_MERCHANTS: dict[str, Callable[[], MerchantState]] = {
    "one_empty_day": lambda: merchant(1),
    "two_quiet_days_with_profile": lambda: merchant(
        2, {0: activity(0, sales=((1000, 1000),), redemptions=(200,)), 1: activity(1, redemptions=(100,))},
        (version(0),),
    ),
    "business_opened_today": lambda: merchant(
        2, {0: activity(0, sales=((800, 900),)), 1: activity(1, redemptions=(50,))},
        (version(0, custody=0.0, opened_on=BASE),),
    ),
}


@pytest.mark.parametrize("scenario", NEW_MERCHANTS)
@pytest.mark.parametrize("indicator_class", ALL_INDICATORS, ids=lambda c: c.code)
def test_new_merchant_with_ordinary_first_days_is_not_flagged(
    indicator_class: type[Indicator], scenario: str
) -> None:
    features = features_of(NEW_MERCHANTS[scenario]())
    reading = indicator_class().evaluate(features)
    assert reading is None or reading.score == 0.0, reading


HISTORY_GATED = ["sales_surge", "sales_decline", "redemption_decline", "refund_pressure",
                 "liability_months", "silence"]


@pytest.mark.parametrize("indicator_class", [c for c in ALL_INDICATORS if c.code in HISTORY_GATED],
                         ids=lambda c: c.code)
def test_indicators_needing_a_baseline_stay_out_on_a_busy_first_day(indicator_class: type[Indicator]) -> None:
    """Huge sales, refunds and no redemption for a week: alarming numbers, but no baseline yet."""
    by_day = {0: activity(0, sales=((200_000, 400_000),) * 3, redemptions=(10,), refunds=30)}
    features = features_of(merchant(7, by_day, (version(0),)))
    assert features["sales_28d"] == 600_000 and features["silent_days"] == 6  # the numbers are there
    assert indicator_class().evaluate(features) is None


# ---------------------------------------------------------------------------------------------
# 2. Zero redemptions and zero baselines
# ---------------------------------------------------------------------------------------------


def test_liability_months_with_zero_monthly_redemptions_saturates_without_dividing_by_zero() -> None:
    balance = 6 * LIABILITY_MIN_BALANCE
    by_day = {0: activity(0, sales=((balance, balance),), redemptions=(0.0,))}  # a 0-yuan redemption
    features = features_of(merchant(45, by_day))
    assert features["monthly_redemptions"] == 0.0 and features["observed_days"] == 45
    reading = LiabilityMonths().evaluate(features)
    assert reading is not None and math.isfinite(reading.value)
    assert reading.score == 1.0


@pytest.mark.parametrize("indicator_class", [LiabilityMonths, Silence, RedemptionDecline],
                         ids=lambda c: c.code)
def test_merchant_that_never_redeemed_is_not_judged_on_redemptions(indicator_class: type[Indicator]) -> None:
    """Trading is observed from the first redemption (pre-opening card book), by design."""
    by_day = {d: activity(d, sales=((5000, 5000),)) for d in range(90)}
    features = features_of(merchant(90, by_day))
    assert features["prepaid_balance"] == 450_000 and "silent_days" not in features
    assert indicator_class().evaluate(features) is None


def test_redemption_decline_with_a_zero_redemption_baseline_does_not_apply() -> None:
    # observed from a 0-yuan redemption on day 0; nothing redeemed until the last 28 days
    by_day = {0: activity(0, redemptions=(0.0,))}
    by_day |= {d: activity(d, redemptions=(900,)) for d in range(72, 100)}
    features = features_of(merchant(100, by_day))
    assert features["redeemed_baseline_28d"] == 0.0
    assert RedemptionDecline().evaluate(features) is None


def test_redemptions_stopping_entirely_saturate_redemption_decline() -> None:
    by_day = {d: activity(d, redemptions=(900,)) for d in range(72)}
    features = features_of(merchant(100, by_day))
    reading = RedemptionDecline().evaluate(features)
    assert features["redeemed_28d"] == 0.0 and reading is not None
    assert reading.value == 0.0 and reading.score == 1.0


@pytest.mark.parametrize("numerator_value", [0.0, 50_000.0])
@pytest.mark.parametrize("indicator_class", [c for c in ALL_INDICATORS if issubclass(c, BaselineRatio)],
                         ids=lambda c: c.code)
def test_zero_baseline_is_skipped_or_floored_never_a_division_error(
    indicator_class: type[BaselineRatio], numerator_value: float
) -> None:
    indicator = indicator_class()
    reading = indicator.evaluate({indicator.baseline: 0.0, indicator.numerator: numerator_value})
    if indicator.floor_baseline:
        assert reading is not None
        assert reading.value == pytest.approx(numerator_value / indicator.min_baseline, abs=1e-3)
    else:
        assert reading is None


def redeeming_daily(days: int) -> dict[int, DayTotals]:
    """Cards worth 3x silence's minimum balance sold on day 0, then redemptions every day until
    ``days`` (the balance stays far above that minimum)."""
    stake = 3 * SILENCE_MIN_BALANCE
    by_day = {d: activity(d, redemptions=(100,)) for d in range(days)}
    by_day[0] = activity(0, sales=((stake, stake),), redemptions=(100,))
    return by_day


def test_silence_grows_from_the_last_redemption_in_the_first_month_of_silence() -> None:
    by_day = redeeming_daily(30)
    daily = daily_features(60, by_day)[30:]  # silent days 1 .. 30
    assert [f["silent_days"] for f in daily] == list(range(1, 31))
    scores = [score(Silence(), f) for f in daily]
    assert scores[0] == 0.0 and scores[-1] == 1.0
    assert non_decreasing(scores), scores


def test_silence_keeps_alarming_through_a_long_silence() -> None:
    by_day = redeeming_daily(100)
    daily = daily_features(220, by_day)[100:]  # silent days 1 .. 120
    scores = [score(Silence(), f) for f in daily]
    assert max(scores) == 1.0
    assert non_decreasing(scores), [(i + 1, s) for i, s in enumerate(scores) if s < 1.0]


# ---------------------------------------------------------------------------------------------
# 3. Custody: no report, zero report, stale report; the 200,000 yuan tier; under one year: 100%
# ---------------------------------------------------------------------------------------------


def custody_merchant(balance: float, days: int, reports: tuple[tuple[int, float | None], ...] = (),
                     opened_on: int = OPENED_LONG_AGO) -> dict[str, float]:
    """Features on the last of ``days`` days of a merchant holding ``balance`` from day 0, with a
    profile published before day 0 (not a report) and ``(day, custody)`` reports."""
    profiles = (version(-10, opened_on=opened_on),) + tuple(
        version(day, custody=custody, opened_on=opened_on) for day, custody in reports
    )
    return features_of(merchant(days, {0: activity(0, sales=((balance, balance),))}, profiles))


@pytest.mark.parametrize("balance_share_of_tier", [0.5, 1.0])
@pytest.mark.parametrize("reports", [(), ((5, 0.0),), ((5, CUSTODY_SHARE * CUSTODY_THRESHOLD_BALANCE),)],
                         ids=["never_reported", "zero_report", "stale_report"])
def test_custody_is_not_judged_at_or_below_the_200k_tier(
    balance_share_of_tier: float, reports: tuple[tuple[int, float | None], ...]
) -> None:
    features = custody_merchant(balance_share_of_tier * CUSTODY_THRESHOLD_BALANCE, 200, reports)
    assert features["custody_required"] == 0.0
    assert CustodyCoverage().evaluate(features) is None
    assert CustodyReportMissing().evaluate(features) is None


def test_no_report_and_a_zero_report_both_mean_no_custody_but_age_differently() -> None:
    balance, days, report_day = 1.5 * CUSTODY_THRESHOLD_BALANCE, 60, 40
    never = custody_merchant(balance, days)
    zero = custody_merchant(balance, days, ((report_day, 0.0),))
    for features in (never, zero):
        coverage = CustodyCoverage().evaluate(features)
        assert coverage is not None and coverage.value == 0.0 and coverage.score == 1.0
    # The registration record (day -10, custody null) is the last word on custody: no account.
    assert CustodyReportMissing().evaluate(never).value == days - 1 + 10
    assert CustodyReportMissing().evaluate(zero).value == days - 1 - report_day  # since the report


def test_stale_but_adequate_report_is_a_missing_report_not_a_coverage_gap() -> None:
    missing, coverage = CustodyReportMissing(), CustodyCoverage()
    balance = 2 * CUSTODY_THRESHOLD_BALANCE
    adequate = CUSTODY_SHARE * balance * max(1.0, coverage.threshold)
    stale_age = int(missing.saturation) + 10
    features = custody_merchant(balance, stale_age + 1, ((0, adequate),))
    assert features["custody_report_age_days"] == stale_age
    assert score(coverage, features) == 0.0
    assert score(missing, features) == 1.0
    fresh = custody_merchant(balance, stale_age + 1, ((stale_age - int(missing.threshold) // 2, adequate),))
    assert score(missing, fresh) == 0.0 and score(coverage, fresh) == 0.0


def test_report_made_below_the_tier_does_not_cover_a_balance_that_crossed_it() -> None:
    below = 0.8 * CUSTODY_THRESHOLD_BALANCE
    by_day = {0: activity(0, sales=((below, below),)), 20: activity(20, sales=((below, below),))}
    profiles = (version(-10), version(10, custody=0.0))
    features = features_of(merchant(30, by_day, profiles))
    assert features["custody_required_at_report"] == 0.0 and features["custody_required"] > 0
    assert CustodyCoverage().evaluate(features) is None  # the next monthly report is not due yet
    overdue = features_of(merchant(50, by_day, profiles))  # report 39 days old: due and missing
    reading = CustodyCoverage().evaluate(overdue)
    assert reading is not None and reading.score == 1.0


@pytest.mark.parametrize(("age_days", "young"), [(200, True), (NEW_BUSINESS_DAYS - 1, True),
                                                (NEW_BUSINESS_DAYS, False), (800, False)])
def test_business_under_one_year_needs_full_custody(age_days: int, young: bool) -> None:
    balance, days = 1.5 * CUSTODY_THRESHOLD_BALANCE, 10
    opened_on = BASE + days - 1 - age_days  # age on the day of the report and of judgement
    old_rule = CUSTODY_SHARE * balance
    features = custody_merchant(balance, days, ((days - 1, old_rule),), opened_on=opened_on)
    assert features["business_age_days"] == age_days
    assert features["custody_required"] == pytest.approx(balance if young else old_rule)
    coverage = CustodyCoverage()
    reading = coverage.evaluate(features)
    assert reading is not None
    if young:
        assert reading.value == pytest.approx(CUSTODY_SHARE) and reading.score > 0.0
        full = custody_merchant(balance, days, ((days - 1, balance),), opened_on=opened_on)
        assert score(coverage, full) == 0.0
    else:
        assert reading.score == 0.0


def test_a_version_with_null_custody_reports_no_custody_account() -> None:
    # Platforms publish null below the tier ("no account"); above it, null is a report of 0.
    balance, days = 2 * CUSTODY_THRESHOLD_BALANCE, 120
    profiles = (version(-10), version(100, custody=None, rep="rep-2"))
    features = features_of(merchant(days, {0: activity(0, sales=((balance, balance),))}, profiles))
    assert features["custody_report_age_days"] == days - 1 - 100
    assert features["custody_balance"] == 0.0
    coverage = CustodyCoverage().evaluate(features)
    assert coverage is not None and coverage.score == 1.0


# ---------------------------------------------------------------------------------------------
# 4. Late events: counted on the first open day, so the features still see them
# ---------------------------------------------------------------------------------------------

LATE_CASES: dict[str, tuple[Callable[[], InputEvent], dict[str, float]]] = {
    "over_cap_sale": (lambda: sale(M, 3, NAMED_CARD_CAP + 1000, n=9),
                      {"sales_28d": NAMED_CARD_CAP + 1000, "over_cap_sales_28d": 1}),
    "refund_refused_complaint": (lambda: complaint(M, 3, "refund_refused"),
                                 {"severe_complaints_28d": 1, "complaints_weighted_14d": 3}),
    "service_quality_complaint": (lambda: complaint(M, 3, "service_quality"),
                                  {"severe_complaints_28d": 0, "complaints_weighted_14d": 1}),
    "refund": (lambda: refund(M, 3, 700), {"refunds_28d": 1}),
}


@pytest.mark.parametrize("case", LATE_CASES)
def test_late_event_is_counted_on_the_first_open_day(case: str) -> None:
    make, deltas = LATE_CASES[case]
    event = make()
    without = replay(trading(12))
    late = replay(trading(12, {8: [event]}))  # day 3 was closed when it arrived; day 8 is open
    assert [o.late for o in late.outcomes_of(event)] == [True]
    before = without.features(8)
    after = late.features(8)
    for key, delta in deltas.items():
        assert after[key] - before[key] == pytest.approx(delta), key
    assert late.features(7) == without.features(7)  # closed days are not rewritten


def test_late_complaints_still_raise_complaint_surge() -> None:
    indicator = ComplaintSurge()
    n = math.floor(indicator.threshold / 3) + 1  # refund refusals weigh 3: just over the threshold
    late = [complaint(M, 3, "refund_refused", n=i) for i in range(n)]
    on_time = replay(trading(12, {3: late}))
    arrived_late = replay(trading(12, {9: late}))
    assert all(o.late for c in late for o in arrived_late.outcomes_of(c))
    assert score(indicator, replay(trading(12)).features(10)) == 0.0
    features = arrived_late.features(10)
    assert features["complaints_weighted_14d"] == on_time.features(10)["complaints_weighted_14d"] == 3 * n
    assert score(indicator, features) > 0.0


def test_late_redemption_ends_silence() -> None:
    silence = Silence()
    quiet = replay(trading(36, redeem_until=20))
    answered = replay(trading(36, {33: [redemption(M, 25, 300)]}, redeem_until=20))
    assert quiet.features(33)["silent_days"] == 33 - 19 and score(silence, quiet.features(33)) > 0.0
    features = answered.features(33)
    assert features["silent_days"] == 0.0
    assert score(silence, features) == 0.0


def test_late_custody_report_is_still_recorded() -> None:
    report = profile(M, 5, 100_000.0, industry="beauty")
    on_time = replay(trading(14, {5: [report]}))
    late = replay(trading(14, {10: [report]}))
    assert on_time.features(12)["custody_balance"] == 100_000.0
    assert late.features(12)["custody_balance"] == 100_000.0


def test_complaint_older_than_the_partitions_first_transaction_is_counted() -> None:
    """Read before the partition's first transaction, it counts on the first open day, as it
    would had it been read after (late); nothing is left in a bucket no day will close."""
    events: list[InputEvent] = [complaint(M, 0, "refund_refused")]
    events += [sale(M, day, 1000) for day in range(1, 6)]
    run = replay(events)
    assert run.features(4)["severe_complaints_28d"] == 1
    assert not [key for key in run.engine.buckets if key.endswith("|0")]
    read_after = replay([sale(M, 1, 1000), complaint(M, 0, "refund_refused"),
                         *[sale(M, day, 1000) for day in range(2, 6)]])
    assert read_after.features(4)["severe_complaints_28d"] == 1


def test_an_early_complaint_delivered_again_after_the_first_transaction_is_a_duplicate() -> None:
    early = complaint(M, 0, "refund_refused")
    run = replay([early, *[sale(M, day, 1000) for day in range(1, 4)], early,
                  *[sale(M, day, 1000) for day in range(4, 6)]])
    assert [o.duplicate for o in run.outcomes_of(early)] == [False, True]
    assert run.features(4)["severe_complaints_28d"] == 1


# ---------------------------------------------------------------------------------------------
# 5. Duplicates: a second delivery of the same event_id / complaint_id changes nothing
# ---------------------------------------------------------------------------------------------

DUPLICATED: dict[str, Callable[[], InputEvent]] = {
    "over_cap_sale": lambda: sale(M, 5, NAMED_CARD_CAP + 2000, n=7),
    "redemption": lambda: redemption(M, 5, 400, n=7),
    "refund": lambda: refund(M, 5, 300, n=7),
    "refund_refused_complaint": lambda: complaint(M, 5, "refund_refused", n=7),
}
# (day after whose events the first delivery arrives, day after which the copy arrives)
TIMINGS = {
    "same_day": (5, 5),
    "after_its_day_closed": (5, 8),
    "late_twice_while_open": (8, 8),
    "late_then_after_the_open_day_closed": (8, 12),
}


@pytest.mark.parametrize("timing", TIMINGS)
@pytest.mark.parametrize("kind", DUPLICATED)
def test_duplicate_delivery_changes_nothing(kind: str, timing: str) -> None:
    first, again = TIMINGS[timing]
    event = DUPLICATED[kind]()
    once = replay(trading(15, {first: [event]}))
    extra = {first: [event], again: [event]} if first != again else {first: [event, event]}
    twice = replay(trading(15, extra))
    assert [o.duplicate for o in twice.outcomes_of(event)] == [False, True]
    assert once.scored.keys() == twice.scored.keys()
    for key, features in once.scored.items():
        assert twice.scored[key] == features, key
    assert twice.engine.merchants[M].prepaid_balance == once.engine.merchants[M].prepaid_balance
    sensitive = {"over_cap_sale": "over_cap_sales_28d", "redemption": "redeemed_28d",
                 "refund": "refunds_28d", "refund_refused_complaint": "severe_complaints_28d"}[kind]
    assert once.features(14)[sensitive] > replay(trading(15)).features(14)[sensitive]  # it did count once


# ---------------------------------------------------------------------------------------------
# Other edges of single indicators
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("industry", "paid", "counted"), [
    ("beauty", NAMED_CARD_CAP, 0), ("beauty", NAMED_CARD_CAP + 1, 1),
    ("fitness", NAMED_CARD_CAP + 1, 0), ("fitness", GYM_PACKAGE_CAP + 1, 1),
])
def test_over_cap_cards_use_the_industrys_cap_once_the_industry_is_known(
    industry: str, paid: float, counted: int
) -> None:
    by_day = {0: activity(0, sales=((paid, paid),))}
    assert OverCapCards().evaluate(features_of(merchant(3, by_day))) is None  # no profile yet
    reading = OverCapCards().evaluate(features_of(merchant(3, by_day, (version(0, industry=industry),))))
    assert reading is not None and reading.value == counted


def test_registry_change_is_seen_within_the_look_back_then_forgotten() -> None:
    indicator = RegistryChange()
    profiles = (version(0, rep="rep-1"), version(10, rep="rep-2"))
    recent = features_of(merchant(16, profiles=profiles))
    assert recent["days_since_registry_change"] == 5
    reading = indicator.evaluate(recent)
    assert reading is not None and reading.score == 1.0
    forgotten = features_of(merchant(10 + int(REGISTRY_CHANGE_LOOKBACK_DAYS) + 6, profiles=profiles))
    assert indicator.evaluate(forgotten) is None


def test_registry_change_is_seen_across_a_version_without_representative() -> None:
    profiles = (version(0, rep="rep-1"), version(5, rep=None), version(10, rep="rep-2"))
    reading = RegistryChange().evaluate(features_of(merchant(16, profiles=profiles)))
    assert reading is not None and reading.score == 1.0


def test_more_complaints_never_lower_complaint_surge() -> None:
    indicator = ComplaintSurge()
    refusals = math.ceil(indicator.threshold * indicator.saturation / 3)  # 3 points each: saturated
    storm = ("refund_refused",) * refusals
    alone = features_of(merchant(30, {25: activity(25, complaints=storm)}))
    worse = features_of(merchant(30, {25: activity(25, complaints=storm + ("service_quality",) * 3 * refusals)}))
    assert score(indicator, alone) == 1.0
    assert score(indicator, worse) >= score(indicator, alone)


# ---------------------------------------------------------------------------------------------
# Monotonic sweeps of each indicator's main input, and the numbers in its explanations
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sweep:
    """How to feed one value of an indicator's main input, and which direction is worse."""

    indicator: type[Indicator]
    features: Callable[[float], dict[str, float]]
    worse: int  # +1: higher values are worse; -1: lower values are worse
    # the effective (threshold, saturation) in value space, from the instance's attributes
    bounds: Callable[[Indicator], tuple[float, float]] = lambda i: (i.threshold, i.saturation)


def _ratio(numerator: str, baseline: str, base: float) -> Callable[[float], dict[str, float]]:
    return lambda v: {baseline: base, numerator: v * base}


def _times_threshold(i: Indicator) -> tuple[float, float]:
    return i.threshold, i.threshold * i.saturation  # saturation given as a multiple


SWEEPS = [
    Sweep(SalesSurge, _ratio("sales_28d", "sales_baseline_28d", 100_000), +1),
    Sweep(DeepDiscountShare, lambda v: {"sales_28d": 100_000, "deep_bonus_paid_28d": v * 100_000}, +1),
    Sweep(LiabilityMonths, lambda v: {"prepaid_balance": v * 1e6, "monthly_redemptions": 1e6,
                                      "observed_days": 120}, +1),
    Sweep(CustodyCoverage, lambda v: {"custody_required": 300_000, "custody_required_at_report": 300_000,
                                      "custody_balance": v * 300_000}, -1),
    Sweep(ComplaintSurge, lambda v: {"complaints_weighted_14d": v, "severe_complaints_14d": v / 3}, +1,
          _times_threshold),
    Sweep(Silence, lambda v: {"silent_days": v, "expected_redemption_gap_days": 1.0,
                              "prepaid_balance": 100_000, "observed_days": 90}, +1, _times_threshold),
    Sweep(RedemptionDecline, _ratio("redeemed_28d", "redeemed_long_baseline_28d", 100_000), -1),
    Sweep(RegistryChange, lambda v: {"days_since_registry_change": v}, -1),
    Sweep(OverCapCards, lambda v: {"over_cap_sales_28d": v}, +1),
    Sweep(RefundPressure, _ratio("refunds_28d", "refunds_baseline_28d", 10), +1),
    Sweep(CustodyReportMissing, lambda v: {"custody_required": 100_000, "custody_report_age_days": v}, +1),
    Sweep(SalesDecline, _ratio("sales_28d", "sales_baseline_28d", 100_000), -1),
    Sweep(SevereComplaints, lambda v: {"severe_complaints_28d": v}, +1),
    Sweep(PeerSalesSurge, _ratio("sales_28d", "peer_sales_28d", 100_000), +1),
    Sweep(ChainContagion, lambda v: {"chain_peer_level": v, "chain_peers_urgent": 0.0}, +1),
    Sweep(RepresentativeLink, lambda v: {"representative_linked_urgent": v}, +1),
    Sweep(LiabilityGrowth, lambda v: {"net_liability_28d": v * 20_000.0, "redeemed_baseline_28d": 20_000.0}, +1),
    Sweep(ClosureComplaints, lambda v: {"closure_complaints_14d": v}, +1),
    # The value is how late the pause was registered; the score says how well it was announced.
    Sweep(AnnouncedPause, lambda v: {"registered_pause": 1.0, "suspended_notice_days": -v}, -1),
    Sweep(CustodyDrawdown, lambda v: {"custody_drawdown": v}, -1),
    Sweep(BonusEscalation, lambda v: {"bonus_rise_21d": v, "bonus_ratio_7d": 1.5}, +1),
]


def test_every_indicator_has_a_sweep() -> None:
    assert sorted(s.indicator.code for s in SWEEPS) == sorted(c.code for c in ALL_INDICATORS)


def _sweep_points(sweep: Sweep, indicator: Indicator) -> tuple[float, float, float]:
    """(threshold, saturation, margin) in value space; ``margin`` reaches well past both."""
    threshold, saturation = sweep.bounds(indicator)
    margin = abs(saturation - threshold) / 2 if saturation != threshold else abs(threshold) / 2
    return threshold, saturation, margin


@pytest.mark.parametrize("sweep", SWEEPS, ids=lambda s: s.indicator.code)
def test_score_is_monotonic_in_the_main_input_from_0_to_1(sweep: Sweep) -> None:
    indicator = sweep.indicator()
    threshold, saturation, margin = _sweep_points(sweep, indicator)
    if saturation != threshold:
        assert (saturation > threshold) == (sweep.worse > 0), "direction disagrees with the bounds"
    safe, beyond = threshold - sweep.worse * margin, saturation + sweep.worse * margin
    values = [max(0.0, safe + (beyond - safe) * k / 40) for k in range(41)]  # safe -> worse
    readings = [indicator.evaluate(sweep.features(v)) for v in values]
    for v, reading in zip(values, readings, strict=True):
        if reading is not None:
            assert reading.value == pytest.approx(v, rel=1e-6, abs=1e-3)
    scores = [0.0 if r is None else r.score for r in readings]
    assert scores[0] == 0.0 and scores[-1] == 1.0, scores
    assert non_decreasing(scores), list(zip(values, scores, strict=True))
    if saturation != threshold:
        assert any(0.0 < s < 1.0 for s in scores), "the score ramps between threshold and saturation"


@pytest.mark.parametrize("sweep", SWEEPS, ids=lambda s: s.indicator.code)
def test_score_is_0_just_on_the_safe_side_of_the_threshold_and_positive_just_past_it(sweep: Sweep) -> None:
    indicator = sweep.indicator()
    threshold, _, margin = _sweep_points(sweep, indicator)
    step = sweep.worse * margin * 0.02
    assert score(indicator, sweep.features(threshold - step)) == 0.0
    assert score(indicator, sweep.features(threshold + step)) > 0.0


NUMBER = re.compile(r"(\d+(?:\.\d+)?)(%?)")


def shows(text: str, x: float) -> bool:
    """Whether ``text`` prints ``x`` (as a plain number or a percentage) at its printed precision."""
    for match in NUMBER.finditer(text):
        digits, percent = match.groups()
        decimals = len(digits.partition(".")[2])
        printed, tolerance = float(digits), 0.5 * 10.0**-decimals * 1.001 + 1e-9
        if percent:
            printed, tolerance = printed / 100, tolerance / 100
        if abs(printed - x) <= tolerance:
            return True
    return False


@pytest.mark.parametrize("sweep", SWEEPS, ids=lambda s: s.indicator.code)
def test_explanations_print_the_value_and_the_threshold(sweep: Sweep) -> None:
    indicator = sweep.indicator()
    threshold, saturation, _ = _sweep_points(sweep, indicator)
    texts = []
    for share in (0.35, 0.65):
        v = threshold + share * (saturation - threshold) if saturation != threshold else share * threshold
        reading = indicator.evaluate(sweep.features(v))
        assert reading is not None and reading.threshold == pytest.approx(threshold)
        for text in (reading.explanation_zh, reading.explanation_en):
            assert shows(text, reading.value), (text, reading.value)
            assert shows(text, reading.threshold), (text, reading.threshold)
        texts.append((reading.explanation_zh, reading.explanation_en))
    assert texts[0][0] != texts[1][0] and texts[0][1] != texts[1][1], "the value is printed, not fixed"
