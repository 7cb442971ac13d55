"""``yujing cases serve``: the disposal queue in, cases in PostgreSQL, pushes and feedback out.

Four loops share one process with the HTTP API (``cases/api.py``):

* **warnings**: read ``prepaid.warnings`` (kafka-python, consumer group ``yujing-cases``), apply
  each warning in one database transaction (:func:`cases.store.ingest_warning`,
  idempotent on ``warning_id``), *then* commit the Kafka offset. A crash between the two re-reads
  warnings that are already stored and changes nothing; if PostgreSQL is down the loop waits and
  retries the same records, so nothing is lost.
* **webhooks**: deliver pending pushes from the outbox, HMAC-signed, with exponential backoff.
* **feedback**: publish case dispositions to ``prepaid.feedback`` for the scoring side.
* **maintenance**: open the cases of merchants whose silence ended while they were still at risk.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import httpx
import orjson
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential

from alerts.threshold_history import Publication, ThresholdSchedule
from cases import store
from cases.config import CaseSettings
from cases.history import record_days, record_publication
from cases.metrics import CaseMetrics
from contract.records import Warning
from engine.merchant_days import MerchantDay
from streams import case_desk_io as queue_io

if TYPE_CHECKING:
    from kafka import KafkaProducer

    from streams.config import KafkaSettings

log = logging.getLogger("cases")


def _first_line(exc: BaseException | None) -> str:
    text = str(getattr(exc, "orig", None) or exc or "").strip()
    return text.splitlines()[0] if text else type(exc).__name__


def utcnow() -> datetime:
    return datetime.now(UTC)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature a receiver checks: HMAC-SHA256 over ``<timestamp>.<body>``, hex.

    >>> sign("s3cret", "1767225600", b'{"case_id":"YJ-1"}')
    'sha256=...'
    """
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiving system does (documented in docs/cases.md; used by the tests' receiver)."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)






class CaseService:
    """The background loops; :meth:`start` runs them in threads, :meth:`stop` ends them."""

    def __init__(
        self, settings: KafkaSettings, cases: CaseSettings, engine: Engine, metrics: CaseMetrics | None = None
    ) -> None:
        self.settings = settings
        # Served at /metrics by the API when given; by default a private registry.
        self.metrics = metrics or CaseMetrics(CollectorRegistry())
        self.cases = cases
        self.engine = engine
        self.policy = cases.alert_policy()
        self.response = cases.response_policy()
        self.targets = [(w.name, list(w.levels)) for w in cases.webhooks]
        self.secrets = {w.name: w.secret.get_secret_value() for w in cases.webhooks}
        self.urls = {w.name: str(w.url) for w in cases.webhooks}
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.ingested = 0  # warnings that changed something
        self.records_read = 0  # every record read, replays included

    # -- lifecycle --

    def start(self) -> None:
        for name, loop in (
            ("warnings", self.consume_warnings),
            ("history", self.record_history),
            ("thresholds", self.record_thresholds),
            ("webhooks", self.deliver_webhooks),
            ("feedback", self.publish_feedback),
            ("maintenance", self.maintain),
        ):
            thread = threading.Thread(target=self._guarded(name, loop), name=f"cases-{name}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self, timeout: float = 15.0) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout)

    def _guarded(self, name: str, loop: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            while not self.stopping.is_set():
                try:
                    loop()
                    return
                except Exception as exc:  # noqa: BLE001 - a loop must outlive any one failure
                    log.error("%s loop failed (%s: %s); restarting it in 5 s", name, type(exc).__name__,
                              str(exc).splitlines()[0] if str(exc) else "")
                    self.stopping.wait(5)

        return run

    # -- warnings in --

    def consume_warnings(self) -> None:
        consumer = queue_io.storing_consumer(self.settings.bootstrap, self.settings.topics.warnings,
                                          self.cases.consumer_group, "yujing-cases",
                                          security=self.settings.kafka_security)
        try:
            while not self.stopping.is_set():
                batch = queue_io.poll(consumer, max_records=200)
                for tp, records in batch.items():
                    for record in records:
                        self._ingest_until_stored(record)
                        if self.stopping.is_set():
                            break
                    last = records[-1].offset if records else None
                    if last is not None:
                        queue_io.commit_through(consumer, tp, last)
                self.metrics.lag.labels(topic="warnings").set(queue_io.lag(consumer))
        finally:
            consumer.close(autocommit=False)

    def _ingest_until_stored(self, record: object) -> None:
        """Store one record; wait out a PostgreSQL outage (backoff 0.5 s doubling to 30 s) rather
        than skip it. Gives up only when the service stops (the offset is then not committed)."""
        self._until_stored("the warning")(self.ingest_record, record)
        self.records_read += 1

    def _until_stored(self, what: str) -> Retrying:
        def waiting(state: RetryCallState) -> None:
            self.metrics.errors.labels(kind="database_unavailable").inc()
            log.warning("PostgreSQL unavailable (%s); retrying %s in %.0f s",
                        _first_line(state.outcome.exception()) if state.outcome else "?", what,
                        state.next_action.sleep if state.next_action else 0)

        return Retrying(
            retry=retry_if_exception_type(DBAPIError),
            wait=wait_exponential(multiplier=0.5, max=30),
            stop=lambda _: self.stopping.is_set(),
            sleep=self.stopping.wait,
            before_sleep=waiting,
            reraise=True,
        )

    def ingest_record(self, record: object) -> store.Ingested | None:
        value: bytes = record.value  # type: ignore[attr-defined]
        try:
            warning = Warning.model_validate_json(value)
        except ValidationError as exc:
            # Our own topic; a bad record there is a bug upstream: say so and move on.
            log.error("skipping invalid warning at %s[%s]@%s: %s", record.topic, record.partition,  # type: ignore[attr-defined]
                      record.offset, str(exc).splitlines()[0])  # type: ignore[attr-defined]
            return None
        # Keep every field as received (extra ones included) for the case page.
        payload = orjson.loads(value)
        with self.metrics.ingest_time.time(), self.engine.begin() as conn:
            result = store.ingest_warning(
                conn, payload,
                policy=self.policy, response=self.response, webhook_targets=self.targets,
                public_url=self.cases.public_url, now=utcnow(),
                source=(record.partition, record.offset),  # type: ignore[attr-defined]
            )
        self.metrics.ingested.labels(action=result.action).inc()
        if result.action != "replay":
            self.ingested += 1
            log.info("warning %s (%s %s) -> %s%s", result.warning_id, warning.transition, warning.level,
                     result.action, f" {result.case_id}" if result.case_id else "")
        return result

    # -- merchant-day history in --

    def record_history(self) -> None:
        """The worker's scored merchant-days into PostgreSQL for the drill-down dashboard: one
        transaction per poll (upserts, so a redelivery rewrites the same rows), then the commit."""
        consumer = queue_io.storing_consumer(self.settings.bootstrap, self.settings.topics.merchant_days,
                                          f"{self.cases.consumer_group}-history", "yujing-cases-history",
                                          security=self.settings.kafka_security)
        try:
            while not self.stopping.is_set():
                batch = queue_io.poll(consumer, max_records=2000)
                records = [r for rs in batch.values() for r in rs]
                days = []
                for record in records:
                    try:
                        days.append(MerchantDay.model_validate_json(record.value))
                    except ValidationError as exc:
                        self.metrics.errors.labels(kind="history_failed").inc()
                        log.error("skipping invalid merchant-day at %s[%s]@%s: %s", record.topic, record.partition,
                                  record.offset, str(exc).splitlines()[0])
                if days:
                    self._until_stored("the merchant-day history")(self._record_days, days)
                    if self.stopping.is_set():
                        break
                if records:
                    consumer.commit()
                self.metrics.lag.labels(topic="merchant_days").set(queue_io.lag(consumer))
        finally:
            consumer.close(autocommit=False)

    def record_thresholds(self) -> None:
        """Every threshold publication into PostgreSQL (for Grafana's annotations), judged as a
        worker judges it: applied, or refused with the reason. Reads the whole topic at each
        start (no consumer group); upserts make that harmless."""
        from streams.clients import PublicationReader

        reader = PublicationReader(self.settings)
        schedule = ThresholdSchedule(self.settings.base_thresholds())
        try:
            while not self.stopping.is_set():
                for item in reader.poll(timeout_ms=1000):
                    if isinstance(item, tuple):
                        log.error("thresholds record at offset %s is unreadable: %s", *item)
                        continue
                    applied, changed, refusal = schedule.judge(item)
                    if applied is None:
                        status, detail = "refused", "; ".join(refusal.problems)  # type: ignore[union-attr]
                    else:
                        status, detail = "applied", "; ".join(str(c) for c in changed) or "no change"
                        # Response deadlines are wall-clock matters: the newest version's apply to
                        # cases opened from now on (before any, YUJING_CASES_RESPONSE_HOURS).
                        self.response = applied.response_policy(self.response.calendar)
                    self._until_stored("a threshold publication")(self._record_publication, item, status, detail)
        finally:
            reader.close()

    def _record_publication(self, published: Publication, status: str, detail: str) -> None:
        with self.engine.begin() as conn:
            record_publication(conn, published, status, detail, now=utcnow())

    def _record_days(self, days: list[MerchantDay]) -> None:
        with self.engine.begin() as conn:
            written = record_days(conn, days, now=utcnow())
        self.metrics.days_recorded.inc(written)

    # -- pushes out --

    def deliver_webhooks(self) -> None:
        with httpx.Client(timeout=self.cases.webhook_timeout_seconds) as client:
            while not self.stopping.is_set():
                if not self._deliver_one(client):
                    self.stopping.wait(self.cases.poll_seconds)

    def _deliver_one(self, client: httpx.Client) -> bool:
        with self.engine.begin() as conn:
            message = store.claim_due(conn, "webhook", now=utcnow())
            if message is None:
                return False
            error = self._post(client, message)
            if error is None:
                store.mark_delivered(conn, message.message_id, now=utcnow())
                self.metrics.deliveries.labels(outcome="delivered").inc()
                log.info("webhook %s delivered to %s (case %s)", message.message_id, message.target, message.case_id)
            else:
                status = store.mark_attempt_failed(
                    conn, message.message_id, error, now=utcnow(),
                    max_attempts=self.cases.webhook_max_attempts,
                    backoff_seconds=self.cases.webhook_backoff_seconds,
                    backoff_max_seconds=self.cases.webhook_backoff_max_seconds,
                )
                log.warning("webhook %s to %s failed (%s): %s", message.message_id, message.target,
                            "gave up, kept as failed" if status == "failed" else "will retry", error)
                self.metrics.deliveries.labels(outcome="failed" if status == "failed" else "retry").inc()
                if status == "failed":
                    self.metrics.errors.labels(kind="webhook_failed").inc()
        return True

    def _post(self, client: httpx.Client, message: object) -> str | None:
        target: str = message.target  # type: ignore[attr-defined]
        if target not in self.urls:
            return f"no webhook named {target!r} is configured"
        body = orjson.dumps(message.payload)  # type: ignore[attr-defined]
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Yujing-Timestamp": timestamp,
            "X-Yujing-Signature": sign(self.secrets[target], timestamp, body),
            # The same push retried carries the same id: receivers deduplicate on it.
            "X-Yujing-Delivery": message.dedup_key,  # type: ignore[attr-defined]
        }
        try:
            response = client.post(self.urls[target], content=body, headers=headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}: {response.text[:200]}"

    # -- feedback out --

    def publish_feedback(self) -> None:
        producer = queue_io.feedback_producer(self.settings.bootstrap, self.settings.kafka_security)
        try:
            while not self.stopping.is_set():
                if not self._publish_one(producer):
                    self.stopping.wait(self.cases.poll_seconds)
        finally:
            producer.close(timeout=5)

    def _publish_one(self, producer: KafkaProducer) -> bool:
        with self.engine.begin() as conn:
            message = store.claim_due(conn, "feedback", now=utcnow())
            if message is None:
                return False
            payload = message.payload
            try:
                queue_io.send_keyed(producer, self.settings.topics.feedback, payload["merchant_id"], payload)
            except Exception as exc:  # noqa: BLE001 - any send failure is retried later
                store.mark_attempt_failed(conn, message.message_id, f"{type(exc).__name__}: {exc}",
                                          now=utcnow(), max_attempts=10**6, backoff_seconds=1,
                                          backoff_max_seconds=60)
                return True
            store.mark_delivered(conn, message.message_id, now=utcnow())
        return True

    # -- maintenance --

    def maintain(self) -> None:
        while not self.stopping.is_set():
            with self.engine.begin() as conn:
                opened = store.open_cases_after_silences(
                    conn, policy=self.policy, response=self.response, webhook_targets=self.targets,
                    public_url=self.cases.public_url, now=utcnow(),
                )
            for case_id in opened:
                log.info("silence ended: opened case %s", case_id)
            self.stopping.wait(self.cases.maintenance_seconds)
