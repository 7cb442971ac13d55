"""NAB's scoring rules (bench/nab_scoring.py) on corpora small enough to score by hand, and a
smoke run of bench/nab.py on a synthetic series laid out as NAB lays out its files."""

from __future__ import annotations

import json
import math
import random
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bench import nab
from bench.nab_scoring import (
    REWARD_LOW_FN,
    STANDARD,
    ScoredRow,
    probation_rows,
    scaled_sigmoid,
    score_corpus,
    scored_rows,
    sweep,
    window_rows,
)

START = datetime(2024, 1, 1)


def stamps(n: int) -> list[str]:
    return [(START + timedelta(minutes=5 * i)).strftime("%Y-%m-%d %H:%M:%S") for i in range(n)]


def nab_stamp(timestamp: str) -> str:
    """As NAB's combined_windows.json writes a timestamp."""
    return timestamp + ".000000"


# 100 rows: probation is rows 0-14; one window, rows 60-64 (width 5).
T = stamps(100)
WINDOWS = {"a.csv": [(nab_stamp(T[60]), nab_stamp(T[64]))]}
MAX_TP = scaled_sigmoid(-1.0)


def with_scores(points: dict[int, float], n: int = 100) -> dict:
    scores = [0.0] * n
    for i, s in points.items():
        scores[i] = s
    return {"a.csv": (stamps(n), scores)}


def normalized(raw: float, windows: int = 1) -> float:
    # null = every window missed (-1 each), perfect = every window caught at its start (+1 each)
    return 100 * (raw + windows) / (2 * windows)


def test_scaled_sigmoid_at_the_window_edges() -> None:
    assert scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert scaled_sigmoid(-0.5) == pytest.approx(0.84828, abs=1e-5)
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(1.0) == pytest.approx(-0.98661, abs=1e-5)
    assert scaled_sigmoid(3.5) == -1.0


def test_probation_is_fifteen_percent_capped_at_750_rows() -> None:
    assert probation_rows(100) == 15
    assert probation_rows(4000) == 600
    assert probation_rows(22_695) == 750


def test_perfect_detector_scores_100_and_null_0() -> None:
    assert score_corpus(with_scores({60: 1.0}), WINDOWS).normalized == 100.0
    assert score_corpus(with_scores({}), WINDOWS).normalized == 0.0


def test_a_detection_at_the_window_end_is_worth_less_than_at_its_start() -> None:
    # The last row of a 5-row window sits at relative position -1/5.
    at_end = score_corpus(with_scores({64: 1.0}), WINDOWS)
    assert at_end.raw == pytest.approx(scaled_sigmoid(-0.2) / MAX_TP)
    assert at_end.normalized == pytest.approx(normalized(0.4621 / 0.98661), abs=1e-3)
    assert at_end.normalized == pytest.approx(73.42, abs=0.01)
    mid = score_corpus(with_scores({62: 1.0}), WINDOWS).normalized
    assert 73.42 < mid < 100.0


def test_only_the_first_detection_in_a_window_counts() -> None:
    once = score_corpus(with_scores({61: 1.0}), WINDOWS)
    again = score_corpus(with_scores({61: 1.0, 62: 1.0, 63: 1.0, 64: 1.0}), WINDOWS)
    assert again.raw == once.raw
    assert again.true_positives == 1 and again.false_positives == 0


def test_a_false_positive_far_from_windows_costs_0_11() -> None:
    # The false positive (row 20, before any window) outscores the true detection, so one
    # threshold cannot take the window without it: 1 - 0.11 beats missing the window (-1).
    result = score_corpus(with_scores({20: 1.0, 60: 0.9}), WINDOWS)
    assert result.raw == pytest.approx(1.0 - 0.11)
    assert result.normalized == pytest.approx(94.5)
    assert result.false_positives == 1 and result.threshold == 0.9


def test_a_false_positive_just_after_a_window_costs_less() -> None:
    # Row 65 is one row past a 5-row window: position 1/4, reward 0.11 * scaled_sigmoid(0.25).
    result = score_corpus(with_scores({65: 1.0, 60: 0.9}), WINDOWS)
    assert result.raw == pytest.approx(1.0 + 0.11 * scaled_sigmoid(0.25))
    assert -0.11 < 0.11 * scaled_sigmoid(0.25) < 0


def test_the_threshold_leaves_out_false_positives_that_cost_more_than_they_bring() -> None:
    result = score_corpus(with_scores({60: 1.0, 20: 0.5, 30: 0.5}), WINDOWS)
    assert result.normalized == 100.0 and result.threshold == 1.0


