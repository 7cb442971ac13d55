"""The run's own services: a Kafka broker and a PostgreSQL cluster on free ports in the run's
temporary home, never the developer's (9092/5532) or the test session's (9392/9393/5533), which
other work may be using while this one restarts its own."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path

from streams.topics import contract_topics
from yujing.services.broker import LocalBroker
from yujing.services.database import LocalPostgres
from yujing.settings import Settings

RESERVED_PORTS = frozenset({9092, 9093, 9392, 9393, 5532, 5533})


def free_port() -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in RESERVED_PORTS:
            return port


@dataclass
class Stack:
    home: Path
    broker: LocalBroker
    postgres: LocalPostgres
    settings: Settings

    def start(self) -> None:
        self.broker.start(timeout=120)
        self.broker.ensure_topics(contract_topics(self.settings))
        self.postgres.start(timeout=120)

    def stop(self) -> None:
        self.broker.stop()
        self.postgres.stop()

    def restart_broker(self) -> float:
        """Stop the broker (SIGTERM, as an operator or an orchestrator would) and start it again;
        returns the seconds it was away."""
        began = time.monotonic()
        self.broker.stop()
        self.broker.start(timeout=120)
        return time.monotonic() - began

    def restart_postgres(self, down_seconds: float = 3.0) -> float:
        began = time.monotonic()
        self.postgres.stop()
        time.sleep(down_seconds)  # long enough that the desk's next statements fail, not only its sockets
        self.postgres.start(timeout=120)
        return time.monotonic() - began


def own_stack(home: Path, *, partitions: int, stall_seconds: float = 60.0) -> Stack:
    """A stack under ``home`` (not started). The cache of fetched Kafka jars is the machine's."""
    home = home.resolve()
    broker = LocalBroker(home=home / "kafka", cache_dir=Settings().cache_dir, port=free_port(),
                         controller_port=free_port())
    postgres = LocalPostgres(home=home / "pg", port=free_port())
    settings = Settings(
        bootstrap_servers=broker.bootstrap, app_id="chaos-worker", home=home / "worker",
        input_partitions=partitions, metrics_port=0, database_url=postgres.url, stall_seconds=stall_seconds,
    )
    return Stack(home=home, broker=broker, postgres=postgres, settings=settings)
