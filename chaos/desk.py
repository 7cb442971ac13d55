"""The case desk's side of a run: ``yujing cases serve`` reading the warnings as the worker
publishes them, pushing webhooks to the runner's receiver; what its database holds afterwards;
and the reference desk: the same warnings read once each, in the order the live desk first read
them, without a fault, into a database of its own.

Reading in the live desk's order matters for chains: their stores' warnings come from several
partitions, and which of them opens the chain's case (and so its id, and whether a push at
orange still follows one at red) depends on the order they are read in. The reference takes the
order as given and asks only what the faults changed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from cases import db, store
from cases.config import CaseSettings
from cases.schema import cases, outbox, warnings
from chaos.compare import DeskState
from chaos.receiver import WebhookReceiver
from chaos.stack import Stack, free_port
from yujing.services.processes import start_case_service

RECEIVER_NAME = "receiver"
SECRET = "chaos-secret"
# Yellow and up: more pushes in flight while the faults fall (the default is orange and red).
PUSH_LEVELS = ["yellow", "orange", "red"]


def desk_options(receiver_url: str) -> dict[str, Any]:
    """The case settings of the live desk and the reference desk alike."""
    return {
        "consumer_group": "chaos-cases",
        "push_levels": PUSH_LEVELS,
        "webhooks": [{"name": RECEIVER_NAME, "url": receiver_url, "secret": SECRET, "levels": PUSH_LEVELS}],
        "poll_seconds": 0.2,
        "webhook_backoff_seconds": 0.5,
        "webhook_backoff_max_seconds": 5.0,
        "webhook_max_attempts": 10_000,  # never give up within a run: a gave-up push would be "lost"
        # Longer than the receiver holds a push, so the service is killed waiting for the answer.
        "webhook_timeout_seconds": 180.0,
        "maintenance_seconds": 5.0,
    }


def _env(options: dict[str, Any], port: int) -> dict[str, str]:
    env = {f"YUJING_CASES_{k.upper()}": (json.dumps(v) if isinstance(v, list) else str(v)) for k, v in options.items()}
    return {**env, "YUJING_CASES_PORT": str(port), "YUJING_CASES_PUBLIC_URL": f"http://127.0.0.1:{port}"}


class LiveDesk:
    """The case service process, killed and restarted by the runner."""

    def __init__(self, stack: Stack, receiver: WebhookReceiver, log: Path) -> None:
        self.stack, self.receiver, self.log = stack, receiver, log
        self.options = desk_options(receiver.url)
        self.process: subprocess.Popen[bytes] | None = None
        self.killed_in_delivery: str | None = None  # the key of the push in flight at the kill
        self._engine: Engine | None = None

    def start(self) -> None:
        self.process = start_case_service(self.stack.settings, self.log, _env(self.options, free_port()))

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._engine is not None:
            self._engine.dispose()

    def kill_if_delivering(self) -> bool:
        """If the receiver holds a push open, SIGKILL the service now, let the push be answered
        (to a dead socket) and start the service again. Returns whether it did."""
        if not self.receiver.holding.is_set() or self.killed_in_delivery is not None:
            return False
        self.killed_in_delivery = self.receiver.held_key
        self.kill()
        self.receiver.release()
        self.start()
        return True

    def restart_if_dead(self) -> bool:
        """A service that exited on its own is started again (and reported)."""
        if self.process is not None and self.process.poll() is not None:
            self.start()
            return True
        return False

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = db.make_engine(self.stack.settings.database)
        return self._engine

    def settled(self, published: set[str]) -> bool:
        """Every published warning stored and no push pending or held."""
        if self.receiver.holding.is_set():
            return False
        try:
            with self.engine.begin() as conn:
                stored = set(conn.execute(select(warnings.c.warning_id)).scalars())
                pending = conn.execute(select(outbox.c.message_id).where(
                    outbox.c.kind == "webhook", outbox.c.status == "pending").limit(1)).first()
        except Exception:  # noqa: BLE001 - not migrated yet, or PostgreSQL restarting: not settled
            return False
        return published <= stored and pending is None

    def wait_settled(self, published: set[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.kill_if_delivering()
            self.restart_if_dead()
            if self.settled(published):
                return True
            time.sleep(1)
        return False


def read_state(engine: Engine) -> tuple[DeskState, list[str]]:
    """The desk's cases, warnings and webhook outbox, and the warning ids in the order it first
    read them (by the time it stored them; the partition and offset break ties)."""
    with engine.begin() as conn:
        case_rows = conn.execute(select(cases.c.case_id, cases.c.group_key)).all()
        warning_rows = conn.execute(select(warnings.c.warning_id, warnings.c.case_id).order_by(
            warnings.c.received_at, warnings.c.source_partition, warnings.c.source_offset)).all()
        hooks = conn.execute(select(outbox.c.dedup_key, outbox.c.status).where(outbox.c.kind == "webhook")).all()
    state = DeskState(
        cases={r.case_id: r.group_key for r in case_rows},
        warnings={r.warning_id: r.case_id for r in warning_rows},
        webhooks={r.dedup_key: r.status for r in hooks},
    )
    return state, [r.warning_id for r in warning_rows]


def reference_desk(server_url: str, reference: list[dict[str, Any]], order: list[str], receiver_url: str) -> DeskState:
    """The reference warnings read once each into a new database ``chaos_reference`` on the
    run's PostgreSQL: first those the live desk read, in its order, then any it never read."""
    import psycopg

    from yujing.services.postgres_dist import libpq_url

    with psycopg.connect(libpq_url(server_url), autocommit=True, connect_timeout=10) as conn:
        conn.execute("DROP DATABASE IF EXISTS chaos_reference")
        conn.execute("CREATE DATABASE chaos_reference")
    from sqlalchemy.engine import make_url

    url = make_url(server_url).set(database="chaos_reference").render_as_string(hide_password=False)
    db.migrate(url)
    engine = db.make_engine(url)
    settings = CaseSettings(**desk_options(receiver_url))
    policy, response = settings.alert_policy(), settings.response_policy()
    targets = [(w.name, list(w.levels)) for w in settings.webhooks]
    by_id = {w["warning_id"]: w for w in reference}
    rank = {warning_id: n for n, warning_id in enumerate(order)}
    ordered = sorted(by_id, key=lambda i: (rank.get(i, len(rank)), by_id[i]["raised_at"], i))
    try:
        for warning_id in ordered:
            with engine.begin() as conn:
                store.ingest_warning(conn, by_id[warning_id], policy=policy, response=response,
                                     webhook_targets=targets, now=datetime.now(UTC))
        state, _ = read_state(engine)
    finally:
        engine.dispose()
    return state
