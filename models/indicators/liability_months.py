"""``liability_months``: outstanding prepaid balance in months of redemptions."""

from __future__ import annotations

from models.indicators.base import Indicator, Reading, ramp

MIN_BALANCE = 50_000.0  # yuan; small balances put little consumer money at stake
MIN_OBSERVED_DAYS = 30  # a month of redemptions before their rate means anything


class LiabilityMonths(Indicator):
    """Prepaid balance outstanding divided by the average monthly redemptions (last 90 days).

    The more months of service a merchant owes, the more consumers lose if it stops.

    >>> LiabilityMonths().evaluate({"prepaid_balance": 950_000, "monthly_redemptions": 100_000,
    ...                             "observed_days": 120})
    Reading(code='liability_months', value=9.5, threshold=8.0, score=0.125, ...)
    >>> LiabilityMonths().evaluate({"prepaid_balance": 60_000, "monthly_redemptions": 0, "observed_days": 90})
    Reading(code='liability_months', value=60.0, threshold=8.0, score=1.0, ...)
    """

    code = "liability_months"
    name_zh = "预收资金余额月数"
    name_en = "Months of prepaid liability"
    rationale = "A balance worth many months of services cannot be honoured if revenue stops."
    rationale_zh = "预收余额相当于过多月份的服务量,一旦收入中断无法兑付。"
    formula = (
        "prepaid balance (≥ 50,000 yuan) ÷ average monthly redemptions of the last 90 observed days (after 30 observed days)"
    )
    default_threshold = 8.0
    default_saturation = 20.0

    def evaluate(self, features: dict[str, float]) -> Reading | None:
        balance = features.get("prepaid_balance", 0.0)
        if balance < MIN_BALANCE or features.get("observed_days", 0.0) < MIN_OBSERVED_DAYS:
            return None
        monthly = max(features.get("monthly_redemptions", 0.0), 1000.0)
        value = balance / monthly
        return self.reading(
            value,
            ramp(value, self.threshold, self.saturation),
            f"预收资金余额相当于{value:.1f}个月核销量,超过{self.threshold:g}个月阈值",
            f"outstanding prepaid balance equals {value:.1f} months of redemptions "
            f"(threshold {self.threshold:g} months)",
        )
