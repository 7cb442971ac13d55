"""The partition watchdog's bookkeeping (streams.watchdog.StallWatch), without Kafka; the
watchdog on a real worker and broker is tested end to end (tests/test_end_to_end.py)."""

from __future__ import annotations

from streams.watchdog import StallWatch


def test_a_partition_is_stalled_only_after_patience_without_commit_progress() -> None:
    watch = StallWatch(patience=120)
    assert not watch.observe("t-0", committed=10, highwater=50, now=0)
    assert not watch.observe("t-0", committed=10, highwater=80, now=119)  # more arrived: still waiting
    assert watch.observe("t-0", committed=10, highwater=80, now=120)
    assert watch.observe("t-0", committed=10, highwater=80, now=121)  # until healed


def test_progress_or_an_empty_partition_restarts_the_clock() -> None:
    watch = StallWatch(patience=60)
    watch.observe("t-0", committed=10, highwater=500, now=0)
    assert not watch.observe("t-0", committed=80, highwater=500, now=100)  # moved: clock restarts at 100
    assert not watch.observe("t-0", committed=80, highwater=500, now=159)
    assert watch.observe("t-0", committed=80, highwater=500, now=160)
    assert not watch.observe("t-0", committed=50, highwater=500, now=161)  # sought back: a new clock
    assert not watch.observe("t-0", committed=50, highwater=50, now=170)  # caught up: nothing waits
    assert not watch.observe("t-0", committed=50, highwater=51, now=171)  # a new record: a fresh clock
    assert not watch.observe("t-0", committed=50, highwater=51, now=230)
    assert watch.observe("t-0", committed=50, highwater=51, now=231)


def test_unknown_offsets_are_not_judged() -> None:
    watch = StallWatch(patience=1)
    for now in (0, 10, 20):
        assert not watch.observe("t-0", committed=None, highwater=50, now=now)  # never committed yet
        assert not watch.observe("t-1", committed=5, highwater=None, now=now)  # nothing fetched yet


def test_healing_gives_another_full_patience() -> None:
    watch = StallWatch(patience=30)
    watch.observe("t-0", committed=3, highwater=9, now=0)
    assert watch.observe("t-0", committed=3, highwater=9, now=30)
    watch.healed("t-0", now=30)
    assert not watch.observe("t-0", committed=3, highwater=9, now=59)
    assert watch.observe("t-0", committed=3, highwater=9, now=60)  # the remedy did not help: again
    watch.healed("t-never-seen", now=60)  # harmless


def test_revoked_partitions_are_forgotten_and_a_rebalance_starts_afresh() -> None:
    watch = StallWatch(patience=30)
    watch.observe("t-0", committed=3, highwater=9, now=0)
    watch.observe("t-1", committed=3, highwater=9, now=0)
    watch.keep_only(["t-1"])
    assert not watch.observe("t-0", committed=3, highwater=9, now=40)  # back after a revoke: new clock
    assert watch.observe("t-1", committed=3, highwater=9, now=40)  # kept its clock
    watch.reset()
    assert not watch.observe("t-1", committed=3, highwater=9, now=50)


def test_a_crawl_of_fewer_records_than_seconds_of_patience_is_a_stall() -> None:
    """What CI caught after a rebalance: one record committed per faust commit interval (2.8 s)."""
    watch = StallWatch(patience=30)
    committed = 2369
    assert not watch.observe("t-1", committed=committed, highwater=5006, now=0)
    verdicts = []
    for step in range(1, 13):  # 5-s checks, two records a check
        committed += 2
        verdicts.append(watch.observe("t-1", committed=committed, highwater=5006, now=5.0 * step))
    assert verdicts.index(True) == 5  # at 30 s: 12 records < 30
    steady = StallWatch(patience=30)
    assert not any(steady.observe("t-1", committed=2369 + 40 * step, highwater=50_000, now=1.0 * step)
                   for step in range(120))  # 40 records a second: never judged


def test_the_least_progress_can_be_set() -> None:
    watch = StallWatch(patience=10, min_progress=1)  # the strict "unmoved" rule
    watch.observe("t-0", committed=3, highwater=9, now=0)
    assert not watch.observe("t-0", committed=4, highwater=9, now=10)
    assert watch.observe("t-0", committed=4, highwater=9, now=20)
