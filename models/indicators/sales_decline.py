"""``sales_decline``: new card sales drying up against the merchant's own baseline."""

from __future__ import annotations

from models.indicators.base import BaselineRatio

MIN_BASELINE = 5000.0  # yuan per 28 days


class SalesDecline(BaselineRatio):
    """Card sales of the last 28 days divided by the usual 28 days (lower is worse).

    When consumers stop buying, a merchant that lives on prepayments runs out of cash.

    >>> SalesDecline().evaluate({"sales_28d": 6_000, "sales_baseline_28d": 30_000})
    Reading(code='sales_decline', value=0.2, threshold=0.6, score=1.0, ...)
    >>> SalesDecline().evaluate({"sales_28d": 6_000}) is None
    True
    """

    code = "sales_decline"
    name_zh = "售卡量下滑"
    name_en = "Sales decline"
    rationale = "A merchant living on prepayments is short of cash when new sales dry up."
    rationale_zh = "依赖预收款经营的商户新售卡枯竭即现金吃紧。"
    formula = (
        "card sales of 28 days ÷ own baseline (at least 5,000 yuan); lower is worse; after a registered "
        "pause that ended, over the open days (at least 7)"
    )
    default_threshold = 0.6
    default_saturation = 0.2
    numerator = "sales_28d"
    baseline = "sales_baseline_28d"
    min_baseline = MIN_BASELINE
    peer_feature = "peer_surge"
    open_days_only = True
    template_zh = "近28天售卡额仅为自身基线的{value:.0%},低于{threshold:.0%}阈值"
    template_en = "card sales in 28 days are {value:.0%} of the merchant's baseline (threshold {threshold:.0%})"
