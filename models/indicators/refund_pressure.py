"""``refund_pressure``: refunds of the last 28 days against the merchant's usual number."""

from __future__ import annotations

from models.indicators.base import Indicator, Reading, ramp

MIN_BASELINE = 2.0  # refunds per 28 days


class RefundPressure(Indicator):
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
    default_threshold = 3.0
    default_saturation = 8.0
    default_weight = 0.3

    def evaluate(self, features: dict[str, float]) -> Reading | None:
        if "refunds_baseline_28d" not in features:
            return None
        value = features.get("refunds_28d", 0.0) / max(features["refunds_baseline_28d"], MIN_BASELINE)
        return self.reading(
            value,
            ramp(value, self.threshold, self.saturation),
            f"近28天退款笔数为自身基线的{value:.1f}倍,超过{self.threshold:g}倍阈值",
            f"refunds in 28 days are {value:.1f}x the merchant's usual number "
            f"(threshold {self.threshold:g}x)",
        )
