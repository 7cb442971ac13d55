"""Multivariate online anomaly detection: river's Half-Space Trees on online-scaled features.

Half-Space Trees (HST) isolate points that fall into regions of the unit cube that held little
mass in the previous window, so they see *joint* oddities that per-feature baselines miss: several
features each moderately off at once. HST needs features in [0, 1] and its raw score has no fixed
meaning, so ``ScaledHalfSpaceTrees`` wraps it between an online scaler and a calibration.

It is strongest on a few features (2-4). With 28-point windows the random splits rarely cut
a gap along one axis, so a single feature far off scores modestly (about 0.3 at 6 sigma among
3 features, ~0 among 6) and even joint outliers fade as features are added (two features at
6 sigma: ~0.8 among 3, ~0.2 among 6); ``AdaptiveBaseline`` is the tool for one-feature extremes.

Footprint with the defaults, 6 features, after 365 observations (river 0.26.1, CPython 3.11,
one core of the development machine), measured with::

    S='import pickle, random, itertools; from models.detectors import ScaledHalfSpaceTrees as D; '
    S+='r = random.Random(0); xs = [{f"f{i}": r.lognormvariate(9, .3) for i in range(6)} '
    S+='for _ in range(20365)]; d = D(); [d.learn_one(x) for x in xs[:365]]; '
    S+='it = itertools.cycle(xs[365:]); b = pickle.dumps(d)'
    python -c "$S; print(len(b))"
    python -m timeit -n 10000 -r 5 -s "$S" "x = next(it); d.score_one(x); d.learn_one(x)"
    python -m timeit -n 500 -r 5 -s "$S" "pickle.dumps(d)"  # and "pickle.loads(b)"

- pickled size: 11,814 bytes (river's own pickle of the same trees alone: 45,149 bytes);
- ``score_one`` + ``learn_one``: 54 µs (``score_one`` alone 19 µs; ``learn_one`` also scores
  the point once, for the calibration);
- ``pickle.dumps``: 0.46 ms, ``pickle.loads``: 1.3 ms (rebuilding 1,270 tree nodes).
"""

from __future__ import annotations

import math
import random
from typing import Any, cast

from river import anomaly, stats
from river.base import AnomalyDetector
from river.tree.padded import PaddedBranch

from models.detectors.forest_packing import (
    FINGERPRINT_SIZE,
    decode_forest,
    encode_forest,
    grown,
    leaf_masses,
    set_leaf_masses,
)
from models.packing import (
    CodecError,
    Reader,
    Writer,
    read_ewmean,
    read_ewvar,
    read_quantile,
    write_ewmean,
    write_ewvar,
    write_quantile,
)

# River's running quantile (P²) starts low: until it has seen about this many raw scores its
# estimate is pulled towards the largest possible raw score, so the first weeks after the grace
# period do not over-alert.
_CALIBRATION_PRIOR = 10


