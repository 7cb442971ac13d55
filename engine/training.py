"""Learning the fusion from labelled worlds: rows, a logistic fit, level bands, and their check.

Each scored merchant-day of a labelled world is a row: its readings (:mod:`engine.recording`)
and whether the merchant collapsed within the horizon after that day. Days on and after a
collapse are left out (the store is gone). The fit is an L2-regularised logistic regression by
Newton's method (exact and deterministic: the same worlds always give the same weights).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = rng.random((2000, 2))
>>> y = (rng.random(2000) < 1 / (1 + np.exp(-(-3 + 4 * x[:, 0])))).astype(float)
>>> intercept, weights = fit_logistic(x, y, l2=0.0)
>>> round(intercept), [round(w) for w in weights]
(-3, [4, 0])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypedDict, Unpack

import numpy as np

from alerts.levels import LEVELS
from contract.labels import Label
from engine.recording import MerchantDays
from models.fusion import HORIZON_DAYS, LogisticFusion

LEVEL_ORDER = LEVELS  # blue .. red, as alerts/levels.py orders them


def _collapse_ordinal(label: Label | None) -> int:
    return label.collapse_date.toordinal() if label is not None and label.collapse_date else -1


def training_rows(days: MerchantDays, labels: Mapping[str, Label], horizon: int = HORIZON_DAYS,
                  after: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(mask of usable rows, target 0/1 of those rows) for labelled merchants: a day is positive
    when its merchant collapses within ``horizon`` days, or collapsed at most ``after`` days ago
    (a store gone dark is still to be disposed of); later days are left out."""
    collapse_day = np.array([_collapse_ordinal(labels.get(m)) for m in days.merchant_ids], dtype=np.int64)
    known = np.array([m in labels for m in days.merchant_ids])
    kept = (collapse_day < 0) | (days.days < collapse_day + after)
    mask = known & kept
    target = (collapse_day > 0) & (collapse_day - days.days <= horizon) & (days.days < collapse_day + after)
    return mask, target[mask].astype(np.float64)


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, iterations: int = 50,
                 sample_weight: np.ndarray | None = None) -> tuple[float, list[float]]:
    """Intercept and weights minimising (weighted) log loss + ``l2``/2 × |weights|² (intercept free)."""
    n, k = x.shape
    design = np.hstack([np.ones((n, 1)), np.asarray(x, dtype=np.float64)])
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    beta = np.zeros(k + 1)
    penalty = np.full(k + 1, float(l2))
    penalty[0] = 0.0
    for _ in range(iterations):
        z = np.clip(design @ beta, -30, 30)
        p = 1.0 / (1.0 + np.exp(-z))
        gradient = design.T @ (w * (p - y)) + penalty * beta
        curvature = design.T @ (design * (w * p * (1 - p))[:, None]) + np.diag(penalty + 1e-9)
        step = np.linalg.solve(curvature, gradient)
        beta -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return float(beta[0]), [float(b) for b in beta[1:]]


@dataclass
class Reliability:
    """Predicted probability against the observed frequency, by bins (a reliability diagram)."""

    edges: list[float]
    predicted: list[float | None]
    observed: list[float | None]
    counts: list[int]


def reliability(probabilities: np.ndarray, target: np.ndarray, bins: Sequence[float] = (
        0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0001)) -> Reliability:
    """Mean prediction and observed frequency in each probability bin.

    >>> r = reliability(np.array([0.1, 0.1, 0.9, 0.9]), np.array([0.0, 0.0, 1.0, 1.0]), (0.0, 0.5, 1.0001))
    >>> r.predicted, r.observed, r.counts
    ([0.1, 0.9], [0.0, 1.0], [2, 2])
    """
    predicted: list[float | None] = []
    observed: list[float | None] = []
    counts = []
    for low, high in zip(bins[:-1], bins[1:], strict=True):
        inside = (probabilities >= low) & (probabilities < high)
        counts.append(int(inside.sum()))
        predicted.append(round(float(probabilities[inside].mean()), 4) if inside.any() else None)
        observed.append(round(float(target[inside].mean()), 4) if inside.any() else None)
    return Reliability(list(bins), predicted, observed, counts)


