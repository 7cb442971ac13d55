"""``chain_contagion``: sister stores of the same chain (``chain_id``) at orange or red."""

from __future__ import annotations

from models.indicators.base import Indicator, Reading, ramp

LEVEL_NAMES = {0: "none", 1: "blue", 2: "yellow", 3: "orange", 4: "red"}
LEVEL_NAMES_ZH = {0: "无", 1: "蓝色", 2: "黄色", 3: "橙色", 4: "红色"}


class ChainContagion(Indicator):
    """The highest level among the merchant's sister stores; two or more sisters at orange or
    red saturate it. Signals come from the other stores' own warnings (see ``alerts.chains``).

    >>> ChainContagion().evaluate({"chain_peer_level": 3.0, "chain_peers_urgent": 1.0})
    Reading(code='chain_contagion', value=3.0, threshold=2.0, score=0.5, ...)
    >>> ChainContagion().evaluate({"chain_peer_level": 4.0, "chain_peers_urgent": 2.0}).score
    1.0
    >>> ChainContagion().evaluate({}) is None  # not part of a chain, or nothing heard
    True
    """

    code = "chain_contagion"
    name_zh = "连锁关联风险"
    name_en = "Chain contagion"
    rationale = "Stores under one controlling party share its cash; when one fails the others follow."
    rationale_zh = "同一控制人的门店资金相通,一家出事其余常随之倒下。"
    formula = (
        "highest level in force among the other stores of the same chain_id (blue 1 … red 4); two or more at orange/red saturate it"
    )
    default_threshold = 2.0  # yellow: nothing yet
    default_saturation = 4.0  # red
    range_text = "yellow (2) → red (4)"

    def evaluate(self, features: dict[str, float]) -> Reading | None:
        if "chain_peer_level" not in features:
            return None
        value = features["chain_peer_level"]
        urgent = features.get("chain_peers_urgent", 0.0)
        score = 1.0 if urgent >= 2 else ramp(value, self.threshold, self.saturation)
        rank = int(value)
        return self.reading(
            value,
            score,
            f"同一连锁的其他门店最高处于{LEVEL_NAMES_ZH.get(rank, '无')}预警(等级{value:g},阈值{self.threshold:g}),"
            f"其中{urgent:.0f}家为橙色或红色",
            f"sister stores of the same chain are at up to {LEVEL_NAMES.get(rank, 'none')} (level {value:g}, "
            f"threshold {self.threshold:g}); {urgent:.0f} of them at orange or red",
        )
