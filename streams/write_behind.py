"""State tables whose changelog is written when offsets are committed, not at every change.

A Faust table sends a changelog record for every assignment. The engine rewrites a day bucket
for every event and a merchant's state for every day it closes, so a worker catching up a year
wrote each merchant 365 times and spent a third of its time encoding states nobody would read
(py-spy). :class:`WriteBehindTable` keeps the same in-memory store Faust recovers into, notes
which keys changed (and the input partition of the event that changed them, the partition
Faust itself would have used), and :meth:`~WriteBehindTable.flush` sends each changed key
once, with its latest value (a tombstone if it is gone, nothing if it came and went).

Why it is safe (at-least-once, no warning lost): :class:`FlushBeforeCommit` flushes every
table in Faust's ``on_commit_initiated`` sensor hook. Faust calls it synchronously, right
before it works out which offsets to commit, and then awaits ``producer.flush()`` before it
commits them. So whenever an offset is committed, the changelog already holds the state of
every event before it, exactly as with a write per change; a worker killed between two
commits restarts from the last commit with the state of that moment and reads the events
after it again (their warnings have the same ids). On a rebalance, :func:`flush_on_revoke`
writes everything out before the partitions change hands, so the next owner recovers all of
it and this worker never writes a partition it no longer owns.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

from faust.sensors import Sensor
from faust.streams import current_event

if TYPE_CHECKING:
    import faust

_MISSING = object()


class WriteBehindTable(MutableMapping[Any, Any]):
    """A Faust table (memory store) read and written in memory; changelogged at :meth:`flush`.

    Only assignments and deletions mark a key: a value changed in place must be assigned back
    (the engine always does). A key's partition is the partition of the event that first
    changed it since the last flush, which Faust requires to be the key's own partition."""

    def __init__(self, table: faust.Table) -> None:
        self.table = table
        self.store = table.data  # Faust's store: what the changelog is recovered into
        # key -> (changelog partition, whether the changelog held the key at the last flush)
        self.dirty: dict[Any, tuple[int, bool]] = {}

    def __getitem__(self, key: Any) -> Any:
        return self.store[key]

    def get(self, key: Any, default: Any = None) -> Any:
        return self.store.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self.store

    def __iter__(self) -> Iterator[Any]:
        return iter(self.store)

    def __len__(self) -> int:
        return len(self.store)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._mark(key)
        self.store[key] = value

    def __delitem__(self, key: Any) -> None:
        self._mark(key)
        del self.store[key]

    def _mark(self, key: Any) -> None:
        if key in self.dirty:
            return
        event = current_event()
        if event is None:
            # As Faust's own tables: a change must belong to an event, or no commit covers it.
            raise RuntimeError(f"table {self.table.name}: changed outside stream iteration")
        self.dirty[key] = (event.message.partition, key in self.store)

    def flush(self) -> int:
        """Send each changed key's latest value (or a tombstone) to the changelog; how many."""
        sent = 0
        for key, (partition, was_logged) in self.dirty.items():
            value = self.store.get(key, _MISSING)
            if value is not _MISSING:
                self.table.send_changelog(partition, key, value)
            elif was_logged:
                self.table.send_changelog(partition, key, None, value_serializer="raw")
            else:
                continue  # created and deleted between two flushes: the changelog never had it
            sent += 1
        self.dirty.clear()
        return sent


class FlushBeforeCommit(Sensor):
    """Faust sensor: the tables' pending changes go to the producer before offsets are picked."""

    def __init__(self, tables: list[WriteBehindTable], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tables = tables

    def on_commit_initiated(self, consumer: object) -> Any:
        # Synchronous and before Faust reads its acknowledged offsets (no await in between):
        # the events those offsets cover have all changed the tables already.
        return sum(table.flush() for table in self.tables)


def write_behind(app: faust.App, tables: list[WriteBehindTable]) -> None:
    """Flush ``tables`` before every commit and at every rebalance (see the module's docstring)."""
    app.sensors.add(FlushBeforeCommit(tables))

    @app.on_partitions_revoked.connect
    async def flush_on_revoke(app: faust.App, revoked: set, **kwargs: object) -> None:
        # Faust has waited for in-flight events; nothing changes the tables until reassignment.
        if sum(table.flush() for table in tables):
            await app.producer.flush()
