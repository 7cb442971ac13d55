"""``custody_drawdown``: the custody deposit drawn down against its own recent reports."""

from __future__ import annotations

from models.indicators.base import Indicator, Reading, ramp


class CustodyDrawdown(Indicator):
    """The latest custody report over the earlier reports of the last 180 days (the lowest of
    the ratios). A merchant in distress takes money back out of the supervised account before
    it closes; a sound one keeps its deposit, or lets it follow a shrinking requirement, which
    is divided out (a requirement fallen below the tier is not judged). Lower is worse.

    >>> CustodyDrawdown().evaluate({"custody_drawdown": 0.5})
    Reading(code='custody_drawdown', value=0.5, threshold=0.8, score=0.75, ...)
    >>> CustodyDrawdown().evaluate({"custody_drawdown": 1.1}).score
    0.0
    >>> CustodyDrawdown().evaluate({"custody_balance": 100_000}) is None  # a single report
    True
    """

    code = "custody_drawdown"
    name_zh = "存管资金回落"
    name_en = "Custody drawdown"
    rationale = "A deposit taken back out of the custody account is money leaving before a closure."
    rationale_zh = "从存管账户取回资金,是关店前转移资金的迹象。"
    formula = (
        "latest custody report ÷ each report of the previous 180 days (÷ the fall of the required custody, "
        "if it fell), the lowest; lower is worse"
    )
    default_threshold = 0.8
    default_saturation = 0.4

    def evaluate(self, features: dict[str, float]) -> Reading | None:
        value = features.get("custody_drawdown")
        if value is None:
            return None
        return self.reading(
            value,
            ramp(value, self.threshold, self.saturation),
            f"存管资金较半年内报告回落至{value:.0%},低于{self.threshold:.0%}阈值",
            f"custody deposit fell to {value:.0%} of an earlier report of the last 180 days "
            f"(threshold {self.threshold:.0%})",
        )
