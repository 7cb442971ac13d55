"""Write-behind state tables: each changed key reaches the changelog once per flush, with its
latest value, under the partition of the event that changed it (pure: a Faust app and table
that are never started; the changelog sends are recorded instead of produced). The worker's
end-to-end, restart and kill -9 tests run them on a real broker."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import faust
import pytest
from faust.streams import _current_event
from faust.types import Message

from streams.write_behind import FlushBeforeCommit, WriteBehindTable


@pytest.fixture
def table() -> Iterator[WriteBehindTable]:
    app = faust.App("write-behind-test", broker="kafka://127.0.0.1:1", store="memory://", web_enabled=False)
    wrapped = WriteBehindTable(app.Table("buckets", partitions=4))
    sent: list[tuple[int, Any, Any]] = []
    wrapped.table.send_changelog = lambda partition, key, value, **kw: sent.append((partition, key, value))  # type: ignore[method-assign]
    wrapped.sent = sent  # type: ignore[attr-defined]
    yield wrapped


@contextmanager
def during_event(partition: int) -> Iterator[None]:
    """As Faust does while an agent handles a record of ``partition``."""
    app = faust.App("write-behind-events", broker="kafka://127.0.0.1:1", web_enabled=False)
    message = Message("yujing.transactions", partition, 0, 0.0, 0, {}, b"k", b"v", None)
    event = faust.Event(app, b"k", b"v", {}, message)
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def test_changes_stay_in_memory_until_flushed_then_go_once_with_the_latest_value(table: WriteBehindTable) -> None:
    with during_event(2):
        table["m1|100"] = 1
        table["m1|100"] = 2
        table["m2|100"] = 5
    assert table["m1|100"] == 2 and len(table) == 2 and table.sent == []  # type: ignore[attr-defined]
    assert table.flush() == 2
    assert sorted(table.sent) == [(2, "m1|100", 2), (2, "m2|100", 5)]  # type: ignore[attr-defined]
    assert table.flush() == 0  # nothing changed since


def test_a_key_created_and_deleted_between_flushes_never_reaches_the_changelog(table: WriteBehindTable) -> None:
    with during_event(1):
        table["m1|100"] = 1
        assert table.pop("m1|100") == 1
        assert table.pop("m1|100", None) is None
    assert table.flush() == 0 and table.sent == []  # type: ignore[attr-defined]


def test_a_logged_key_deleted_is_tombstoned(table: WriteBehindTable) -> None:
    with during_event(3):
        table["m1|100"] = 1
    table.flush()
    with during_event(3):
        del table["m1|100"]
    assert "m1|100" not in table
    assert table.flush() == 1
    assert table.sent[-1] == (3, "m1|100", None)  # type: ignore[attr-defined]


def test_a_recovered_key_deleted_is_tombstoned(table: WriteBehindTable) -> None:
    table.store["m1|100"] = 7  # as Faust's recovery writes it: straight into the store
    with during_event(0):
        table.pop("m1|100")
    assert table.flush() == 1 and table.sent == [(0, "m1|100", None)]  # type: ignore[attr-defined]


def test_a_change_outside_an_event_is_refused_as_faust_refuses_it(table: WriteBehindTable) -> None:
    with pytest.raises(RuntimeError, match="outside stream iteration"):
        table["m1|100"] = 1


def test_the_commit_sensor_flushes_every_table(table: WriteBehindTable) -> None:
    with during_event(1):
        table["a"] = 1
        table["b"] = 2
    assert FlushBeforeCommit([table, table]).on_commit_initiated(consumer=None) == 2
    assert len(table.sent) == 2  # type: ignore[attr-defined]
