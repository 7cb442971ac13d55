"""``custody_coverage``: custody balance over what Shanghai's custody tiers require."""

from __future__ import annotations

from models.indicators.base import Indicator, Reading, ramp


class CustodyCoverage(Indicator):
    """Reported custody balance divided by the required custody (40%, or 100% for businesses
    under one year, of balances above 200,000 yuan). A missing or stale report counts as zero.

    >>> CustodyCoverage().evaluate({"custody_required": 200_000, "custody_balance": 50_000})
    Reading(code='custody_coverage', value=0.25, threshold=0.9, score=0.8667, ...)
    >>> CustodyCoverage().evaluate({"custody_required": 0, "custody_balance": 0}) is None
    True
    """

    code = "custody_coverage"
    name_zh = "资金存管覆盖率"
    name_en = "Custody coverage"
    rationale = "Custody is the money consumers get back; a gap is the loss if the store closes."
    default_threshold = 0.9
    default_saturation = 0.15
    default_weight = 0.45

    def evaluate(self, features: dict[str, float]) -> Reading | None:
        required = features.get("custody_required", 0.0)
        if required <= 0:
            return None
        value = features.get("custody_balance", 0.0) / required
        return self.reading(
            value,
            ramp(value, self.threshold, self.saturation),
            f"存管资金仅为应存管金额的{value:.0%},低于{self.threshold:.0%}阈值",
            f"custody balance covers {value:.0%} of the required custody "
            f"(threshold {self.threshold:.0%})",
        )
