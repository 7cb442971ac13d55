"""The retained input topics as an events directory, so any offline tool (a what-if, a backtest)
can replay what the broker holds exactly as it would replay files.

Each topic is read partition by partition and merged by event time with every partition kept in
its own order (as :func:`engine.replay.iter_events` merges files): late records stay late.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from contract.partitioning import partition_for
from engine.replay import FEEDBACK_FILE, INPUT_FILES
from streams.clients import read_records
from streams.topics import input_topics


def _moment(record: dict, previous: float) -> float:
    text = record.get("occurred_at") or record.get("updated_at")
    try:
        return datetime.fromisoformat(text).timestamp() if isinstance(text, str) else previous
    except ValueError:
        return previous


def _merged(paths: Sequence[Path]) -> Iterator[bytes]:
    """Lines of per-partition files merged by event time, each partition kept in its own order
    (as :func:`engine.replay.iter_events` merges files): late records stay late."""

    def lines(index: int, path: Path) -> Iterator[tuple[float, int, int, bytes]]:
        moment = 0.0
        with path.open("rb") as source:
            for number, line in enumerate(source):
                moment = _moment(orjson.loads(line), moment)
                yield moment, index, number, line

    for *_, line in heapq.merge(*(lines(i, p) for i, p in enumerate(paths))):
        yield line


def download_topics(
    settings: Any, target: Path, *, on_record: Callable[[], None] | None = None,
) -> dict[str, int]:
    """Read the retained input topics (and feedback) into ``target`` as an events directory;
    returns records per file. Raises :class:`streams.clients.KafkaUnavailable`."""
    target.mkdir(parents=True, exist_ok=True)
    names = {**INPUT_FILES, "feedback": FEEDBACK_FILE}
    counts: dict[str, int] = {}
    for kind, topic in input_topics(settings).items():
        partitions = settings.input_partitions
        parts = [target / f".{kind}.{p}.part" for p in range(partitions)]
        sinks = [part.open("wb") for part in parts]
        counts[names[kind]] = 0
        try:
            for record in read_records(topic, settings):
                merchant_id = record.get("merchant_id") if isinstance(record, dict) else None
                partition = partition_for(merchant_id, partitions) if isinstance(merchant_id, str) else 0
                sinks[partition].write(orjson.dumps(record) + b"\n")
                counts[names[kind]] += 1
                if on_record is not None:
                    on_record()
        finally:
            for sink in sinks:
                sink.close()
        with (target / names[kind]).open("wb") as out:
            for line in _merged(parts):
                out.write(line)
        for part in parts:
            part.unlink()
    return counts
