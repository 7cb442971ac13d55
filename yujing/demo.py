"""``yujing demo``: a fresh local broker, a worker, the case desk and the simulator, with
warnings and cases shown live.

The demo runs on its own broker and PostgreSQL (own ports and data under ``<home>/demo``), wiped
at the start, so it can be run again and again and never touches a broker or database you use
otherwise. The case service pushes new orange/red cases to a stand-in for the 12345 hotline's
work-order system, a small signed-webhook receiver inside the demo.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import orjson
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from streams.case_desk_io import backlog
from streams.clients import TopicTail, group_progress
from streams.topics import contract_topics, input_topics
from yujing.services.broker import broker_from_settings
from yujing.services.database import LocalPostgres, postgres_from_settings
from yujing.services.processes import start_case_service, start_worker, stop_worker
from yujing.services.prometheus import LocalPrometheus, PrometheusError
from yujing.settings import Settings
from yujing.simulator import Simulation, SimulationConfig, simulate

LEVEL_STYLE = {"blue": "bold blue", "yellow": "bold yellow", "orange": "bold dark_orange", "red": "bold red"}
LEVEL_ZH = {"blue": "蓝", "yellow": "黄", "orange": "橙", "red": "红"}


@dataclass
class DemoState:
    warnings: list[dict] = field(default_factory=list)
    produced: int = 0
    producing: bool = True
    produce_error: str | None = None
    started: float = field(default_factory=time.monotonic)
    cases: Counter = field(default_factory=Counter)  # open cases by level
    hotline_orders: list[dict] = field(default_factory=list)  # pushes received, signature checked
    metrics: list[str] = field(default_factory=list)  # what Prometheus saw, read at the end


DEMO_STAFF = (  # username, role, display name; every password is "demo"
    ("chen", "supervisor", "陈主任"),
    ("wang", "handler", "王芳"),
    ("li", "handler", "李强"),
    ("zhao", "viewer", "赵监管"),
)
DEMO_PASSWORD = "demo"


class HotlineReceiver:
    """A stand-in for the 12345 hotline's work-order system: accepts signed case pushes."""

    def __init__(self, secret: str, orders: list[dict]) -> None:
        from cases.service import verify

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                ok = verify(secret, self.headers.get("X-Yujing-Timestamp", ""), body,
                            self.headers.get("X-Yujing-Signature", ""))
                if ok:
                    orders.append(json.loads(body))
                self.send_response(200 if ok else 401)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/work-orders"
        threading.Thread(target=self.server.serve_forever, name="hotline", daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def demo_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "home": settings.home / "demo",
            "broker_port": settings.broker_port + 100,
            "controller_port": settings.controller_port + 100,
            "bootstrap_servers": None,
            "postgres_port": settings.postgres_port + 100,
            "database_url": None,
            "app_id": "yujing-demo",
            "metrics_port": settings.metrics_port + 100,
        }
    )


CASE_PORT = 8570
PROMETHEUS_PORT = 9590
# What the demo reads back from Prometheus at the end (the panels' and alert rules' metrics).
METRICS_SUMMARY = (
    ("input records consumed", 'sum(yujing_events_consumed_total)'),
    ("dead-lettered", 'sum(yujing_events_deadlettered_total)'),
    ("duplicates ignored", 'sum(yujing_events_duplicate_total)'),
    ("warnings sent", 'sum(yujing_warnings_total)'),
    ("merchants at orange or red now", 'sum(yujing_active_warnings{level=~"orange|red"})'),
    ("processing per record, p95 (ms)",
     '1000 * histogram_quantile(0.95, sum by (le) (rate(yujing_event_processing_seconds_bucket[10m])))'),
    ("open cases", 'max(sum(yujing_cases{state=~"new|assigned|in_progress"}))'),
    ("merchant-days in the drill-down history", 'sum(yujing_merchant_days_recorded_total)'),
    ("pipeline alerts firing", 'count(ALERTS{alertstate="firing"}) or vector(0)'),
)


