"""The bench's runs on a broker of its own: the baselines, the live worker catching up, two
workers with a rebalance, the paced latency run and the state the worker left in its changelogs.

Every worker run is ``yujing worker`` in its own process with its own app id (so its own consumer
group, changelog and output topics), reading the same pre-published input topics.

A worker run's *span* is read from what it wrote, not from its logs: it starts at the earliest
record of its day-bucket and merchant changelogs (the first event it processed wrote one) and ends
at the latest record of those changelogs and of its merchant-day topic (the last day it scored).
Kafka stamps each record when the worker sends it, so both ends are exact to the millisecond.
A run is over when the group has committed every record of the inputs and of its chain-stage
topics, twice in a row with nothing new written (as ``yujing chaos`` waits).
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.steps import Steps
from chaos.stack import free_port
from contract.partitioning import partition_for
from streams.baselines import GroupLag, GroupProgress, Stopwatch, TopicReader, faust_topics
from streams.clients import publish_files
from streams.topics import (
    TopicSpec,
    chain_notices_topic,
    changelog_topics,
    contract_topics,
    input_topics,
)
from yujing.services.broker import LocalBroker
from yujing.services.lifecycle import spawn_detached
from yujing.services.processes import start_worker, stop_worker
from yujing.settings import Settings

LOOK_SECONDS = 2.0


class BenchError(Exception):
    """A run could not be measured (one line)."""


class BenchStack:
    """A Kafka broker on free ports under ``home`` (never the developer's or the tests'), the
    contract's topics with ``partitions`` partitions, and the settings of each run."""

    def __init__(self, home: Path, partitions: int) -> None:
        self.home = home
        self.broker = LocalBroker(home=home / "kafka", cache_dir=Settings().cache_dir, port=free_port(),
                                  controller_port=free_port())
        self.settings = Settings(bootstrap_servers=self.broker.bootstrap, app_id="bench", home=home / "runs",
                                 input_partitions=partitions, metrics_port=0)

    def start(self) -> None:
        self.broker.start(timeout=120)
        self.broker.ensure_topics(contract_topics(self.settings))

    def stop(self) -> None:
        self.broker.stop()

    def publish(self, events_dir: Path, tick: Callable[[], None]) -> int:
        return sum(publish_files(events_dir, self.settings, on_record=tick).values())

    def run_settings(self, name: str) -> Settings:
        """The shared input topics; the run's own app id, home and output topics."""
        base = self.settings
        topics = base.topics.model_copy(update={
            "warnings": f"bench.{name}.warnings", "deadletter": f"bench.{name}.deadletter",
            "merchant_days": f"bench.{name}.merchant-days"})
        settings = base.model_copy(update={"app_id": f"bench-{name}", "home": base.home / name, "topics": topics})
        self.broker.ensure_topics(contract_topics(settings))
        return settings


def run_baseline(stack: BenchStack, kind: str, count: int, work: Path, timeout: float = 900) -> Stopwatch:
    """One baseline of ``streams.baselines`` in its own process and consumer group, until it has
    read ``count`` records of the inputs."""
    group = f"bench-{kind}-{uuid.uuid4().hex[:6]}"
    partitions = stack.settings.input_partitions
    stack.broker.ensure_topics([TopicSpec(name, 1 if name.endswith("__leader") else partitions,
                                          {} if name.endswith("__leader") else {"cleanup.policy": "compact"})
                                for name in faust_topics(group, kind)])
    out = work / f"{group}.json"
    log = work / "logs" / f"{group}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    process = spawn_detached([sys.executable, "-m", "streams.baselines", kind, "--bootstrap", stack.broker.bootstrap,
                              "--group", group, "--topics", ",".join(input_topics(stack.settings).values()),
                              "--partitions", str(partitions), "--count", str(count), "--out", str(out)], log)
    try:
        deadline = time.monotonic() + timeout
        while not out.exists():
            if process.poll() is not None:
                raise BenchError(f"the {kind} baseline exited with code {process.returncode} (log: {log})")
            if time.monotonic() > deadline:
                raise BenchError(f"the {kind} baseline did not read {count:,} records in {timeout:.0f} s (log: {log})")
            time.sleep(0.2)
        return Stopwatch.read(out)
    finally:
        stop_worker(process, timeout=30)


@dataclass(frozen=True)
class WorkerSpan:
    """What a worker run took: ``events`` input records, from the process start (``spawned``)
    through its first write (``first``) to its last (``last``), wall-clock seconds."""

    events: int
    spawned: float
    first: float
    last: float
    second_joined: float | None = None  # seconds after ``spawned`` (the scale run)

    @property
    def rate(self) -> float:
        return self.events / max(self.last - self.first, 1e-6)

    @property
    def catch_up(self) -> float:
        return self.last - self.spawned