def merchant_peaks(days: MerchantDays, probabilities: np.ndarray, labels: Mapping[str, Label],
                   window: int = 180) -> dict[str, float]:
    """Per labelled merchant, the highest probability it reached in the period a warning would be
    judged on: before its collapse (within ``window`` days) or, for the others, at any time."""
    peaks: dict[str, float] = {}
    for merchant_id, day, p in zip(days.merchant_ids, days.days, probabilities, strict=True):
        label = labels.get(merchant_id)
        if label is None:
            continue
        if label.collapse_date is not None:
            end = label.collapse_date.toordinal()
            if not (end - window <= day < end):
                continue
        if p > peaks.get(merchant_id, -1.0):
            peaks[merchant_id] = float(p)
    return peaks


def cutoff_for_false_alarms(peaks: Mapping[str, float], labels: Mapping[str, Label], share: float) -> float:
    """The lowest probability cut-off that at most ``share`` of healthy merchants ever reach.

    >>> from contract.labels import Label
    >>> labels = {f"h{i}": Label(f"h{i}", "healthy", "healthy", None) for i in range(10)}
    >>> cutoff_for_false_alarms({f"h{i}": i / 10 for i in range(10)}, labels, 0.2)
    0.7001
    """
    healthy = sorted((p for m, p in peaks.items() if labels[m].group == "healthy"), reverse=True)
    if not healthy:
        return 0.5
    allowed = int(share * len(healthy))
    # Just above the highest healthy peak that would be one too many.
    return round(min(healthy[allowed] + 1e-4, 0.99), 4) if allowed < len(healthy) else 0.01


@dataclass
class AlarmFigures:
    """The referee's figures for one cut-off, from scores alone (first day at or above it)."""

    recall: float
    late: float
    median_lead_days: float | None
    healthy_false_alarms: float
    trap_false_alarms: dict[str, float]

    @property
    def worst_trap(self) -> float:
        return max(self.trap_false_alarms.values(), default=0.0)


def alarm_figures(days: MerchantDays, probabilities: np.ndarray, labels: Mapping[str, Label], cutoff: float,
                  window: int = 180, late_days: int = 7) -> AlarmFigures:
    """Recall (first alarm within ``window`` days before the collapse), late alarms (on or up to
    ``late_days`` after it), median lead, and false alarms (any alarm) of healthy merchants and
    of each look-alike kind, when every merchant-day at or above ``cutoff`` is an alarm."""
    first: dict[str, int] = {}
    for merchant_id, day, p in zip(days.merchant_ids, days.days, probabilities, strict=True):
        if p < cutoff:
            continue
        label = labels.get(merchant_id)
        if label is None:
            continue
        if label.collapse_date is not None and label.collapse_date.toordinal() - day > window:
            continue
        if merchant_id not in first or day < first[merchant_id]:
            first[merchant_id] = int(day)
    caught = late = 0
    leads = []
    totals: dict[str, list[int]] = {}
    for merchant_id, label in labels.items():
        alarm = first.get(merchant_id)
        if label.group == "collapse" and label.collapse_date is not None:
            end = label.collapse_date.toordinal()
            totals.setdefault("collapse", [0, 0])[0] += 1
            if alarm is not None and alarm < end:
                caught += 1
                leads.append(end - alarm)
            elif alarm is not None and alarm - end <= late_days:
                late += 1
        else:
            key = "healthy" if label.group == "healthy" else label.kind
            row = totals.setdefault(key, [0, 0])
            row[0] += 1
            row[1] += alarm is not None
    n = totals.get("collapse", [0, 0])[0] or 1
    healthy = totals.get("healthy", [0, 0])
    return AlarmFigures(
        recall=caught / n, late=late / n, median_lead_days=float(np.median(leads)) if leads else None,
        healthy_false_alarms=healthy[1] / healthy[0] if healthy[0] else 0.0,
        trap_false_alarms={k: v[1] / v[0] for k, v in sorted(totals.items()) if k not in ("collapse", "healthy")},
    )


