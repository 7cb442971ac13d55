"""``redemption_decline``: redemptions of the last 28 days against the merchant's half-year level."""

from __future__ import annotations

from models.indicators.base import BaselineRatio

MIN_BASELINE = 5000.0  # yuan per 28 days


class RedemptionDecline(BaselineRatio):
    """Redeemed value over the last 28 days divided by the usual 28 days (lower is worse).

    Fewer services delivered means fewer customers or cards no longer honoured. "Usual" is the
    median 28 days of the last half-year, not the last quarter: a decline of months must not
    become its own baseline.

    >>> RedemptionDecline().evaluate({"redeemed_28d": 6_000, "redeemed_long_baseline_28d": 30_000})
    Reading(code='redemption_decline', value=0.2, threshold=0.75, score=1.0, ...)

    A store that registered a pause (a renovation) and reopened is judged on its open days: 21
    days closed and 7 open, at the usual pace, is no decline; fewer than 7 open days say nothing.

    >>> RedemptionDecline().evaluate({"redeemed_28d": 7_500, "redeemed_long_baseline_28d": 30_000,
    ...                               "reopened_pause_days_28d": 21}).score
    0.0
    >>> RedemptionDecline().evaluate({"redeemed_28d": 1_000, "redeemed_long_baseline_28d": 30_000,
    ...                               "reopened_pause_days_28d": 25}) is None
    True
    """

    code = "redemption_decline"
    name_zh = "核销量下滑"
    name_en = "Redemption decline"
    rationale = "Slow declines show up as fewer services delivered months before closure."
    rationale_zh = "缓慢衰败表现为数月内服务量持续下降。"
    formula = (
        "redemptions of 28 days ÷ median 28 days of the last half-year (at least 5,000 yuan); lower is worse; "
        "after a registered pause that ended, over the open days (at least 7)"
    )
    default_threshold = 0.75
    default_saturation = 0.25
    numerator = "redeemed_28d"
    baseline = "redeemed_long_baseline_28d"
    min_baseline = MIN_BASELINE
    peer_feature = "peer_redemption_ratio"
    open_days_only = True
    template_zh = "近28天核销额仅为近半年常态的{value:.0%},低于{threshold:.0%}阈值"
    template_en = "redemptions in 28 days are {value:.0%} of the merchant's usual half-year level (threshold {threshold:.0%})"
