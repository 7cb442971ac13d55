"""The retained input topics as an events directory, so any offline tool (a what-if, a backtest)
can replay what the broker holds exactly as it would replay files.

Each topic is read partition by partition and merged by event time with every partition kept in
its own order (as :func:`engine.replay.iter_events` merges files): late records stay late.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from contract.records import DeadLetter, decode, dumps
from engine.replay import FEEDBACK_FILE, INPUT_FILES
from streams.clients import read_messages
from streams.topics import input_topics

DEADLETTER_FILE = "deadletters.jsonl"  # what the worker would have dead-lettered (not replayed)


def _merged(paths: Sequence[Path]) -> Iterator[bytes]:
    """Lines of per-partition files merged by event time, each partition kept in its own order
    (as :func:`engine.replay.iter_events` merges files): late records stay late. Each line is
    ``<event time> <record>``; the time is dropped."""

    def lines(index: int, path: Path) -> Iterator[tuple[float, int, int, bytes]]:
        with path.open("rb") as source:
            for number, line in enumerate(source):
                moment, record = line.split(b" ", 1)
                yield float(moment), index, number, record

    for *_, line in heapq.merge(*(lines(i, p) for i, p in enumerate(paths))):
        yield line


def download_topics(
    settings: Any, target: Path, *, on_record: Callable[[], None] | None = None,
) -> dict[str, int]:
    """Read the retained input topics (and feedback) into ``target`` as an events directory;
    returns records per file. Raises :class:`streams.clients.KafkaUnavailable`.

    Every message is decoded as the worker decodes it, key included: what the worker would
    dead-letter (a key that is not the record's merchant_id, bytes that are not a record) goes to
    ``deadletters.jsonl`` with its class, not into the events files, so a replay of ``target``
    takes in exactly the records the live worker took in."""
    target.mkdir(parents=True, exist_ok=True)
    names = {**INPUT_FILES, "feedback": FEEDBACK_FILE}
    counts: dict[str, int] = {DEADLETTER_FILE: 0}
    with (target / DEADLETTER_FILE).open("wb") as deadletters:
        for kind, topic in input_topics(settings).items():
            parts = [target / f".{kind}.{p}.part" for p in range(settings.input_partitions)]
            counts[names[kind]] = _download_topic(kind, topic, settings, parts, deadletters, counts, on_record)
            with (target / names[kind]).open("wb") as out:
                for line in _merged(parts):
                    out.write(line)
            for part in parts:
                part.unlink()
    return counts


def _download_topic(
    kind: str, topic: str, settings: Any, parts: list[Path], deadletters: BinaryIO,
    counts: dict[str, int], on_record: Callable[[], None] | None,
) -> int:
    """One topic into per-partition files of ``<event time> <record>`` lines; returns records kept."""
    sinks = [part.open("wb") for part in parts]
    kept = 0
    try:
        for message in read_messages(topic, settings):
            record = decode(kind, message.value, source_topic=topic, key=message.key,
                            partition=message.partition, offset=message.offset)
            if isinstance(record, DeadLetter):
                deadletters.write(dumps(record) + b"\n")
                counts[DEADLETTER_FILE] += 1
            else:
                moment = record.occurred_at.timestamp()
                sinks[message.partition].write(f"{moment!r} ".encode() + dumps(record) + b"\n")
                kept += 1
            if on_record is not None:
                on_record()
    finally:
        for sink in sinks:
            sink.close()
    return kept
