"""Hot reload of published thresholds in a running worker.

A thread reads the thresholds topic (every worker reads all of it, no consumer group) and hands
each publication to the event loop, where :func:`apply_publications` adds it to the engine's
:class:`~alerts.threshold_history.ThresholdSchedule` under the engine lock, between two events.
A version applies from its ``effective_from`` event-time day: every day closed from then on is
scored with it, and its warnings carry its version. An invalid version is refused (log line,
``yujing_thresholds_refused_total``) and the schedule keeps what it had.
"""

from __future__ import annotations

import logging
import queue
import threading

from alerts.threshold_history import Publication, ThresholdSchedule
from alerts.thresholds import ThresholdsError
from models.calendar import day_start
from streams.app import Pipeline
from streams.clients import PublicationReader

log = logging.getLogger("yujing.worker")


class PublicationFeed:
    """The reading thread: ``reader`` goes on from where the start-up read left it."""

    def __init__(self, reader: PublicationReader) -> None:
        self.reader = reader
        self.arrived: queue.SimpleQueue[Publication | tuple[int, str]] = queue.SimpleQueue()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="thresholds", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                for item in self.reader.poll(timeout_ms=1000):
                    self.arrived.put(item)
            except Exception as exc:  # noqa: BLE001 - the broker may be away; keep trying
                log.warning("reading the thresholds topic failed (%s); retrying", exc)
                self.stopping.wait(5)
        self.reader.close()

    def drain(self) -> list[Publication | tuple[int, str]]:
        items = []
        while True:
            try:
                items.append(self.arrived.get_nowait())
            except queue.Empty:
                return items

    def stop(self) -> None:
        self.stopping.set()


def take_in(schedule: ThresholdSchedule, items: list[Publication | tuple[int, str]], metrics: object,
            closed_through: int | None = None) -> None:
    """Add publications to ``schedule``: log and count each refusal, report each version."""
    for item in items:
        if isinstance(item, tuple):
            offset, error = item
            log.error("thresholds record at offset %s refused, keeping %s: %s", offset, schedule.latest.version, error)
            metrics.thresholds_refused.inc()  # type: ignore[attr-defined]
            continue
        try:
            thresholds = schedule.add(item)
        except ThresholdsError as exc:
            log.error("thresholds %s by %s refused, keeping %s: %s", item.version, item.author,
                      schedule.latest.version, str(exc).replace("\n", "; "))
            metrics.thresholds_refused.inc()  # type: ignore[attr-defined]
            continue
        metrics.thresholds_effective.labels(version=thresholds.version).set(  # type: ignore[attr-defined]
            day_start(item.effective_day).timestamp())
        log.info("thresholds %s by %s (%s) applies from event day %s", thresholds.version, item.author,
                 item.reason, item.effective_from.date().isoformat())
        if closed_through is not None and item.effective_day <= closed_through:
            log.warning("thresholds %s arrived after event day %s was scored here: those days keep the "
                        "version they were scored with (publish ahead of the effective day)",
                        thresholds.version, item.effective_from.date().isoformat())


def apply_publications(pipeline: Pipeline, feed: PublicationFeed) -> None:
    """Between two events (the caller holds the engine lock): take in what the feed read."""
    items = feed.drain()
    if items:
        closed = [c.closed_through for c in pipeline.engine.clocks.values() if c is not None and c.closed_through]
        take_in(pipeline.engine.schedule, items, pipeline.metrics, max(closed) if closed else None)  # type: ignore[arg-type]
