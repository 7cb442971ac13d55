"""Partition watchdog: a partition with records waiting that this worker has stopped working
through is found, reported and read again from its committed offset.

Why: in one of four CI runs of the two-worker test, after a rebalance the worker that kept an
input partition never got past its committed offset again (2,467 of 7,813 records), with no
error and a healthy broker, and the chain lock-step then held every partition's warnings back.
Faust keeps its own set of partitions to fetch, takes partitions out of it while tables recover
and while a stream's buffer is full, and drops records fetched for a partition that is not in
it at that moment, without seeking back; a partition left out, or with a hole of dropped
records (its commit cannot pass the hole), waits for ever. The watchdog does not need to know
which of these happened: a partition whose committed offset has not moved for ``patience``
seconds while records wait beyond it, and while this worker's streams are not simply busy, is
put back into the fetch set and sought to its committed offset. A partition that crawls counts
as unmoved: CI caught one, after a rebalance, committing one record per faust commit interval
(2.8 s) for minutes with nothing written meanwhile, so fewer than one record per second of
``patience`` is no progress (a healthy worker commits thousands a second). Records read twice are harmless:
the engine ignores a repeated event, the chain stage a repeated notice or heartbeat, and faust
acknowledges an offset once.

``StallWatch`` is the bookkeeping (pure, tested without Kafka); ``PartitionWatchdog`` applies it
to a running faust app, using faust's consumer internals in this one place.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("yujing.worker")


@dataclass
class _Seen:
    committed: int
    since: float


class StallWatch:
    """Which partitions have had records waiting beyond a committed offset that moved fewer
    than ``min_progress`` records (by default one per second of patience) in ``patience``
    seconds.

    >>> watch = StallWatch(patience=60)
    >>> watch.observe("transactions-2", committed=2467, highwater=7813, now=0.0)
    False
    >>> watch.observe("transactions-2", committed=2467, highwater=7813, now=59.0)
    False
    >>> watch.observe("transactions-2", committed=2467, highwater=7813, now=60.0)
    True
    >>> watch.healed("transactions-2", now=60.0)  # the next verdict after another full minute
    >>> watch.observe("transactions-2", committed=2467, highwater=7813, now=100.0)
    False
    >>> watch.observe("transactions-2", committed=2600, highwater=7813, now=130.0)  # it moves
    False
    >>> watch.observe("transactions-2", committed=2620, highwater=7813, now=190.0)  # a crawl
    True
    >>> watch.observe("transactions-2", committed=7813, highwater=7813, now=500.0)  # all read
    False
    """

    def __init__(self, patience: float, min_progress: int | None = None) -> None:
        self.patience = patience
        self.min_progress = max(1, round(patience)) if min_progress is None else min_progress
        self._seen: dict[Hashable, _Seen] = {}
        self._healed: set[Hashable] = set()  # healed, and no progress since

    def observe(self, partition: Hashable, *, committed: int | None, highwater: int | None, now: float) -> bool:
        """Whether ``partition`` is stalled: records wait beyond ``committed`` (the next offset
        to commit) and it has moved fewer than ``min_progress`` records in ``patience`` seconds."""
        if committed is None or highwater is None or committed >= highwater:
            self._seen.pop(partition, None)  # nothing waits (or not known yet): nothing to watch
            self._healed.discard(partition)
            return False
        seen = self._seen.get(partition)
        if seen is None or committed - seen.committed >= self.min_progress or committed < seen.committed:
            self._seen[partition] = _Seen(committed, now)  # real progress (or sought back): a new clock
            if seen is not None and committed > seen.committed:
                self._healed.discard(partition)
            return False
        return now - seen.since >= self.patience

    def healed(self, partition: Hashable, now: float) -> None:
        """A remedy was applied: give it another ``patience`` before the next verdict."""
        if partition in self._seen:
            self._seen[partition].since = now
            self._healed.add(partition)

    def heal_failed(self, partition: Hashable) -> bool:
        """Whether ``partition`` was healed and has not progressed since: a stronger remedy is due.

        >>> watch = StallWatch(patience=10)
        >>> watch.observe("t-0", committed=5, highwater=99, now=0), watch.observe("t-0", committed=5, highwater=99, now=10)
        (False, True)
        >>> watch.heal_failed("t-0")
        False
        >>> watch.healed("t-0", now=10)
        >>> watch.observe("t-0", committed=5, highwater=99, now=20), watch.heal_failed("t-0")
        (True, True)
        >>> watch.observe("t-0", committed=40, highwater=99, now=21), watch.heal_failed("t-0")  # it moved
        (False, False)
        """
        return partition in self._healed

    def keep_only(self, partitions: Iterable[Hashable]) -> None:
        """Forget partitions no longer assigned (and restart none of the others' clocks)."""
        keep = set(partitions)
        for partition in [p for p in self._seen if p not in keep]:
            del self._seen[partition]
        self._healed &= keep

    def reset(self) -> None:
        """A rebalance is under way: every partition is judged afresh afterwards."""
        self._seen.clear()
        self._healed.clear()


def settled(app: Any) -> bool:
    """Whether a faust app is past its last rebalance: assigned and its tables recovered."""
    recovery = getattr(app.tables, "recovery", None)
    completed = getattr(recovery, "completed", None)
    return not app.rebalancing and (completed is None or completed.is_set())


class RepeatSchedule:
    """When to repeat something every ``every`` seconds, and at once after each rebalance
    (a new consumer generation).

    >>> schedule = RepeatSchedule(every=60)
    >>> schedule.due(generation=1, now=0.0)  # the first look
    True
    >>> schedule.due(generation=1, now=30.0)
    False
    >>> schedule.due(generation=2, now=35.0)  # a rebalance: at once
    True
    >>> schedule.due(generation=2, now=94.0), schedule.due(generation=2, now=95.0)
    (False, True)
    """

    def __init__(self, every: float) -> None:
        self.every = every
        self._generation: int | None = None
        self._last: float | None = None

    def due(self, generation: int, now: float) -> bool:
        if generation != self._generation or self._last is None or now - self._last >= self.every:
            self._generation, self._last = generation, now
            return True
        return False


class PartitionWatchdog:
    """Applies ``StallWatch`` to a faust app's assigned partitions of ``kind_by_topic``'s topics.

    ``check()`` runs in the event loop (a faust timer): it skips while the app rebalances or
    recovers tables, and a partition whose streams hold more than faust's own low-water mark of
    buffered events (a busy agent rightly stops fetching) is not judged.
    """

    def __init__(self, app: Any, kind_by_topic: dict[str, str], patience: float, on_stall: Any) -> None:
        self.app = app
        self.kind_by_topic = kind_by_topic
        self.watch = StallWatch(patience)
        self.on_stall = on_stall  # called with the topic kind of each stalled partition

    def _busy(self, topic: str) -> bool:
        # The agents' queues for this topic: above faust's pressure-drop size, faust itself keeps
        # partitions out of the fetch set until they drain (conductor.on_pressure_drop).
        for channel in self.app.topics._topic_name_index.get(topic, ()):  # noqa: SLF001
            queue = channel.queue
            if queue.qsize() > queue.pressure_drop_size:
                return True
        return False

    async def check(self, now: float | None = None) -> list[Any]:
        """Judge every assigned watched partition; heal and return the stalled ones."""
        now = time.monotonic() if now is None else now
        if not settled(self.app):
            self.watch.reset()
            return []
        consumer = self.app.consumer
        assigned = [tp for tp in consumer.assignment() if tp.topic in self.kind_by_topic]
        self.watch.keep_only(assigned)
        committed_offsets = consumer._committed_offset  # noqa: SLF001
        stalled = []
        for tp in sorted(assigned):
            committed = committed_offsets.get(tp)
            if not self.watch.observe(tp, committed=committed, highwater=consumer.highwater(tp), now=now):
                continue
            if self._busy(tp.topic):
                continue
            stalled.append(tp)
            if self.watch.heal_failed(tp):
                await self._rejoin(tp, committed)
                self.watch.reset()
                return stalled
            try:
                await self._heal(tp, committed)
            except Exception:  # e.g. revoked meanwhile: the next check (or the rebalance) decides
                log.exception("partition %s[%s]: could not resume it", tp.topic, tp.partition)
            self.watch.healed(tp, now)
        return stalled

    async def _rejoin(self, tp: Any, committed: int) -> None:
        """Reading the partition again did not help: rejoin the group. The rebalance that follows
        revokes and reassigns every partition, and faust then starts each afresh from its
        committed offset, as a restart of the worker would, without stopping it."""
        log.warning(
            "partition %s[%s] still stalled at committed offset %s after being read again; rejoining "
            "the group (a rebalance) to start every partition afresh", tp.topic, tp.partition, committed,
        )
        self.on_stall(self.kind_by_topic[tp.topic])
        thread = self.app.consumer._thread  # noqa: SLF001
        kafka_consumer = thread._ensure_consumer()  # noqa: SLF001

        async def request_rejoin() -> None:  # in the consumer's own thread and loop
            kafka_consumer._coordinator.request_rejoin()  # noqa: SLF001

        await thread.call_thread(request_rejoin)

    async def _heal(self, tp: Any, committed: int) -> None:
        consumer = self.app.consumer
        read = consumer._read_offset.get(tp)  # noqa: SLF001
        # What faust believed, for the log: in its fetch set, paused, or out for a full buffer.
        state = ("fetching" if tp in consumer._get_active_partitions() else  # noqa: SLF001
                 "paused" if tp in consumer._paused_partitions else  # noqa: SLF001
                 "buffered" if tp in consumer._buffered_partitions else "left out")  # noqa: SLF001
        log.warning(
            "partition %s[%s] stalled: committed offset %s unmoved for %.0f s with %s record(s) waiting "
            "(last read %s, %s); resuming it from the committed offset",
            tp.topic, tp.partition, committed, self.watch.patience, consumer.highwater(tp) - committed, read, state,
        )
        self.on_stall(self.kind_by_topic[tp.topic])
        # As a restart would: forget what was acknowledged beyond the commit (a crawl is faust
        # committing over one-record holes in that list, one hole per commit interval), then
        # read everything from the committed offset again.
        for bookkeeping in (consumer._acked, consumer._acked_index, consumer._gap):  # noqa: SLF001
            bookkeeping.pop(tp, None)
        consumer._buffered_partitions.discard(tp)  # noqa: SLF001
        consumer.resume_partitions({tp})
        await consumer.seek(tp, committed)