def prepare_case_desk(demo: Settings, towns: list[str]) -> None:
    """A fresh case database with the demo staff; new cases routed to the two handlers by town."""
    from cases import db, store
    from cases.service import utcnow

    db.migrate(demo.database)
    engine = db.make_engine(demo.database)
    try:
        with engine.begin() as conn:
            for username, role, name in DEMO_STAFF:
                store.add_user(conn, username, role, display_name=name, password=DEMO_PASSWORD)
            chen = store.get_user(conn, "chen")
            assert chen is not None
            for i, town in enumerate(sorted(towns)):
                store.add_routing_rule(conn, chen, ("wang", "li")[i % 2], district=town, industry=None, now=utcnow())
    finally:
        engine.dispose()


def open_cases(demo: Settings) -> Counter:
    from sqlalchemy import func, select

    from cases import db
    from cases.schema import cases

    engine = db.make_engine(demo.database)
    try:
        with engine.begin() as conn:
            rows = conn.execute(select(cases.c.level, func.count()).where(
                cases.c.status.in_(("new", "assigned", "in_progress"))).group_by(cases.c.level))
            return Counter({level or "cleared": n for level, n in rows})
    finally:
        engine.dispose()


def _table(title: str, warnings: list[dict], labels: dict[str, dict]) -> Table:
    table = Table(title=title, title_justify="left", expand=True)
    for column in ("raised_at (event time)", "merchant", "town", "industry", "transition", "level", "score", "why (zh)", "scenario (label)"):
        table.add_column(column, overflow="fold")
    for w in warnings:
        label = labels.get(w["merchant_id"], {})
        reason = w["indicators"][0]["explanation_zh"] if w["indicators"] else ""
        table.add_row(
            w["raised_at"][:16].replace("T", " "),
            w["merchant_id"][-8:],
            w.get("district") or "",
            w.get("industry") or "",
            w["transition"],
            Text(f"{LEVEL_ZH[w['level']]} {w['level']}", style=LEVEL_STYLE[w["level"]]),
            f"{w['score']:.2f}",
            reason,
            label.get("scenario", ""),
        )
    return table


def _render(state: DemoState, labels: dict[str, dict]) -> Group:
    rising = [w for w in state.warnings if w["transition"] in ("raised", "escalated")]
    counts = Counter(w["level"] for w in rising)
    elapsed = time.monotonic() - state.started
    status = "simulating" if state.producing else "simulation published"
    header = Text.assemble(
        ("yujing 预警 demo  ", "bold"),
        f"{elapsed:5.0f} s  {status}: {state.produced:,} records  warnings raised/escalated: ",
        *[(f"{LEVEL_ZH[lv]}{lv} {counts.get(lv, 0)}  ", LEVEL_STYLE[lv]) for lv in LEVEL_STYLE],
    )
    urgent = [w for w in rising if w["level"] in ("orange", "red")]
    desk = Text.assemble(
        ("案件 case desk  ", "bold"),
        f"open cases {sum(state.cases.values())}: ",
        *[(f"{LEVEL_ZH[lv]} {state.cases.get(lv, 0)}  ", LEVEL_STYLE[lv]) for lv in reversed(LEVEL_STYLE)],
        f"已解除 cleared {state.cases.get('cleared', 0)}  ",
        f"· pushed to the 12345 work-order system: {len(state.hotline_orders)}  ",
        (f"· inbox http://127.0.0.1:{CASE_PORT}/inbox (wang / {DEMO_PASSWORD})", "dim"),
        (f" · Prometheus http://127.0.0.1:{PROMETHEUS_PORT}", "dim"),
    )
    return Group(
        header,
        desk,
        _table("橙/红 预警 orange and red (latest)", urgent[-10:], labels),
        _table("全部 all transitions (latest)", state.warnings[-8:], labels),
    )


FEED_RECORDS_PER_SECOND = 1500.0
SETTLED_SECONDS = 30.0


def read_metrics(prometheus: LocalPrometheus) -> list[str]:
    """The end-of-demo lines from Prometheus, after one more scrape of the final counts."""
    time.sleep(prometheus.scrape_seconds + 1)
    lines = []
    for label, promql in METRICS_SUMMARY:
        try:
            value = prometheus.value(promql)
        except (PrometheusError, httpx.HTTPError) as exc:
            lines.append(f"{label}: query failed ({exc})")
            continue
        lines.append(f"{label}: {'no data' if value is None else f'{value:,.1f}'.removesuffix('.0')}")
    return lines


