"""What a merchant's state weighs in the worker's changelog: pickled, as before, against the
compact codec (``engine/state_codec.py``), and what encoding and decoding it cost.

    .venv/bin/python bench/state_size.py [--merchants 60] [--days 365] [--seed 5] [--repeat 3]

Replays a simulated world through the scoring core (no Kafka) with its state mappings recording
every write, as a Faust table writes its changelog on every set, then reports:

* per merchant, at the end of the replay: bytes pickled with event ids kept whole (the state
  before the codec), pickled as now (64-bit id digests), and encoded; mean, p95 and max;
* the changelog bytes the run wrote, per merchant-day, for the merchants table (Faust's base64
  pickle before, the codec now) and, pickled as they stay, the day buckets and partition clocks;
* encode and decode time per merchant, and pickle's, in microseconds (best of ``--repeat``).
"""

from __future__ import annotations

import argparse
import base64
import gc
import pickle
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson  # noqa: E402

from alerts.chains import ChainDirectory  # noqa: E402
from engine.replay import BacktestResult, Checkpoint, Replay  # noqa: E402
from engine.state_codec import decode_merchant, encode_merchant  # noqa: E402
from models.state import MerchantState, id_digest  # noqa: E402
from yujing.simulator import SimulationConfig, simulate  # noqa: E402

PARTITIONS = 6
LATENESS = timedelta(hours=2)


class Changelog(dict[Any, Any]):
    """A state mapping that counts the bytes a changelogged table would write on each set."""

    def __init__(self, *sizers: Callable[[Any], int]) -> None:
        super().__init__()
        self.sizers = sizers
        self.written = [0] * len(sizers)
        self.writes = 0

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        self.writes += 1
        for i, size in enumerate(self.sizers):
            self.written[i] += size(value)


def faust_pickled(value: Any) -> int:
    return len(base64.b64encode(pickle.dumps(value)))  # Faust's "pickle" codec: base64 of a pickle


def pickled(value: Any) -> int:
    return len(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))


def summary(sizes: list[int]) -> str:
    ordered = sorted(sizes)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"mean {statistics.mean(ordered):8,.0f}   p95 {p95:8,.0f}   max {ordered[-1]:8,.0f} bytes"


def whole_ids(events: Path) -> dict[int, str]:
    """Digest -> event id of every event of the files: the states as they were kept before."""
    ids = {}
    for name, field in (("transactions.jsonl", "event_id"), ("complaints.jsonl", "complaint_id")):
        with (events / name).open("rb") as lines:
            for line in lines:
                event_id = orjson.loads(line)[field]
                ids[id_digest(event_id)] = event_id
    return ids


def best_per_item(work: Callable[[], object], items: int, repeat: int) -> float:
    """Microseconds per item of ``work`` (best of ``repeat``; collector off, as for checkpoints)."""
    times = []
    gc.disable()
    try:
        for _ in range(repeat):
            began = time.perf_counter()
            work()
            times.append(time.perf_counter() - began)
    finally:
        gc.enable()
    return min(times) / items * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--merchants", type=int, default=60)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        events = Path(work)
        simulate(SimulationConfig(merchants=args.merchants, days=args.days, seed=args.seed)).write(events)
        merchants = Changelog(faust_pickled, lambda s: len(encode_merchant(s)))
        buckets, clocks = Changelog(pickled), Changelog(pickled)
        start = Checkpoint(events_dir=events, partitions=PARTITIONS, allowed_lateness=LATENESS, positions={},
                           buckets=buckets, merchants=merchants, clocks=clocks,
                           chains=ChainDirectory(partitions=PARTITIONS), result=BacktestResult(), scheduled=[])
        result = Replay.resume(start).run()
        ids = whole_ids(events)
    states: list[MerchantState] = list(merchants.values())
    before = [pickled(replace(s, recent_ids={ids[d]: day for d, day in s.recent_ids.items()})) for s in states]
    now = [pickled(s) for s in states]
    blobs = [encode_merchant(s) for s in states]
    dumps = [pickle.dumps(s, protocol=pickle.HIGHEST_PROTOCOL) for s in states]
    # Every closed day of a merchant writes its state (the history keeps only the last 180).
    merchant_days = sum(s.last_closed_day - s.first_day + 1 for s in states if s.last_closed_day is not None)
    n, r = len(states), args.repeat
    sys.stdout.write(
        f"{result.events:,} events, {n} merchants, {args.days} days "
        f"(partitions {PARTITIONS}, allowed lateness {LATENESS})\n"
        f"state per merchant at the end\n"
        f"  pickled, event ids whole (before)  {summary(before)}\n"
        f"  pickled, id digests                {summary(now)}\n"
        f"  encoded (engine.state_codec)       {summary([len(b) for b in blobs])}\n"
        f"changelog written by the run ({merchants.writes:,} merchant writes, ~{merchant_days:,} merchant-days)\n"
        f"  merchants, Faust base64 pickle     {merchants.written[0] / max(merchant_days, 1):10,.0f} bytes per merchant-day\n"
        f"  merchants, encoded                 {merchants.written[1] / max(merchant_days, 1):10,.0f} bytes per merchant-day\n"
        f"  day buckets, pickled               {buckets.written[0] / max(result.events, 1):10,.0f} bytes per event "
        f"({buckets.writes:,} writes)\n"
        f"  partition clocks, pickled          {clocks.written[0] / max(clocks.writes, 1):10,.0f} bytes per write "
        f"({clocks.writes:,} writes)\n"
        f"time per merchant (best of {r})\n"
        f"  encode {best_per_item(lambda: [encode_merchant(s) for s in states], n, r):7,.0f} us   "
        f"decode {best_per_item(lambda: [decode_merchant(b) for b in blobs], n, r):7,.0f} us\n"
        f"  pickle {best_per_item(lambda: [pickle.dumps(s) for s in states], n, r):7,.0f} us   "
        f"unpickle {best_per_item(lambda: [pickle.loads(b) for b in dumps], n, r):5,.0f} us\n"
    )


if __name__ == "__main__":
    main()
