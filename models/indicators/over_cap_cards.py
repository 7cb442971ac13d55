"""``over_cap_cards``: single cards sold above the legal caps in the last 28 days."""

from __future__ import annotations

from models.indicators.base import Indicator, Reading, ramp


class OverCapCards(Indicator):
    """Cards whose price paid exceeds the cap: 5,000 yuan for named cards (MOFCOM 2012),
    20,000 yuan for gym class packages (Shanghai "三限", 2025). Counted only once the
    merchant's industry is known from its profile.

    Selling oversized cards is how operators collect cash they do not mean to serve. Unlike a
    surge or a discount it is a breach of the rules in itself, so it weighs as distress (0.5):
    with deep discounts on top it reaches orange.

    >>> OverCapCards().evaluate({"over_cap_sales_28d": 3})
    Reading(code='over_cap_cards', value=3.0, threshold=1.0, score=0.5, ...)
    >>> OverCapCards().evaluate({}) is None
    True
    """

    code = "over_cap_cards"
    name_zh = "超限额售卡"
    name_en = "Cards above the legal caps"
    rationale = "Oversized cards break the caps and concentrate consumer money at risk."
    rationale_zh = "超限额售卡本身违规,且集中放大消费者风险。"
    formula = (
        "cards sold in 28 days with a price above the cap: 5,000 yuan (named cards), 20,000 yuan for gyms"
    )
    default_threshold = 1.0
    default_saturation = 5.0

    def evaluate(self, features: dict[str, float]) -> Reading | None:
        if "over_cap_sales_28d" not in features:
            return None
        value = features["over_cap_sales_28d"]
        return self.reading(
            value,
            ramp(value, self.threshold, self.saturation),
            f"近28天售出{value:.0f}张超过限额的预付卡(阈值{self.threshold:.0f}张)",
            f"{value:.0f} cards above the legal cap sold in 28 days (threshold {self.threshold:.0f})",
        )
