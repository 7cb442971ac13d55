"""``yujing worker``: the Faust scoring worker (streams.agents), with its metrics endpoint and the
threshold versions published before it starts."""

from __future__ import annotations

import typer

from yujing.cli.output import fail
from yujing.settings import get_settings


def worker_command(
    loglevel: str = typer.Option("info", help="Log level of the worker."),
) -> None:
    """Run the Faust scoring worker: input topics in, warnings out (Ctrl-C stops it cleanly)."""
    from prometheus_client import start_http_server

    from alerts.threshold_history import ThresholdSchedule
    from alerts.thresholds import ThresholdsError
    from streams.agents import build_worker_app  # at call time: tests/stalling_worker.py swaps it
    from streams.app import run_worker
    from streams.clients import KafkaUnavailable, PublicationReader, ensure_internal_topics
    from streams.metrics import WorkerMetrics
    from streams.threshold_feed import PublicationFeed, take_in

    settings = get_settings()
    try:
        ensure_internal_topics(settings)
    except KafkaUnavailable as exc:
        fail(str(exc))
    metrics = WorkerMetrics()  # the default registry: with the process_* metrics
    if settings.metrics_port:
        try:
            start_http_server(settings.metrics_port, addr=settings.metrics_host)
        except OSError as exc:
            fail(f"cannot serve metrics on {settings.metrics_host}:{settings.metrics_port}: {exc.strerror}"
                 " (set YUJING_METRICS_PORT, 0 turns it off)")
    # Every version published so far, before the first event is scored; later ones by the feed.
    try:
        schedule = ThresholdSchedule(settings.base_thresholds())
        reader = PublicationReader(settings)
        take_in(schedule, reader.read_all(), metrics)
    except ThresholdsError as exc:
        fail(f"YUJING_THRESHOLDS_FILE {settings.thresholds_file}: {str(exc).replace(chr(10), '; ')}")
    except KafkaUnavailable as exc:
        fail(str(exc))
    feed = PublicationFeed(reader)
    feed.start()
    faust_app = build_worker_app(settings, metrics, schedule, feed)
    run_worker(faust_app, loglevel)