class WorkerRun:
    """``yujing worker`` processes of one app id on the bench's broker."""

    def __init__(self, stack: BenchStack, name: str, work: Path) -> None:
        self.name = name
        self.settings = stack.run_settings(name)
        self.log = work / "logs" / f"worker-{name}.log"
        self.processes: list[subprocess.Popen[bytes]] = []
        self.progress: GroupProgress | None = None

    def start(self) -> float:
        self.processes.append(start_worker(self.settings, self.log))
        return time.time()

    def stop(self) -> None:
        for process in self.processes:
            stop_worker(process, timeout=60)
        if self.progress is not None:
            self.progress.close()

    def changelog(self, table: str) -> str:
        return next(t for t in changelog_topics(self.settings) if t.endswith(f"-yujing-{table}-changelog"))

    def span_topics(self) -> list[str]:
        return [self.changelog("day-buckets"), self.changelog("merchants"), self.settings.topics.merchant_days]

    def wait_settled(self, steps: Steps, label: str, timeout: float,
                     on_look: Callable[[GroupLag], None] | None = None) -> None:
        """Until the group has read everything (see the module's docstring); a bar of its share."""
        began, last_written, calm = time.monotonic(), -1, 0
        with steps.bar(label, total=1.0) as done:
            while calm < 2:
                time.sleep(LOOK_SECONDS)
                for process in self.processes:
                    if process.poll() is not None:
                        raise BenchError(f"worker {self.name} exited with code {process.returncode} (log: {self.log})")
                if time.monotonic() - began > timeout:
                    raise BenchError(f"worker {self.name} did not finish in {timeout:.0f} s (log: {self.log})")
                if self.progress is None:
                    self.progress = GroupProgress(self.settings)
                lag = self.progress()
                done(lag.committed / max(lag.written, 1))
                if on_look is not None:
                    on_look(lag)
                calm = calm + 1 if lag.settled and lag.written == last_written else 0
                last_written = lag.written

    def span(self, events: int, spawned: float, second: float | None = None) -> WorkerSpan:
        reader = TopicReader(self.settings)
        try:
            edges = reader.edges(self.span_topics())
            # The chain-notices topic may begin the span (a partition's first transaction sends a
            # heartbeat at once; the tables reach their changelogs only at commits), not end it:
            # heartbeats are repeated every minute while the worker idles.
            heartbeats = reader.edges([chain_notices_topic(self.settings)])
        finally:
            reader.close()
        if edges is None:
            raise BenchError(f"worker {self.name} wrote nothing (log: {self.log})")
        first = min(edges[0], heartbeats[0]) if heartbeats is not None else edges[0]
        return WorkerSpan(events, spawned, first, edges[1], second)


def catch_up(run: WorkerRun, events: int, steps: Steps, timeout: float) -> WorkerSpan:
    """A fresh worker over the pre-published history; left running (for the latency run)."""
    spawned = run.start()
    run.wait_settled(steps, f"1 worker catching up {events:,} records", timeout)
    return run.span(events, spawned)


def scale_out(run: WorkerRun, events: int, steps: Steps, timeout: float, share: float = 0.5) -> WorkerSpan:
    """One worker, a second started once the group has committed ``share`` of the input records,
    until both are done. The inputs are read well ahead of the scoring (days close through the
    chain stage, behind them), so the group rebalances about a fifth of the way through the
    work, with most of the scoring still ahead."""
    spawned = run.start()
    joined: list[float] = []

    def second_worker(lag: GroupLag) -> None:
        if not joined and lag.inputs_written and lag.inputs_committed >= share * lag.inputs_written:
            joined.append(run.start() - spawned)

    try:
        run.wait_settled(steps, f"2 workers over {events:,} records", timeout, on_look=second_worker)
        return run.span(events, spawned, joined[0] if joined else None)
    finally:
        run.stop()


@dataclass(frozen=True)
class StateSizes:
    """Latest value of each merchant in the merchants table, bytes (key + value); bytes each
    changelog holds; merchant-days scored."""

    per_merchant: dict[str, int]
    changelog_bytes: dict[str, int]
    merchant_days: int
    missing: int  # merchants with no value found near the end of the changelog


def state_sizes(run: WorkerRun, merchant_ids: list[str]) -> StateSizes:
    """Read from the run's changelog topics as the broker holds them (after its catch-up)."""
    reader = TopicReader(run.settings)
    partitions = run.settings.input_partitions
    try:
        merchants = run.changelog("merchants")
        encode = _key_encoding(reader, merchants)
        wanted: dict[int, set[bytes]] = {}
        for merchant in merchant_ids:
            wanted.setdefault(partition_for(merchant, partitions), set()).add(encode(merchant))
        sizes = reader.latest_sizes(merchants, wanted)
        by_key = {encode(m): m for m in merchant_ids}
        logs = reader.log_bytes(changelog_topics(run.settings))
        scored = reader.count([run.settings.topics.merchant_days])
    finally:
        reader.close()
    return StateSizes({by_key[k]: v for k, v in sizes.items()}, logs, scored, len(merchant_ids) - len(sizes))


def _key_encoding(reader: TopicReader, topic: str) -> Callable[[str], bytes]:
    """How Faust wrote the table's keys: JSON strings or raw UTF-8 (as its last records show)."""
    import orjson

    sample = next((r.key for r in reader.tail([topic]) if r.key), b"")
    return (lambda m: orjson.dumps(m)) if sample.startswith(b'"') else (lambda m: m.encode())
