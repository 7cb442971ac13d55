"""``custody_drawdown`` read the same whatever order the topics were read in.

A live worker reads the merchants and complaints topics at its own pace next to the
transactions: ahead of them while catching up, or (at a partition's start) a little behind. The
warnings staying the same (``tests/test_engine.py``) is not enough: a reading held at weight 0
changes no warning, so every scored merchant-day's features and reading scores are compared here.
Pure: the engine fed hand-made events, no Kafka.
"""

from __future__ import annotations

import random
from datetime import timedelta

from contract.records import InputEvent, MerchantProfile, Transaction
from engine.day_closing import DayResult
from engine.partition import PartitionEngine
from tests.factories import (
    START,
    profile,
    redemption,
    runaway_merchant,
    sale,
    steady_merchant,
    time_ordered,
)

Day = tuple[str, int]


def scored_days(events: list[InputEvent]) -> tuple[dict[Day, DayResult], PartitionEngine]:
    """Every merchant-day the engine scored, read in the order given (one partition)."""
    days: dict[Day, DayResult] = {}
    engine = PartitionEngine(buckets={}, merchants={}, clocks={}, allowed_lateness=timedelta(hours=6),
                             on_day_scored=lambda r: days.__setitem__((r.merchant_id, r.day), r))
    for event in events:
        engine.process(event, 0)
    return days, engine


def readings(result: DayResult) -> dict[str, float]:
    return {c.reading.code: c.reading.score for c in result.score.contributions}


