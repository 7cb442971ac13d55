"""What every indicator shares: its reading and the ramp from value to score."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from models.features import SURGE_WINDOW

MIN_OPEN_DAYS = 7  # open days after a registered pause before a 28-day ratio says anything


@dataclass(frozen=True)
class Reading:
    """One indicator's verdict on one merchant-day; ``score`` is 0 (fine) .. 1 (fully alarming)."""

    code: str
    value: float
    threshold: float
    score: float
    explanation_zh: str
    explanation_en: str


def ramp(value: float, threshold: float, saturation: float) -> float:
    """0 at ``threshold``, 1 at ``saturation``, linear between; works both ways round.

    >>> ramp(3.0, 2.0, 4.0), ramp(5.0, 2.0, 4.0), ramp(1.0, 2.0, 4.0)
    (0.5, 1.0, 0.0)
    >>> ramp(0.25, 1.0, 0.0)  # lower is worse
    0.75
    """
    if saturation == threshold:
        return 1.0 if value >= threshold else 0.0
    share = (value - threshold) / (saturation - threshold)
    return min(1.0, max(0.0, share))


class Indicator:
    """Base of the named indicators: ``evaluate(features) -> Reading | None``.

    ``None`` means the indicator does not apply (not enough history, nothing at stake).
    """

    code: ClassVar[str]
    name_zh: ClassVar[str]
    name_en: ClassVar[str]
    rationale: ClassVar[str]
    rationale_zh: ClassVar[str]
    formula: ClassVar[str]  # the value, over which event-time window, and its guards
    range_text: ClassVar[str | None] = None  # how threshold and saturation read, when not plain numbers
    default_threshold: ClassVar[float]
    default_saturation: ClassVar[float]

    def __init__(
        self,
        threshold: float | None = None,
        saturation: float | None = None,
        weight: float | None = None,
    ) -> None:
        self.threshold = self.default_threshold if threshold is None else threshold
        self.saturation = self.default_saturation if saturation is None else saturation
        self.weight = self.default_weight() if weight is None else weight

    @classmethod
    def default_weight(cls) -> float:
        """The built-in weight: learned from labelled worlds (log-odds per unit score)."""
        from models.learned import FUSION

        return FUSION.weights.get(cls.code, 0.0)

    def evaluate(self, features: dict[str, float]) -> Reading | None:
        raise NotImplementedError

    def reading(self, value: float, score: float, zh: str, en: str, threshold: float | None = None) -> Reading:
        return Reading(
            code=self.code,
            value=round(float(value), 4),
            threshold=round(float(self.threshold if threshold is None else threshold), 4),
            score=round(float(score), 4),
            explanation_zh=zh,
            explanation_en=en,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(threshold={self.threshold}, saturation={self.saturation}, weight={self.weight})"


class BaselineRatio(Indicator):
    """An indicator whose value is a 28-day figure over the merchant's own baseline for it.

    Subclasses name the two features, the smallest baseline worth comparing with, and the
    sentence templates (``{value}`` and ``{threshold}`` are filled in). Whether higher or lower
    is worse follows from threshold and saturation (see :func:`ramp`).
    """

    numerator: ClassVar[str]
    baseline: ClassVar[str]
    min_baseline: ClassVar[float]
    floor_baseline: ClassVar[bool] = False  # divide by at least min_baseline instead of skipping
    peer_feature: ClassVar[str | None] = None  # the industry's median of the same ratio
    # Counts over the open days only, once a registered pause has ended (see evaluate).
    open_days_only: ClassVar[bool] = False
    template_zh: ClassVar[str]
    template_en: ClassVar[str]

    def evaluate(self, features: dict[str, float]) -> Reading | None:
        baseline = features.get(self.baseline)
        if baseline is None:
            return None
        if baseline < self.min_baseline:
            if not self.floor_baseline:
                return None
            baseline = self.min_baseline
        numerator = features.get(self.numerator, 0.0)
        paused = features.get("reopened_pause_days_28d", 0.0) if self.open_days_only else 0.0
        if paused > 0:
            # A renovation's closed weeks, registered and ended, are not a fall of the business
            # that reopened: its open days are compared, once there are enough of them.
            open_days = SURGE_WINDOW - paused
            if open_days < MIN_OPEN_DAYS:
                return None
            numerator *= SURGE_WINDOW / open_days
        value = numerator / baseline
        peer = features.get(self.peer_feature) if self.peer_feature else None
        if peer is not None:
            # What the whole industry does (a festival, the Spring Festival lull) is not the
            # merchant's own signal: a surge is discounted by the industry's surge, a decline by
            # the industry's decline.
            value = value / max(1.0, peer) if self.saturation > self.threshold else value / min(1.0, max(peer, 0.1))
        return self.reading(
            value,
            ramp(value, self.threshold, self.saturation),
            self.template_zh.format(value=value, threshold=self.threshold),
            self.template_en.format(value=value, threshold=self.threshold),
        )
