"""The fault-injection run: a year of events through a worker that is killed (SIGKILL) at drawn
points and restarted each time, a broker restart mid-run, a case service reading the warnings as
they come with a PostgreSQL restart under it and a SIGKILL while a webhook is in flight; then
everything that came out, against the replay reference.

Everything runs on the run's own broker and PostgreSQL (:mod:`chaos.stack`) in a temporary home,
removed afterwards unless ``keep`` names a directory to keep it in (logs: ``<home>/logs``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import orjson
from kafka.errors import KafkaError

from alerts.threshold_history import ThresholdSchedule
from chaos.compare import Check, DeskState, compare_cases, compare_warnings, compare_webhooks
from chaos.desk import LiveDesk, read_state, reference_desk
from chaos.receiver import WebhookReceiver
from chaos.schedule import (
    HOLD_WEBHOOK,
    KILL_CASES_IN_DELIVERY,
    KILL_WORKER,
    RESTART_BROKER,
    RESTART_POSTGRES,
    Fault,
    fault_schedule,
)
from chaos.stack import Stack, own_stack
from engine.replay import iter_events, run_backtest
from streams.clients import InputProgress, group_progress, producer, read_records
from streams.topics import input_topics
from yujing.services.processes import start_worker, stop_worker
from yujing.settings import Settings
from yujing.simulator import SimulationConfig, simulate

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ChaosOptions:
    merchants: int = 120
    days: int = 365
    seed: int = 16
    kills: int = 10
    broker_restarts: int = 1
    postgres_restarts: int = 1
    partitions: int = 4
    events_dir: Path | None = None  # given events instead of a simulated world
    timeout: float = 3600.0  # for the worker to consume everything, faults included
    # Faust's broker_session_timeout (default 60 s): how long the group waits for a killed worker
    # before its partitions go to the restarted one. Each SIGKILL costs one such wait; the run's
    # shorter one keeps ten kills within minutes. What is lost or duplicated does not depend on it.
    session_timeout: float = 10.0
    keep: Path | None = None  # keep the run's home (services' data, logs) here


@dataclass(frozen=True)
class Injected:
    kind: str
    planned: float | None  # the drawn share of the input (None: not planned, e.g. an exit on its own)
    progress: float  # the share committed when it was injected
    seconds: float  # into the worker phase
    detail: str = ""


@dataclass
class ChaosReport:
    options: ChaosOptions
    events: int = 0
    faults: list[Injected] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def count(self, kind: str) -> int:
        return sum(f.kind == kind for f in self.faults)


def publish(events_dir: Path, settings: Settings) -> int:
    """Profiles and complaints first, then the transactions, as the end-to-end tests publish: a
    replay at full speed must not read a profile after the transactions of the next day
    (tests/test_end_to_end.py, ``publish_with_redeliveries``)."""
    records = list(iter_events(events_dir))
    ordered = [r for r in records if r[0] != "transactions"] + [r for r in records if r[0] == "transactions"]
    topics = input_topics(settings)
    sink = producer(settings)
    try:
        for kind, record in ordered:
            sink.send(topics[kind], key=record.merchant_id.encode(), value=orjson.dumps(record.model_dump(mode="json")),
                      timestamp_ms=int(record.occurred_at.timestamp() * 1000))
        sink.flush()
    finally:
        sink.close()
    return len(ordered)


def reference_warnings(events_dir: Path, settings: Settings) -> list[dict]:
    """``yujing backtest`` with the worker's settings: the warnings a run without faults gives."""
    result = run_backtest(events_dir, partitions=settings.input_partitions,
                          allowed_lateness=timedelta(hours=settings.allowed_lateness_hours),
                          schedule=ThresholdSchedule(settings.base_thresholds()))
    return [w.model_dump(mode="json") for w in result.warnings]


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)


