"""The Kafka side of ``yujing bench``: the baselines the live worker is measured against, the paced
feed of the latency run, and the reads of what a run left on the broker.

Three baselines read the same pre-published input topics, each in its own process and consumer
group, timed in-process from the first record to the ``count``-th:

* ``client``: a raw aiokafka consumer, ``getmany`` + ``orjson.loads`` of every value (the client
  library's limit on this machine);
* ``bare``: a Faust app whose one agent only counts the events of the worker's subscription (the
  framework's ceiling);
* ``naive``: a Faust pipeline as a newcomer writes it: decode with orjson, add the amount to a
  per-merchant running total in a changelogged Table, one Table write per event.

Run one as ``python -m streams.baselines bare --bootstrap HOST:PORT --group G --topics a,b
--partitions 4 --count N --out result.json``; it writes ``{"events", "first", "last"}`` (wall-clock
seconds) to ``--out`` when the ``count``-th record is read and keeps running until stopped
(SIGTERM), so a Faust app leaves its group as the worker does.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
from kafka import KafkaConsumer, TopicPartition

from contract.partitioning import partition_for
from streams.clients import connecting, producer

if TYPE_CHECKING:
    import faust

    from streams.config import KafkaSettings

BASELINES = ("client", "bare", "naive")
NAIVE_TABLE = "naive-totals"


@dataclass(frozen=True)
class Stopwatch:
    """Records read and the wall-clock seconds of the first and the last of them.

    >>> Stopwatch(events=101, first=10.0, last=12.0).rate
    50.0
    """

    events: int
    first: float
    last: float

    @property
    def rate(self) -> float:
        """Events per second from the first record to the last (the first one starts the clock)."""
        return (self.events - 1) / max(self.last - self.first, 1e-9)

    def write(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(asdict(self)))
        tmp.replace(path)  # whole or absent: the bench polls for it

    @classmethod
    def read(cls, path: Path) -> Stopwatch:
        return cls(**orjson.loads(path.read_bytes()))


class _Counter:
    """Counts events; at the ``count``-th writes the :class:`Stopwatch` to ``out`` (once)."""

    def __init__(self, count: int, out: Path) -> None:
        self.count, self.out = count, out
        self.seen = 0
        self.first = 0.0

    def tick(self, n: int = 1) -> None:
        if self.first == 0.0:
            self.first = time.time()
        before, self.seen = self.seen, self.seen + n
        if before < self.count <= self.seen:
            Stopwatch(self.count, self.first, time.time()).write(self.out)


# -- the baselines ----------------------------------------------------------------------------

async def _drain_raw(bootstrap: str, group: str, topics: Sequence[str], counter: _Counter) -> None:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        while counter.seen < counter.count:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for records in batches.values():
                if records:
                    counter.tick(0)  # the clock starts when the first batch is in hand
                for record in records:
                    orjson.loads(record.value)
                counter.tick(len(records))
    finally:
        await consumer.stop()


def _faust_app(bootstrap: str, group: str, partitions: int) -> faust.App:
    """A Faust app set up as the worker's (streams.app.create_pipeline): in-memory tables with
    changelogs, at-least-once, commits every 10,000 events (the worker's default), the same fetch
    size, no web server."""
    import faust

    from streams.app import FETCH_BYTES_PER_PARTITION

    return faust.App(group, broker=f"kafka://{bootstrap}", store="memory://", processing_guarantee="at_least_once",
                     topic_partitions=partitions, topic_replication_factor=1, table_standby_replicas=0,
                     web_enabled=False, broker_commit_every=10_000, consumer_max_fetch_size=FETCH_BYTES_PER_PARTITION,
                     stream_wait_empty=True)


def bare_app(bootstrap: str, group: str, topics: Sequence[str], partitions: int, counter: _Counter) -> faust.App:
    app = _faust_app(bootstrap, group, partitions)
    source = app.topic(*topics, key_serializer="raw", value_serializer="raw")

    # concurrency=1 and stream.events(), as the worker's scoring agent reads.
    @app.agent(source, concurrency=1)
    async def count_events(stream: faust.StreamT) -> None:
        async for _ in stream.events():
            counter.tick()

    return app


def naive_app(bootstrap: str, group: str, topics: Sequence[str], partitions: int, counter: _Counter) -> faust.App:
    app = _faust_app(bootstrap, group, partitions)
    source = app.topic(*topics, key_serializer="raw", value_serializer="raw")
    totals = app.Table(NAIVE_TABLE, default=float, partitions=partitions)

    @app.agent(source, concurrency=1)
    async def add_amounts(stream: faust.StreamT) -> None:
        async for event in stream.events():
            record = orjson.loads(event.value)
            totals[record["merchant_id"]] += float(record.get("amount") or 0.0)
            counter.tick()

    return app


def faust_topics(group: str, baseline: str) -> list[str]:
    """The topics a Faust baseline would declare itself, made before it starts (as the worker's
    are: streams.topics.worker_topics): its assignor topic and, for ``naive``, its changelog."""
    made = [f"{group}-__assignor-__leader"]
    return [*made, f"{group}-{NAIVE_TABLE}-changelog"] if baseline == "naive" else made


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m streams.baselines")
    parser.add_argument("baseline", choices=BASELINES)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--topics", required=True, help="comma-separated")
    parser.add_argument("--partitions", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    topics = args.topics.split(",")
    counter = _Counter(args.count, args.out)
    if args.baseline == "client":
        asyncio.run(_drain_raw(args.bootstrap, args.group, topics, counter))
        return
    from streams.app import run_worker

    build = bare_app if args.baseline == "bare" else naive_app
    run_worker(build(args.bootstrap, args.group, topics, args.partitions, counter), "warning")


# -- the paced feed ---------------------------------------------------------------------------

def send_offsets(count: int, rate: float) -> list[float]:
    """Seconds after the start at which each of ``count`` records is due at ``rate`` a second.

    >>> send_offsets(4, 2.0)
    [0.0, 0.5, 1.0, 1.5]
    """
    return [i / rate for i in range(count)]


class Outgoing(NamedTuple):
    """A record ready to send: its topic, merchant (the key), encoded value and event time (ms)."""

    topic: str
    merchant_id: str
    value: bytes
    timestamp_ms: int


def publish_paced(records: Sequence[Outgoing], settings: KafkaSettings, rate: float,
                  on_sent: Callable[[int, float], None] | None = None) -> float:
    """Send ``records`` at ``rate`` a second on the schedule of :func:`send_offsets`, each to its
    merchant's partition with its event time as the record timestamp; ``on_sent(i, wall)`` hears
    the wall-clock second each was handed to the producer. Returns the seconds it took."""
    sink = producer(settings)  # linger 20 ms: what a feeding platform's client would batch
    counts: dict[str, int] = {}
    began = time.monotonic()
    wall_offset = time.time() - began
    try:
        for i, (due, record) in enumerate(zip(send_offsets(len(records), rate), records, strict=True)):
            wait = began + due - time.monotonic()
            if wait > 0.002:
                time.sleep(wait)
            if record.topic not in counts:
                counts[record.topic] = len(sink.partitions_for(record.topic))
            sent = time.monotonic()
            sink.send(record.topic, key=record.merchant_id.encode(), value=record.value,
                      timestamp_ms=record.timestamp_ms,
                      partition=partition_for(record.merchant_id, counts[record.topic]))
            if on_sent is not None:
                on_sent(i, sent + wall_offset)
        sink.flush()
    finally:
        sink.close()
    return time.monotonic() - began


# -- what a run left on the broker --------------------------------------------------------------

class Timestamped(NamedTuple):
    partition: int
    timestamp: float  # the record's Kafka timestamp, seconds
    key: bytes | None
    value: bytes | None


class TopicReader:
    """Reads topics without a consumer group: first and last records, counts, the latest value
    of each key, records since a moment, and the bytes each topic holds on the broker."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        with connecting(settings.bootstrap, settings.kafka_security, f"no Kafka broker at {settings.bootstrap}"):
            self.consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False,
                                          max_partition_fetch_bytes=8 * 1024 * 1024,
                                          **settings.kafka_security.client_options())

    def close(self) -> None:
        self.consumer.close()

    def partitions(self, topics: Iterable[str]) -> list[TopicPartition]:
        found = []
        for topic in topics:
            ids = self.consumer.partitions_for_topic(topic) or set()
            found.extend(TopicPartition(topic, p) for p in sorted(ids))
        return found

    def count(self, topics: Iterable[str]) -> int:
        """Records ever written to ``topics`` (the sum of their end offsets)."""
        parts = self.partitions(topics)
        return sum(self.consumer.end_offsets(parts).values()) if parts else 0

    def _read(self, starts: dict[TopicPartition, int], ends: dict[TopicPartition, int]) -> list[tuple[TopicPartition, Any]]:
        """Every record from ``starts`` up to (not including) ``ends``, per partition."""
        todo = {tp: end for tp, end in ends.items() if starts.get(tp, end) < end}
        out: list[tuple[TopicPartition, Any]] = []
        if not todo:
            return out
        self.consumer.assign(list(todo))
        for tp in todo:
            self.consumer.seek(tp, starts[tp])
        try:
            while todo:
                for tp, batch in self.consumer.poll(timeout_ms=1000, max_records=2000).items():
                    out.extend((tp, r) for r in batch if tp in todo and r.offset < todo[tp])
                done = [tp for tp in todo if self.consumer.position(tp) >= todo[tp]]
                for tp in done:
                    del todo[tp]
                if done and todo:
                    self.consumer.assign(list(todo))  # nothing past a finished partition's end is fetched
        finally:
            self.consumer.unsubscribe()  # the next read starts from a clean assignment
        return out

    def edges(self, topics: Iterable[str]) -> tuple[float, float] | None:
        """(earliest, latest) record timestamp, seconds, over ``topics`` (their first and last
        records); None when they are empty."""
        parts = self.partitions(topics)
        if not parts:
            return None
        begins, ends = self.consumer.beginning_offsets(parts), self.consumer.end_offsets(parts)
        firsts = self._read(begins, {tp: min(begins[tp] + 1, ends[tp]) for tp in parts})
        lasts = self._read({tp: max(ends[tp] - 1, begins[tp]) for tp in parts}, ends)
        if not firsts:
            return None
        return min(r.timestamp for _, r in firsts) / 1000, max(r.timestamp for _, r in lasts) / 1000

    def tail(self, topics: Iterable[str]) -> list[Timestamped]:
        """The last record of each partition of ``topics`` that has one."""
        parts = self.partitions(topics)
        ends = self.consumer.end_offsets(parts) if parts else {}
        return [Timestamped(tp.partition, r.timestamp / 1000, r.key, r.value)
                for tp, r in self._read({tp: max(end - 1, 0) for tp, end in ends.items()}, ends)]

    def since(self, topic: str, moment: float) -> list[Timestamped]:
        """Every record of ``topic`` stamped at or after ``moment`` (seconds)."""
        parts = self.partitions([topic])
        if not parts:
            return []
        found = self.consumer.offsets_for_times({tp: int(moment * 1000) for tp in parts})
        ends = self.consumer.end_offsets(parts)
        starts = {tp: (found[tp].offset if found.get(tp) is not None else ends[tp]) for tp in parts}
        return [Timestamped(tp.partition, r.timestamp / 1000, r.key, r.value) for tp, r in self._read(starts, ends)]

    def latest_sizes(self, topic: str, keys_by_partition: dict[int, set[bytes]], chunk: int = 400,
                     limit: int = 40_000) -> dict[bytes, int]:
        """Bytes (key + value) of the latest record of each expected key of the compacted
        ``topic``, read backwards from the end in chunks until every key of a partition is seen
        (or ``limit`` records of it were read: a key not found by then is left out)."""
        sizes: dict[bytes, int] = {}
        for tp in self.partitions([topic]):
            wanted = set(keys_by_partition.get(tp.partition, set()))
            end = self.consumer.end_offsets([tp])[tp]
            begin = max(self.consumer.beginning_offsets([tp])[tp], end - limit)
            while wanted and end > begin:
                start = max(begin, end - chunk)
                newest: dict[bytes, int] = {}
                for _, r in self._read({tp: start}, {tp: end}):
                    if r.key is not None and r.value is not None:
                        newest[r.key] = len(r.key) + len(r.value)
                for key in wanted & newest.keys():
                    sizes[key] = newest[key]
                wanted -= newest.keys()
                end = start
        return sizes

    def log_bytes(self, topics: Iterable[str]) -> dict[str, int]:
        """Bytes each topic's partitions hold in the broker's log directories (DescribeLogDirs)."""
        from streams.topics import admin_client

        names = list(topics)
        sizes = dict.fromkeys(names, 0)
        with admin_client(self.settings.bootstrap, "yujing-bench", self.settings.kafka_security) as admin:
            for broker in admin.describe_log_dirs(names):
                for log_dir in broker["log_dirs"]:
                    for topic in log_dir.get("topics", []):
                        if topic.get("name") in sizes:
                            sizes[topic["name"]] += sum(p.get("partition_size", 0) for p in topic.get("partitions", []))
        return sizes


