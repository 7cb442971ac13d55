"""The case service end to end: a real Kafka broker, a real PostgreSQL, real HTTP.

Warnings published to the disposal queue become cases; replays and restarts (of the service and
of PostgreSQL) neither lose nor duplicate anything; webhooks are signed and retried; resolutions
come back on the feedback topic.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer
from sqlalchemy import Engine, func, select

from cases import db, store
from cases.config import CaseSettings
from cases.schema import cases, outbox, warnings
from cases.service import CaseService, verify
from streams.case_desk_io import backlog
from tests.case_factories import warning_record
from tests.conftest import _free_port
from yujing.services.database import LocalPostgres
from yujing.services.processes import settings_env
from yujing.settings import Settings

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def history() -> list[dict[str, Any]]:
    """A month of warnings: a run-away, a chain collapsing together, a watch-only merchant."""
    return [
        warning_record("m-run", "2026-03-01", "raised", None, "yellow"),
        warning_record("m-run", "2026-03-04", "escalated", "yellow", "orange"),
        warning_record("m-run", "2026-03-09", "escalated", "orange", "red"),
        warning_record("c-1", "2026-03-02", "raised", None, "orange", chain_id="chain-7", name="美丽人生一店"),
        warning_record("c-2", "2026-03-05", "raised", None, "orange", chain_id="chain-7", name="美丽人生二店",
                       industry="beauty"),
        warning_record("c-3", "2026-03-06", "raised", None, "red", chain_id="chain-7", name="美丽人生三店",
                       industry="beauty"),
        warning_record("m-watch", "2026-03-03", "raised", None, "blue"),
        warning_record("m-watch", "2026-03-20", "cleared", "blue", "blue"),
    ]


def publish(settings: Settings, records: list[dict[str, Any]]) -> None:
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap, acks="all")
    for r in records:
        producer.send(settings.topics.warnings, key=r["merchant_id"].encode(), value=orjson.dumps(r))
    producer.flush()
    producer.close()


def wait_for(condition: Callable[[], bool], timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def count(engine: Engine, table: Any, *where: Any) -> int:
    try:
        with engine.begin() as conn:
            return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())
    except Exception:  # noqa: BLE001 - the database may be restarting
        return -1


class Receiver:
    """An outside system's webhook endpoint that fails its first ``failures`` requests."""

    def __init__(self, secret: str, failures: int) -> None:
        self.secret, self.failures, self.requests = secret, failures, []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({
                    "body": json.loads(body), "delivery": self.headers["X-Yujing-Delivery"],
                    "signed": verify(receiver.secret, self.headers["X-Yujing-Timestamp"], body,
                                     self.headers["X-Yujing-Signature"]),
                })
                failing = len(receiver.requests) <= receiver.failures
                self.send_response(503 if failing else 200)
                self.end_headers()
                self.wfile.write(b"busy" if failing else b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver("hotline-secret", failures=2)
    yield r
    r.close()


def case_settings(receiver: Receiver | None = None, **overrides: Any) -> CaseSettings:
    hooks = [{"name": "hotline", "url": receiver.url, "secret": receiver.secret}] if receiver else []
    return CaseSettings(
        consumer_group=f"cases-{os.urandom(4).hex()}", webhooks=hooks, webhook_backoff_seconds=0.2,
        webhook_max_attempts=4, poll_seconds=0.1, maintenance_seconds=0.5, **overrides,
    )


def test_warnings_become_cases_idempotently_under_replay(
    kafka_settings: Settings, database_url: str, receiver: Receiver
) -> None:
    db.migrate(database_url)
    engine = db.make_engine(database_url)
    records = history()
    publish(kafka_settings, records)
    service = CaseService(kafka_settings, case_settings(receiver), engine)
    service.start()
    try:
        wait_for(lambda: count(engine, warnings) == len(records), what="all warnings stored")
        with engine.begin() as conn:
            queue = store.list_cases(conn, status=["new", "assigned", "in_progress"])
        assert sorted((c["group_key"], c["level"], c["merchants"]) for c in queue) == [
            ("chain:chain-7", "red", 3), ("merchant:m-run", "red", 1),
        ]
        # The same warnings again (a producer retry, a worker replay): nothing changes.
        publish(kafka_settings, records)
        # Pushes: orange and red for each case, each retried through the receiver's two failures.
        wait_for(lambda: count(engine, outbox, outbox.c.status == "delivered") == 4, what="pushes delivered")
        assert count(engine, warnings) == len(records) and count(engine, cases) == 2
    finally:
        service.stop()
    # A second reader from the start of the topic (a fresh consumer group) changes nothing either.
    again = CaseService(kafka_settings, case_settings(receiver), engine)
    again.start()
    try:
        wait_for(lambda: again.records_read == 2 * len(records), what="replay read")
        assert again.ingested == 0 and count(engine, warnings) == len(records)
    finally:
        again.stop()
    assert count(engine, cases) == 2
    assert all(r["signed"] for r in receiver.requests)
    by_delivery: dict[str, int] = {}
    for r in receiver.requests:
        by_delivery[r["delivery"]] = by_delivery.get(r["delivery"], 0) + 1
    assert len(by_delivery) == 4 and sum(by_delivery.values()) == 6  # 2 failures + 4 successes
    assert sorted((r["body"]["event"], r["body"]["level"]) for r in receiver.requests[2:]) == [
        ("case.escalated", "red"), ("case.escalated", "red"), ("case.opened", "orange"), ("case.opened", "orange"),
    ]
    engine.dispose()


def test_failed_pushes_are_kept_visible_and_can_be_retried(kafka_settings: Settings, database_url: str) -> None:
    dead = Receiver("s", failures=10**6)
    db.migrate(database_url)
    engine = db.make_engine(database_url)
    publish(kafka_settings, [warning_record("m1", "2026-03-01", "raised", None, "red")])
    service = CaseService(kafka_settings, case_settings(dead), engine)
    service.start()
    try:
        wait_for(lambda: count(engine, outbox, outbox.c.status == "failed") == 1, what="push given up")
        assert len(dead.requests) == 4
        with engine.begin() as conn:
            [failed] = store.list_deliveries(conn, status="failed")
            assert failed["attempts"] == 4 and failed["last_error"].startswith("HTTP 503")
            store.add_user(conn, "chen", "supervisor")
            boss = store.get_user(conn, "chen")
            store.retry_delivery(conn, boss, failed["message_id"], now=failed["created_at"])  # type: ignore[arg-type]
        wait_for(lambda: len(dead.requests) >= 5, what="retried push")
    finally:
        service.stop()
        dead.close()
        engine.dispose()


def test_resolution_is_published_as_feedback(kafka_settings: Settings, database_url: str) -> None:
    db.migrate(database_url)
    engine = db.make_engine(database_url)
    publish(kafka_settings, [warning_record("m1", "2026-03-01", "raised", None, "orange", score=0.66)])
    service = CaseService(kafka_settings, case_settings(), engine)
    service.start()
    try:
        wait_for(lambda: count(engine, cases) == 1, what="case opened")
        with engine.begin() as conn:
            store.add_user(conn, "wang", "handler")
            wang = store.get_user(conn, "wang")
            [case] = store.list_cases(conn)
            store.act(conn, case["case_id"], wang, "take", now=case["opened_at"])  # type: ignore[arg-type]
            store.act(conn, case["case_id"], wang, "resolve", disposition="false_alarm",  # type: ignore[arg-type]
                      note="装修停业,已核实 renovation, verified", now=case["opened_at"],
                      feedback_topic=kafka_settings.topics.feedback)
        wait_for(lambda: count(engine, outbox, outbox.c.kind == "feedback", outbox.c.status == "delivered") == 1,
                 what="feedback published")
    finally:
        service.stop()
        engine.dispose()
    consumer = KafkaConsumer(kafka_settings.topics.feedback, bootstrap_servers=kafka_settings.bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=10_000)
    [record] = [r for r in consumer][:1]
    consumer.close()
    feedback = orjson.loads(record.value)
    assert record.key == b"m1"
    assert (feedback["disposition"], feedback["level"], feedback["case_id"]) == ("false_alarm", "orange", case["case_id"])


# -- restarts of each component -------------------------------------------------------------


def start_service(settings: Settings, database: str, cases: CaseSettings, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **settings_env(settings), "YUJING_DATABASE_URL": database,
           "YUJING_CASES_CONSUMER_GROUP": cases.consumer_group, "YUJING_CASES_PORT": str(cases.port),
           "YUJING_CASES_POLL_SECONDS": "0.2"}
    return subprocess.Popen([sys.executable, "-m", "yujing.cli.app", "cases", "serve"], env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        os.killpg(process.pid, sig)
        process.wait(30)


def test_service_restarts_lose_and_duplicate_nothing(
    kafka_settings: Settings, database_url: str, tmp_path: Path
) -> None:
    cs = case_settings(port=_free_port())
    engine = db.make_engine(database_url)
    records = [warning_record(f"m{i}", f"2026-03-{1 + i % 20:02d}", "raised", None, ("yellow", "orange", "red")[i % 3])
               for i in range(60)]
    publish(kafka_settings, records[:30])
    service = start_service(kafka_settings, database_url, cs, tmp_path / "cases.log")
    try:
        wait_for(lambda: count(engine, warnings) >= 10, timeout=90, what="first warnings stored")
        response = httpx.get(f"http://127.0.0.1:{cs.port}/healthz", timeout=5)
        assert response.json() == {"status": "ok"}
        stop(service, signal.SIGKILL)  # a crash, mid-stream
        publish(kafka_settings, records[30:])
        service = start_service(kafka_settings, database_url, cs, tmp_path / "cases.log")
        wait_for(lambda: count(engine, warnings) == 60, timeout=90, what="all warnings stored after the crash")
        stop(service)  # a graceful stop
        publish(kafka_settings, records)  # everything again
        service = start_service(kafka_settings, database_url, cs, tmp_path / "cases.log")
        wait_for(lambda: backlog(kafka_settings, cs.consumer_group) == 0, timeout=90,
                 what="the replay read to the end")
    finally:
        stop(service)
    assert count(engine, warnings) == 60
    assert count(engine, cases) == 60  # one per merchant, none twice
    engine.dispose()


def test_postgres_restart_loses_nothing(kafka_settings: Settings) -> None:
    home = Path(tempfile.mkdtemp(prefix="yujing-test-pg-restart-"))
    server = LocalPostgres(home=home, port=_free_port())
    server.start(timeout=90)
    try:
        db.migrate(server.url)
        engine = db.make_engine(server.url)
        service = CaseService(kafka_settings, case_settings(), engine)
        service.start()
        try:
            publish(kafka_settings, [warning_record("a1", "2026-03-01", "raised", None, "orange")])
            wait_for(lambda: count(engine, warnings) == 1, what="first warning")
            server.stop()
            publish(kafka_settings, [warning_record(f"b{i}", "2026-03-02", "raised", None, "red") for i in range(5)])
            time.sleep(4)  # the service meets the outage and waits
            server.start(timeout=90)
            wait_for(lambda: count(engine, warnings) == 6, timeout=90, what="warnings stored after the restart")
        finally:
            service.stop()
            engine.dispose()
        assert count(db.make_engine(server.url), cases) == 6
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


def test_kafka_restart_loses_nothing(database_url: str, tmp_path: Path) -> None:
    """The broker goes away and comes back (same data): the service reconnects and reads on."""
    from streams.topics import contract_topics
    from yujing.services.broker import LocalBroker

    broker = LocalBroker(home=tmp_path / "broker", cache_dir=Settings().cache_dir, port=_free_port(),
                         controller_port=_free_port())
    broker.start(timeout=120)
    try:
        settings = Settings(bootstrap_servers=broker.bootstrap, input_partitions=2)
        broker.ensure_topics(contract_topics(settings))
        db.migrate(database_url)
        engine = db.make_engine(database_url)
        service = CaseService(settings, case_settings(), engine)
        service.start()
        try:
            publish(settings, [warning_record("a1", "2026-03-01", "raised", None, "orange")])
            wait_for(lambda: count(engine, warnings) == 1, timeout=90, what="first warning")
            broker.stop()
            time.sleep(3)  # the service meets the outage
            broker.start(timeout=120)
            publish(settings, [warning_record(f"b{i}", "2026-03-02", "raised", None, "red") for i in range(5)])
            wait_for(lambda: count(engine, warnings) == 6, timeout=120, what="warnings after the broker restart")
        finally:
            service.stop()
            engine.dispose()
    finally:
        broker.stop()
