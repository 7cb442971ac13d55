"""``custody_coverage``: custody balance over what Shanghai's custody tiers require."""

from __future__ import annotations

from models.indicators.base import Indicator, Reading, ramp

REPORT_DUE_DAYS = 35
GROWTH_TOLERANCE = 0.6  # between reports, the balance may grow by 1/0.6 before it counts


class CustodyCoverage(Indicator):
    """Reported custody over the required custody (40% of balances above 200,000 yuan, 100%
    for businesses under one year), judged on the balance of the day of the report, and on
    today's balance with room for growth until the next monthly report. The worse one counts.
    A balance that crossed the tier after a report made below it waits for the next report (due
    within 35 days); one never reported counts as no custody.

    >>> CustodyCoverage().evaluate({"custody_required": 200_000, "custody_balance": 50_000,
    ...                             "custody_required_at_report": 200_000})
    Reading(code='custody_coverage', value=0.25, threshold=0.9, score=0.8667, ...)
    >>> CustodyCoverage().evaluate({"custody_required": 500_000, "custody_balance": 250_000,
    ...                             "custody_required_at_report": 240_000}).score  # grew since
    0.0
    >>> CustodyCoverage().evaluate({"custody_required": 300_000, "custody_report_age_days": 60}).value
    0.0
    >>> CustodyCoverage().evaluate({"custody_required": 300_000, "custody_report_age_days": 10}) is None
    True
    >>> CustodyCoverage().evaluate({"custody_required": 0, "custody_balance": 0}) is None
    True
    """

    code = "custody_coverage"
    name_zh = "资金存管覆盖率"
    name_en = "Custody coverage"
    rationale = "Custody is the money consumers get back; a gap is the loss if the store closes."
    rationale_zh = "存管资金是消费者可追回的钱,存管缺口即关店时的损失。"
    formula = (
        "custody balance ÷ custody required (40% of the balance above 200,000 yuan; 100% under one year old), judged at the report and now; lower is worse"
    )
    default_threshold = 0.9
    default_saturation = 0.15

    def evaluate(self, features: dict[str, float]) -> Reading | None:
        required_now = features.get("custody_required", 0.0)
        required_then = features.get("custody_required_at_report", 0.0)
        if required_now <= 0 and required_then <= 0:
            return None
        custody = features.get("custody_balance", 0.0)
        if required_then <= 0 and features.get("custody_report_age_days", 0.0) <= REPORT_DUE_DAYS:
            # The balance crossed the tier since the last report: the next monthly report is
            # not due yet (an overdue one is custody_report_missing's business).
            return None
        coverages = []
        if required_then > 0:
            coverages.append(custody / required_then)
        if required_now > 0:
            coverages.append(custody / (required_now * GROWTH_TOLERANCE))
        value = min(coverages)
        return self.reading(
            value,
            ramp(value, self.threshold, self.saturation),
            f"存管资金仅为应存管金额的{value:.0%},低于{self.threshold:.0%}阈值",
            f"custody balance covers {value:.0%} of the required custody "
            f"(threshold {self.threshold:.0%})",
        )
