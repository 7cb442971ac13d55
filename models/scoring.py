"""From a merchant's state at the close of a day to the probability of collapse, with its reasons.

Readings of the indicators and the online detectors are fused by a logistic model *learned* from
labelled worlds (:mod:`models.fusion`, weights in :mod:`models.learned`): the score is
P(collapse within 90 days). Each reading contributes ``weight × score`` log-odds; the warning
names the contributions that raised the odds, strongest first. A reading whose evidence does not
separate collapses from healthy merchants gets a weight near 0, whatever it says about
compliance: such findings stay visible in the readings without raising the level.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from models.detectors import AdaptiveBaseline, ScaledHalfSpaceTrees
from models.features import NO_PEERS, PeerContext, merchant_features
from models.fusion import LogisticFusion, PairIndex, pair_shares, sigmoid
from models.indicators import ALL_INDICATORS
from models.indicators.base import Indicator, Reading
from models.learned import FUSION
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
    weight: float  # log-odds per unit of reading score

    @property
    def amount(self) -> float:
        """Log-odds this reading adds to the merchant's (negative: it lowers them)."""
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


# How the documentation groups the readings: money being gathered or owed (exposure), findings
# of the rules a regulator checks (compliance), and signs of distress. The grouping explains; the
# learned weights alone decide how much each counts.
EXPOSURE = frozenset(
    {"sales_surge", "peer_sales_surge", "deep_discount_share", "liability_months", "baseline_anomaly",
     "joint_anomaly", "bonus_escalation"}
)
COMPLIANCE = frozenset({"over_cap_cards", "custody_report_missing", "custody_coverage"})
# Indicators fed by other merchants' levels (alerts/chains.py).
LINK_CODES = frozenset({"chain_contagion", "representative_link"})


def fuse(contributions: Sequence[Contribution], intercept: float = FUSION.intercept) -> float:
    """P(collapse within the horizon): the logistic of ``intercept`` plus every contribution.

    >>> from models.indicators import Reading
    >>> surge = Contribution(Reading("sales_surge", 4.0, 2.5, 1.0, "", ""), 1.5)
    >>> gap = Contribution(Reading("custody_coverage", 0.2, 0.9, 0.5, "", ""), 2.0)
    >>> round(fuse([surge], intercept=-4.0), 3), round(fuse([surge, gap], intercept=-4.0), 3)
    (0.076, 0.182)
    """
    return sigmoid(intercept + sum(c.amount for c in contributions))


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
    >>> result.drivers  # nothing fires: no reasons, and the score is the base rate of the intercept
    []
    >>> result.score == round(fuse([], intercept=RiskScorer().intercept), 4)
    True
    """

    def __init__(
        self,
        indicators: Sequence[Indicator] | None = None,
        detector_weight: float | None = None,
        detector_factory: type[AdaptiveBaseline] = AdaptiveBaseline,
        joint_weight: float | None = None,
        intercept: float | None = None,
        pairs: Mapping[tuple[str, str], float] | None = None,
        cap: float | None = None,
    ) -> None:
        self.indicators = list(indicators) if indicators is not None else [c() for c in ALL_INDICATORS]
        learned = FUSION.weights
        self.detector_weight = learned.get(DETECTOR_CODE, 0.0) if detector_weight is None else detector_weight
        self.detector_factory = detector_factory
        self.joint_weight = learned.get(JOINT_DETECTOR_CODE, 0.0) if joint_weight is None else joint_weight
        self.intercept = FUSION.intercept if intercept is None else intercept
        self.pairs = dict(FUSION.pairs if pairs is None else pairs)
        self.cap = FUSION.cap if cap is None else cap
        # The pairs found by code, built on first use (and again if ``pairs`` is replaced).
        self._pair_index: tuple[Mapping[tuple[str, str], float], PairIndex] | None = None

    @property
    def fusion(self) -> LogisticFusion:
        """This scorer's fusion as one model (intercept and a weight per reading code)."""
        weights = {i.code: i.weight for i in self.indicators}
        weights.update({DETECTOR_CODE: self.detector_weight, JOINT_DETECTOR_CODE: self.joint_weight})
        return LogisticFusion(self.intercept, weights, FUSION.horizon_days, self.pairs, self.cap)

    def fuse(self, contributions: Sequence[Contribution]) -> float:
        """P(collapse within the horizon) from ``contributions`` (see :func:`fuse`)."""
        return fuse(contributions, self.intercept)

    def score(
        self,
        state: MerchantState,
        day: int,
        peers: PeerContext = NO_PEERS,
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
        return self.judge(
            self.evidence(state, day, peers, learn=learn)
        )

    def evidence(
        self,
        state: MerchantState,
        day: int,
        peers: PeerContext = NO_PEERS,
        *,
        learn: bool = True,
    ) -> Evidence:
        """The day's features and detector readings, which no threshold changes (only the chain
        features depend on other merchants' levels: see :func:`models.features.chain_features`);
        the detectors learn the day here."""
        features = merchant_features(state, day, peers)
        observed = features["observed_days"] > 0
        return Evidence(
            features,
            self._detect(state, learn) if observed else None,
            self._detect_joint(state, learn) if observed else None,
        )

    def judge(self, evidence: Evidence, correction: Mapping[str, float] | None = None) -> MerchantScore:
        """Readings of every indicator against this scorer's thresholds, weighted and fused.
        ``correction``: log-odds per unit score added to a code's weight (learned from case
        outcomes, :mod:`models.online`)."""
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
        if correction:
            contributions = [Contribution(c.reading, c.weight + correction[c.reading.code])
                             if c.reading.code in correction else c for c in contributions]
        contributions = self._with_pairs(contributions)
        contributions.sort(key=lambda c: (-c.amount, c.reading.code))
        return MerchantScore(round(fuse(contributions, self.intercept), 4), tuple(contributions), features)

    def _with_pairs(self, contributions: list[Contribution]) -> list[Contribution]:
        """Each contribution with half of each learned pair it is in, at most the cap: the weight
        becomes the reading's effective weight, so ``amount`` stays weight × score."""
        if not self.pairs and self.cap == math.inf:
            return contributions
        index = getattr(self, "_pair_index", None)  # None also in a scorer pickled before it existed
        if index is None or index[0] is not self.pairs:
            index = self._pair_index = (self.pairs, PairIndex(self.pairs))
        shares = pair_shares({c.reading.code: c.reading.score for c in contributions},
                             {c.reading.code: c.weight for c in contributions}, index[1], self.cap)
        return [
            Contribution(c.reading, shares[c.reading.code] / c.reading.score) if c.reading.score > 0 else c
            for c in contributions
        ]

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
