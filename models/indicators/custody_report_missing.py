"""``custody_report_missing``: no custody report for longer than the monthly cycle allows."""

from __future__ import annotations

from models.indicators.base import Indicator, Reading, ramp


class CustodyReportMissing(Indicator):
    """Days since the last custody report, for merchants whose balance requires custody.

    Reports are monthly; a merchant that stops reporting hides how much money is covered.

    >>> CustodyReportMissing().evaluate({"custody_required": 120_000, "custody_report_age_days": 75})
    Reading(code='custody_report_missing', value=75.0, threshold=45.0, score=0.6667, ...)
    >>> CustodyReportMissing().evaluate({"custody_required": 0, "custody_report_age_days": 300}) is None
    True
    """

    code = "custody_report_missing"
    name_zh = "存管报告缺失"
    name_en = "Custody report missing"
    rationale = "Monthly reports that stop arriving hide a custody gap from the regulator."
    rationale_zh = "停止报送存管情况会向监管隐藏存管缺口。"
    formula = (
        "days since the last custody report (profile version), when custody is required"
    )
    default_threshold = 45.0
    default_saturation = 90.0

    def evaluate(self, features: dict[str, float]) -> Reading | None:
        if features.get("custody_required", 0.0) <= 0 or "custody_report_age_days" not in features:
            return None
        value = features["custody_report_age_days"]
        return self.reading(
            value,
            ramp(value, self.threshold, self.saturation),
            f"已{value:.0f}天未报送资金存管情况,超过{self.threshold:.0f}天阈值",
            f"no custody report for {value:.0f} days (threshold {self.threshold:.0f} days)",
        )
