"""``refund_pressure``: refunds of the last 28 days against the merchant's usual number."""

from __future__ import annotations

from models.indicators.base import BaselineRatio

MIN_BASELINE = 2.0  # refunds per 28 days


class RefundPressure(BaselineRatio):
    """Refunds in 28 days divided by the usual 28 days (at least 2).

    Consumers who sense trouble ask for their money back before the doors close.

    >>> RefundPressure().evaluate({"refunds_28d": 12, "refunds_baseline_28d": 2})
    Reading(code='refund_pressure', value=6.0, threshold=3.0, score=0.6, ...)
    >>> RefundPressure().evaluate({"refunds_28d": 12}) is None  # no baseline yet
    True
    """

    code = "refund_pressure"
    name_zh = "退款压力"
    name_en = "Refund pressure"
    rationale = "A run of refund requests shows consumers losing confidence in the merchant."
    rationale_zh = "退款申请集中出现说明消费者信心下降。"
    formula = (
        "refunds of 28 days ÷ own baseline (floored at 2 per 28 days)"
    )
    default_threshold = 3.0
    default_saturation = 8.0
    numerator = "refunds_28d"
    baseline = "refunds_baseline_28d"
    min_baseline = MIN_BASELINE
    floor_baseline = True
    template_zh = "近28天退款笔数为自身基线的{value:.1f}倍,超过{threshold:g}倍阈值"
    template_en = "refunds in 28 days are {value:.1f}x the merchant's usual number (threshold {threshold:g}x)"
