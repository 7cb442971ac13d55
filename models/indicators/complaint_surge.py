"""``complaint_surge``: weighted complaints of the last 14 days against the usual level."""

from __future__ import annotations

from models.indicators.base import Indicator, Reading, ramp


class ComplaintSurge(Indicator):
    """Complaints in 14 days, refund refusals / closures / unavailable service counted three
    times; the threshold is the larger of a floor and three times the merchant's usual 14 days.
    The score is scaled by severity (half for a burst of service-quality complaints only), so a
    viral storm about service is watched while refusals and closures are acted on.

    >>> ComplaintSurge().evaluate({"complaints_weighted_14d": 12, "complaints_weighted_baseline_14d": 1,
    ...                            "severe_complaints_14d": 4})
    Reading(code='complaint_surge', value=12.0, threshold=6.0, score=0.5, ...)
    >>> ComplaintSurge().evaluate({"complaints_weighted_14d": 12}).score  # no severe ones
    0.25
    >>> ComplaintSurge().evaluate({"complaints_weighted_14d": 2}).score
    0.0
    """

    code = "complaint_surge"
    name_zh = "投诉激增"
    name_en = "Complaint surge"
    rationale = "Refund refusals and closures reported by consumers are the most direct signal."
    rationale_zh = "消费者反映的拒绝退款、关店是最直接的信号。"
    formula = (
        "complaints of 14 days with refund_refused / store_closed / service_unavailable counted 3×; threshold max(6, 3 × own 14-day baseline); only severe complaints score in full, the rest at half"
    )
    default_threshold = 6.0
    default_saturation = 3.0  # times the threshold
    range_text = "max(6, 3× own baseline) → 3× that"

    def evaluate(self, features: dict[str, float]) -> Reading | None:
        value = features.get("complaints_weighted_14d", 0.0)
        threshold = max(self.threshold, 3.0 * features.get("complaints_weighted_baseline_14d", 0.0))
        severe_points = 3.0 * features.get("severe_complaints_14d", 0.0)
        # Severe complaints count in full, the rest at half: more complaints never lower it.
        score = max(
            ramp(severe_points, threshold, threshold * self.saturation),
            0.5 * ramp(value, threshold, threshold * self.saturation),
        )
        return self.reading(
            value,
            score,
            f"近14天加权投诉{value:.0f}件,超过{threshold:.0f}件阈值",
            f"{value:.0f} weighted complaints in 14 days (threshold {threshold:.0f})",
            threshold=threshold,
        )