class ScaledHalfSpaceTrees(AnomalyDetector):
    """Half-Space Trees on online z-scores, calibrated against the detector's own past scores.

    Every numeric feature is (optionally) log-transformed, compared with river's ``EWMean`` and
    ``EWVar`` of its own history, and the z-score is mapped linearly onto [0, 1] (``z_range``
    standard deviations to either side of the mean reach the edges; beyond that it is clipped).
    Those scaled points feed river's ``HalfSpaceTrees``. Its raw score is compared with the
    running ``quantile`` (river's ``Quantile``) of the raw scores the detector gave its own past
    observations, each scored just before it was learned: at or below that quantile
    ``score_one`` returns 0, and it rises linearly to 1 at the largest raw score HST can give (a
    point alone right after the root of every tree). On a stationary stream it is 0 for about
    ``quantile`` of the observations (simulated Gaussian streams: 96% score 0, 1% above 0.3). Nothing is
    scored before ``grace_period`` observations, nor before the trees have a full window and
    the calibration a first score (with the defaults: from the 30th observation on).

    A feature first seen after the start rebuilds the trees over the enlarged feature set
    (with the same ``seed``) and restarts their calibration: the detector is silent for
    ``window_size`` observations while the new trees fill up. Absent features are allowed;
    ``None`` and non-finite values count as absent.

    Parameters
    ----------
    n_trees
        Number of half-space trees.
    height
        Height of each tree (``2 ** (height + 1) - 1`` nodes). Height 8 separates joint
        outliers a little better but is four times larger and slower, and noisier when calm.
    window_size
        Observations per HST window: the reference mass is the previous window.
    grace_period
        Observations needed before scoring (and before ``explain`` answers).
    fading_factor
        Weight of the newest observation in the per-feature mean and variance (0.03: a memory
        of about a month of daily observations, so a shift keeps scoring for about a week).
    z_range
        z-score mapped to the edges of [0, 1]. A wide range leaves empty space around normal
        data for the random splits to isolate outliers in.
    winsorize
        Before updating the mean and variance, values are clipped to ``winsorize`` standard
        deviations around the mean (once the feature has ``grace_period`` observations), so a
        single outlier does not inflate the spread for weeks; a lasting shift still moves the
        baseline, a little faster at every step. ``None`` turns this off.
    log_amounts
        Transform every value with ``sign(v) * log1p(|v|)`` before scaling. On by default because
        money amounts are heavy-tailed and multiplicative: it makes the z-scores measure relative
        changes (a sales doubling reads the same at a small salon and at a chain) and stops a few
        huge days from dominating the variance. The map is monotone and close to the identity
        near zero, so ratios and small counts are barely changed; turn it off for streams whose
        values are not amounts (temperatures, pressures) if you prefer plain z-scores.
    quantile
        Quantile of the past raw scores where the calibrated score starts rising.
    seed
        Seed of the trees' random splits. Same seed and same inputs give the same scores.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(7)
    >>> detector = ScaledHalfSpaceTrees(seed=1)
    >>> for _ in range(100):
    ...     detector.learn_one({
    ...         "sales": rng.gauss(20_000, 2_000),
    ...         "redeemed": rng.gauss(15_000, 1_500),
    ...         "refunds": rng.gauss(300, 30),
    ...     })
    >>> normal = {"sales": 20_500, "redeemed": 14_800, "refunds": 310}
    >>> detector.score_one(normal) < 0.2
    True
    >>> odd = {"sales": 60_000, "redeemed": 3_000, "refunds": 300}
    >>> detector.score_one(odd) > 0.5
    True
    >>> feature, z = detector.explain(odd)
    >>> feature, z < -5
    ('redeemed', True)
    """

    def __init__(
        self,
        n_trees: int = 10,
        height: int = 6,
        window_size: int = 28,
        grace_period: int = 28,
        fading_factor: float = 0.03,
        z_range: float = 6.0,
        winsorize: float | None = 2.5,
        log_amounts: bool = True,
        quantile: float = 0.95,
        seed: int | None = 42,
    ) -> None:
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.grace_period = grace_period
        self.fading_factor = fading_factor
        self.z_range = z_range
        self.winsorize = winsorize
        self.log_amounts = log_amounts
        self.quantile = quantile
        self.seed = seed
        self._means: dict[str, stats.EWMean] = {}
        self._vars: dict[str, stats.EWVar] = {}
        self._counts: dict[str, int] = {}
        self._seen = 0
        self._hst: anomaly.HalfSpaceTrees | None = None
        self._forest_features: frozenset[str] = frozenset()
        self._forest_seen = 0
        self._calibration = stats.Quantile(quantile)
        self._calibrated = 0

    # -- scaling ----------------------------------------------------------------------------

    def _values(self, x: dict[str, float]) -> dict[str, float]:
        """The finite values of ``x``, transformed."""
        out = {}
        for name, value in x.items():
            if value is None:
                continue
            v = float(value)
            if math.isfinite(v):
                out[name] = math.copysign(math.log1p(abs(v)), v) if self.log_amounts else v
        return out

    def _z(self, name: str, value: float) -> float:
        if not self._counts.get(name):
            return 0.0
        spread = max(math.sqrt(max(self._vars[name].get(), 0.0)), 1e-9)
        return (value - self._means[name].get()) / spread

    def _unit(self, z: float) -> float:
        return min(1.0, max(0.0, 0.5 + z / (2.0 * self.z_range)))

    def _scaled(self, values: dict[str, float]) -> dict[str, float]:
        return {name: self._unit(self._z(name, v)) for name, v in values.items()}

    def _update_scalers(self, values: dict[str, float]) -> None:
        for name, v in values.items():
            if name not in self._means:
                self._means[name] = stats.EWMean(fading_factor=self.fading_factor)
                self._vars[name] = stats.EWVar(fading_factor=self.fading_factor)
                self._counts[name] = 0
            mean, var = self._means[name], self._vars[name]
            if self.winsorize is not None and self._counts[name] >= self.grace_period:
                limit = self.winsorize * math.sqrt(max(var.get(), 0.0))
                if limit > 0:
                    v = min(max(v, mean.get() - limit), mean.get() + limit)
            mean.update(v)
            var.update(v)
            self._counts[name] += 1

    # -- trees and calibration ----------------------------------------------------------------

    def _new_forest(self, features: frozenset[str]) -> None:
        self._hst = anomaly.HalfSpaceTrees(
            n_trees=self.n_trees, height=self.height, window_size=self.window_size, seed=self.seed
        )
        self._forest_features = features
        self._forest_seen = 0
        self._calibration = stats.Quantile(self.quantile)
        self._calibrated = 0

    @property
    def _max_raw(self) -> float:
        # Every tree holds the whole window at its root and nothing in the child the point
        # takes: HST's score is then 1 - 1 / (number of nodes per tree).
        nodes_per_tree: int = 2 ** (self.height + 1) - 1
        return 1.0 - 1.0 / nodes_per_tree

    def _threshold(self) -> float:
        top = self._max_raw
        q = self._calibration.get()
        if not self._calibrated or q is None:
            return top
        return q + (top - q) * _CALIBRATION_PRIOR / (_CALIBRATION_PRIOR + self._calibrated)

    def learn_one(self, x: dict[str, float]) -> None:  # type: ignore[override]  # str-named features: narrower than river's dict[Hashable, Any]
        values = self._values(x)
        self._seen += 1
        if not self._forest_features.issuperset(values):
            self._new_forest(self._forest_features.union(values))
        if self._hst is None:  # nothing numeric seen yet
            return
        scaled = self._scaled(values)
        if self._forest_seen >= self.window_size:
            # Prequential: the raw score of each observation before it is learned.
            self._calibration.update(self._hst.score_one(scaled))
            self._calibrated += 1
        elif self._forest_seen == 0:
            # The trees split on the features of the first point they learn: give it all of them.
            scaled = {name: 0.5 for name in self._forest_features} | scaled
        self._hst.learn_one(scaled)
        self._forest_seen += 1
        self._update_scalers(values)

    def score_one(self, x: dict[str, float]) -> float:  # type: ignore[override]  # str-named features: narrower than river's dict[Hashable, Any]
        if self._hst is None or self._seen < self.grace_period or self._forest_seen < self.window_size:
            return 0.0
        raw: float = self._hst.score_one(self._scaled(self._values(x)))
        threshold = self._threshold()
        if raw <= threshold:
            return 0.0
        return min(1.0, (raw - threshold) / (self._max_raw - threshold))

    def explain(self, x: dict[str, float]) -> tuple[str, float] | None:
        """The feature furthest from its own normal and its signed z-score (None in the grace
        period). A feature that has been constant so far gives a very large |z|."""
        if self._seen < self.grace_period:
            return None
        zscores = {name: self._z(name, v) for name, v in self._values(x).items() if self._counts.get(name)}
        if not zscores:
            return None
        name = max(zscores, key=lambda n: abs(zscores[n]))
        return name, zscores[name]

    # -- compact pickling -----------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        hst = state.pop("_hst")
        if hst is not None:
            # HST's trees pickle as thousands of node objects (~45 kB); store them as arrays.
            hst_state = hst.__dict__.copy()
            trees = hst_state.pop("trees")
            hst_state.pop("_tree_nodes", None)
            hst_state.pop("rng", None)  # only used to grow the trees, which are already grown
            state["_hst"] = (hst_state, encode_forest(trees))
        else:
            state["_hst"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        packed = state.pop("_hst")
        self.__dict__.update(state)
        self._hst = None
        if packed is not None:
            hst_state, forest = packed
            hst = anomaly.HalfSpaceTrees.__new__(anomaly.HalfSpaceTrees)
            hst.__dict__.update(hst_state)
            hst.rng = random.Random(hst.seed)
            trees, hst._tree_nodes = decode_forest(forest)
            hst.trees = cast(list[PaddedBranch], trees)  # as river types them: a root is a branch (height >= 1)
            self._hst = hst

    # -- compact state (engine/state_codec.py) ------------------------------------------------

    def pack(self, out: Writer) -> None:
        """Write the whole state for :meth:`unpack`, without the trees' splits: river grows
        those from ``random.Random(seed)`` and the forest's features alone, so only the masses
        (small counts) are written, with a fingerprint of the splits for :meth:`unpack` to check.

        >>> detector = ScaledHalfSpaceTrees(seed=3)
        >>> for i in range(40):
        ...     detector.learn_one({"sales": 100.0 + i % 7, "refunds": 3.0 + i % 2})
        >>> out = Writer()
        >>> detector.pack(out)
        >>> copy = ScaledHalfSpaceTrees.unpack(Reader(out.getvalue()))
        >>> point = {"sales": 160.0, "refunds": 9.0}
        >>> copy.score_one(point) == detector.score_one(point) > 0, copy.explain(point) == detector.explain(point)
        (True, True)
        """
        for count in (self.n_trees, self.height, self.window_size, self.grace_period):
            out.uint(count)
        out.double(self.fading_factor)
        out.double(self.z_range)
        out.optional_float(self.winsorize)
        out.flag(self.log_amounts)
        out.double(self.quantile)
        out.optional_int(self.seed)
        out.uint(self._seen)
        out.uint(len(self._means))
        for name, mean in self._means.items():
            out.text(name)
            out.uint(self._counts[name])
            write_ewmean(out, mean)
            write_ewvar(out, self._vars[name])
        out.flag(self._hst is not None)
        if self._hst is None:
            return
        out.uint(len(self._forest_features))
        for name in sorted(self._forest_features):
            out.text(name)
        out.uint(self._forest_seen)
        out.uint(self._calibrated)
        write_quantile(out, self._calibration)
        hst = self._hst
        out.uint(hst.counter)
        out.flag(hst._first_window)
        out.flag(bool(hst.trees))
        if hst.trees:
            if self.seed is None:
                raise ValueError("an unseeded ScaledHalfSpaceTrees cannot be packed: its trees cannot be grown again")
            masses, fingerprint = leaf_masses(hst.trees)
            out.raw(fingerprint)
            out.counts(masses)

    @classmethod
    def unpack(cls, src: Reader) -> ScaledHalfSpaceTrees:
        """A detector from :meth:`pack`'s bytes, scoring exactly as the one packed."""
        n_trees, height, window_size, grace_period = (src.uint() for _ in range(4))
        detector = cls(
            n_trees=n_trees, height=height, window_size=window_size, grace_period=grace_period,
            fading_factor=src.double(), z_range=src.double(), winsorize=src.optional_float(),
            log_amounts=src.flag(), quantile=src.double(), seed=src.optional_int(),
        )
        detector._seen = src.uint()
        for _ in range(src.uint()):
            name = src.text()
            detector._counts[name] = src.uint()
            detector._means[name] = read_ewmean(src)
            detector._vars[name] = read_ewvar(src)
        if not src.flag():
            return detector
        features = frozenset(src.text() for _ in range(src.uint()))
        detector._new_forest(features)
        detector._forest_seen = src.uint()
        detector._calibrated = src.uint()
        detector._calibration = read_quantile(src)
        hst = detector._hst
        assert hst is not None
        counter, first_window = src.uint(), src.flag()
        if src.flag():
            forest, fingerprint = grown(n_trees, height, window_size, detector.seed, tuple(sorted(features)))
            if src.raw(FINGERPRINT_SIZE) != fingerprint:
                raise CodecError("the half-space trees grown again differ from the packed ones "
                                 "(another river version grows other trees from the same seed?)")
            trees, hst._tree_nodes = decode_forest(forest)
            hst.trees = cast(list[PaddedBranch], trees)
            set_leaf_masses(hst.trees, src.counts())
        hst.counter, hst._first_window = counter, first_window
        return detector
