"""A thresholds set whose fusion is stated here, not learned: for tests that need warnings.

``yujing train`` regenerates the built-in weights, intercept and level cut-offs
(``models/learned.py``), so a test that needs a run-away to raise warnings, a simulated world to
flag merchants or a candidate to change something cannot rely on them. :func:`stated_thresholds`
keeps everything else of the built-in set (thresholds, saturations, hysteresis, response hours)
and states its own fusion: an intercept, one weight per reading (log-odds per unit score) and the
cut-offs. The weights follow the hand-set noisy-OR weights the project used before the learned
fusion, times eight, so each reading counts roughly as it used to; an announced pause lowers the
odds. They are test fixtures, not a model of anything.

The stated set has no pairs and the widest cap (20 log-odds, never reached by these weights), so
each reading counts on its own, as in a plain logistic model.
"""

from __future__ import annotations

from alerts.thresholds import ThresholdSet, builtin_thresholds
from models.indicators import ALL_INDICATORS

STATED_INTERCEPT = -5.0
STATED_WEIGHTS: dict[str, float] = {
    "sales_surge": 3.2,
    "peer_sales_surge": 2.4,
    "deep_discount_share": 2.4,
    "liability_months": 2.0,
    "custody_coverage": 3.6,
    "complaint_surge": 4.0,
    "silence": 6.0,
    "redemption_decline": 2.4,
    "registry_change": 2.4,
    "over_cap_cards": 4.0,
    "refund_pressure": 2.4,
    "custody_report_missing": 2.0,
    "sales_decline": 2.0,
    "severe_complaints": 3.2,
    "chain_contagion": 3.6,
    "representative_link": 3.6,
    "liability_growth": 2.4,
    "closure_complaints": 4.0,
    "announced_pause": -4.0,
    "custody_drawdown": 2.4,
    "bonus_escalation": 2.4,
}
STATED_DETECTOR_WEIGHT = 2.0  # baseline_anomaly
STATED_JOINT_WEIGHT = 1.6  # joint_anomaly
STATED_CUTOFFS: dict[str, float] = {"blue": 0.3, "yellow": 0.45, "orange": 0.6, "red": 0.8}
STATED_CAP = 20.0  # the widest allowed: no reading is capped


def stated_data() -> dict:
    """The stated set as plain data (the shape of a thresholds file)."""
    data = builtin_thresholds().model_dump()
    missing = {c.code for c in ALL_INDICATORS} - set(STATED_WEIGHTS)
    assert not missing, f"state a weight for every indicator: {sorted(missing)}"
    for code, values in data["indicators"].items():
        values["weight"] = STATED_WEIGHTS[code]
    data["scoring"] = {"intercept": STATED_INTERCEPT, "detector_weight": STATED_DETECTOR_WEIGHT,
                       "joint_weight": STATED_JOINT_WEIGHT, "cap": STATED_CAP, "pairs": {}}
    data["levels"]["cutoffs"] = dict(STATED_CUTOFFS)
    return data


def stated_thresholds() -> ThresholdSet:
    """The built-in set with the fusion and cut-offs stated above."""
    return ThresholdSet.from_mapping(stated_data())
