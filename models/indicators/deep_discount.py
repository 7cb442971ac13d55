"""``deep_discount_share``: share of recent card sales sold with a deep bonus (>= 30%)."""

from __future__ import annotations

from models.indicators.base import Indicator, Reading, ramp

MIN_SALES = 5000.0  # yuan in 28 days; a handful of cards proves nothing
#: A merchant "sells mostly at a deep bonus" above this share, when its industry's peers are
#: counted (fixed, not the tunable threshold: peer norms must not depend on a thresholds version).
MOSTLY_DEEP = 0.4


def sells_mostly_deep(features: dict[str, float]) -> bool | None:
    """Whether the merchant sells mostly (``MOSTLY_DEEP``) at a deep bonus, for its industry's
    peer norm; None with too few sales to say.

    >>> sells_mostly_deep({"sales_28d": 40_000, "deep_bonus_paid_28d": 30_000}), sells_mostly_deep({"sales_28d": 10})
    (True, None)
    """
    sales = features.get("sales_28d", 0.0)
    if sales < MIN_SALES:
        return None
    return features.get("deep_bonus_paid_28d", 0.0) / sales >= MOSTLY_DEEP


class DeepDiscountShare(Indicator):
    """Paid amount of cards with stored value >= 1.3x the price, over all card sales (28 days).

    "充1000送500" and "buy one year get one free" are classic last pushes before closure. A
    calendar promotion (Double 11, New Year fitness) that half the industry runs at once is not
    the merchant's own push: the share is scaled by the share of the industry's peers not selling
    mostly at a deep bonus at the same time (``peer_deep_share``).

    >>> DeepDiscountShare().evaluate({"sales_28d": 40_000, "deep_bonus_paid_28d": 30_000})
    Reading(code='deep_discount_share', value=0.75, threshold=0.4, score=0.875, ...)
    >>> DeepDiscountShare().evaluate({"sales_28d": 40_000, "deep_bonus_paid_28d": 30_000, "peer_deep_share": 0.5})
    Reading(code='deep_discount_share', value=0.375, threshold=0.4, score=0.0, ...)
    >>> DeepDiscountShare().evaluate({"sales_28d": 1_000, "deep_bonus_paid_28d": 1_000}) is None
    True
    """

    code = "deep_discount_share"
    name_zh = "深度折扣售卡占比"
    name_en = "Deep-discount share of sales"
    rationale = "Deep bonuses create liabilities above the cash taken; they precede run-aways."
    rationale_zh = "大额赠送使负债高于实收现金,常见于跑路前。"
    formula = (
        "share of 28-day card sales (paid, at least 5,000 yuan) sold with stored value ≥ 1.3 × price, "
        "× the share of the industry's peers not selling mostly (≥ 40%) so at the same time"
    )
    default_threshold = 0.4
    default_saturation = 0.8

    def evaluate(self, features: dict[str, float]) -> Reading | None:
        sales = features.get("sales_28d", 0.0)
        if sales < MIN_SALES:
            return None
        value = features.get("deep_bonus_paid_28d", 0.0) / sales
        value *= 1.0 - features.get("peer_deep_share", 0.0)
        return self.reading(
            value,
            ramp(value, self.threshold, self.saturation),
            f"近28天{value:.0%}的售卡金额附带30%以上赠送,超过{self.threshold:.0%}阈值",
            f"{value:.0%} of card sales in 28 days carried a bonus of 30% or more "
            f"(threshold {self.threshold:.0%})",
        )
