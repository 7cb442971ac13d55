"""Adaptive per-feature baselines: how far each feature is above its own recent normal."""

from __future__ import annotations

import math

from river import stats
from river.base import AnomalyDetector

from models.packing import Reader, Writer, read_ewmean, read_ewvar, write_ewmean, write_ewvar


class AdaptiveBaseline(AnomalyDetector):
    """One-sided anomaly score against exponentially weighted per-feature baselines.

    For every numeric feature it keeps river's ``EWMean`` and ``EWVar``; ``score_one`` is the
    largest upward z-score among the features, squashed to 0..1 (0 below ``z_threshold``,
    1 at twice it). Features are compared with their own history, so the detector runs on any
    numeric stream. It stays silent until it has seen ``grace_period`` observations.

    Parameters
    ----------
    fading_factor
        Weight of the newest observation in the baselines (river's ``EWMean``).
    z_threshold
        Upward deviation, in standard deviations, where the score starts rising.
    grace_period
        Observations needed before scoring.
    two_sided
        Score deviations below the baseline too (by their absolute z-score). Off by default:
        in the engine only rises are distress (sales, refunds, complaints).

    Examples
    --------
    >>> import random
    >>> rng = random.Random(42)
    >>> detector = AdaptiveBaseline(grace_period=30)
    >>> for _ in range(60):
    ...     detector.learn_one({"daily_sales": 1000 + rng.gauss(0, 100)})
    >>> detector.score_one({"daily_sales": 1050})
    0.0
    >>> detector.score_one({"daily_sales": 2500}) > 0.9
    True
    >>> detector.worst_feature({"daily_sales": 2500})
    'daily_sales'
    """

    # Class default, so detectors pickled before the option existed unpickle as one-sided.
    two_sided = False

    def __init__(
        self,
        fading_factor: float = 0.05,
        z_threshold: float = 4.0,
        grace_period: int = 28,
        two_sided: bool = False,
    ) -> None:
        self.fading_factor = fading_factor
        self.z_threshold = z_threshold
        self.grace_period = grace_period
        self.two_sided = two_sided
        self._means: dict[str, stats.EWMean] = {}
        self._vars: dict[str, stats.EWVar] = {}
        self._seen = 0

    def learn_one(self, x: dict[str, float]) -> None:  # type: ignore[override]  # str-named features: narrower than river's dict[Hashable, Any]
        self._seen += 1
        for name, value in x.items():
            if name not in self._means:
                self._means[name] = stats.EWMean(fading_factor=self.fading_factor)
                self._vars[name] = stats.EWVar(fading_factor=self.fading_factor)
            self._means[name].update(value)
            self._vars[name].update(value)

    def _z(self, name: str, value: float) -> float:
        mean = self._means[name].get()
        # A floor on the spread keeps near-constant features from producing huge z-scores.
        spread = max(math.sqrt(max(self._vars[name].get(), 0.0)), 0.1 * abs(mean), 1e-9)
        z = (value - mean) / spread
        return abs(z) if self.two_sided else z

    def _zscores(self, x: dict[str, float]) -> dict[str, float]:
        if self._seen < self.grace_period:
            return {}
        return {name: self._z(name, v) for name, v in x.items() if name in self._means}

    def score_one(self, x: dict[str, float]) -> float:  # type: ignore[override]  # str-named features: narrower than river's dict[Hashable, Any]
        z = max(self._zscores(x).values(), default=0.0)
        return min(1.0, max(0.0, (z - self.z_threshold) / self.z_threshold))

    def worst_feature(self, x: dict[str, float]) -> str | None:
        """The feature furthest above its baseline, for explanations."""
        zscores = self._zscores(x)
        return max(zscores, key=zscores.__getitem__) if zscores else None

    # -- compact state (engine/state_codec.py) ------------------------------------------------

    def pack(self, out: Writer) -> None:
        """Write the whole state for :meth:`unpack`.

        >>> detector = AdaptiveBaseline(grace_period=2)
        >>> for v in (10.0, 12.0, 11.0):
        ...     detector.learn_one({"sales": v})
        >>> out = Writer()
        >>> detector.pack(out)
        >>> AdaptiveBaseline.unpack(Reader(out.getvalue())).score_one({"sales": 30.0}) == detector.score_one({"sales": 30.0})
        True
        """
        out.double(self.fading_factor)
        out.double(self.z_threshold)
        out.uint(self.grace_period)
        out.flag(self.two_sided)
        out.uint(self._seen)
        out.uint(len(self._means))
        for name, mean in self._means.items():
            out.text(name)
            write_ewmean(out, mean)
            write_ewvar(out, self._vars[name])

    @classmethod
    def unpack(cls, src: Reader) -> AdaptiveBaseline:
        detector = cls(fading_factor=src.double(), z_threshold=src.double(), grace_period=src.uint(),
                       two_sided=src.flag())
        detector._seen = src.uint()
        for _ in range(src.uint()):
            name = src.text()
            detector._means[name] = read_ewmean(src)
            detector._vars[name] = read_ewvar(src)
        return detector