def run_demo(
    settings: Settings,
    *,
    merchants: int,
    days: int,
    seed: int,
    duration: float,
    keep_running: bool,
    log: object,
) -> DemoState:
    """Run the whole path; returns what was seen. ``log`` is a callable for progress lines."""
    demo = demo_settings(settings)
    broker = broker_from_settings(demo)
    broker.wipe()  # every demo starts from empty topics
    log(f"starting a fresh Kafka {demo.kafka_version} broker on {broker.bootstrap} ...")  # type: ignore[operator]
    status = broker.start(timeout=120)
    broker.ensure_topics(contract_topics(demo))
    log(f"broker ready in {status.elapsed or 0:.1f} s; starting the worker")  # type: ignore[operator]
    worker_log = Path(demo.home) / "worker.log"
    worker_log.unlink(missing_ok=True)
    worker = start_worker(demo, worker_log)

    simulation = simulate(SimulationConfig(merchants=merchants, days=days, seed=seed))
    labels = {label["merchant_id"]: label for label in simulation.labels}
    state = DemoState()
    desk = start_case_desk(demo, simulation.labels, state, log)
    prometheus = start_prometheus(demo, log)
    producer = threading.Thread(target=feed, args=(simulation, demo, state), name="simulator", daemon=True)
    producer.start()
    consumer = TopicTail(demo.bootstrap, demo.topics.warnings, demo.kafka_security)
    try:
        watch(demo, state, labels, consumer, worker, duration)
        state.cases = open_cases(demo)
        if prometheus is not None and worker.poll() is None:
            state.metrics = read_metrics(prometheus)
    finally:
        consumer.close()
        if worker.poll() is None:
            stop_worker(worker)
    try:
        wind_down(state, worker, worker_log, desk, keep_running, log)
    finally:
        stop_worker(desk.service)
        if prometheus is not None:
            prometheus.stop()
        desk.hotline.close()
        desk.database.stop()
        broker.stop()
    return state


@dataclass
class CaseDesk:
    """The demo's case desk: its database, the service (a process) and the 12345 stand-in it pushes to."""

    database: LocalPostgres
    hotline: HotlineReceiver
    service: subprocess.Popen[bytes]
    log_path: Path


def start_case_desk(demo: Settings, labels: list[dict], state: DemoState, log: object) -> CaseDesk:
    """A fresh PostgreSQL with the demo staff, and the case service pushing to the 12345 stand-in."""
    database = postgres_from_settings(demo)
    database.stop()
    shutil.rmtree(database.pg_dir, ignore_errors=True)  # every demo starts with no cases
    log(f"starting a fresh PostgreSQL on {database.address} and the case desk on port {CASE_PORT} ...")  # type: ignore[operator]
    database.start(timeout=120)
    prepare_case_desk(demo, sorted({label.get("district") or "" for label in labels} - {""}))
    secret = secrets.token_urlsafe(16)
    hotline = HotlineReceiver(secret, state.hotline_orders)
    case_log = Path(demo.home) / "cases.log"
    case_log.unlink(missing_ok=True)
    service = start_case_service(demo, case_log, {
        "YUJING_CASES_PORT": str(CASE_PORT),
        "YUJING_CASES_PUBLIC_URL": f"http://127.0.0.1:{CASE_PORT}",
        "YUJING_CASES_CONSUMER_GROUP": "yujing-demo-cases",
        "YUJING_CASES_SESSION_SECRET": secrets.token_urlsafe(32),
        "YUJING_CASES_WEBHOOKS": json.dumps([{"name": "hotline-12345", "url": hotline.url, "secret": secret}]),
    })
    return CaseDesk(database, hotline, service, case_log)