def test_detections_in_the_probationary_period_are_ignored() -> None:
    assert score_corpus(with_scores({3: 1.0, 14: 1.0, 60: 0.9}), WINDOWS).normalized == 100.0
    # Row 15 is the first scored row.
    assert score_corpus(with_scores({15: 1.0, 60: 0.9}), WINDOWS).normalized == 94.5


def test_profiles_weigh_misses() -> None:
    # reward_low_FN_rate: a miss costs 2, so the null detector sits at -2.
    result = score_corpus(with_scores({}), WINDOWS, REWARD_LOW_FN)
    assert result.null == -2.0 and result.perfect == 1.0 and result.normalized == 0.0


def test_windows_must_name_timestamps_of_the_file() -> None:
    assert window_rows(T, WINDOWS["a.csv"]) == [(60, 64)]
    with pytest.raises(ValueError, match="not a timestamp"):
        window_rows(T, [("2030-01-01 00:00:00.000000", nab_stamp(T[3]))], "a.csv")


def brute_force(rows_by_file: list[tuple[list[float], list[tuple[int, int]]]], t: float) -> float:
    """NAB's score at threshold t straight from the rules, row by row and window by window."""
    total = 0.0
    for scores, windows in rows_by_file:
        probation = probation_rows(len(scores))
        for first, last in windows:
            hits = [i for i in range(max(first, math.ceil(probation)), last + 1) if scores[i] >= t]
            if hits:
                total += scaled_sigmoid(-(last - hits[0] + 1) / (last - first + 1)) / MAX_TP
            elif last >= probation:
                total -= 1.0
        for i, s in enumerate(scores):
            if i < probation or s < t or any(a <= i <= b for a, b in windows):
                continue
            before = [w for w in windows if w[1] < i]
            if not before:
                total -= 0.11
            else:
                a, b = before[-1]
                total += 0.11 * scaled_sigmoid((i - b) / (b - a))
    return total


def test_sweep_agrees_with_scoring_each_threshold_from_the_rules() -> None:
    rng = random.Random(5)
    files = []
    for _ in range(4):
        n = rng.randint(80, 300)
        scores = [round(rng.random(), 1) for _ in range(n)]  # ties, as real detectors give
        starts = sorted(rng.sample(range(5, n - 20, 20), 3))
        files.append((scores, [(s, s + rng.randint(2, 12)) for s in starts]))
    rows: list[ScoredRow] = []
    for k, (scores, windows) in enumerate(files):
        rows += scored_rows(scores, windows, f"f{k}", STANDARD)
    for threshold, total, _, _ in sweep(rows)[1:]:
        assert total == pytest.approx(brute_force(files, threshold)), threshold


def write_nab(root: Path, n: int = 1500, spike: int = 1200) -> None:
    """A one-file NAB layout: a noisy level with one spike, labelled with a 40-row window."""
    rng = random.Random(11)
    t = stamps(n)
    (root / "data" / "synthetic").mkdir(parents=True)
    (root / "labels").mkdir()
    lines = ["timestamp,value"]
    for i in range(n):
        value = rng.gauss(50.0, 2.0) + (40.0 if i == spike else 0.0)
        lines.append(f"{t[i]},{value:.3f}")
    (root / "data" / "synthetic" / "spike.csv").write_text("\n".join(lines) + "\n")
    window = [[nab_stamp(t[spike - 20]), nab_stamp(t[spike + 20])]]
    (root / "labels" / "combined_windows.json").write_text(
        json.dumps({"synthetic/spike.csv": window}))


def test_runner_scores_a_detector_and_published_results_in_nab_layout(tmp_path: Path) -> None:
    write_nab(tmp_path)
    published = tmp_path / "results" / "oracle" / "synthetic"
    published.mkdir(parents=True)
    lines = ["timestamp,value,anomaly_score"] + [
        f"{t},0,{1.0 if i == 1180 else 0.0}" for i, t in enumerate(stamps(1500))]
    (published / "oracle_spike.csv").write_text("\n".join(lines) + "\n")
    rows = nab.measure(tmp_path, ["GaussianSurprise()", "AdaptiveBaseline()"], ["oracle"],
                       "standard")
    assert rows["oracle"]["score"] == 100.0
    # The spike is caught at row 1200, the middle of the 41-row window 1180-1220.
    expected = 100 * (1 + scaled_sigmoid(-21 / 41) / MAX_TP) / 2
    assert rows["GaussianSurprise()"]["score"] == pytest.approx(expected)
    assert rows["GaussianSurprise()"]["windows_detected"] == 1


def test_runner_fails_with_one_line_on_a_directory_that_is_not_nab(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert nab.main(["--nab", str(tmp_path), "--reproduce"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "combined_windows.json not found" in err
    assert "Traceback" not in err
