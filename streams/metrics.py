"""The worker's Prometheus metrics (``yujing_*``), following client_python's conventions.

Counters end in ``_total``, durations are ``_seconds`` histograms, and every label comes from a
small fixed set (topic kind, dead-letter reason, level, transition, industry, town; never a
merchant or consumer id). Every label combination is created up front, so each series exists
(at 0) from the first scrape and a dashboard or alert never reads "no data" for "none yet".

Tests build :class:`WorkerMetrics` on a fresh ``CollectorRegistry``; the worker process uses
the default registry, which also carries the ``process_*`` metrics (memory, CPU, open files).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import datetime
from typing import get_args

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)

from alerts.levels import LEVELS
from contract.districts import INDUSTRY_LABELS, TOWN_LABELS, industry_label, town_label
from contract.records import DEADLETTER_REASONS, Transition, Warning
from models.indicators import ALL_INDICATORS
from models.scoring import DETECTOR_CODE, JOINT_DETECTOR_CODE

# No ``*_created`` twin per counter and histogram series: it doubles the series for a
# timestamp nothing here reads.
disable_created_metrics()

INPUT_KINDS = ("transactions", "complaints", "merchants", "feedback")
# Every topic kind the worker's agents read: the inputs and the chain stage's two topics.
SOURCE_KINDS = (*INPUT_KINDS, "chain_notices", "chain_signals")
TRANSITIONS: tuple[str, ...] = get_args(Transition)
STATE_TABLES = ("day_buckets", "merchants", "partition_clocks", "chains")
WORKER_ERRORS = ("send_failed", "processing")
# Record timestamp to warning: seconds when producers stamp send time; hours (the watermark waits
# out the allowed lateness) when they stamp event time; beyond a day only in replays of history.
LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 12 * 3600, 86400)
PROCESSING_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5)
SCORE_BUCKETS = tuple(round(0.1 * i, 1) for i in range(1, 11))
READING_CODES = tuple(sorted({c.code for c in ALL_INDICATORS} | {DETECTOR_CODE, JOINT_DETECTOR_CODE}))


class WorkerMetrics:
    """Every metric the scoring worker exposes.

    >>> from prometheus_client import CollectorRegistry
    >>> registry = CollectorRegistry()
    >>> metrics = WorkerMetrics(registry)
    >>> metrics.consumed.labels(topic="transactions").inc()
    >>> registry.get_sample_value("yujing_events_consumed_total", {"topic": "transactions"})
    1.0
    >>> registry.get_sample_value("yujing_warnings_total",
    ...     {"level": "red", "transition": "raised", "industry": "fitness", "town": "南桥镇"})
    0.0
    """

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        # Declared in this order (the order of a scrape), then every series created.
        self._declare_input_metrics(registry)
        self._declare_warning_metrics(registry)
        self._declare_worker_metrics(registry)
        self._declare_tuning_metrics(registry)
        self._create_series()

    def _declare_input_metrics(self, registry: CollectorRegistry) -> None:
        """What the agents read: records by topic kind, lag, processing time, latency to a warning."""
        self.consumed = Counter(
            "yujing_events_consumed", "Input records read, by topic kind.", ["topic"], registry=registry
        )
        self.deadlettered = Counter(
            "yujing_events_deadlettered", "Input records sent to the dead-letter topic, by topic kind and reason.",
            ["topic", "reason"], registry=registry,
        )
        self.duplicates = Counter(
            "yujing_events_duplicate", "Redelivered input records ignored (same event_id or complaint_id).",
            ["topic"], registry=registry,
        )
        self.late = Counter(
            "yujing_events_late", "Input records beyond the allowed lateness (their day was already scored).",
            ["topic"], registry=registry,
        )
        self.lag = Gauge(
            "yujing_consumer_lag_records", "Records behind the end of this worker's input partitions.",
            ["topic"], registry=registry,
        )
        self.processing = Histogram(
            "yujing_event_processing_seconds", "Time to process one input record (decode to last send).",
            buckets=PROCESSING_BUCKETS, registry=registry,
        )
        self.latency = Histogram(
            "yujing_event_to_warning_latency_seconds",
            "From the Kafka timestamp of the record that closed the day to its warning being sent.",
            buckets=LATENCY_BUCKETS, registry=registry,
        )

    def _declare_warning_metrics(self, registry: CollectorRegistry) -> None:
        """The warnings sent, merchants at each level now, and every scored merchant-day's score."""
        self.warnings = Counter(
            "yujing_warnings", "Warnings sent to the disposal queue.",
            ["level", "transition", "industry", "town"], registry=registry,
        )
        self.active = Gauge(
            "yujing_active_warnings", "Merchants currently at each level, on this worker's partitions.",
            ["level", "town", "industry"], registry=registry,
        )
        self.risk_score = Histogram(
            "yujing_risk_score", "Composite risk score of every scored merchant-day.",
            ["industry"], buckets=SCORE_BUCKETS, registry=registry,
        )

    def _declare_worker_metrics(self, registry: CollectorRegistry) -> None:
        """The worker's own health: state sizes, event-time watermark, failures, stalled partitions."""
        self.state_entries = Gauge(
            "yujing_state_entries", "Entries in each state table on this worker.", ["table"], registry=registry
        )
        self.watermark = Gauge(
            "yujing_event_time_watermark_seconds",
            "End of the last event-time day closed on all of this worker's partitions (unix seconds).",
            registry=registry,
        )
        self.errors = Counter(
            "yujing_worker_errors", "Failures in the worker, by kind.", ["kind"], registry=registry
        )
        self.partition_stalls = Counter(
            "yujing_partition_stalls",
            "Partitions found stalled (records waiting, committed offset unmoved, streams idle) and read "
            "again from their committed offset, by topic kind (streams.watchdog).",
            ["topic"], registry=registry,
        )

    def _declare_tuning_metrics(self, registry: CollectorRegistry) -> None:
        """Threshold versions taken in or refused, and what case outcomes taught the fusion."""
        self.thresholds_refused = Counter(
            "yujing_thresholds_refused", "Published threshold versions refused as invalid (the last good one stays).",
            registry=registry,
        )
        self.thresholds_effective = Gauge(
            "yujing_thresholds_effective_from_seconds",
            "Each threshold version this worker took in: the event time it scores days from (unix seconds).",
            ["version"], registry=registry,
        )
        self.weight_corrections = Gauge(
            "yujing_feedback_weight_correction",
            "What case outcomes taught the fusion (models/online.py): each indicator's weight correction in "
            "log-odds, averaged over this worker's partitions (0: as learned offline).",
            ["indicator"], registry=registry,
        )
        self.outcomes_learned = Gauge(
            "yujing_feedback_outcomes_learned", "Case outcomes learned from on this worker's partitions.",
            registry=registry,
        )

    def _create_series(self) -> None:
        """Every label combination at 0, so no series is missing before its first event."""
        for code in READING_CODES:
            self.weight_corrections.labels(indicator=code)
        for kind in SOURCE_KINDS:
            self.partition_stalls.labels(topic=kind)
        for kind in INPUT_KINDS:
            self.consumed.labels(topic=kind)
            self.duplicates.labels(topic=kind)
            self.late.labels(topic=kind)
            self.lag.labels(topic=kind)
            for reason in DEADLETTER_REASONS:
                self.deadlettered.labels(topic=kind, reason=reason)
        for level, transition, industry, town in itertools.product(LEVELS, TRANSITIONS, INDUSTRY_LABELS, TOWN_LABELS):
            self.warnings.labels(level=level, transition=transition, industry=industry, town=town)
        self._active_series = set(itertools.product(LEVELS, TOWN_LABELS, INDUSTRY_LABELS))
        for level, town, industry in self._active_series:
            self.active.labels(level=level, town=town, industry=industry)
        for industry in INDUSTRY_LABELS:
            self.risk_score.labels(industry=industry)
        for table in STATE_TABLES:
            self.state_entries.labels(table=table)
        for kind in WORKER_ERRORS:
            self.errors.labels(kind=kind)

    def warning_sent(self, warning: Warning, source_timestamp: float | None, now: float) -> None:
        self.warnings.labels(
            level=warning.level, transition=warning.transition,
            industry=industry_label(warning.industry), town=town_label(warning.district),
        ).inc()
        if source_timestamp is not None:
            self.latency.observe(max(0.0, now - source_timestamp))

    def set_active(self, levels: Iterable[tuple[str, str | None, str | None]]) -> None:
        """Replace the active-warning gauges with a fresh count of (level, district, industry)."""
        counts = dict.fromkeys(self._active_series, 0)
        for level, district, industry in levels:
            counts[(level, town_label(district), industry_label(industry))] += 1
        for (level, town, industry), count in counts.items():
            self.active.labels(level=level, town=town, industry=industry).set(count)

    def set_corrections(self, corrections: list[dict[str, float]], examples: int) -> None:
        """Each indicator's weight correction averaged over ``corrections`` (one per partition;
        a partition that has learned nothing counts as 0), and the outcomes learned.

        >>> from prometheus_client import CollectorRegistry
        >>> registry = CollectorRegistry()
        >>> metrics = WorkerMetrics(registry)
        >>> metrics.set_corrections([{"over_cap_cards": -0.6}, {}], examples=3)
        >>> registry.get_sample_value("yujing_feedback_weight_correction", {"indicator": "over_cap_cards"})
        -0.3
        """
        for code in READING_CODES:
            total = sum(c.get(code, 0.0) for c in corrections)
            self.weight_corrections.labels(indicator=code).set(total / len(corrections) if corrections else 0.0)
        self.outcomes_learned.set(examples)

    def set_watermark(self, closed_day_end: datetime | None) -> None:
        if closed_day_end is not None:
            self.watermark.set(closed_day_end.timestamp())
