"""``closure_complaints``: consumers reporting the store closed, in 14 days."""

from __future__ import annotations

from models.indicators.base import Indicator, Reading, ramp


class ClosureComplaints(Indicator):
    """Complaints that the store is closed (last 14 days), on their own: what consumers see at the
    door, weighed against what the registry says (an announced pause) and what the platform shows.

    >>> ClosureComplaints().evaluate({"closure_complaints_14d": 2.0})
    Reading(code='closure_complaints', value=2.0, threshold=0.0, score=0.6667, ...)
    >>> ClosureComplaints().evaluate({}).score
    0.0
    """

    code = "closure_complaints"
    name_zh = "关店投诉"
    name_en = "Store-closed complaints"
    rationale = "Consumers finding the door shut is the first outside sign of a run-away or a closure."
    rationale_zh = "消费者反映门店关闭,是跑路或关店最早的外部信号。"
    formula = "store_closed complaints in 14 days"
    default_threshold = 0.0
    default_saturation = 3.0

    def evaluate(self, features: dict[str, float]) -> Reading | None:
        value = features.get("closure_complaints_14d", 0.0)
        return self.reading(
            value,
            ramp(value, self.threshold, self.saturation),
            f"近14天关店投诉{value:.0f}件(超过{self.threshold:.0f}件即计分)",
            f"{value:.0f} store-closed complaints in 14 days (scored above {self.threshold:.0f})",
        )
