"""``severe_complaints``: refund refusals, closures and unavailable service reported in 28 days."""

from __future__ import annotations

from models.indicators.base import Indicator, Reading, ramp


class SevereComplaints(Indicator):
    """Complaints of the categories that mean consumers are losing their money: refund refused,
    store closed, service unavailable (last 28 days). Counted on their own, not against the
    merchant's baseline: a slow decline raises them month after month.

    >>> SevereComplaints().evaluate({"severe_complaints_28d": 8})
    Reading(code='severe_complaints', value=8.0, threshold=3.0, score=0.5556, ...)
    >>> SevereComplaints().evaluate({}).score
    0.0
    """

    code = "severe_complaints"
    name_zh = "退款拒绝/关店类投诉"
    name_en = "Refund-refusal and closure complaints"
    rationale = "Refusals, closures and unavailable service are the complaints that precede losses."
    rationale_zh = "拒退、关店、无法服务类投诉直接指向兑付风险。"
    formula = (
        "refund_refused + store_closed + service_unavailable complaints in 28 days"
    )
    default_threshold = 3.0
    default_saturation = 12.0

    def evaluate(self, features: dict[str, float]) -> Reading | None:
        value = features.get("severe_complaints_28d", 0.0)
        return self.reading(
            value,
            ramp(value, self.threshold, self.saturation),
            f"近28天退款被拒、关店、无法服务类投诉{value:.0f}件,超过{self.threshold:.0f}件阈值",
            f"{value:.0f} complaints of refused refunds, closures or unavailable service in 28 days "
            f"(threshold {self.threshold:.0f})",
        )