#: Share of healthy merchants of the training worlds that may ever reach each level: the bands are
#: chosen on that evidence (orange at 1%: a warning on a healthy merchant costs a visit and trust).
LEVEL_FALSE_ALARMS = {"blue": 0.10, "yellow": 0.04, "orange": 0.01, "red": 0.003}
L2 = 10.0  # ridge on the weights: keeps rare readings from taking extreme weights from a few merchants
#: Readings whose pairs the fusion learns: the signs the domain notes say collapses combine (money
#: gathered: surge, deep bonuses, growing liability; distress: declines, custody gaps, complaints,
#: registry changes, silence and its announcement).
PAIR_CODES = (
    "sales_surge", "deep_discount_share", "liability_growth", "liability_months", "redemption_decline",
    "sales_decline", "custody_coverage", "registry_change", "complaint_surge", "severe_complaints",
    "closure_complaints", "silence", "announced_pause", "bonus_escalation",
)
#: The most one reading may add to the log-odds (see models/fusion.py): about e^3 = 20 times the
#: odds, so that no single sign takes a merchant from the base rate to orange on its own.
CAP = 3.0
#: Days after a collapse still taught as positive: a store gone dark with consumers' money is what
#: the disposal queue exists for, even when the warning comes too late to prevent it.
AFTER_DAYS = 14
NEGATIVE_SHARE = 4  # one in this many merchant-days far from any collapse is kept (weighted back)


@dataclass
class World:
    """A labelled world's recording: its name, scored merchant-days and labels."""

    name: str
    days: MerchantDays
    labels: Mapping[str, Label]


@dataclass
class Fit:
    """A learned fusion with the level cut-offs chosen on its training worlds."""

    intercept: float
    weights: dict[str, float]
    cutoffs: dict[str, float]
    rows: int
    positives: int
    pairs: dict[tuple[str, str], float] = field(default_factory=dict)
    cap: float = CAP
    horizon: int = HORIZON_DAYS

    def fusion(self) -> LogisticFusion:
        return LogisticFusion(self.intercept, self.weights, self.horizon, self.pairs, self.cap)

    def probabilities(self, days: MerchantDays) -> np.ndarray:
        return np.asarray(self.fusion().probabilities(days.readings, days.codes))


def pair_columns(readings: np.ndarray, codes: Sequence[str]) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """The products of every two readings of :data:`PAIR_CODES` present in ``codes``."""
    chosen = [c for c in PAIR_CODES if c in codes]
    names = [(a, b) for i, a in enumerate(chosen) for b in chosen[i + 1:]]
    index = {c: codes.index(c) for c in chosen}
    columns = np.empty((len(readings), len(names)), dtype=np.float32)
    for j, (a, b) in enumerate(names):
        columns[:, j] = readings[:, index[a]] * readings[:, index[b]]
    return columns, names


class FitOptions(TypedDict, total=False):
    """The keyword options of :func:`fit_worlds`."""

    l2: float
    horizon: int
    cap: float
    after: int
    level_false_alarms: Mapping[str, float]