def drawing_down(mid: str, days: int) -> list[InputEvent]:
    """A merchant whose card book shrinks while it takes its deposit out faster than the book."""
    events: list[InputEvent] = [profile(mid, 0, 400_000.0), sale(mid, 0, 1_000_000.0, n=9)]
    for day in range(days):
        events.append(sale(mid, day, 3000, 3300))
        events.append(redemption(mid, day, 4000 if day < 60 else 9000))
        if day % 30 == 29:
            events.append(profile(mid, day, 400_000.0 - 60_000.0 * (day // 30)))
    return events


def newcomer(mid: str, registered: int, first_trading: int, days: int) -> list[InputEvent]:
    """Registered (deposit 100,000) days before it trades; its first day carries a card book of
    500,000 over; redemptions then bring the book down and the deposit follows it only in part."""
    events: list[InputEvent] = [profile(mid, registered, 100_000.0),
                                sale(mid, first_trading, 500_000.0, n=9)]
    for day in range(first_trading, days):
        events.append(redemption(mid, day, 7000 if day < first_trading + 30 else 1000))
        if day % 30 == 29:
            events.append(profile(mid, day, 60_000.0))
    return events


def read_ahead(events: list[InputEvent], rng: random.Random) -> list[InputEvent]:
    """``events`` (time-ordered) with profiles and complaints read ahead in bursts, as a consumer
    catching up reads the sparse topics, and never after the transactions that follow them."""
    mixed: list[InputEvent] = []
    others = [(n, e) for n, e in enumerate(events) if not isinstance(e, Transaction)]
    taken = 0
    for n, event in enumerate(events):
        if not isinstance(event, Transaction):
            continue
        while taken < len(others) and others[taken][0] < n:  # due by now
            mixed.append(others[taken][1])
            taken += 1
        if rng.random() < 0.05:  # a burst, far ahead
            burst = others[taken:taken + rng.randint(1, 50)]
            mixed.extend(e for _, e in burst)
            taken += len(burst)
        mixed.append(event)
    mixed.extend(e for _, e in others[taken:])
    return mixed


def test_every_merchant_day_reads_the_same_whatever_the_interleaving_of_topics() -> None:
    """Profiles and complaints read ahead of the transactions change no feature and no reading."""
    events = time_ordered(runaway_merchant("bad", 200, 170), steady_merchant("good", 200),
                          drawing_down("down", 200), newcomer("new", 20, 30, 200),
                          [profile("early", -5, 150_000.0)], steady_merchant("early", 150, start=3))
    expected, _ = scored_days(events)
    assert any("custody_drawdown" in r.score.features for r in expected.values())
    assert any(r.score.features.get("custody_drawdown", 1.0) < 0.8 for r in expected.values())
    rng = random.Random(7)
    for _ in range(3):
        mixed = read_ahead(events, rng)
        assert mixed != events and sorted(map(id, mixed)) == sorted(map(id, events))
        got, _ = scored_days(mixed)
        assert got.keys() == expected.keys()
        for key, result in expected.items():
            assert got[key].score.features == result.score.features, key
            assert readings(got[key]) == readings(result), key
            assert got[key].score.score == result.score.score, key


def test_a_registration_read_after_the_first_trading_day_began_draws_down_alike() -> None:
    """The live worker's start: the merchant's registration (a custody report dated days before
    it trades) is read only after its first transactions. The engine counts the late version from
    the first open day, the merchant's first trading day; the report must still be set against
    the balance of the days before it, as when it was read on its own day, not against a card
    book carried over that day."""
    events = time_ordered(steady_merchant("good", 120), newcomer("new", 5, 10, 120))
    registration = [e for e in events if isinstance(e, MerchantProfile) and e.merchant_id == "new"
                    and (e.updated_at.date() - START).days < 10]
    first_sale = next(e for e in events if isinstance(e, Transaction) and e.merchant_id == "new")
    late = [e for e in events if e not in registration]
    at = late.index(first_sale) + 1
    late[at:at] = registration  # read right after the merchant's first sale

    expected, _ = scored_days(events)
    got, engine = scored_days(late)
    assert engine.merchants["new"].late_profiles  # the registration was indeed late
    common = sorted(got.keys() & expected.keys())
    assert [day for mid, day in common if mid == "new"]  # the merchant's trading days, in both
    drawdowns = [expected[key].score.features.get("custody_drawdown") for key in common]
    assert 0.6 in drawdowns  # 60,000 kept of 100,000 while the requirement grew
    for key in common:
        assert got[key].score.features.get("custody_drawdown") == expected[key].score.features.get(
            "custody_drawdown"), key
        assert readings(got[key]).get("custody_drawdown") == readings(expected[key]).get("custody_drawdown"), key


def test_custody_reports_read_late_together_keep_their_own_days() -> None:
    """Two monthly reports read only after the watermark passed both (a consumer behind on the
    merchants topic) are counted from the first open day, but each keeps its own day and the
    card book of that day: from then on every merchant-day reads as in a replay that took them
    on time. (Before, both took the first open day, one replaced the other, and the drawdown
    between them was lost.)"""
    events = time_ordered(steady_merchant("good", 160), drawing_down("down", 160))
    reports = [e for e in events if isinstance(e, MerchantProfile) and e.merchant_id == "down"
               and 50 <= (e.updated_at.date() - START).days <= 95]
    assert len(reports) == 2
    read_at = next(n for n, e in enumerate(events) if isinstance(e, Transaction) and (e.occurred_at.date() - START).days == 100)
    late = [e for e in events if e not in reports]
    late[read_at - 2:read_at - 2] = reports

    expected, _ = scored_days(events)
    got, engine = scored_days(late)
    assert len(engine.merchants["down"].late_profiles) == 2
    taken_in = max(day for mid, day in got if mid == "down" and got[(mid, day)].score.features.get(
        "custody_drawdown") != expected[(mid, day)].score.features.get("custody_drawdown")) + 1
    after = [key for key in sorted(expected) if key[0] == "down" and key[1] >= taken_in]
    assert taken_in <= START.toordinal() + 100 and after
    drawdowns = {expected[key].score.features.get("custody_drawdown") for key in after}
    assert any(d is not None and d < 0.8 for d in drawdowns)
    for key in after:
        assert got[key].score.features == expected[key].score.features, key
        assert readings(got[key]) == readings(expected[key]), key
