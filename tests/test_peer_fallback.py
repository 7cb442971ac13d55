"""Peer ratios for merchants whose industry has no peer group: everyone's stands in.

Six gyms' redemptions halve for a month (a calendar everyone follows). A merchant with no
profile (trade unknown) and a lone salon (an industry of one) halve with them: their
redemption ratio is read against every established merchant's, so the fall is the calendar's,
not theirs. Before, both were compared with nothing, and read as a 50% decline on their own.
Pure: the engine fed hand-made events, no Kafka.
"""

from __future__ import annotations

from datetime import timedelta

from contract.records import InputEvent
from engine.day_closing import DayResult
from engine.partition import PartitionEngine
from tests.factories import profile, redemption, sale, time_ordered

DAYS = 240
DIP = range(200, 228)  # the month every merchant of the partition serves half as much


def trading(mid: str, industry: str | None) -> list[InputEvent]:
    events: list[InputEvent] = [] if industry is None else [profile(mid, 0, 0.0, industry=industry)]
    for day in range(DAYS):
        events.append(sale(mid, day, 3000, 3300))
        events.append(redemption(mid, day, 1400 if day in DIP else 2800))
    return events


def scored(events: list[InputEvent]) -> dict[tuple[str, int], DayResult]:
    days: dict[tuple[str, int], DayResult] = {}
    engine = PartitionEngine(buckets={}, merchants={}, clocks={}, allowed_lateness=timedelta(hours=6),
                             on_day_scored=lambda r: days.__setitem__((r.merchant_id, r.day), r))
    for event in events:
        engine.process(event, 0)
    return days


def test_merchants_without_a_peer_group_are_read_against_every_merchant() -> None:
    gyms = [trading(f"gym-{i}", "fitness") for i in range(6)]
    days = scored(time_ordered(*gyms, trading("no-profile", None), trading("lone-salon", "beauty")))
    last_of_dip = min(day for (mid, day) in days if mid == "gym-0") + DIP[-1]
    for mid in ("no-profile", "lone-salon", "gym-0"):
        features = days[(mid, last_of_dip)].score.features
        assert features["redeemed_28d"] / features["redeemed_long_baseline_28d"] == 0.5
        # The norms are the day before's (27 of 28 days into the dip): about a half.
        assert 0.5 <= features["peer_redemption_ratio"] < 0.52, mid
        readings = {c.reading.code: c.reading.score for c in days[(mid, last_of_dip)].score.contributions}
        assert readings.get("redemption_decline", 0.0) == 0.0, mid  # the calendar's fall, not theirs
    # Sales levels differ by trade: the lone salon's and the unknown merchant's stay their own.
    assert "peer_sales_28d" not in days[("no-profile", last_of_dip)].score.features
