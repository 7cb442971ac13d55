"""From a merchant's state at the close of a day to a composite risk score with its reasons.

Indicator scores and the online detector's score are fused with a weighted noisy-OR:
``score = 1 - prod(1 - weight_i * score_i)``. One indicator alone can reach at most its
weight (so a single odd figure stays at watch levels), while independent signals that agree
push the score up quickly, which is how collapses look: surge *and* custody gap *and* silence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from models.detectors import AdaptiveBaseline, ScaledHalfSpaceTrees
from models.features import merchant_features
from models.indicators import ALL_INDICATORS, Indicator, Reading
from models.state import MerchantState

DETECTOR_CODE = "baseline_anomaly"
JOINT_DETECTOR_CODE = "joint_anomaly"
DETECTOR_WINDOW = 7
JOINT_NAMES = {
    "sales_7d": ("近7天售卡额", "7-day card sales"),
    "redeemed_7d": ("近7天核销额", "7-day redemptions"),
    "refunds_7d": ("近7天退款笔数", "7-day refunds"),
}


@dataclass(frozen=True)
class Contribution:
    reading: Reading
    weight: float

    @property
    def amount(self) -> float:
        return self.weight * self.reading.score


class Evidence(NamedTuple):
    """What a merchant-day shows before any threshold is applied (see :meth:`RiskScorer.evidence`)."""

    features: dict[str, float]
    detector: Reading | None  # the adaptive baseline's reading
    joint: Reading | None  # the half-space trees' reading


@dataclass(frozen=True)
class MerchantScore:
    """The composite score of one merchant-day and what drove it, strongest first."""

    score: float
    contributions: tuple[Contribution, ...]
    features: dict[str, float]

    @property
    def drivers(self) -> list[Reading]:
        return [c.reading for c in self.driving]

    @property
    def driving(self) -> list[Contribution]:
        """The contributions that raised the score, strongest first."""
        return [c for c in self.contributions if c.amount > 0]


# Exposure says how much consumer money is being gathered or owed; it is how a run-away
# starts, but also how a legal promotion or a seasonal peak looks. Alone it stays at watch
# levels; distress (custody gaps, broken caps, complaints, silence, declines, registry changes)
# is what takes a merchant to orange and red.
EXPOSURE = frozenset(
    {"sales_surge", "peer_sales_surge", "deep_discount_share", "liability_months", "baseline_anomaly",
     "joint_anomaly"}
)
EXPOSURE_CAP = 0.55
# Indicators fed by other merchants' levels (alerts/chains.py).
LINK_CODES = frozenset({"chain_contagion", "representative_link"})


def noisy_or(contributions: Sequence[Contribution]) -> float:
    """Weighted noisy-OR of contributions.

    >>> from models.indicators import Reading
    >>> r = Reading("x", 1.0, 1.0, 1.0, "", "")
    >>> noisy_or([Contribution(r, 0.5)]), round(noisy_or([Contribution(r, 0.5), Contribution(r, 0.5)]), 2)
    (0.5, 0.75)
    """
    remaining = 1.0
    for c in contributions:
        remaining *= 1.0 - min(1.0, max(0.0, c.amount))
    return 1.0 - remaining


def fuse(contributions: Sequence[Contribution]) -> float:
    """Composite score: exposure (capped) and distress combined by noisy-OR.

    >>> from models.indicators import Reading
    >>> surge = Contribution(Reading("sales_surge", 4.0, 2.5, 1.0, "", ""), 0.4)
    >>> deep = Contribution(Reading("deep_discount_share", 0.9, 0.4, 1.0, "", ""), 0.3)
    >>> gap = Contribution(Reading("custody_coverage", 0.2, 0.9, 1.0, "", ""), 0.45)
    >>> round(fuse([surge, deep]), 2), round(fuse([surge, deep, gap]), 2)
    (0.55, 0.75)
    """
    exposure = noisy_or([c for c in contributions if c.reading.code in EXPOSURE])
    distress = noisy_or([c for c in contributions if c.reading.code not in EXPOSURE])
    return 1.0 - (1.0 - min(exposure, EXPOSURE_CAP)) * (1.0 - distress)


def detector_features(state: MerchantState) -> dict[str, float]:
    """Weekly figures the adaptive baseline watches: cash taken and net new liability.

    Complaints are left to ``complaint_surge``: counting them twice would let one burst of
    complaints reach orange on its own."""
    week = list(state.history)[-DETECTOR_WINDOW:]
    return {
        "sales_7d": sum(h.sales_paid for h in week),
        "net_new_liability_7d": sum(h.sales_face - h.redeemed for h in week),
    }


def joint_features(state: MerchantState) -> dict[str, float]:
    """The week as a point for the multivariate detector: money in, service given, money back.

    Few features on purpose: Half-Space Trees lose sensitivity as dimensions grow."""
    week = list(state.history)[-DETECTOR_WINDOW:]
    return {
        "sales_7d": sum(h.sales_paid for h in week),
        "redeemed_7d": sum(h.redeemed for h in week),
        "refunds_7d": float(sum(h.refunds for h in week)),
    }


class RiskScorer:
    """Scores one merchant-day: indicators plus the merchant's own adaptive baseline detector.

    >>> from models.state import DayTotals, MerchantState
    >>> state = MerchantState("m1", partition=0, first_day=1)
    >>> for day in range(1, 31):
    ...     _ = state.fold(day, DayTotals())
    >>> result = RiskScorer().score(state, 30)
    >>> result.score, result.drivers
    (0.0, [])
    """

    def __init__(
        self,
        indicators: Sequence[Indicator] | None = None,
        detector_weight: float = 0.25,
        detector_factory: type[AdaptiveBaseline] = AdaptiveBaseline,
        joint_weight: float = 0.2,
    ) -> None:
        self.indicators = list(indicators) if indicators is not None else [c() for c in ALL_INDICATORS]
        self.detector_weight = detector_weight
        self.detector_factory = detector_factory
        self.joint_weight = joint_weight

    def score(
        self,
        state: MerchantState,
        day: int,
        peer_sales_28d: float | None = None,
        peer_surge: float | None = None,
        peer_redemption_ratio: float | None = None,
        *,
        learn: bool = True,
    ) -> MerchantScore:
        """Score ``state`` (with ``day`` already folded in) and let its detectors learn the day.

        ``learn=False`` for a known anomaly (a risk confirmed by staff): its detectors still score
        the day but do not take it in as normal (river's ``protect_anomaly_detector`` idea).

        >>> from datetime import datetime
        >>> from models.state import DayTotals, MerchantState
        >>> state, totals = MerchantState("m1", partition=0, first_day=1), DayTotals()
        >>> totals.add_transaction("redemption", 100.0, 100.0, datetime(2026, 3, 1, 15))
        >>> _ = state.fold(1, totals)
        >>> _ = RiskScorer().score(state, 1, learn=False)
        >>> state.detector._seen, state.joint_detector._seen  # scored, nothing learned
        (0, 0)
        """
        return self.judge(self.evidence(state, day, peer_sales_28d, peer_surge, peer_redemption_ratio, learn=learn))

    def evidence(
        self,
        state: MerchantState,
        day: int,
        peer_sales_28d: float | None = None,
        peer_surge: float | None = None,
        peer_redemption_ratio: float | None = None,
        *,
        learn: bool = True,
    ) -> Evidence:
        """The day's features and detector readings, which no threshold changes (only the chain
        features depend on other merchants' levels: see :func:`models.features.chain_features`);
        the detectors learn the day here."""
        features = merchant_features(state, day, peer_sales_28d, peer_surge, peer_redemption_ratio)
        observed = features["observed_days"] > 0
        return Evidence(
            features,
            self._detect(state, learn) if observed else None,
            self._detect_joint(state, learn) if observed else None,
        )

    def judge(self, evidence: Evidence) -> MerchantScore:
        """Readings of every indicator against this scorer's thresholds, weighted and fused."""
        features = evidence.features
        contributions = []
        for indicator in self.indicators:
            reading = indicator.evaluate(features)
            if reading is not None:
                contributions.append(Contribution(reading, indicator.weight))
        if evidence.detector is not None:
            contributions.append(Contribution(evidence.detector, self.detector_weight))
        if evidence.joint is not None:
            contributions.append(Contribution(evidence.joint, self.joint_weight))
        contributions.sort(key=lambda c: (-c.amount, c.reading.code))
        return MerchantScore(round(fuse(contributions), 4), tuple(contributions), features)

    def _detect(self, state: MerchantState, learn: bool = True) -> Reading | None:
        if not isinstance(state.detector, AdaptiveBaseline):
            state.detector = self.detector_factory()
        detector = state.detector
        x = detector_features(state)
        score = detector.score_one(x)
        worst = detector.worst_feature(x)
        if learn:
            detector.learn_one(x)
        if worst is None:
            return None
        return Reading(
            code=DETECTOR_CODE,
            value=round(x[worst], 2),
            threshold=detector.z_threshold,
            score=round(score, 4),
            explanation_zh=f"近7天指标{worst}={x[worst]:.0f},显著高于该商户自身的自适应基线",
            explanation_en=f"7-day {worst} = {x[worst]:.0f}, far above the merchant's own "
            f"adaptive baseline (z-threshold {detector.z_threshold:g})",
        )

    def _detect_joint(self, state: MerchantState, learn: bool = True) -> Reading | None:
        if not isinstance(state.joint_detector, ScaledHalfSpaceTrees):
            # One seed for all merchants: the same history always gives the same score.
            state.joint_detector = ScaledHalfSpaceTrees(seed=7)
        detector = state.joint_detector
        x = joint_features(state)
        score = detector.score_one(x)
        explained = detector.explain(x)
        if learn:
            detector.learn_one(x)
        if explained is None:
            return None
        name, z = explained
        zh, en = JOINT_NAMES.get(name, (name, name))
        direction_zh, direction_en = ("偏高", "above") if z > 0 else ("偏低", "below")
        return Reading(
            code=JOINT_DETECTOR_CODE,
            value=round(z, 2),
            threshold=round(detector.quantile, 2),
            score=round(score, 4),
            explanation_zh=f"近7天售卡、核销与退款的组合异常(多变量半空间树),{zh}{direction_zh}其常态{abs(z):.1f}个标准差",
            explanation_en=f"unusual combination of 7-day sales, redemptions and refunds (half-space trees); "
            f"{en} {abs(z):.1f} standard deviations {direction_en} its norm",
        )
