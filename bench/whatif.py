"""What a what-if costs on a district's 90 days, against a single plain backtest in the same run.

    .venv/bin/python bench/whatif.py [--merchants 2000] [--days 180] [--window 90] [--seed 7]

Simulates ``--merchants`` merchants (a district the size of Fengxian's prepaid-card trade) for
``--days`` days. The simulator also writes each trading merchant's opening card book (up to two
years of outstanding card sales before day 0), so every replay starts there and scores every
merchant-day from a merchant's first record: the window's 90 days are the last ``--window`` days,
chosen with ``since`` as ``yujing backtest --since`` does, and the replay before them is warm-up.

Measured, in this order (the what-ifs first, so their replay processes fork from a small parent):

* the first what-if on this history: :func:`engine.whatif_replay.compare` of the built-in set against a
  candidate with lower cut-offs, with the labels, then its HTML report. It replays the history
  before the window once and keeps the checkpoint (in a temporary cache), then the window twice,
  side by side in two processes;
* the next what-if, as an operator tries another candidate (higher cut-offs): from the checkpoint
  and the recording of the first one's current side, so the candidate is judged on that recording
  (:mod:`engine.rejudge`) instead of replaying the window;
* one plain :func:`engine.replay.run_backtest` of the same files, in this process: the baseline.

Reports wall seconds, each what-if's ratio to the plain backtest, records per second and the peak
resident memory (``resource.getrusage``: this process, and the largest replay process).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson  # noqa: E402

from alerts.threshold_history import ThresholdSchedule  # noqa: E402
from alerts.thresholds import ThresholdSet, builtin_thresholds  # noqa: E402
from engine.checkpoints import CheckpointCache  # noqa: E402
from engine.replay import BacktestResult, run_backtest  # noqa: E402
from engine.whatif import WhatIf  # noqa: E402
from engine.whatif_replay import compare, count_events  # noqa: E402
from yujing.simulator import SimulationConfig, simulate  # noqa: E402
from yujing.whatif_report import render_html  # noqa: E402

PARTITIONS = 6
LATENESS = timedelta(hours=6)
# Plausible tunings: yellow and orange a little earlier; then, trying the other way, later.
LOWER_CUTOFFS = {"blue": 0.3, "yellow": 0.4, "orange": 0.55, "red": 0.8}
HIGHER_CUTOFFS = {"blue": 0.4, "yellow": 0.5, "orange": 0.65, "red": 0.85}


def candidate(cutoffs: dict[str, float]) -> ThresholdSet:
    data = builtin_thresholds().model_dump()
    data["levels"]["cutoffs"] = dict(cutoffs)
    return ThresholdSet.from_mapping(data)


def peak_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux: kilobytes


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--merchants", type=int, default=2000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--window", type=int, default=90, help="the last N days are the what-if's window")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work-dir", type=Path, help="keep the simulated files here (default: a temporary dir)")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    config = SimulationConfig(merchants=args.merchants, days=args.days, seed=args.seed)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="yujing-bench-whatif-"))
    events = work / "events"
    began = time.perf_counter()
    simulate(config).write(events)
    seconds = {"simulate": time.perf_counter() - began}
    records = count_events(events)
    since = config.start + timedelta(days=args.days - args.window)
    until = config.start + timedelta(days=args.days - 1)

    cache = CheckpointCache(work / "cache")
    options = {"partitions": PARTITIONS, "allowed_lateness": LATENESS, "since": since, "until": until,
               "labels": events / "labels.jsonl", "current_label": "builtin", "cache": cache}
    began = time.perf_counter()
    whatif = compare(events, builtin_thresholds(), candidate(LOWER_CUTOFFS), candidate_label="lower cut-offs",
                     **options)  # type: ignore[arg-type]
    seconds["compare"] = time.perf_counter() - began
    began = time.perf_counter()
    html = render_html(whatif)
    seconds["report"] = time.perf_counter() - began
    (work / "whatif.html").write_text(html, encoding="utf-8")

    began = time.perf_counter()
    following = compare(events, builtin_thresholds(), candidate(HIGHER_CUTOFFS), candidate_label="higher cut-offs",
                        **options)  # type: ignore[arg-type]
    render_html(following)
    seconds["next"] = time.perf_counter() - began
    assert following.warm_up is not None and following.warm_up.cached
    assert following.method == "judged on the recording", following.method

    began = time.perf_counter()
    plain = run_backtest(events, partitions=PARTITIONS, allowed_lateness=LATENESS,
                         schedule=ThresholdSchedule(builtin_thresholds()))
    seconds["plain"] = time.perf_counter() - began
    figures = {"merchants": args.merchants, "days": args.days, "window": f"{since} to {until}", "records": records,
               **measured(seconds, whatif, following, plain, cache), "report_bytes": len(html.encode())}
    sys.stdout.write(summary(figures))
    if args.work_dir is None:
        shutil.rmtree(work, ignore_errors=True)


def measured(seconds: dict[str, float], whatif: WhatIf, following: WhatIf, plain: BacktestResult,
             cache: CheckpointCache) -> dict[str, object]:
    """The figures of the two what-ifs and the plain backtest (``seconds``: wall time of each step)."""
    assert whatif.warm_up is not None and following.warm_up is not None
    first, single = seconds["compare"] + seconds["report"], seconds["plain"]
    return {
        "records_before_window": whatif.warm_up.events,
        "simulate_seconds": round(seconds["simulate"], 1),
        "plain_backtest_seconds": round(single, 1),
        "first_whatif_seconds": round(first, 1),
        "first_whatif_warm_up_seconds": round(whatif.warm_up.seconds, 1),
        "next_whatif_seconds": round(seconds["next"], 1),
        "next_whatif_checkpoint_load_seconds": round(following.warm_up.seconds, 1),
        "window_replay_seconds": [round(whatif.current.seconds, 1), round(whatif.candidate.seconds, 1)],
        "next_whatif_judging_seconds": round(following.candidate.seconds, 1),
        "report_seconds": round(seconds["report"], 1),
        "ratio_first": round(first / single, 2),
        "ratio_next": round(seconds["next"] / single, 2),
        "plain_records_per_second": round(plain.events / single),
        "peak_rss_mb_this_process": round(peak_mb(resource.RUSAGE_SELF)),
        "peak_rss_mb_largest_replay_process": round(peak_mb(resource.RUSAGE_CHILDREN)),
        "checkpoint_mb": round(sum(p.stat().st_size for p in cache.root.rglob("checkpoint.pickle")) / 1e6, 1),
        "recording_mb": round(sum(p.stat().st_size for p in cache.root.rglob("recording-*.pickle")) / 1e6, 1),
        "warnings_in_window": [len(whatif.current.warnings), len(whatif.candidate.warnings),
                               len(following.candidate.warnings)],
        "flagged": [len(whatif.current.flagged), len(whatif.candidate.flagged), len(following.candidate.flagged)],
        "newly_flagged": [len(whatif.newly_flagged), len(following.newly_flagged)],
        "no_longer_flagged": [len(whatif.no_longer_flagged), len(following.no_longer_flagged)],
    }


def summary(f: dict) -> str:
    """The figures in words, then as one JSON line."""
    return (
        f"{f['records']:,} records ({f['merchants']:,} merchants, {f['days']} days and their opening card books); "
        f"window {f['window']}, {f['records_before_window']:,} records before it\n"
        f"plain backtest (baseline): {f['plain_backtest_seconds']:.1f} s ({f['plain_records_per_second']:,} "
        f"records/s)\n"
        f"first what-if: {f['first_whatif_seconds']:.1f} s (history before the window "
        f"{f['first_whatif_warm_up_seconds']:.1f} s, kept; HTML report {f['report_seconds']:.1f} s); ratio to the "
        f"baseline {f['ratio_first']:.2f}\n"
        f"next what-if (another candidate, from the checkpoint and the recording): {f['next_whatif_seconds']:.1f} s "
        f"(loading the checkpoint {f['next_whatif_checkpoint_load_seconds']:.1f} s, judging the window "
        f"{f['next_whatif_judging_seconds']:.1f} s; the first what-if's window replays took "
        f"{f['window_replay_seconds'][0]:.1f} s and {f['window_replay_seconds'][1]:.1f} s side by side); ratio to "
        f"the baseline {f['ratio_next']:.2f}\n"
        f"peak memory: {f['peak_rss_mb_this_process']:,} MB this process, "
        f"{f['peak_rss_mb_largest_replay_process']:,} MB the largest replay process; checkpoint "
        f"{f['checkpoint_mb']} MB, recording {f['recording_mb']} MB\n"
        f"{orjson.dumps(f).decode()}\n"
    )


if __name__ == "__main__":
    main()
