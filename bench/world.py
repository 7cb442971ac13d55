"""The bench's simulated world on disk, and what is timed on files alone.

One world of ``merchants`` over ``days + live_days`` days is simulated and cut by event time:
``history/`` (the first ``days`` days, with the opening card books before them) is what every
throughput run and the catch-up read; ``live/`` (the last ``live_days`` days) is fed at a paced
rate to the caught-up worker for the latency run. Both are contract files that ``yujing
backtest`` reads.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import orjson

from bench.measure import closable_day
from contract.partitioning import partition_for
from contract.records import DeadLetter, decode
from engine.replay import INPUT_FILES, iter_events
from models.calendar import day_start
from streams.baselines import Outgoing
from streams.topics import input_topics
from yujing.services.processes import settings_env
from yujing.settings import Settings
from yujing.simulator import SimulationConfig, simulate


@dataclass(frozen=True)
class World:
    root: Path
    merchant_ids: list[str]
    history_events: int
    live_events: int
    cut: datetime  # the first moment of the live part

    @property
    def history(self) -> Path:
        return self.root / "history"

    @property
    def live(self) -> Path:
        return self.root / "live"


def make_world(root: Path, *, merchants: int, days: int, live_days: int, seed: int) -> World:
    config = SimulationConfig(merchants=merchants, days=days + live_days, seed=seed)
    simulate(config).write(root / "simulated")
    cut = day_start(config.start.toordinal() + days)
    counts = split_files(root / "simulated", cut, root / "history", root / "live")
    ids = [orjson.loads(line)["merchant_id"] for line in (root / "simulated" / "labels.jsonl").read_bytes().splitlines()
           if line.strip()]
    return World(root, sorted(set(ids)), counts[0], counts[1], cut)


def split_files(source: Path, cut: datetime, before: Path, after: Path) -> tuple[int, int]:
    """Each input file of ``source`` into ``before`` (records earlier than ``cut``) and ``after``,
    line for line, in the file's own order; returns the records on each side."""
    before.mkdir(parents=True, exist_ok=True)
    after.mkdir(parents=True, exist_ok=True)
    counts = [0, 0]
    for kind, name in INPUT_FILES.items():
        if not (source / name).exists():
            continue
        with (before / name).open("wb") as early, (after / name).open("wb") as late:
            for line in (source / name).read_bytes().splitlines():
                record = decode(kind, line)
                side = 1 if not isinstance(record, DeadLetter) and record.occurred_at >= cut else 0
                (late if side else early).write(line + b"\n")
                counts[side] += 1
    return counts[0], counts[1]


def raw_decode(events_dir: Path) -> tuple[int, float]:
    """(records, seconds) of reading the input files of ``events_dir`` and ``orjson.loads`` of
    every line: the floor any replay of them stands on."""
    began = time.perf_counter()
    records = 0
    for name in INPUT_FILES.values():
        path = events_dir / name
        if path.exists():
            for line in path.read_bytes().splitlines():
                orjson.loads(line)
                records += 1
    return records, time.perf_counter() - began


def timed_backtest(events_dir: Path, settings: Settings, work: Path) -> float:
    """Wall seconds of ``yujing backtest --events events_dir`` in its own process, from start to
    exit (so whatever makes the replay faster is measured, interpreter start included)."""
    env = {**os.environ, **settings_env(settings)}
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "yujing.cli.app", "backtest", "--events", str(events_dir),
                           "--out", str(work / "backtest-warnings.jsonl")],
                          env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"yujing backtest failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    return seconds


def history_marks(events_dir: Path, partitions: int, lateness: timedelta) -> dict[int, int]:
    """The last closable day of each partition once ``events_dir``'s transactions are read."""
    marks: dict[int, int] = {}
    for line in (events_dir / INPUT_FILES["transactions"]).read_bytes().splitlines():
        record = orjson.loads(line)
        partition = partition_for(record["merchant_id"], partitions)
        day = closable_day(datetime.fromisoformat(record["occurred_at"]), lateness)
        marks[partition] = max(marks.get(partition, day), day)
    return marks


@dataclass(frozen=True)
class LiveFeed:
    """The live part, encoded as the publishers send it, and its transactions' (index in
    ``records``, partition, event time) for :func:`bench.measure.closing_moments`."""

    records: list[Outgoing]
    transactions: list[tuple[int, int, datetime]]


def live_feed(events_dir: Path, settings: Settings) -> LiveFeed:
    topics = input_topics(settings)
    records: list[Outgoing] = []
    transactions: list[tuple[int, int, datetime]] = []
    for kind, record in iter_events(events_dir):
        if isinstance(record, DeadLetter):
            continue
        if kind == "transactions":
            transactions.append((len(records), partition_for(record.merchant_id, settings.input_partitions),
                                 record.occurred_at))
        records.append(Outgoing(topics[kind], record.merchant_id, orjson.dumps(record.model_dump(mode="json")),
                                int(record.occurred_at.timestamp() * 1000)))
    return LiveFeed(records, transactions)