class GroupLag(NamedTuple):
    committed: int  # over the inputs and the internal topics
    written: int
    inputs_committed: int
    inputs_written: int

    @property
    def settled(self) -> bool:
        return self.committed >= self.written


class GroupProgress:
    """How far a worker group has read the topics it reads, the inputs and its chain stage's
    internal topics (:class:`GroupLag`): ``streams.clients.group_progress`` with one consumer
    kept between looks and the inputs counted apart."""

    def __init__(self, settings: KafkaSettings) -> None:
        from streams.topics import input_topics, internal_topics

        self.inputs = set(input_topics(settings).values())
        self.names = [*self.inputs, *internal_topics(settings)]
        with connecting(settings.bootstrap, settings.kafka_security, f"no Kafka broker at {settings.bootstrap}"):
            # A consumer of the worker's group that never subscribes only reads the group's commits.
            self.consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap, group_id=settings.app_id,
                                          enable_auto_commit=False, **settings.kafka_security.client_options())
        self.partitions: list[TopicPartition] = []
        self._complete = False

    def __call__(self) -> GroupLag:
        if not self._complete:  # the internal topics appear once the worker has made them
            known = self.consumer.topics()  # a metadata refresh
            found = {t: sorted(self.consumer.partitions_for_topic(t) or ()) if t in known else [] for t in self.names}
            self.partitions = [TopicPartition(t, p) for t, ids in found.items() for p in ids]
            self._complete = all(found.values())
        ends = self.consumer.end_offsets(self.partitions)
        done = {tp: min(self.consumer.committed(tp) or 0, end) for tp, end in ends.items()}
        inputs = [tp for tp in ends if tp.topic in self.inputs]
        return GroupLag(sum(done.values()), sum(ends.values()), sum(done[tp] for tp in inputs),
                        sum(ends[tp] for tp in inputs))

    def close(self) -> None:
        self.consumer.close()


if __name__ == "__main__":
    main()
