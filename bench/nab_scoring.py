"""The Numenta Anomaly Benchmark's scoring rules, re-implemented without NAB's code or pandas.

The rules follow NAB v1.1 (``nab/sweeper.py``, ``nab/optimizer.py``, ``nab/runner.py``):

* Each labelled anomaly has a *window* around it (``labels/combined_windows.json``). A detection
  (anomaly score >= threshold) inside a window is worth ``tp`` weight times the scaled sigmoid of
  its relative position, normalised so that the window's first row is worth exactly ``tp`` and
  its last row little; only the window's best (earliest) detection counts. A window without a
  detection costs ``fn``.
* A detection outside every window costs ``fp`` times the scaled sigmoid of how far past the
  previous window's end it is (right after a window it costs less; far away, or before any
  window, the full ``fp``).
* The first 15% of each file (at most 750 rows) is the *probationary period*: rows there are
  neither rewarded nor penalised.
* One threshold per detector is chosen over the whole corpus, the one with the best total.
* The total is normalised so that the null detector (never detects) scores 0 and the perfect
  detector (the first row of every window) scores 100: ``100 (S - S_null) / (S_perfect - S_null)``
  with ``S_perfect`` = ``tp`` times the number of windows.

>>> day = [f"2024-01-{d:02d}" for d in range(1, 31)]
>>> windows = {"a.csv": [(day[20], day[24])]}
>>> perfect = {"a.csv": (day, [1.0 if d == day[20] else 0.0 for d in day])}
>>> score_corpus(perfect, windows).normalized
100.0
>>> never = {"a.csv": (day, [0.0] * 30)}
>>> score_corpus(never, windows).normalized
0.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

PROBATION_PERCENT = 0.15
# NAB caps the probationary period at 15% of 5,000 rows.
PROBATION_CAP_ROWS = 5000


@dataclass(frozen=True)
class CostMatrix:
    """Weights of a NAB application profile (``config/profiles.json``)."""

    tp: float = 1.0
    fp: float = 0.11
    fn: float = 1.0


STANDARD = CostMatrix()
REWARD_LOW_FP = CostMatrix(fp=0.22)
REWARD_LOW_FN = CostMatrix(fn=2.0)
PROFILES = {"standard": STANDARD, "reward_low_FP_rate": REWARD_LOW_FP,
            "reward_low_FN_rate": REWARD_LOW_FN}


class ScoredRow(NamedTuple):
    """One scorable row: the detector's anomaly score, what a detection there is worth, and the
    window it lies in (``None`` outside every window)."""

    anomaly_score: float
    reward: float
    window: str | None


@dataclass(frozen=True)
class CorpusScore:
    """A detector's result on a corpus under one profile, at its best threshold."""

    threshold: float
    raw: float
    null: float
    perfect: float
    true_positives: int  # windows detected
    false_positives: int  # rows detected outside every window
    windows: int

    @property
    def normalized(self) -> float:
        return round(100.0 * (self.raw - self.null) / (self.perfect - self.null), 10)


def scaled_sigmoid(position: float) -> float:
    """NAB's reward for a relative position: -1 is a window's start (0.987), 0 its end (0), and
    positive positions are that far past the end (towards -1; beyond 3 it is -1)."""
    if position > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def probation_rows(n_rows: int, percent: float = PROBATION_PERCENT) -> float:
    """Rows at the start of a file in which detections are ignored."""
    return min(math.floor(percent * n_rows), percent * PROBATION_CAP_ROWS)


def window_rows(timestamps: Sequence[str], windows: Sequence[tuple[str, str]],
                name: str = "") -> list[tuple[int, int]]:
    """Each window's first and last row; a window edge must be one of the file's timestamps."""
    index = {_canonical(t): i for i, t in reversed(list(enumerate(timestamps)))}
    rows = []
    for start, end in windows:
        try:
            rows.append((index[_canonical(start)], index[_canonical(end)]))
        except KeyError as missing:
            raise ValueError(f"{name}: window edge {missing} is not a timestamp of the file") from None
    return sorted(rows)