class WorkerPhase:
    """The worker consuming everything while the faults of the schedule fall."""

    def __init__(self, stack: Stack, desk: LiveDesk, receiver: WebhookReceiver, say: Progress,
                 session_timeout: float) -> None:
        self.stack, self.desk, self.receiver, self.say = stack, desk, receiver, say
        # Faust reads these from the environment; heartbeats well inside the session.
        self.faust_env = {"BROKER_SESSION_TIMEOUT": f"{session_timeout:g}",
                          "BROKER_HEARTBEAT_INTERVAL": f"{max(session_timeout / 10, 0.5):g}"}
        self.log = stack.home / "logs" / "worker.log"
        self.injected: list[Injected] = []
        self.progress = 0.0
        self.began = time.monotonic()

    def _start(self) -> subprocess.Popen[bytes]:
        return start_worker(self.stack.settings, self.log, self.faust_env)

    def record(self, kind: str, planned: float | None, detail: str = "") -> None:
        seconds = time.monotonic() - self.began
        self.injected.append(Injected(kind, planned, self.progress, seconds, detail))
        self.say(f"{seconds:6.0f} s  {self.progress:6.1%}  {kind}{f' ({detail})' if detail else ''}")

    def _inject(self, fault: Fault, worker: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
        if fault.kind == KILL_WORKER:
            _kill(worker)
            self.record(fault.kind, fault.at, f"pid {worker.pid}")
            return self._start()
        if fault.kind == RESTART_BROKER:
            away = self.stack.restart_broker()
            self.record(fault.kind, fault.at, f"away {away:.0f} s")
        elif fault.kind == RESTART_POSTGRES:
            away = self.stack.restart_postgres()
            self.record(fault.kind, fault.at, f"away {away:.0f} s")
        elif fault.kind == HOLD_WEBHOOK:
            self.receiver.arm()
        return worker

    def _watch_others(self, worker: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
        if self.desk.kill_if_delivering():
            self.record(KILL_CASES_IN_DELIVERY, None, f"push {self.desk.killed_in_delivery}")
        if self.desk.restart_if_dead():
            self.record("case service exited by itself (restarted)", None)
        if worker.poll() is not None:
            self.record("worker exited by itself (restarted)", None, f"exit code {worker.returncode}")
            return self._start()
        return worker

    def run(self, schedule: list[Fault], timeout: float) -> bool:
        """Returns whether the worker consumed everything within ``timeout``."""
        settings = self.stack.settings
        pending = list(schedule)
        input_progress = InputProgress(settings)
        worker = self._start()
        looks, last_total, last_look, last_said = 0, -1, 0.0, 0.0
        try:
            while time.monotonic() - self.began < timeout:
                seen = input_progress()
                self.progress = seen if seen is not None else self.progress
                while pending and self.progress >= pending[0].at:
                    worker = self._inject(pending.pop(0), worker)
                worker = self._watch_others(worker)
                now = time.monotonic()
                if not pending and self.progress >= 1.0 and now - last_look >= 3:
                    # Done when the chain stage's topics stopped growing too (as the end-to-end tests wait).
                    try:
                        fraction, total = group_progress(settings)
                    except KafkaError:
                        fraction, total = 0.0, -1
                    looks = looks + 1 if fraction >= 1.0 and total == last_total else 0
                    last_total, last_look = (total if fraction >= 1.0 else -1), now
                    if looks >= 2:
                        return True
                if now - last_said >= 15:
                    self.say(f"{now - self.began:6.0f} s  {self.progress:6.1%}  consumed")
                    last_said = now
                time.sleep(1.0)
            return False
        finally:
            input_progress.close()
            code = stop_worker(worker)
            if code != 0:
                self.say(f"worker stopped with exit code {code}; see {self.log}")


def run_chaos(options: ChaosOptions, say: Progress = lambda _: None) -> ChaosReport:
    began = time.monotonic()
    home = Path(tempfile.mkdtemp(prefix="yujing-chaos-"))
    report = ChaosReport(options)
    try:
        _run(options, home, report, say)
    finally:
        report.seconds = time.monotonic() - began
        if options.keep is not None:
            shutil.copytree(home, options.keep, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.sock", ".s.PGSQL*"))
        shutil.rmtree(home, ignore_errors=True)
    return report


def _timed(report: ChaosReport, phase: str, began: float) -> float:
    now = time.monotonic()
    report.phases[phase] = now - began
    return now


def _run(options: ChaosOptions, home: Path, report: ChaosReport, say: Progress) -> None:
    mark = time.monotonic()
    events_dir = options.events_dir
    if events_dir is None:
        events_dir = home / "events"
        say(f"simulating {options.merchants} merchants x {options.days} days (seed {options.seed})")
        simulate(SimulationConfig(merchants=options.merchants, days=options.days, seed=options.seed)).write(events_dir)
    stack = own_stack(home, partitions=options.partitions)
    say("replay reference (backtest)")
    reference = reference_warnings(events_dir, stack.settings)
    mark = _timed(report, "simulation and replay reference", mark)
    say(f"{len(reference)} warnings in the reference; starting the run's own broker and PostgreSQL")
    stack.start()
    receiver = WebhookReceiver("chaos-secret")
    desk = LiveDesk(stack, receiver, home / "logs" / "cases.log")
    try:
        report.events = publish(events_dir, stack.settings)
        mark = _timed(report, "services and publishing", mark)
        say(f"published {report.events} records; worker and case service under faults")
        desk.start()
        phase = WorkerPhase(stack, desk, receiver, say, options.session_timeout)
        schedule = fault_schedule(options.seed, kills=options.kills, broker_restarts=options.broker_restarts,
                                  postgres_restarts=options.postgres_restarts)
        consumed = phase.run(schedule, options.timeout)
        mark = _timed(report, "worker under faults", mark)
        observed = list(read_records(stack.settings.topics.warnings, stack.settings, idle_seconds=4))
        published = {w["warning_id"] for w in observed}
        say(f"{len(observed)} warning records on the topic; waiting for the case desk to settle")
        settled = desk.wait_settled(published, timeout=300)
        if desk.killed_in_delivery is not None and not any(f.kind == KILL_CASES_IN_DELIVERY for f in phase.injected):
            phase.record(KILL_CASES_IN_DELIVERY, None, f"push {desk.killed_in_delivery}")
        report.faults = phase.injected
        live, order = read_state(desk.engine)
        expected = reference_desk(stack.settings.database, reference, order, receiver.url)
        mark = _timed(report, "case desk settling and reference desk", mark)
        report.checks = _checks(options, report, consumed, settled, reference, observed, live, expected, receiver)
    finally:
        desk.stop()
        receiver.close()
        stack.stop()


def _checks(options: ChaosOptions, report: ChaosReport, consumed: bool, settled: bool, reference: list[dict],
            observed: list[dict], live: DeskState, expected: DeskState, receiver: WebhookReceiver) -> list[Check]:
    planned = {KILL_WORKER: options.kills, RESTART_BROKER: options.broker_restarts,
               RESTART_POSTGRES: options.postgres_restarts, KILL_CASES_IN_DELIVERY: 1}
    missing = {kind: n - report.count(kind) for kind, n in planned.items() if report.count(kind) < n}
    warnings = compare_warnings(reference, observed)
    cases = compare_cases(expected, live, {w["warning_id"] for w in observed})
    hooks = compare_webhooks(expected.webhooks, live.webhooks, receiver.received())
    return [
        Check("planned faults not injected", sum(missing.values()), detail=", ".join(f"{k} x{n}" for k, n in missing.items())),
        Check("worker did not consume everything in time", int(not consumed)),
        Check("case desk did not settle in time", int(not settled)),
        *warnings.checks(), *cases.checks(), *hooks.checks(),
    ]
