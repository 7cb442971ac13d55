"""Indicator edge cases beyond the doctests: no history, zero redemptions, missing custody."""

from __future__ import annotations

import pickle

import pytest

from alerts.levels import LevelPolicy
from models.indicators import ALL_INDICATORS, Indicator
from models.indicators.custody_coverage import CustodyCoverage
from models.indicators.liability_months import LiabilityMonths
from models.indicators.silence import Silence
from models.scoring import RiskScorer
from models.state import DayTotals, MerchantState


@pytest.mark.parametrize("indicator_class", ALL_INDICATORS, ids=lambda c: c.code)
def test_every_indicator_is_named_documented_and_silent_without_data(indicator_class: type[Indicator]) -> None:
    indicator = indicator_class()
    assert indicator.code and indicator.name_zh and indicator.name_en and indicator.rationale
    assert ">>>" in (indicator_class.__doc__ or ""), "each indicator shows a runnable example"
    reading = indicator.evaluate({})
    assert reading is None or reading.score == 0.0
    assert pickle.loads(pickle.dumps(indicator)).threshold == indicator.threshold


@pytest.mark.parametrize("indicator_class", ALL_INDICATORS, ids=lambda c: c.code)
def test_scores_stay_within_0_and_1_on_extreme_values(indicator_class: type[Indicator]) -> None:
    extreme = {
        "sales_28d": 1e9, "sales_baseline_28d": 1.0, "deep_bonus_paid_28d": 1e9, "over_cap_sales_28d": 1e6,
        "prepaid_balance": 1e9, "monthly_redemptions": 0.0, "observed_days": 400, "custody_required": 1e9,
        "custody_balance": 0.0, "custody_report_age_days": 1e4, "complaints_weighted_14d": 1e6,
        "severe_complaints_14d": 1e6, "silent_days": 1e4, "expected_redemption_gap_days": 1.0,
        "redeemed_28d": 0.0, "redeemed_baseline_28d": 1e9, "redeemed_long_baseline_28d": 1e9, "refunds_28d": 1e6, "refunds_baseline_28d": 0.0,
        "days_since_registry_change": 1.0, "peer_sales_28d": 1.0, "chain_peer_level": 4.0,
        "chain_peers_urgent": 9.0, "representative_linked_urgent": 3.0,
        "net_liability_28d": 1e9, "closure_complaints_14d": 1e6, "registered_pause": 1.0,
        "suspended_notice_days": -1e4, "custody_drawdown": 0.0,
        "bonus_rise_21d": 1.0, "bonus_ratio_7d": 3.0,
    }
    collapse = {**extreme, "sales_28d": 0.0, "sales_baseline_28d": 1e9}
    newcomer = {k: v for k, v in extreme.items() if k != "sales_baseline_28d"}
    readings = [r for r in (indicator_class().evaluate(x) for x in (extreme, collapse, newcomer)) if r]
    assert readings, "the indicator applies to at least one of the extremes"
    assert all(0.0 <= r.score <= 1.0 for r in readings)


def test_zero_redemptions_make_liability_maximal_not_a_division_error() -> None:
    reading = LiabilityMonths().evaluate({"prepaid_balance": 300_000, "monthly_redemptions": 0.0, "observed_days": 60})
    assert reading is not None and reading.score == 1.0


def test_liability_waits_for_observed_trading() -> None:
    assert LiabilityMonths().evaluate({"prepaid_balance": 300_000, "monthly_redemptions": 0.0, "observed_days": 5}) is None


def test_missing_custody_report_counts_as_no_custody() -> None:
    reading = CustodyCoverage().evaluate({"custody_required": 100_000, "custody_report_age_days": 60})
    assert reading is not None and reading.value == 0.0 and reading.score == 1.0


def test_silence_needs_money_at_stake() -> None:
    assert Silence().evaluate({"silent_days": 60, "prepaid_balance": 500, "observed_days": 90}) is None


def test_a_new_merchant_without_history_scores_the_base_rate_with_no_reasons() -> None:
    state = MerchantState("new", partition=0, first_day=1)
    state.fold(1, DayTotals())
    result = RiskScorer().score(state, 1)
    assert result.drivers == []
    assert result.score <= LevelPolicy().cutoffs["blue"] / 2  # nothing fires: far below every level