def _canonical(timestamp: str) -> str:
    # The windows file writes "2014-02-19 10:50:00.000000", the data files "2014-02-19 10:50:00".
    text = timestamp.strip().replace("T", " ")
    return text[:-7] if text.endswith(".000000") else text


def scored_rows(scores: Sequence[float], windows: Sequence[tuple[int, int]], name: str,
                cost: CostMatrix = STANDARD) -> list[ScoredRow]:
    """The file's rows after its probationary period, each with the reward of a detection there
    (``nab.sweeper.Sweeper.calcSweepScore``). ``windows`` are (first row, last row), in order."""
    max_tp = scaled_sigmoid(-1.0)
    probation = probation_rows(len(scores))
    pending = list(windows)
    current: tuple[int, int] | None = None
    previous: tuple[int, int] | None = None
    out = []
    for i, anomaly_score in enumerate(scores):
        if current is None and pending and i == pending[0][0]:
            current = pending.pop(0)
        if current is not None:
            first, last = current
            width = last - first + 1
            reward = scaled_sigmoid(-(last - i + 1) / width) * cost.tp / max_tp
            window: str | None = f"{name}|{first}"
        else:
            if previous is None:
                unweighted = -1.0
            else:
                first, last = previous
                # NAB divides by (width - 1); a one-row window would divide by zero there too.
                unweighted = scaled_sigmoid(abs(last - i) / max(last - first, 1e-12))
            reward = unweighted * cost.fp
            window = None
        if i >= probation:
            out.append(ScoredRow(float(anomaly_score), reward, window))
        if current is not None and i == current[1]:
            previous, current = current, None
    return out


def sweep(rows: Sequence[ScoredRow], cost: CostMatrix = STANDARD) -> list[tuple[float, float, int, int]]:
    """(threshold, total score, windows detected, false-positive rows) for every distinct
    anomaly score, from the highest down, plus the starting point 1.1 where nothing is detected
    (``nab.sweeper.Sweeper.calcScoreByThreshold``). A row is a detection when its score >= the
    threshold."""
    ordered = sorted(rows, key=lambda r: r.anomaly_score, reverse=True)
    best = {r.window: -cost.fn for r in ordered if r.window is not None}
    total = sum(best.values())  # running sum of every window's best reward, plus false positives
    detected: set[str] = set()
    false_positives = 0
    threshold = 1.1
    out = []
    for row in ordered:
        if row.anomaly_score != threshold:
            out.append((threshold, total, len(detected), false_positives))
            threshold = row.anomaly_score
        if row.window is None:
            total += row.reward
            false_positives += 1
        else:
            detected.add(row.window)
            if row.reward > best[row.window]:
                total += row.reward - best[row.window]
                best[row.window] = row.reward
    out.append((threshold, total, len(detected), false_positives))
    return out


def score_corpus(results: Mapping[str, tuple[Sequence[str], Sequence[float]]],
                 windows: Mapping[str, Sequence[tuple[str, str]]],
                 cost: CostMatrix = STANDARD) -> CorpusScore:
    """Score a detector on a corpus: ``results`` maps each file to its timestamps and anomaly
    scores, ``windows`` each file to its labelled windows (start and end timestamps)."""
    rows: list[ScoredRow] = []
    null_rows: list[ScoredRow] = []
    for name, (timestamps, scores) in results.items():
        file_windows = window_rows(timestamps, windows.get(name, []), name)
        rows += scored_rows(scores, file_windows, name, cost)
        null_rows += scored_rows([0.0] * len(scores), file_windows, name, cost)
    threshold, raw, detected, false_positives = max(sweep(rows, cost), key=lambda s: s[1])
    null = max(s[1] for s in sweep(null_rows, cost))
    n_windows = sum(len(windows.get(name, [])) for name in results)
    return CorpusScore(threshold, raw, null, cost.tp * n_windows, detected, false_positives,
                       n_windows)
