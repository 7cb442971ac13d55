"""The case service's Prometheus metrics (``yujing_*``), served at ``/metrics`` on its HTTP port.

Counters are kept as things happen; case counts, overdue cases and the outbox backlog are read
from PostgreSQL when Prometheus scrapes (the database is the truth, shared by every instance of
the service, so each scrape reports the same totals: dashboards take ``max``, not ``sum``).
Labels come from small fixed sets (state, level, action, outcome, kind, compliance code and
finding status); never ids.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from alerts.cases import STATUSES
from alerts.levels import LEVELS
from cases.findings import CODES as COMPLIANCE_CODES
from cases.findings import STATUSES as FINDING_STATUSES
from cases.schema import cases, compliance_findings, outbox

log = logging.getLogger("cases")

# No ``*_created`` twin per counter and histogram series: it doubles the series for a
# timestamp nothing here reads.
disable_created_metrics()

CASE_LEVELS = (*LEVELS, "none")  # none: every merchant of the case has cleared
INGEST_ACTIONS = ("open", "append", "escalate", "record", "duplicate", "silenced", "replay")
DELIVERY_OUTCOMES = ("delivered", "retry", "failed")
OUTBOX_KINDS = ("webhook", "feedback")
LAG_TOPICS = ("warnings", "merchant_days")
CASE_ERRORS = ("database_unavailable", "webhook_failed", "history_failed")


class CaseMetrics:
    """Every metric the case service exposes.

    >>> registry = CollectorRegistry()
    >>> metrics = CaseMetrics(registry)
    >>> metrics.ingested.labels(action="open").inc()
    >>> registry.get_sample_value("yujing_case_warnings_ingested_total", {"action": "open"})
    1.0
    >>> registry.get_sample_value("yujing_webhook_deliveries_total", {"outcome": "failed"})
    0.0
    """

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        self.ingested = Counter(
            "yujing_case_warnings_ingested", "Warnings read from the disposal queue, by what they did to cases.",
            ["action"], registry=registry,
        )
        self.ingest_time = Histogram(
            "yujing_case_ingest_seconds", "Time to store one warning and its case changes.", registry=registry,
        )
        self.deliveries = Counter(
            "yujing_webhook_deliveries", "Webhook push attempts, by outcome (failed: given up, kept).",
            ["outcome"], registry=registry,
        )
        self.lag = Gauge(
            "yujing_case_consumer_lag_records", "Records the case service has still to read, by topic.",
            ["topic"], registry=registry,
        )
        self.days_recorded = Counter(
            "yujing_merchant_days_recorded", "Merchant-day history rows written to PostgreSQL.", registry=registry,
        )
        self.errors = Counter(
            "yujing_case_errors", "Failures in the case service, by kind.", ["kind"], registry=registry,
        )
        for action in INGEST_ACTIONS:
            self.ingested.labels(action=action)
        for outcome in DELIVERY_OUTCOMES:
            self.deliveries.labels(outcome=outcome)
        for topic in LAG_TOPICS:
            self.lag.labels(topic=topic)
        for kind in CASE_ERRORS:
            self.errors.labels(kind=kind)

    def watch_database(self, engine: Engine, now: Callable[[], datetime]) -> None:
        """Report case counts, overdue cases and the outbox backlog from ``engine`` at each scrape."""
        self.registry.register(CaseTableCollector(engine, now, self.errors))


class CaseTableCollector(Collector):
    """Reads the case tables at scrape time (four small aggregate queries)."""

    def __init__(self, engine: Engine, now: Callable[[], datetime], errors: Counter) -> None:
        self.engine, self.now, self.errors = engine, now, errors

    def describe(self) -> list:
        return []  # collected live; nothing to check at registration

    def collect(self) -> Iterator[GaugeMetricFamily]:
        by_state = GaugeMetricFamily("yujing_cases", "Cases by state and current level.", labels=["state", "level"])
        overdue = GaugeMetricFamily(
            "yujing_cases_overdue", "Open cases past their response deadline, by level.", labels=["level"]
        )
        pending = GaugeMetricFamily(
            "yujing_outbox_pending", "Outgoing messages not yet delivered, by kind.", labels=["kind"]
        )
        findings = GaugeMetricFamily(
            "yujing_compliance_findings",
            "Compliance findings by code and status (open: not yet handled; kept apart from the risk level).",
            labels=["code", "status"],
        )
        try:
            with self.engine.connect() as conn:
                level = func.coalesce(cases.c.level, "none")
                counts = dict.fromkeys(((s, lv) for s in STATUSES for lv in CASE_LEVELS), 0)
                for status, lv, n in conn.execute(
                    select(cases.c.status, level, func.count()).group_by(cases.c.status, level)
                ):
                    counts[(status, lv)] = n
                late = dict.fromkeys(CASE_LEVELS, 0)
                for lv, n in conn.execute(
                    select(level, func.count())
                    .where(cases.c.due_at < self.now(), cases.c.status.not_in(("resolved", "closed")))
                    .group_by(level)
                ):
                    late[lv] = n
                waiting = dict.fromkeys(OUTBOX_KINDS, 0)
                for kind, n in conn.execute(
                    select(outbox.c.kind, func.count()).where(outbox.c.status == "pending").group_by(outbox.c.kind)
                ):
                    waiting[kind] = n
                found = dict.fromkeys(((c, s) for c in COMPLIANCE_CODES for s in FINDING_STATUSES), 0)
                f = compliance_findings
                for code, status, n in conn.execute(
                    select(f.c.code, f.c.status, func.count()).group_by(f.c.code, f.c.status)
                ):
                    if (code, status) in found:  # only the bounded set, whatever the table holds
                        found[(code, status)] = n
        except SQLAlchemyError as exc:
            self.errors.labels(kind="database_unavailable").inc()
            log.warning("metrics: cannot read the case tables (%s)", str(exc).splitlines()[0])
            return
        for (status, lv), n in counts.items():
            by_state.add_metric([status, lv], n)
        for lv, n in late.items():
            overdue.add_metric([lv], n)
        for kind, n in waiting.items():
            pending.add_metric([kind], n)
        for (code, status), n in found.items():
            findings.add_metric([code, status], n)
        yield from (by_state, overdue, pending, findings)
