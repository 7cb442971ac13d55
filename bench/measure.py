"""The arithmetic of ``yujing bench``, without Kafka: rates, ratios, percentiles, and which
published record closed an event-time day (the cause of that day's warnings).

A day ``d`` of an input partition is scored when the partition's watermark passes it: when a
transaction arrives whose event time, less the allowed lateness, falls on day ``d + 1`` or later
(``engine.partition``). The paced feed of the latency run publishes in event-time order, so for
each partition and day there is one first such transaction: its publish moment is when the day
*could* be scored, and a warning of that day (or the day's scored record) coming out later is the
latency of the pipeline. Complaints and profiles never move the watermark.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from models.calendar import local_day


def ratio(value: float | None, baseline: float | None) -> float | None:
    """``value / baseline``; None when either is missing or the baseline is not positive.

    >>> ratio(3.0, 2.0)
    1.5
    >>> ratio(3.0, 0.0) is None, ratio(None, 2.0) is None
    (True, True)
    """
    if value is None or baseline is None or baseline <= 0 or not math.isfinite(value):
        return None
    return value / baseline


def rate(events: int, seconds: float) -> float:
    """Events per second (``seconds`` floored at a microsecond).

    >>> rate(1000, 2.0)
    500.0
    """
    return events / max(seconds, 1e-6)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) with linear interpolation between the closest ranks, as
    numpy's default; None for no values.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50)
    2.5
    >>> percentile([0.2, 0.4, 9.0], 99)
    8.83...
    >>> percentile([], 50) is None
    True
    """
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def closable_day(moment: datetime, lateness: timedelta) -> int:
    """The last day a partition may close once a transaction of ``moment`` has arrived
    (``engine.partition.PartitionEngine._advance``).

    >>> from datetime import datetime, timedelta, timezone
    >>> from models.calendar import day_date
    >>> shanghai = timezone(timedelta(hours=8))
    >>> day_date(closable_day(datetime(2026, 3, 2, 5, 59, tzinfo=shanghai), timedelta(hours=6)))
    datetime.date(2026, 2, 28)
    >>> day_date(closable_day(datetime(2026, 3, 2, 6, 0, tzinfo=shanghai), timedelta(hours=6)))
    datetime.date(2026, 3, 1)
    """
    return local_day(moment - lateness) - 1


def closing_moments(
    sends: Iterable[tuple[int, datetime, float]], lateness: timedelta, marks: dict[int, int]
) -> dict[tuple[int, int], float]:
    """``{(partition, day): publish moment of the transaction that made the day closable}``.

    ``sends``: the transactions in publish order, as (partition, event time, wall-clock second
    it was published); ``marks``: the last closable day of each partition before them (its
    history). Days closable before the first send have no entry.

    >>> from datetime import datetime, timedelta, timezone
    >>> shanghai = timezone(timedelta(hours=8))
    >>> at = lambda d, h: datetime(2026, 3, d, h, tzinfo=shanghai)
    >>> base = closable_day(at(2, 12), timedelta(hours=6))  # Mar 1 closable
    >>> sends = [(0, at(2, 20), 100.0), (0, at(3, 7), 101.0), (1, at(3, 9), 101.5), (0, at(5, 8), 103.0)]
    >>> moments = closing_moments(sends, timedelta(hours=6), {0: base, 1: base})
    >>> sorted((p, d - base, t) for (p, d), t in moments.items())
    [(0, 1, 101.0), (0, 2, 103.0), (0, 3, 103.0), (1, 1, 101.5)]
    """
    moments: dict[tuple[int, int], float] = {}
    closable = dict(marks)
    for partition, moment, sent in sends:
        day = closable_day(moment, lateness)
        previous = closable.get(partition)
        if previous is None:
            closable[partition] = day  # a partition's first transaction closes nothing
            continue
        for closed in range(previous + 1, day + 1):
            moments[(partition, closed)] = sent
        closable[partition] = max(previous, day)
    return moments


def latencies(outputs: Iterable[tuple[int, int, float]], moments: dict[tuple[int, int], float]) -> list[float]:
    """Seconds from each output's cause to the output: ``outputs`` as (partition, day, Kafka
    timestamp of the output record); outputs of days closed before the paced feed are left out.

    >>> latencies([(0, 5, 12.5), (0, 4, 3.0), (1, 5, 11.0)], {(0, 5): 10.0, (1, 5): 10.5})
    [2.5, 0.5]
    """
    return [stamp - moments[(partition, day)] for partition, day, stamp in outputs if (partition, day) in moments]
