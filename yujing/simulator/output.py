"""The :class:`Simulation` handle: event iteration, JSON Lines files and Kafka production.

Records are generated lazily, one simulated day at a time, so memory stays flat however long the
window; iterating twice replays the same plan and gives identical records.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from .config import SimulationConfig
from .history import opening_book
from .labels import to_referee
from .scenarios import WorldPlan, plan_world
from .world import MerchantRun, Queued

if TYPE_CHECKING:
    from streams.security import KafkaSecurity

TOPIC_KINDS: tuple[str, ...] = ("transactions", "complaints", "merchants")
FILES: dict[str, str] = {kind: f"{kind}.jsonl" for kind in TOPIC_KINDS}
LABELS_FILE = "labels.jsonl"
REFEREE_LABELS_FILE = "labels.json"  # the pilot's layout, for the referee's score.py
WORLD_FILE = "world.json"  # the world's assumptions (written only for a drawn world)
_ORDER = itemgetter(0, 1, 2, 3)
_LINE = orjson.OPT_APPEND_NEWLINE


class Simulation:
    """A planned simulation; records are produced on demand and always in event-time order."""

    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        self.plan: WorldPlan = plan_world(config)
        self.labels: list[dict[str, Any]] = self.plan.labels()

    def _queued(self) -> Iterator[Queued]:
        runs = [MerchantRun(m, self.plan.calendar, self.config.seed) for m in self.plan.merchants]
        history: list[Queued] = []
        for run in runs:
            opening_book(run)
            history.extend(run.out)
            run.out = []
        history.sort(key=_ORDER)
        yield from history
        del history
        for day in range(self.config.days):
            batch: list[Queued] = []
            for run in runs:
                run.step(day)
                if run.out:
                    batch.extend(run.out)
                    run.out = []
            batch.sort(key=_ORDER)
            yield from batch

    def events(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(topic_kind, record)`` in non-decreasing event time across the three inputs."""
        for item in self._queued():
            yield item[4], item[5]

    def write(self, out_dir: Path) -> dict[str, int]:
        """Write one JSON Lines file per topic, ``labels.jsonl`` and ``labels.json`` (and
        ``world.json`` for a drawn world); returns lines (entries) per file."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        counts = {name: 0 for name in (*FILES.values(), LABELS_FILE)}
        handles = {kind: open(out_dir / name, "wb", buffering=1 << 20) for kind, name in FILES.items()}
        try:
            for kind, record in self.events():
                handles[kind].write(orjson.dumps(record, option=_LINE))
                counts[FILES[kind]] += 1
        finally:
            for handle in handles.values():
                handle.close()
        with open(out_dir / LABELS_FILE, "wb") as handle:
            for label in self.labels:
                handle.write(orjson.dumps(label, option=_LINE))
        counts[LABELS_FILE] = len(self.labels)
        referee = to_referee(self.labels)
        (out_dir / REFEREE_LABELS_FILE).write_bytes(orjson.dumps(referee, option=orjson.OPT_INDENT_2))
        counts[REFEREE_LABELS_FILE] = len(referee)
        if self.config.world is not None:
            (out_dir / WORLD_FILE).write_bytes(self.world_json())
            counts[WORLD_FILE] = 1
        return counts

    def world_json(self) -> bytes:
        """The assumptions this simulation lives in, as indented JSON."""
        return orjson.dumps(self.config.assumptions.model_dump(mode="json"),
                            option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)

    def produce(
        self,
        bootstrap: str,
        topics: dict[str, str],
        progress: bool = True,
        records_per_second: float | None = None,
        security: KafkaSecurity | None = None,
    ) -> dict[str, int]:
        """Send every record to Kafka in event-time order (key = merchant_id, event-time stamps),
        at most ``records_per_second`` when given (a feed arriving at a steady pace).

        Raises :class:`BrokerUnreachable` when no broker answers and
        :class:`streams.clients.SendRefused` when the broker refuses records.
        """
        from streams.clients import (  # files and tests need no Kafka client
            KafkaUnavailable,
            KeyedFeed,
        )
        from streams.security import PLAINTEXT

        missing = [kind for kind in TOPIC_KINDS if kind not in topics]
        if missing:
            raise ValueError(f"no topic name for {', '.join(missing)}")
        try:
            feed = KeyedFeed(bootstrap, client_id="yujing-simulator", security=security or PLAINTEXT)
        except KafkaUnavailable as exc:
            raise BrokerUnreachable(str(exc)) from exc
        counts = dict.fromkeys(TOPIC_KINDS, 0)
        sent, began = 0, time.monotonic()
        try:
            with _DayProgress(self.config.days, enabled=progress) as bar:
                cal = self.plan.calendar
                for day, sec, _, _, kind, record in self._queued():
                    feed.send(topics[kind], record["merchant_id"], orjson.dumps(record), cal.epoch_ms(day, sec))
                    counts[kind] += 1
                    bar.update(day, counts)
                    sent += 1
                    if records_per_second and sent % 200 == 0:
                        ahead = sent / records_per_second - (time.monotonic() - began)
                        if ahead > 0:
                            time.sleep(ahead)
        finally:
            feed.close()
        return counts




class BrokerUnreachable(ConnectionError):
    """No Kafka broker answered at the bootstrap address."""


class _DayProgress:
    """A rich progress bar over simulated days (history counts as day 0), or nothing."""

    def __init__(self, days: int, enabled: bool) -> None:
        self._days = days
        self._enabled = enabled
        self._day = -1
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> _DayProgress:
        if self._enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("[bold]simulating[/] day {task.completed:.0f}/{task.total:.0f}"),
                BarColumn(),
                TextColumn("{task.fields[sent]} records"),
                TimeElapsedColumn(),
            )
            self._progress.__enter__()
            self._task = self._progress.add_task("produce", total=self._days, sent=0)
        return self

    def update(self, day: int, counts: dict[str, int]) -> None:
        if self._progress is None or day <= self._day:
            return
        self._day = day
        self._progress.update(self._task, completed=max(day, 0), sent=sum(counts.values()))

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=self._days)
            self._progress.__exit__(*exc)
