"""Our river-API detectors on the Numenta Anomaly Benchmark (NAB v1.1), scored by NAB's rules.

    .venv/bin/python bench/nab.py --nab /tmp/nab [--detector NAME ...] [--profile standard]

``--nab`` is a checkout or extract of github.com/numenta/NAB (only ``data/``,
``labels/combined_windows.json`` and, to reproduce published scores, ``results/`` are read; nothing
of NAB is stored in this repository). Every detector reads each of NAB's 58 series as a stream of
``{"value": v}``, scoring each row before learning it, from a fresh instance per file; its scores
(already 0..1) are NAB's anomaly scores. The scoring (``bench/nab_scoring.py``) picks one threshold
per detector over the whole corpus and normalises null = 0, perfect = 100.

The same scorer is run over NAB's published result files of ``--reproduce`` detectors (by default
the windowed Gaussian, HTM ``numenta`` and ``null``), to show it gives NAB's published figures.
``--files`` limits the corpus to files whose path contains one of the given strings (smoke runs).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console  # noqa: E402
from rich.progress import (  # noqa: E402
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table  # noqa: E402
from river.base import AnomalyDetector  # noqa: E402

from bench.nab_scoring import PROFILES, CorpusScore, score_corpus  # noqa: E402
from models.detectors import (  # noqa: E402
    AdaptiveBaseline,
    GaussianSurprise,
    ScaledHalfSpaceTrees,
)

# NAB's scoreboard (README of numenta/NAB v1.1), standard profile.
PUBLISHED = {"numenta": 70.5, "windowedGaussian": 39.6, "null": 0.0}

# The engine's two detectors as it builds them, then every variant reported in docs/nab.md.
DETECTORS: dict[str, Callable[[], AnomalyDetector]] = {
    "AdaptiveBaseline()": AdaptiveBaseline,
    "ScaledHalfSpaceTrees(seed=7)": lambda: ScaledHalfSpaceTrees(seed=7),
    "AdaptiveBaseline(two_sided=True)": lambda: AdaptiveBaseline(two_sided=True),
    "AdaptiveBaseline(two_sided=True, fading_factor=0.001)":
        lambda: AdaptiveBaseline(two_sided=True, fading_factor=0.001),
    "ScaledHalfSpaceTrees(seed=7, log_amounts=False)":
        lambda: ScaledHalfSpaceTrees(seed=7, log_amounts=False),
    # novelty_window=0: the plain windowed Gaussian (every row scored by its own surprise).
    "GaussianSurprise(novelty_window=0)": lambda: GaussianSurprise(novelty_window=0),
    "GaussianSurprise()": GaussianSurprise,
}


class NabError(Exception):
    """A NAB directory that cannot be read; the message is one line for the user."""


@dataclass(frozen=True)
class Series:
    name: str  # e.g. "realKnownCause/nyc_taxi.csv", as in NAB's labels
    timestamps: list[str]
    values: list[float]


Results = dict[str, tuple[Sequence[str], Sequence[float]]]


def load_corpus(nab: Path, only: Sequence[str] = ()) -> tuple[list[Series], dict]:
    """NAB's series and labelled windows (``labels/combined_windows.json``)."""
    labels = nab / "labels" / "combined_windows.json"
    if not labels.is_file():
        raise NabError(f"{labels} not found: --nab must be a checkout of numenta/NAB")
    windows = json.loads(labels.read_text())
    names = sorted(n for n in windows if not only or any(part in n for part in only))
    if not names:
        raise NabError(f"no file of {labels} matches --files {' '.join(only)}")
    corpus = []
    for name in names:
        path = nab / "data" / name
        if not path.is_file():
            raise NabError(f"{path} not found (named in {labels})")
        timestamps, values = [], []
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                timestamps.append(row["timestamp"])
                values.append(float(row["value"]))
        corpus.append(Series(name, timestamps, values))
    return corpus, {name: windows[name] for name in names}


