"""Learned fusion: the probability that a merchant collapses within the horizon, from its readings.

A logistic model over the readings' scores (each 0..1) with a few learned *pairs*:
``P = 1 / (1 + exp(-(intercept + Σ min(cap, weight_i × score_i + ½ Σ_j pair_ij × score_i × score_j))))``.
Its weights are *learned* from labelled worlds (``yujing train``), not set by hand, in log-odds
per unit of reading score, so each reading's contribution to a warning is its own term plus half
of each pair it is in: positive raises the odds, negative lowers them (an announced suspension,
say). Pairs carry what the domain knows collapses look like — several signs at once (a surge
*with* deep bonuses, complaints *and* a custody gap) — and ``cap`` bounds what one reading can
add on its own: in every world some healthy merchants show any single sign (a harmless registry
change, a complaint cluster), so orange takes more than one. One dot product per merchant-day;
:meth:`LogisticFusion.probabilities` applies it to many merchants at once.

>>> fusion = LogisticFusion(intercept=-4.0, weights={"silence": 3.0, "sales_surge": 1.5})
>>> round(fusion.probability({"silence": 1.0, "sales_surge": 1.0}), 3)
0.622
>>> round(fusion.probability({}), 4)  # nothing fires: the base rate of the horizon
0.018
>>> paired = LogisticFusion(-4.0, {"a": 1.0, "b": 1.0}, pairs={("a", "b"): 2.0}, cap=1.5)
>>> paired.contributions({"a": 1.0, "b": 1.0})  # 1 + 2/2 each, capped at 1.5
{'a': 1.5, 'b': 1.5}
>>> import numpy as np
>>> paired.probabilities(np.array([[1.0, 1.0], [1.0, 0.0]]), ("a", "b")).round(3).tolist()
[0.269, 0.047]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

HORIZON_DAYS = 90  # P(collapse within this many days of event time)


def sigmoid(log_odds: float) -> float:
    """The logistic function, safe for large arguments.

    >>> sigmoid(0.0), round(sigmoid(800.0), 3), sigmoid(-800.0)
    (0.5, 1.0, 0.0)
    """
    if log_odds >= 0:
        return 1.0 / (1.0 + math.exp(-log_odds))
    z = math.exp(log_odds)
    return z / (1.0 + z)


def logit(probability: float) -> float:
    """The log-odds of a probability, clipped away from 0 and 1.

    >>> round(logit(0.5), 6), round(logit(sigmoid(2.0)), 6)
    (0.0, 2.0)
    """
    p = min(max(probability, 1e-9), 1.0 - 1e-9)
    return math.log(p / (1.0 - p))


class PairIndex:
    """A fusion's pairs found by code: a merchant-day has a few readings, the fusion dozens of
    pairs, and only pairs with both readings present add anything.

    >>> index = PairIndex({("a", "b"): 1.0, ("c", "d"): 2.0, ("b", "c"): 0.5})
    >>> index.among({"b": 1.0, "c": 0.5})
    [('b', 'c', 0.5)]
    """

    def __init__(self, pairs: Mapping[tuple[str, str], float]) -> None:
        self.listed = [(a, b, weight) for (a, b), weight in pairs.items()]
        self.by_code: dict[str, list[int]] = {}
        for i, (a, _, _) in enumerate(self.listed):
            self.by_code.setdefault(a, []).append(i)

    def among(self, scores: Mapping[str, float]) -> list[tuple[str, str, float]]:
        """The pairs with both codes in ``scores``, in the order given (so shares add up in the
        order a walk over every pair would add them)."""
        by_code, listed = self.by_code, self.listed
        found = sorted({i for code in scores for i in by_code.get(code, ())})
        return [listed[i] for i in found if listed[i][1] in scores]


def pair_shares(
    scores: Mapping[str, float], weights: Mapping[str, float], pairs: PairIndex, cap: float,
) -> dict[str, float]:
    """Each reading's share of the log-odds: ``weight`` x score plus half of each pair it is in,
    at most ``cap`` (see :meth:`LogisticFusion.contributions`)."""
    shares = {code: weights.get(code, 0.0) * s for code, s in scores.items()}
    for a, b, weight in pairs.among(scores):
        joint = weight * scores[a] * scores[b]
        if joint:
            shares[a] = shares.get(a, 0.0) + joint / 2
            shares[b] = shares.get(b, 0.0) + joint / 2
    return {code: min(cap, share) for code, share in shares.items()}


@dataclass(frozen=True)
class LogisticFusion:
    """``intercept``, one ``weight`` per reading code, ``pairs`` of codes with a joint weight, and
    the ``cap`` on any one reading's contribution (all in log-odds)."""

    intercept: float
    weights: Mapping[str, float] = field(default_factory=dict)
    horizon_days: int = HORIZON_DAYS
    pairs: Mapping[tuple[str, str], float] = field(default_factory=dict)
    cap: float = math.inf

    def contributions(self, scores: Mapping[str, float]) -> dict[str, float]:
        """Each reading's share of the log-odds: its own term plus half of each pair it is in,
        at most ``cap``."""
        return pair_shares(scores, self.weights, self._index, self.cap)

    @cached_property
    def _index(self) -> PairIndex:
        return PairIndex(self.pairs)

    def log_odds(self, scores: Mapping[str, float]) -> float:
        return self.intercept + sum(self.contributions(scores).values())

    def probability(self, scores: Mapping[str, float]) -> float:
        """P(collapse within ``horizon_days``) from reading scores keyed by code."""
        return sigmoid(self.log_odds(scores))

    def probabilities(self, readings: object, codes: Sequence[str]) -> object:
        """The same for a matrix of readings (rows of merchant-days, columns ``codes``): numpy."""
        import numpy as np

        x = np.asarray(readings, dtype=np.float64)
        shares = x * np.array([self.weights.get(code, 0.0) for code in codes], dtype=np.float64)
        index = {code: i for i, code in enumerate(codes)}
        for (a, b), weight in self.pairs.items():
            if a in index and b in index:
                joint = weight * x[:, index[a]] * x[:, index[b]] / 2
                shares[:, index[a]] += joint
                shares[:, index[b]] += joint
        z = np.minimum(shares, self.cap).sum(axis=1) + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -700, 700)))
