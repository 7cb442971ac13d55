"""Shared fixtures. Tests marked ``kafka`` talk to a real Apache Kafka broker: the one at
``YUJING_TEST_BOOTSTRAP`` if set (``.ci/run`` starts one), otherwise a broker this session
fetches and starts itself on free ports, and stops at the end.

Tests marked ``postgres`` talk to a real PostgreSQL server the same way: the one at
``YUJING_TEST_DATABASE_URL`` if set (``deploy/local/test.sh`` starts one), otherwise a cluster
this session creates in a temporary directory on a free port and stops at the end. Each test
asking for ``database_url`` gets a fresh, empty database of its own, dropped afterwards."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from streams.topics import TopicSpec, contract_topics
from yujing.services.broker import LocalBroker
from yujing.services.database import LocalPostgres, scratch_database
from yujing.services.processes import stop_worker
from yujing.settings import Settings, TopicNames


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("YUJING_TEST_BOOTSTRAP")
    if given:
        yield given
        return
    broker = LocalBroker(
        home=tmp_path_factory.mktemp("broker-home"),
        cache_dir=Settings().cache_dir,
        port=_free_port(),
        controller_port=_free_port(),
    )
    broker.start(timeout=90)
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use a PostgreSQL fixture are marked ``postgres`` without saying so, so
    ``-m "not postgres"`` leaves out every test that needs the server."""
    for item in items:
        if {"postgres_url", "database_url"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """SQLAlchemy URL of a PostgreSQL database whose role may create databases."""
    given = os.environ.get("YUJING_TEST_DATABASE_URL")
    if given:
        yield given
        return
    # Not under pytest's tmp_path: its base directory is private (0700), and under root the
    # server runs as the postgres user, which must be able to reach its data directory.
    home = Path(tempfile.mkdtemp(prefix="yujing-test-postgres-"))
    server = LocalPostgres(home=home, port=_free_port())
    try:
        server.start(timeout=90)
        yield server.url
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def database_url(postgres_url: str) -> Iterator[str]:
    """SQLAlchemy URL of a new, empty database for this test alone, dropped afterwards."""
    with scratch_database(postgres_url, prefix="test") as url:
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A SQLAlchemy engine on this test's scratch database, migrated to the case desk's schema."""
    from cases import db

    db.migrate(database_url)
    engine = db.make_engine(database_url)
    yield engine
    engine.dispose()


def isolated_settings(bootstrap: str, home: Path) -> Settings:
    """Settings for an isolated run: its own topics, consumer group and state on the broker."""
    run = f"t{uuid.uuid4().hex[:8]}"
    topics = TopicNames(
        transactions=f"{run}.transactions",
        complaints=f"{run}.complaints",
        merchants=f"{run}.merchants",
        warnings=f"{run}.warnings",
        deadletter=f"{run}.deadletter",
        feedback=f"{run}.feedback",
        merchant_days=f"{run}.merchant-days",
        thresholds=f"{run}.thresholds",
    )
    settings = Settings(
        bootstrap_servers=bootstrap,
        app_id=f"{run}-worker",
        topics=topics,
        home=home,
        input_partitions=4,
        metrics_port=0,  # several workers share the host; the metrics tests pick their own ports
    )
    host, port = bootstrap.rsplit(":", 1)
    LocalBroker(home=home / "unused", cache_dir=settings.cache_dir, host=host, port=int(port)).ensure_topics(
        contract_topics(settings)
    )
    return settings


@pytest.fixture
def kafka_settings(kafka_bootstrap: str, tmp_path: Path) -> Settings:
    return isolated_settings(kafka_bootstrap, tmp_path / "home")


@pytest.fixture
def worker_processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Worker processes a test starts; any still running at teardown are stopped."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        stop_worker(process, timeout=30)


__all__ = ["TopicSpec"]
