"""Custody drawn down before a collapse (issue 14): the simulator's deposit habits, the bounded
recent reports in the merchant state, the ``custody_drawdown`` feature and indicator.

Pure and small: no services; the simulated world is a few dozen merchants.
"""

from __future__ import annotations

import collections
from datetime import date

import orjson

from models.features import merchant_features
from models.indicators import CustodyDrawdown
from models.state import CUSTODY_REPORTS_KEPT, MerchantState
from tests.test_indicator_cases import BASE, OPENED_LONG_AGO, activity, merchant, version
from yujing.simulator import SimulationConfig, scaled_mix, simulate
from yujing.simulator.assumptions import CLASSIC, draw_world


# -- the state keeps a few recent reports ---------------------------------------------------------
def test_the_state_keeps_recent_reports_stating_an_amount_bounded() -> None:
    reports = tuple(version(day, custody=100_000.0 + day) for day in range(1, 400, 10))
    state = merchant(400, profiles=(*reports, version(395)))  # the last one says null
    kept = state.custody_reports or []
    assert 0 < len(kept) <= CUSTODY_REPORTS_KEPT
    assert kept[-1][1] == 100_000.0 + 391  # null is no amount: not kept (still the report in force)
    assert kept[-1][0] - kept[0][0] <= 180
    assert state.custody_report is not None and state.custody_report[1] == 0.0


def test_a_later_version_of_the_same_day_replaces_the_earlier() -> None:
    state = MerchantState("m", partition=0, first_day=BASE)
    state.add_profile(version(1, custody=300_000.0))
    state.fold(BASE, None)
    state.fold(BASE + 1, None)
    later = version(1, custody=250_000.0)._replace(updated_at=version(1).updated_at.replace(hour=10))
    state.add_profile(later)
    state.fold(BASE + 2, None)
    assert state.custody_reports == [(BASE + 1, 250_000.0, 0.0)]


# -- the feature ----------------------------------------------------------------------------------
def _with_balance(balance: float, reports: dict[int, float], days: int = 120) -> dict[str, float]:
    """Features of a merchant holding ``balance`` of stored value, custody reported on days."""
    sale = {0: activity(0, sales=((balance, balance),))}
    profiles = tuple(version(day, custody=c) for day, c in reports.items())
    state = merchant(days, sale, profiles)
    assert state.last_closed_day is not None
    return merchant_features(state, state.last_closed_day)


def test_a_deposit_taken_out_reads_as_a_drawdown_and_a_kept_one_does_not() -> None:
    drawn = _with_balance(1_000_000.0, {10: 500_000.0, 40: 480_000.0, 70: 300_000.0})
    assert drawn["custody_drawdown"] == 0.6
    reading = CustodyDrawdown().evaluate(drawn)
    assert reading is not None and reading.score > 0
    kept = _with_balance(1_000_000.0, {10: 500_000.0, 40: 490_000.0, 70: 505_000.0})
    reading = CustodyDrawdown().evaluate(kept)
    assert reading is not None and reading.score == 0.0


def test_a_deposit_following_a_shrinking_requirement_is_no_drawdown() -> None:
    """Sales of 1,000,000 then 600,000 redeemed: the requirement falls from 400,000 to 160,000."""
    by_day = {0: activity(0, sales=((1_000_000.0, 1_000_000.0),)),
              50: activity(50, redemptions=(600_000.0,))}
    profiles = (version(10, custody=420_000.0), version(70, custody=170_000.0))
    state = merchant(90, by_day, profiles)
    features = merchant_features(state, BASE + 89)
    assert features["custody_drawdown"] > 1.0
    reading = CustodyDrawdown().evaluate(features)
    assert reading is not None and reading.score == 0.0


def test_one_report_or_no_profile_is_not_judged() -> None:
    assert "custody_drawdown" not in _with_balance(1_000_000.0, {10: 500_000.0})
    assert CustodyDrawdown().evaluate({}) is None


# -- the simulator ------------------------------------------------------------------------------------
def test_every_collapse_kind_can_draw_its_deposit_down_in_drawn_worlds() -> None:
    assert CLASSIC.collapses.drawdown == {} and CLASSIC.custody.stable_share == 0.0
    worlds = [draw_world(seed) for seed in range(1, 9)]
    for world in worlds:
        for scenario, mix in world.collapses.custody.items():
            assert mix["falling"] == world.collapses.drawdown[scenario] > 0
            assert abs(sum(mix.values()) - 1.0) < 1e-3
    shares = [w.custody.stable_share for w in worlds]
    assert min(shares) < 0.3 and max(shares) > 0.7  # worlds differ in how deposits are kept


def _lowest_ratios(events: list[tuple[str, dict]], merchants: set[str]) -> dict[str, float]:
    """Per merchant: the lowest report over the highest earlier report (reports stating an amount)."""
    reports: dict[str, list[float]] = collections.defaultdict(list)
    for kind, record in events:
        if kind == "merchants" and record["merchant_id"] in merchants and record["custody_balance"]:
            reports[record["merchant_id"]].append(record["custody_balance"])
    return {m: min(r[k] / max(r[:k]) for k in range(1, len(r))) for m, r in reports.items() if len(r) > 2}


def test_stable_deposits_stay_near_their_level_and_tracking_ones_swing() -> None:
    def ratios(stable_share: float) -> list[float]:
        world = draw_world(3)
        world = world.model_copy(update={
            "custody": world.custody.model_copy(update={
                "stable_share": stable_share, "cadence": "monthly", "miss_rate": 0.0,
                "not_enrolled_share": 0.0, "never_report_share": 0.0, "late_share": 0.0,
                "habits": {"voluntary": 1.0}}),
            "history_days": 0})
        sim = simulate(SimulationConfig(merchants=40, days=240, seed=5, world=world, mix=scaled_mix(0.0, 0.0)))
        healthy = {m["merchant_id"] for m in sim.labels if m["kind"] == "healthy"}
        events = [(k, orjson.loads(orjson.dumps(r))) for k, r in sim.events() if k == "merchants"]
        return sorted(_lowest_ratios(events, healthy).values())

    stable, tracking = ratios(1.0), ratios(0.0)
    assert stable and tracking
    assert stable[len(stable) // 20] > 0.8  # the 5th percentile: small noise, never withdrawn
    assert tracking[len(tracking) // 20] < stable[len(stable) // 20]
    assert date.fromordinal(OPENED_LONG_AGO).year == 2023
