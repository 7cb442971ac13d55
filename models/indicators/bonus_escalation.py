"""``bonus_escalation``: the bonus on card sales raised week after week."""

from __future__ import annotations

from models.indicators.base import Indicator, Reading, ramp

#: A merchant "raises its bonus" for its industry's peer norm at this rise a week (fixed, not the
#: tunable threshold: peer norms must not depend on a thresholds version).
RAISING = 0.02


def raises_bonus(features: dict[str, float]) -> bool | None:
    """Whether the merchant raised its bonus three weeks running (by ``RAISING`` a week at
    least), for its industry's peer norm; None when its weeks say nothing.

    >>> raises_bonus({"bonus_rise_21d": 0.05}), raises_bonus({"bonus_rise_21d": -0.1}), raises_bonus({})
    (True, False, None)
    """
    rise = features.get("bonus_rise_21d")
    return None if rise is None else rise >= RAISING


class BonusEscalation(Indicator):
    """The smallest of the last three week-on-week rises of the bonus on card sales (stored
    value ÷ price of each week's sales).

    A merchant short of cash offers more each round ("充1000送300", then 送500, then 送800),
    where a promotion, however deep, holds one offer for its weeks: three rises running is the
    shape of the escalation, not its depth (``deep_discount_share`` reads the depth). A calendar
    promotion draws more buyers as it runs, so its bonus share climbs too, across the industry:
    the rise is scaled by the share of the industry's peers not raising theirs at the same time
    (``peer_escalating_share``).

    >>> BonusEscalation().evaluate({"bonus_rise_21d": 0.1, "bonus_ratio_7d": 1.6})
    Reading(code='bonus_escalation', value=0.1, threshold=0.02, score=1.0, ...)
    >>> BonusEscalation().evaluate({"bonus_rise_21d": -0.3, "bonus_ratio_7d": 1.8}).score  # a held offer
    0.0
    >>> BonusEscalation().evaluate({"bonus_rise_21d": 0.1, "peer_escalating_share": 0.75}).value
    0.025
    >>> BonusEscalation().evaluate({"sales_28d": 1_000}) is None  # too few sales to say
    True
    """

    code = "bonus_escalation"
    name_zh = "售卡优惠逐周加码"
    name_en = "Bonus escalation"
    rationale = "Ever deeper offers week after week are a merchant raising cash it cannot serve."
    rationale_zh = "赠送比例逐周加大,是商户透支预收款、难以兑付的迹象。"
    formula = (
        "bonus on card sales (stored value ÷ price) of each of the last four weeks: the smallest of the three "
        "week-on-week rises (all four weeks selling, at least 5,000 yuan together), × the share of the industry's "
        "peers not raising theirs (≥ 0.02 a week) at the same time"
    )
    default_threshold = 0.02
    default_saturation = 0.08

    def evaluate(self, features: dict[str, float]) -> Reading | None:
        value = features.get("bonus_rise_21d")
        if value is None:
            return None
        value *= 1.0 - features.get("peer_escalating_share", 0.0)
        ratio = features.get("bonus_ratio_7d", 1.0)  # set with the rise; 1.0: no bonus
        return self.reading(
            value,
            ramp(value, self.threshold, self.saturation),
            f"售卡赠送比例连续三周上升,每周至少提高{value:.0%}(本周为{ratio - 1.0:.0%}),"
            f"阈值{self.threshold:.0%}",
            f"the bonus on card sales rose three weeks running, by at least {value:.0%} a week "
            f"(now {ratio - 1.0:.0%}; threshold {self.threshold:.0%})",
        )