def start_prometheus(demo: Settings, log: object) -> LocalPrometheus | None:
    """A fresh Prometheus scraping the worker and the case desk; None if it cannot run here."""
    prometheus = LocalPrometheus(Path(demo.home) / "prometheus", PROMETHEUS_PORT, {
        "yujing-worker": f"127.0.0.1:{demo.metrics_port}", "yujing-cases": f"127.0.0.1:{CASE_PORT}",
    })
    shutil.rmtree(prometheus.home, ignore_errors=True)
    try:
        prometheus.start()
        log(f"Prometheus scraping the worker and the case desk: http://127.0.0.1:{PROMETHEUS_PORT}")  # type: ignore[operator]
    except PrometheusError as exc:
        log(f"no metrics this time: {exc}")  # type: ignore[operator]
        return None
    return prometheus


def feed(simulation: Simulation, demo: Settings, state: DemoState) -> None:
    """The simulation onto the input topics (in the simulator thread)."""
    try:
        # A steady feed, as platforms send it, rather than a year dumped at once: the worker
        # keeps up and days close (and warnings appear) as the year unfolds.
        counts = simulation.produce(demo.bootstrap, input_topics(demo), progress=False,
                                    records_per_second=FEED_RECORDS_PER_SECOND, security=demo.kafka_security)
        state.produced = sum(counts.values())
    except Exception as exc:  # shown on screen; the demo goes on with what was sent
        state.produce_error = str(exc)
    finally:
        state.producing = False


def watch(demo: Settings, state: DemoState, labels: dict[str, dict], consumer: TopicTail,
          worker: subprocess.Popen[bytes], duration: float) -> None:
    """The live screen, until ``duration`` is up, the worker exits or everything is read and settled."""
    last_check, settled_total, settled_since = time.monotonic(), -1, time.monotonic()
    last_cases = 0.0
    with Live(_render(state, labels), refresh_per_second=4) as live:
        while time.monotonic() - state.started < duration:
            state.warnings.extend(orjson.loads(value) for value in consumer.poll())
            if worker.poll() is not None:
                break
            if time.monotonic() - last_cases > 2:
                last_cases = time.monotonic()
                try:
                    state.cases = open_cases(demo)
                except Exception:  # noqa: BLE001 - the screen goes on; the summary says more
                    pass
            live.update(_render(state, labels))
            # done: everything published, and the worker has read all of it (inputs and its
            # chain stage) with nothing new for half a minute (its producer may hold outputs
            # for a few seconds on a busy machine)
            if not state.producing and time.monotonic() - last_check > 5:
                last_check = time.monotonic()
                fraction, total = group_progress(demo)
                if backlog(demo, "yujing-demo-cases") > 0:
                    fraction = 0.0  # the case desk is still reading warnings
                if fraction < 1.0 or total != settled_total:
                    settled_total, settled_since = (total if fraction >= 1.0 else -1), last_check
                elif last_check - settled_since >= SETTLED_SECONDS:
                    break


def wind_down(state: DemoState, worker: subprocess.Popen[bytes], worker_log: Path, desk: CaseDesk, keep_running: bool,
              log: object) -> None:
    """What went wrong, if anything; with ``keep_running`` the case desk stays up until Ctrl-C."""
    staff = ", ".join(f"{u} ({role})" for u, role, _ in DEMO_STAFF)
    if state.produce_error:
        log(f"the simulator stopped early: {state.produce_error}")  # type: ignore[operator]
    if worker.returncode not in (0, None):
        log(f"the worker exited with code {worker.returncode}; see {worker_log}")  # type: ignore[operator]
    if desk.service.poll() is not None:
        log(f"the case service exited with code {desk.service.returncode}; see {desk.log_path}")  # type: ignore[operator]
    elif keep_running:
        log(f"the case desk stays up: http://127.0.0.1:{CASE_PORT}/inbox — log in as {staff}; "  # type: ignore[operator]
            f"password {DEMO_PASSWORD!r}; API docs at /docs. Ctrl-C stops it, the database and the broker.")
        try:
            while desk.service.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    else:
        log(f"to browse the cases afterwards, run the demo with --keep-running "  # type: ignore[operator]
            f"(inbox on port {CASE_PORT}; staff: {staff}; password {DEMO_PASSWORD!r})")
