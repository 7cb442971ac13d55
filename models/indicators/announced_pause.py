"""``announced_pause``: a suspension or closure registered before the store went quiet."""

from __future__ import annotations

from models.indicators.base import Indicator, Reading, ramp


class AnnouncedPause(Indicator):
    """A registered suspension or closure is how a store stops lawfully (a renovation, an orderly
    closure) — and a run-away's cover ("renovation", then the doors stay shut). Registered before
    the silence began, at any notice, it is a reading of its own, weighed against the silence and
    "store closed" complaints by its learned weight (which the worlds decide, not this docstring);
    registered long after the store went quiet it counts for nothing.

    >>> AnnouncedPause().evaluate({"registered_pause": 1.0, "suspended_notice_days": 3.0}).score  # 3 days ahead
    1.0
    >>> AnnouncedPause().evaluate({"registered_pause": 1.0, "suspended_notice_days": -10.0}).score  # 10 days late
    0.0
    >>> AnnouncedPause().evaluate({"registered_pause": 0.0}) is None
    True
    """

    code = "announced_pause"
    name_zh = "已登记停业/歇业"
    name_en = "Registered suspension or closure"
    rationale = "A pause registered before the store went quiet is the lawful way to stop; it weighs against silence."
    rationale_zh = "先登记停业再停止服务是合法的停业方式,可抵消核销停滞等信号。"
    formula = (
        "registered status suspended or closed in force; value: days the store had already been quiet when it was "
        "registered (0 when registered before the silence, at any notice)"
    )
    range_text = "7 days late → registered in time (lower is better-announced)"
    default_threshold = 7.0
    default_saturation = 0.0

    def evaluate(self, features: dict[str, float]) -> Reading | None:
        if features.get("registered_pause", 0.0) < 1.0:
            return None
        notice = features.get("suspended_notice_days", 0.0)
        value = max(0.0, -notice)
        return self.reading(
            value,
            ramp(value, self.threshold, self.saturation),
            f"已登记停业/歇业,登记时已停止服务{value:.0f}天(迟于{self.threshold:.0f}天不计)",
            f"suspension or closure registered {value:.0f} days into the silence "
            f"(counts until {self.threshold:.0f} days late)",
        )
