"""The windows of a merchant's history found by arithmetic equal a scan of every day, with or
without gaps (models.features._between: the replay's costliest function before it was sliced)."""

from __future__ import annotations

from collections import deque
from random import Random

from models.features import _between
from models.state import DaySummary


def _scanned(history: deque[DaySummary], first: int, last: int) -> list[DaySummary]:
    return [h for h in history if first <= h.day <= last]


def test_windows_equal_a_scan_of_every_day() -> None:
    rng = Random(17)
    for _ in range(300):
        start = rng.randrange(1, 400)
        days = list(range(start, start + rng.randrange(0, 200)))
        if days and rng.random() < 0.3:  # a history with gaps takes the scanning path
            days = sorted(rng.sample(days, max(1, len(days) // 2)))
        history = deque((DaySummary(day, *([0.0] * 13)) for day in days), maxlen=180)
        for _ in range(20):
            first = rng.randrange(start - 50, start + 250)
            last = first + rng.randrange(-5, 120)
            assert _between(history, first, last) == _scanned(history, first, last)
