"""``sales_surge``: prepaid card sales of the last 28 days against the merchant's own baseline."""

from __future__ import annotations

from models.indicators.base import BaselineRatio

MIN_BASELINE = 3000.0  # yuan per 28 days; below it a ratio says nothing


class SalesSurge(BaselineRatio):
    """Card sales over the last 28 days divided by the merchant's usual 28 days, and by the
    industry's own median ratio when peers are surging too (a calendar promotion, a season).

    Operators about to run collect as much prepaid money as they can first.

    >>> SalesSurge().evaluate({"sales_28d": 90_000, "sales_baseline_28d": 20_000})
    Reading(code='sales_surge', value=4.5, threshold=2.5, score=0.8, ...)
    >>> SalesSurge().evaluate({"sales_28d": 90_000}) is None  # no baseline yet
    True
    >>> SalesSurge().evaluate({"sales_28d": 90_000, "sales_baseline_28d": 20_000, "peer_surge": 1.8}).value
    2.5
    """

    code = "sales_surge"
    name_zh = "预付卡销售激增"
    name_en = "Prepaid sales surge"
    rationale = "Run-aways are preceded by pushing cards to collect cash before leaving."
    rationale_zh = "跑路前常见突击售卡、快速回笼资金。"
    formula = (
        "card sales (paid) of the last 28 days ÷ own baseline (the observed 90 days before, per 28 days, at least 3,000 yuan), ÷ the industry's median ratio when above 1"
    )
    default_threshold = 2.5
    default_saturation = 5.0
    numerator = "sales_28d"
    baseline = "sales_baseline_28d"
    min_baseline = MIN_BASELINE
    floor_baseline = True
    peer_feature = "peer_surge"
    template_zh = "近28天售卡金额为自身基线的{value:.1f}倍(已扣除同业整体增幅),超过{threshold:g}倍阈值"
    template_en = (
        "card sales in the last 28 days are {value:.1f}x the merchant's baseline, beyond what its industry "
        "sells (threshold {threshold:g}x)"
    )
