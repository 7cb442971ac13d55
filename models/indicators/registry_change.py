"""``registry_change``: a recent change of legal representative or cut of registered capital."""

from __future__ import annotations

from models.indicators.base import Indicator, Reading

LOOKBACK_DAYS = 90.0


class RegistryChange(Indicator):
    """Days since the legal representative changed or registered capital was cut (<= 90 days).

    Officials name these as the most common moves before a run-away.

    >>> RegistryChange().evaluate({"days_since_registry_change": 12}).score
    1.0
    >>> RegistryChange().evaluate({"days_since_registry_change": -1}) is None
    True
    """

    code = "registry_change"
    name_zh = "登记事项变更"
    name_en = "Registry change"
    rationale = "Transfers of control and capital cuts come first in documented run-aways."
    rationale_zh = "控制权转让与减资往往是跑路的第一步。"
    formula = (
        "days since a change of legal representative or a cut of registered capital, within 90 days (compared with the last known value)"
    )
    default_threshold = LOOKBACK_DAYS
    default_saturation = LOOKBACK_DAYS
    range_text = "a change within 90 days"

    def evaluate(self, features: dict[str, float]) -> Reading | None:
        value = features.get("days_since_registry_change", -1.0)
        if value < 0 or value > self.threshold:
            return None
        return self.reading(
            value,
            1.0,
            f"{value:.0f}天前变更法定代表人或减少注册资本(回看{self.threshold:.0f}天)",
            f"legal representative changed or registered capital cut {value:.0f} days ago "
            f"(look-back {self.threshold:.0f} days)",
        )