def run_detector(factory: Callable[[], AnomalyDetector], corpus: Sequence[Series],
                 advance: Callable[[int], None]) -> Results:
    """Each series through a fresh detector: score every row, then learn it."""
    results: Results = {}
    for series in corpus:
        detector = factory()
        scores = []
        for value in series.values:
            x = {"value": value}
            scores.append(min(1.0, max(0.0, float(detector.score_one(x)))))
            detector.learn_one(x)
        results[series.name] = (series.timestamps, scores)
        advance(len(series.values))
    return results


def read_published(nab: Path, detector: str, corpus: Sequence[Series]) -> Results:
    """A published detector's anomaly scores from NAB's ``results/DETECTOR/`` CSV files."""
    results: Results = {}
    for series in corpus:
        folder, file = series.name.split("/")
        path = nab / "results" / detector / folder / f"{detector}_{file}"
        if not path.is_file():
            raise NabError(f"{path} not found: no published results of {detector!r}")
        timestamps, scores = [], []
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                timestamps.append(row["timestamp"])
                scores.append(float(row["anomaly_score"]))
        results[series.name] = (timestamps, scores)
    return results


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("rows"), TimeElapsedColumn(), console=console)


def measure(nab: Path, detectors: Sequence[str], reproduce: Sequence[str], profile: str,
            only: Sequence[str] = (), console: Console | None = None) -> dict[str, dict]:
    """Score the named detectors (ours, then NAB's published ones) on the corpus."""
    console = console or Console(stderr=True)
    corpus, windows = load_corpus(nab, only)
    cost = PROFILES[profile]
    n_rows = sum(len(s.values) for s in corpus)
    rows: dict[str, dict] = {}
    with _progress(console) as progress:
        for name in detectors:
            task = progress.add_task(name, total=n_rows)
            started = time.perf_counter()
            results = run_detector(DETECTORS[name], corpus,
                                   lambda n, t=task: progress.advance(t, n))
            seconds = time.perf_counter() - started
            rows[name] = _row(score_corpus(results, windows, cost), seconds, "ours")
        for name in reproduce:
            results = read_published(nab, name, corpus)
            rows[name] = _row(score_corpus(results, windows, cost), None, "NAB results/")
    return rows


def _row(score: CorpusScore, seconds: float | None, source: str) -> dict:
    return {"score": score.normalized, "threshold": score.threshold, "raw": score.raw,
            "windows_detected": score.true_positives, "windows": score.windows,
            "false_positive_rows": score.false_positives, "seconds": seconds, "source": source}


def render(rows: dict[str, dict], profile: str, console: Console) -> None:
    table = Table(title=f"NAB v1.1, {profile} profile (null 0, perfect 100)")
    for column in ("detector", "score", "published", "threshold", "windows detected",
                   "false-positive rows", "seconds"):
        table.add_column(column, justify="left" if column == "detector" else "right")
    for name, row in rows.items():
        published = PUBLISHED.get(name) if profile == "standard" else None
        table.add_row(name, f"{row['score']:.1f}", "" if published is None else f"{published:.1f}",
                      f"{row['threshold']:.4g}", f"{row['windows_detected']}/{row['windows']}",
                      str(row["false_positive_rows"]),
                      "" if row["seconds"] is None else f"{row['seconds']:.0f}")
    console.print(table)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nab", type=Path, required=True, help="checkout or extract of numenta/NAB")
    parser.add_argument("--detector", action="append", choices=list(DETECTORS),
                        help="detector to run (repeatable; default: all)")
    parser.add_argument("--reproduce", nargs="*", default=list(PUBLISHED),
                        help="published NAB detectors to re-score from results/ (default: %(default)s)")
    parser.add_argument("--profile", choices=list(PROFILES), default="standard")
    parser.add_argument("--files", nargs="*", default=[], help="only files whose path contains one")
    parser.add_argument("--json", type=Path, help="also write the table here as JSON")
    args = parser.parse_args(argv)
    # Piped output gets room for the detector names (rich assumes 80 columns off a terminal).
    console = Console(width=None if sys.stdout.isatty() else 150)
    try:
        rows = measure(args.nab, args.detector or list(DETECTORS), args.reproduce, args.profile,
                       args.files)
    except (NabError, ValueError) as error:
        Console(stderr=True).print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
        return 1
    render(rows, args.profile, console)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
