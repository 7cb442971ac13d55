"""``peer_sales_surge``: a merchant without its own baseline, against its peer group."""

from __future__ import annotations

from models.indicators.base import Indicator, Reading, ramp

MIN_PEER_SALES = 3000.0  # yuan per 28 days; a group selling less says nothing


class PeerSalesSurge(Indicator):
    """Card sales of the last 28 days over the peer group's typical 28 days (same industry and
    town, else same industry; median of merchants with their own baseline). It stands in for
    ``sales_surge`` until the merchant has two months of its own trading.

    >>> PeerSalesSurge().evaluate({"sales_28d": 200_000, "peer_sales_28d": 40_000})
    Reading(code='peer_sales_surge', value=5.0, threshold=3.0, score=0.4, ...)
    >>> PeerSalesSurge().evaluate({"sales_28d": 200_000, "peer_sales_28d": 40_000,
    ...                            "sales_baseline_28d": 150_000}) is None  # has its own
    True
    """

    code = "peer_sales_surge"
    name_zh = "售卡额远超同业同镇"
    name_en = "Sales surge against peers"
    rationale = "A new operator collecting many times what its peers sell has no history to hide behind."
    rationale_zh = "新开商户无自身历史,若售卡额数倍于同业同镇商户则需关注。"
    formula = (
        "until the merchant has its own baseline: card sales of 28 days ÷ median of the peer group (same industry and town, else industry; merchants of the partition with a baseline)"
    )
    default_threshold = 3.0
    default_saturation = 8.0

    def evaluate(self, features: dict[str, float]) -> Reading | None:
        peer = features.get("peer_sales_28d")
        if peer is None or "sales_baseline_28d" in features:
            return None
        value = features.get("sales_28d", 0.0) / max(peer, MIN_PEER_SALES)
        return self.reading(
            value,
            ramp(value, self.threshold, self.saturation),
            f"尚无自身基线,近28天售卡金额为同业同镇商户典型水平的{value:.1f}倍,超过{self.threshold:g}倍阈值",
            f"no own baseline yet; card sales in the last 28 days are {value:.1f}x the peer group's "
            f"typical figure (threshold {self.threshold:g}x)",
        )
