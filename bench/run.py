"""``yujing bench``: one run, every measurement, on a broker of its own.

In order: the world is simulated and cut (``bench.world``); the replay is timed against a raw
decode of the same files; the broker starts and the history is published once; the three
baselines read it (alternating, ``repeat`` rounds, the client's at least three); two workers with a
rebalance read it; a fresh single worker catches up on it, its state is read from its changelogs,
and the live part is fed to it at half its own measured rate. Sections not asked for (``only``)
are skipped with what only they need. Every figure is a ratio against a baseline of the same run,
or a size; ``bench.report`` turns :class:`Measured` into the table.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.latency import LatencyRun, paced_latency
from bench.live import (
    BenchStack,
    StateSizes,
    WorkerRun,
    WorkerSpan,
    catch_up,
    run_baseline,
    scale_out,
    state_sizes,
)
from bench.steps import Steps
from bench.world import World, make_world, raw_decode, timed_backtest
from streams.baselines import Stopwatch

SECTIONS = ("client", "faust", "naive", "worker", "replay", "scale", "latency", "state", "catchup")
# What each section's rows need measured: its own figure and the baselines of its ratios.
NEEDS = {
    "client": {"client"},
    "faust": {"faust", "client"},
    "naive": {"naive", "faust"},
    "worker": {"worker", "faust", "naive"},
    "replay": {"replay"},
    "scale": {"scale", "worker"},
    "latency": {"latency", "worker"},
    "state": {"state", "worker"},
    "catchup": {"worker", "replay"},
}
LOAD_SHARE = 0.5  # the latency run's rate: half the live worker's measured maximum


@dataclass(frozen=True)
class BenchOptions:
    merchants: int = 60
    days: int = 365
    live_days: int = 45  # fed at half load for the latency run, after the catch-up
    partitions: int = 4
    repeat: int = 1
    seed: int = 7
    only: tuple[str, ...] = SECTIONS
    timeout: float = 3600.0  # for any one worker run
    keep: Path | None = None  # keep the run's home (broker data, logs) here

    @classmethod
    def quick(cls, **changes: object) -> BenchOptions:
        """A smoke run's sizes: minutes, not a quarter of an hour."""
        # 16 merchants of seed 7 keep all four partitions trading into the live part, which
        # raises warnings (with fewer, an idle partition holds the chain watermark back).
        return cls(**{"merchants": 16, "days": 45, "live_days": 15, **changes})  # type: ignore[arg-type]

    def measures(self) -> set[str]:
        return set().union(*(NEEDS[s] for s in self.only))


@dataclass
class Measured:
    options: BenchOptions
    history_events: int = 0
    live_events: int = 0
    client: list[Stopwatch] = field(default_factory=list)
    faust: list[Stopwatch] = field(default_factory=list)
    naive: list[Stopwatch] = field(default_factory=list)
    raw_decode: list[float] = field(default_factory=list)  # seconds per pass over the history files
    backtest: list[float] = field(default_factory=list)  # seconds of `yujing backtest` on them
    worker: WorkerSpan | None = None
    scale: WorkerSpan | None = None
    state: StateSizes | None = None
    latency: LatencyRun | None = None
    seconds: float = 0.0


def run_bench(options: BenchOptions, steps: Steps | None = None) -> Measured:
    steps = steps or Steps()
    began = time.monotonic()
    home = Path(tempfile.mkdtemp(prefix="yujing-bench-"))
    measured = Measured(options)
    try:
        _run(options, home, measured, steps)
    finally:
        measured.seconds = time.monotonic() - began
        if options.keep is not None:
            shutil.copytree(home, options.keep, dirs_exist_ok=True)
        shutil.rmtree(home, ignore_errors=True)
    return measured


def _run(options: BenchOptions, home: Path, measured: Measured, steps: Steps) -> None:
    wanted = options.measures()
    steps.say(f"simulating {options.merchants} merchants x {options.days} + {options.live_days} days "
              f"(seed {options.seed})")
    world = make_world(home / "world", merchants=options.merchants, days=options.days,
                       live_days=options.live_days, seed=options.seed)
    measured.history_events, measured.live_events = world.history_events, world.live_events
    stack = BenchStack(home, options.partitions)
    if "replay" in wanted:
        _replay(world, stack, home, measured, steps)
    if not wanted & {"client", "faust", "naive", "worker", "scale", "latency", "state"}:
        return
    steps.say(f"starting a broker of the bench's own at {stack.broker.bootstrap}")
    stack.start()
    try:
        with steps.bar(f"publishing {world.history_events:,} records", total=world.history_events) as done:
            count = [0]

            def tick() -> None:
                count[0] += 1
                if count[0] % 2000 == 0:
                    done(count[0])

            stack.publish(world.history, tick)
        _baselines(stack, world, home, measured, steps, wanted)
        if "scale" in wanted:
            steps.say("two workers, the second joining mid-run")
            measured.scale = scale_out(WorkerRun(stack, "two-workers", home), world.history_events, steps,
                                       options.timeout)
        if "worker" in wanted:
            _single_worker(stack, world, home, measured, steps, wanted)
    finally:
        stack.stop()


def _replay(world: World, stack: BenchStack, home: Path, measured: Measured, steps: Steps) -> None:
    """Raw decode and ``yujing backtest`` of the history, alternating; the best of each counts.
    At least two backtests: the catch-up is judged against the best, and one alone swings with
    whatever else the machine runs at that moment."""
    rounds = max(measured.options.repeat, 2)
    with steps.bar("replay vs raw decode of the same files", total=rounds) as done:
        for round_ in range(rounds):
            for _ in range(3 if round_ == 0 else 1):  # cheap: three to start with
                measured.raw_decode.append(raw_decode(world.history)[1])
            measured.backtest.append(timed_backtest(world.history, stack.settings, home))
            done(round_ + 1)


def _baselines(stack: BenchStack, world: World, home: Path, measured: Measured, steps: Steps,
               wanted: set[str]) -> None:
    kinds = [(k, getattr(measured, name)) for k, name in (("client", "client"), ("bare", "faust"), ("naive", "naive"))
             if name in wanted]
    rounds = measured.options.repeat
    runs = sum((max(rounds, 3) if kind == "client" else rounds) for kind, _ in kinds)
    with steps.bar(f"baselines over {world.history_events:,} records", total=runs) as done:
        finished = 0
        for round_ in range(max(rounds, 3)):
            for kind, results in kinds:
                if round_ < (max(rounds, 3) if kind == "client" else rounds):
                    results.append(run_baseline(stack, kind, world.history_events, home))
                    finished += 1
                    done(finished)


def _single_worker(stack: BenchStack, world: World, home: Path, measured: Measured, steps: Steps,
                   wanted: set[str]) -> None:
    run = WorkerRun(stack, "one-worker", home)
    try:
        steps.say("a fresh worker catching up on the history")
        measured.worker = catch_up(run, world.history_events, steps, measured.options.timeout)
        if "state" in wanted:
            steps.say("reading its state from its changelog topics")
            measured.state = state_sizes(run, world.merchant_ids)
        if "latency" in wanted and world.live_events:
            rate = LOAD_SHARE * measured.worker.rate
            steps.say(f"feeding the live part at {rate:,.0f} records/s (half the worker's measured rate)")
            measured.latency = paced_latency(run, world, rate, steps, measured.options.timeout)
    finally:
        run.stop()
