"""What a flood of bad records costs the good ones: the throughput of good events through the
decode -> score path, with and without bad records mixed in, measured in the same run.

The path is the worker's without Kafka: each line is decoded by the strict decoder the worker
uses (``contract.records.decode``, through the replay's file reader), good records go through
the partition engine and the chain stage (``run_backtest``), and each refused record is
serialised as the dead-letter record the worker would send. The same good events run clean and
flooded, alternately, ``repeat`` times; the best of each is compared (other load on the machine
only ever slows a run down). Speed depends on the machine: the ratio is the figure.
"""

from __future__ import annotations

import random
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from contract.faults import IN_FILES, spoil
from contract.records import dumps
from engine.replay import run_backtest
from yujing.simulator import SimulationConfig, simulate

PARTITIONS = 4
LATENESS = timedelta(hours=6)


# The good transaction each flood record spoils (contract.faults: the classes a file can hold, in
# turn); its merchant is not in the simulated world, so nothing would change if one got through.
_SPOILED = {"event_id": "flood", "type": "card_sale", "merchant_id": "m-flood", "store_id": "s", "card_id": "c",
            "consumer_id": "u", "amount": 100.0, "occurred_at": "2025-09-02T10:00:00+08:00"}


def bad_record(n: int, rng: random.Random) -> bytes:
    """The ``n``-th refused record of the flood (a line of ``transactions.jsonl``), its fault
    class rotating through those a file can hold."""
    value = spoil(_SPOILED, IN_FILES[n % len(IN_FILES)], rng, serial=n).value
    assert value is not None  # file-borne classes always have a value
    return value


def write_flooded(events_dir: Path, out: Path, bad: int, seed: int = 16) -> None:
    """``events_dir``'s files with ``bad`` refused records spread evenly through the transactions."""
    out.mkdir(parents=True, exist_ok=True)
    for path in events_dir.glob("*.jsonl"):
        if path.name != "transactions.jsonl":
            shutil.copy(path, out / path.name)
    lines = (events_dir / "transactions.jsonl").read_bytes().splitlines()
    rng = random.Random(seed)
    every = max(len(lines) / max(bad, 1), 1e-9)
    with (out / "transactions.jsonl").open("wb") as sink:
        written = 0
        for i, line in enumerate(lines):
            while written < bad and written * every <= i:
                sink.write(bad_record(written, rng) + b"\n")
                written += 1
            sink.write(line + b"\n")
        while written < bad:
            sink.write(bad_record(written, rng) + b"\n")
            written += 1


@dataclass
class FloodResult:
    good_events: int
    bad_records: int
    clean_seconds: float
    flooded_seconds: float
    runs: int
    reasons: dict[str, int] = field(default_factory=dict)  # dead-letter classes of the flood

    @property
    def clean_rate(self) -> float:
        return self.good_events / self.clean_seconds

    @property
    def flooded_rate(self) -> float:
        return self.good_events / self.flooded_seconds

    @property
    def ratio(self) -> float:
        """Good-event throughput flooded / clean (issue 16 asks for >= 0.8)."""
        return self.flooded_rate / self.clean_rate


def _timed_pass(events_dir: Path) -> tuple[float, int, Counter[str]]:
    began = time.perf_counter()
    result = run_backtest(events_dir, partitions=PARTITIONS, allowed_lateness=LATENESS)
    for letter in result.deadletters:
        dumps(letter)  # what the worker sends to the dead-letter topic for each
    seconds = time.perf_counter() - began
    return seconds, result.events - len(result.deadletters), Counter(d.reason for d in result.deadletters)


def measure_flood(work: Path, *, merchants: int = 40, days: int = 365, bad: int = 100_000, repeat: int = 2,
                  seed: int = 16, say: Callable[[str], None] | None = None) -> FloodResult:
    """Simulate the good events into ``work``, write the flooded copy, time both ``repeat`` times."""
    notify = say or (lambda _: None)
    clean_dir, flooded_dir = work / "clean", work / "flooded"
    simulate(SimulationConfig(merchants=merchants, days=days, seed=seed)).write(clean_dir)
    write_flooded(clean_dir, flooded_dir, bad, seed)
    clean: list[float] = []
    flooded: list[float] = []
    good = 0
    reasons: Counter[str] = Counter()
    for run in range(1, repeat + 1):
        seconds, good, _ = _timed_pass(clean_dir)
        clean.append(seconds)
        seconds, flooded_good, reasons = _timed_pass(flooded_dir)
        flooded.append(seconds)
        if flooded_good != good:
            raise AssertionError(f"the flood changed the good events: {flooded_good} vs {good}")
        notify(f"flood run {run}/{repeat}: clean {clean[-1]:.1f} s, flooded {flooded[-1]:.1f} s")
    return FloodResult(good_events=good, bad_records=sum(reasons.values()), clean_seconds=min(clean),
                       flooded_seconds=min(flooded), runs=repeat, reasons=dict(sorted(reasons.items())))