def fit_worlds(worlds: Sequence[World], *, l2: float = L2, horizon: int = HORIZON_DAYS, cap: float = CAP,
               after: int = AFTER_DAYS, level_false_alarms: Mapping[str, float] = LEVEL_FALSE_ALARMS) -> Fit:
    """Fit the fusion on ``worlds`` (pooled) and choose each level's cut-off on their healthy merchants."""
    codes = worlds[0].days.codes
    xs, ys, ws = [], [], []
    names: list[tuple[str, str]] = []
    rows = 0
    for world in worlds:
        mask, target = training_rows(world.days, world.labels, horizon, after)
        rows += len(target)
        readings = world.days.readings[mask]
        # Healthy merchant-days repeat one another: keep every positive and a fixed sample of
        # the rest, weighted back, so the fit stays exact in expectation and fits in memory.
        keep = (target > 0) | (np.arange(len(target)) % NEGATIVE_SHARE == 0)
        pairs, names = pair_columns(readings[keep], codes)
        xs.append(np.hstack([readings[keep], pairs]))
        ys.append(target[keep])
        ws.append(np.where(target[keep] > 0, 1.0, float(NEGATIVE_SHARE)))
    x, y = np.concatenate(xs), np.concatenate(ys)
    intercept, beta = fit_logistic(x, y, l2=l2, sample_weight=np.concatenate(ws))
    main, joint = beta[:len(codes)], beta[len(codes):]
    fit = Fit(round(intercept, 4), {c: round(w, 4) for c, w in zip(codes, main, strict=True)}, {},
              rows=rows, positives=int(y.sum()),
              pairs={name: round(w, 4) for name, w in zip(names, joint, strict=True) if abs(w) >= 0.05}, cap=cap,
              horizon=horizon)
    peaks: dict[str, float] = {}
    labels: dict[str, Label] = {}
    for world in worlds:
        for merchant_id, peak in merchant_peaks(world.days, fit.probabilities(world.days), world.labels).items():
            peaks[f"{world.name}/{merchant_id}"] = peak
            labels[f"{world.name}/{merchant_id}"] = world.labels[merchant_id]
    cutoffs = {level: cutoff_for_false_alarms(peaks, labels, level_false_alarms[level]) for level in LEVEL_ORDER}
    # Cut-offs must rise strictly from blue to red (the thresholds file's rule).
    for lower, higher in zip(LEVEL_ORDER, LEVEL_ORDER[1:], strict=False):
        cutoffs[higher] = max(cutoffs[higher], round(cutoffs[lower] + 0.01, 4))
    fit.cutoffs = cutoffs
    return fit


@dataclass
class HeldOut:
    """One world judged by a fusion fitted on the other worlds."""

    world: str
    figures: AlarmFigures
    probabilities: np.ndarray
    target: np.ndarray


def leave_one_world_out(worlds: Sequence[World], **options: Unpack[FitOptions]) -> list[HeldOut]:
    """Fit on all worlds but one, judge that one (orange cut-off of the fit); once per world."""
    held = []
    for i, world in enumerate(worlds):
        fit = fit_worlds([w for j, w in enumerate(worlds) if j != i], **options)
        p = fit.probabilities(world.days)
        mask, target = training_rows(world.days, world.labels, options.get("horizon", HORIZON_DAYS),
                                     options.get("after", AFTER_DAYS))
        held.append(HeldOut(world.name, alarm_figures(world.days, p, world.labels, fit.cutoffs["orange"]),
                            p[mask], target))
    return held


def render_learned_module(fit: Fit, provenance: str) -> str:
    """The source of ``models/learned.py`` for ``fit`` (``provenance``: how it was made)."""
    weights = "".join(f"        {code!r}: {weight!r},\n" for code, weight in fit.weights.items())
    pairs = "".join(f"        ({a!r}, {b!r}): {weight!r},\n" for (a, b), weight in fit.pairs.items())
    cutoffs = ", ".join(f"{level!r}: {value!r}" for level, value in fit.cutoffs.items())
    return (
        '"""The learned fusion and its level bands: generated by ``yujing train``, do not edit by hand.\n\n'
        f"{provenance}\n"
        '"""\n\n'
        "from models.fusion import LogisticFusion\n\n"
        "FUSION = LogisticFusion(\n"
        f"    intercept={fit.intercept!r},\n"
        "    weights={\n"
        f"{weights}"
        "    },\n"
        f"    horizon_days={fit.horizon},\n"
        "    pairs={\n"
        f"{pairs}"
        "    },\n"
        f"    cap={fit.cap!r},\n"
        ")\n"
        "# P(collapse within the horizon) at which each level is raised.\n"
        f"LEVEL_CUTOFFS = {{{cutoffs}}}\n"
    )
