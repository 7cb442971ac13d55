"""What the worker's observability costs its scoring core, against the bare core in the same run.

    .venv/bin/python bench/worker_observability.py [--merchants 200] [--days 365] [--repeat 3]

Both runs replay the same simulated files through the live scoring core (``run_backtest``: the
worker's :class:`~engine.partition.PartitionEngine` and chain stage, without Kafka):

* baseline: the core alone;
* observed: plus what the worker adds per record and per scored merchant-day, in-process: the
  record counter and the processing-time histogram (``streams.metrics.WorkerMetrics``), and for
  every scored merchant-day the history record (``engine.merchant_days.merchant_day_record``), its JSON and
  the score histogram. The Kafka send of that record is not in it (the broker's cost, measured
  by the end-to-end runs).

Reports records per second of each (best of ``--repeat``), the ratio, and the history records'
mean size. Speed depends on the machine; the ratio is the figure to compare.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from contract.districts import industry_label  # noqa: E402
from engine.merchant_days import merchant_day_record  # noqa: E402
from engine.partition import DayResult  # noqa: E402
from engine.replay import iter_events, run_backtest  # noqa: E402
from streams.metrics import WorkerMetrics  # noqa: E402
from yujing.simulator import SimulationConfig, simulate  # noqa: E402

PARTITIONS = 6
LATENESS = timedelta(hours=6)


def baseline(events: Path) -> float:
    began = time.perf_counter()
    run_backtest(events, partitions=PARTITIONS, allowed_lateness=LATENESS)
    return time.perf_counter() - began


def observed(events: Path, sizes: list[int]) -> float:
    metrics = WorkerMetrics(CollectorRegistry())
    consumed = metrics.consumed.labels(topic="transactions")
    timer: list = []

    def on_event() -> None:
        # the worker's per-record work: count it, and time it (enter/exit of the histogram timer)
        consumed.inc()
        if timer:
            timer.pop().__exit__(None, None, None)
        context = metrics.processing.time()
        context.__enter__()
        timer.append(context)

    def on_day_scored(result: DayResult) -> None:
        record = merchant_day_record(result)
        metrics.risk_score.labels(industry=industry_label(record["industry"])).observe(record["score"])
        sizes.append(len(orjson.dumps(record)))

    began = time.perf_counter()
    run_backtest(events, partitions=PARTITIONS, allowed_lateness=LATENESS, on_event=on_event,
                 on_day_scored=on_day_scored)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--merchants", type=int, default=200)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        events = Path(work)
        simulate(SimulationConfig(merchants=args.merchants, days=args.days, seed=args.seed)).write(events)
        records = sum(1 for _ in iter_events(events))
        bare, full, sizes = [], [], []
        for _ in range(args.repeat):  # interleaved, so drift in the machine's load hits both alike
            bare.append(baseline(events))
            sizes.clear()
            full.append(observed(events, sizes))
    base_rate, observed_rate = records / min(bare), records / min(full)
    sys.stdout.write(
        f"{records:,} records, {len(sizes):,} scored merchant-days ({args.merchants} merchants x {args.days} days)\n"
        f"baseline  (scoring core)         {base_rate:10,.0f} records/s\n"
        f"observed  (+ metrics + history)  {observed_rate:10,.0f} records/s\n"
        f"ratio observed/baseline          {observed_rate / base_rate:10.2f}\n"
        f"history record                   {sum(sizes) / len(sizes):10,.0f} bytes mean "
        f"({sum(sizes) / records:,.0f} bytes per input record)\n"
    )

if __name__ == "__main__":
    main()
