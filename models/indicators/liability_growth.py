"""``liability_growth``: stored value sold beyond the service given, against the usual service."""

from __future__ import annotations

from models.indicators.base import Indicator, Reading, ramp

MIN_SERVICE = 5_000.0  # yuan of usual 28-day redemptions below which the ratio is floored


class LiabilityGrowth(Indicator):
    """How much the 28-day push grew what the merchant owes: stored value sold minus value served,
    in units of the merchant's usual 28 days of service. A run-away sells months of future service
    while serving less; a healthy merchant's sales and service roughly balance.

    >>> LiabilityGrowth().evaluate({"net_liability_28d": 60_000.0, "redeemed_baseline_28d": 20_000.0})
    Reading(code='liability_growth', value=3.0, threshold=1.0, score=0.6667, ...)
    >>> LiabilityGrowth().evaluate({"net_liability_28d": 1_000.0}) is None  # no own baseline yet
    True
    """

    code = "liability_growth"
    name_zh = "预收负债增速"
    name_en = "Liability growth"
    rationale = "Selling months of future service while serving less is how a run-away gathers money."
    rationale_zh = "售出的储值远超提供的服务,是跑路前集中收钱的特征。"
    formula = (
        "stored value sold minus redemptions, 28 days, ÷ own 28-day redemption baseline (at least 5,000 yuan)"
    )
    default_threshold = 1.0
    default_saturation = 4.0

    def evaluate(self, features: dict[str, float]) -> Reading | None:
        baseline = features.get("redeemed_baseline_28d")
        if baseline is None or "net_liability_28d" not in features:
            return None
        value = features["net_liability_28d"] / max(baseline, MIN_SERVICE)
        return self.reading(
            value,
            ramp(value, self.threshold, self.saturation),
            f"近28天净增预收负债为平日28天服务量的{value:.1f}倍,超过{self.threshold:g}倍阈值",
            f"28-day net new stored value is {value:.1f}× the usual 28 days of service "
            f"(threshold {self.threshold:g}×)",
        )
