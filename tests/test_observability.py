"""Metrics, dashboards and alert rules against the real thing.

A real Prometheus (Debian's package) scrapes a running worker and case service during a simulated
run on the real broker and PostgreSQL; then every PromQL expression of the Grafana dashboards and
of the alert rules is evaluated against it and must return data, and every SQL query of the
dashboards runs against the case database and must return rows.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import Engine, func, select, text

from alerts.threshold_history import publication
from alerts.thresholds import builtin_thresholds
from cases import db
from cases.schema import merchant_days, merchant_indicator_days, threshold_versions
from deploy.grafana.dashboards import Query, all_queries, substitute
from engine.partition import DayResult
from engine.replay import iter_events, run_backtest
from models.calendar import day_date
from models.fusion import sigmoid
from streams.case_desk_io import backlog
from streams.clients import publish_thresholds
from tests.conftest import _free_port, isolated_settings
from tests.test_end_to_end import publish_with_redeliveries, wait_until_consumed
from yujing.services.database import scratch_database
from yujing.services.processes import start_case_service, start_worker, stop_worker
from yujing.services.prometheus import LocalPrometheus
from yujing.settings import Settings
from yujing.simulator import SimulationConfig, simulate

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus" / "rules" / "yujing-pipeline.yml"
SIMULATION = SimulationConfig(merchants=16, days=200, seed=7)
COMPARISONS = ("==", "!=", ">=", "<=", ">", "<")


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: deploy/local/setup.sh installs Debian's prometheus package")
    return path


def test_promtool_accepts_the_alert_rules() -> None:
    result = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 12 rules found" in result.stdout


def alert_rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def signals(expr: str) -> list[str]:
    """The expressions an alert watches: ``a > 1 and b > 0`` -> ``[a, b]``. A healthy system
    makes the whole rule return nothing, so what must return data is each side it compares.

    >>> signals('sum(x{a!="1"}) > 10000 and deriv(sum(x)[10m:]) > 0')
    ['sum(x{a!="1"})', 'deriv(sum(x)[10m:])']
    >>> signals("time() - min(w) > 2 * 86400")
    ['time() - min(w)']
    """
    parts, start = [], 0
    for position, token in _top_level(expr):
        if token in ("and", "or", "unless"):
            parts.append(expr[start:position])
            start = position + len(token)
    parts.append(expr[start:])
    watched = []
    for part in parts:
        comparisons = [(p, t) for p, t in _top_level(part) if t in COMPARISONS]
        cut = comparisons[-1][0] if comparisons else len(part)
        watched.append(" ".join(part[:cut].split()))
    return watched


def _top_level(expr: str) -> Iterator[tuple[int, str]]:
    """Operators outside brackets, braces, parentheses and strings, with their positions."""
    depth, quote, i = 0, "", 0
    while i < len(expr):
        char = expr[i]
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif depth == 0:
            two = expr[i:i + 2]
            if two in ("==", "!=", ">=", "<="):
                yield i, two
                i += 2
                continue
            if char in "<>":
                yield i, char
            word = re.match(r"\b(and|or|unless)\b", expr[i:])
            if word and (i == 0 or not (expr[i - 1].isalnum() or expr[i - 1] == "_")):
                yield i, word[1]
                i += len(word[1])
                continue
        i += 1


@dataclass
class ObservedRun:
    settings: Settings
    prometheus: str  # base URL
    database_url: str
    engine: Engine
    worker_metrics: str
    case_metrics: str
    started: datetime
    merchant: str  # the merchant with the highest score, for the drill-down's $merchant
    expected_days: list[DayResult]  # the backtest's scored merchant-days of the same input


@pytest.fixture(scope="module")
def observed(
    kafka_bootstrap: str, postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ObservedRun, LocalPrometheus]]:
    home = tmp_path_factory.mktemp("observed")
    events_dir = home / "events"
    simulate(SIMULATION).write(events_dir)
    with scratch_database(postgres_url, prefix="obs") as database_url:
        db.migrate(database_url)
        engine = db.make_engine(database_url)
        settings = isolated_settings(kafka_bootstrap, home / "home").model_copy(
            update={"metrics_port": _free_port(), "database_url": database_url}
        )
        case_port = _free_port()
        worker_target, case_target = f"127.0.0.1:{settings.metrics_port}", f"127.0.0.1:{case_port}"
        prometheus = LocalPrometheus(home / "prometheus", _free_port(),
                                     {"yujing-worker": worker_target, "yujing-cases": case_target}, scrape_seconds=1)
        prometheus.start()
        processes = []
        try:
            started = datetime.now(UTC)
            processes.append(start_case_service(settings, home / "cases.log", {
                "YUJING_CASES_PORT": str(case_port), "YUJING_CASES_PUBLIC_URL": f"http://{case_target}",
                "YUJING_CASES_CONSUMER_GROUP": f"{settings.app_id}-cases",
            }))
            # An operator re-publishing the built-in thresholds during the simulated history
            # (it changes no score): the overview's annotations show it.
            first = min(record.occurred_at for _, record in iter_events(events_dir))
            publish_thresholds(settings, publication(
                builtin_thresholds(), author="obs-test", reason="confirm the built-in thresholds",
                published_at=first + timedelta(days=30), effective_from=first + timedelta(days=31)))
            processes.append(start_worker(settings, home / "worker.log"))
            publish_with_redeliveries(events_dir, settings, every=50, side_topics_read_first=True)
            wait_until_consumed(settings)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and backlog(settings, f"{settings.app_id}-cases") > 0:
                time.sleep(0.5)
            expected_days = scored_days(events_dir, settings)
            # everything the worker sent to the history topic is in PostgreSQL
            while time.monotonic() < deadline and (
                backlog(settings, f"{settings.app_id}-cases-history", settings.topics.merchant_days) > 0
                or count(engine, merchant_days) == 0 or count(engine, threshold_versions) == 0
            ):
                time.sleep(0.5)
            assert prometheus.up("yujing-worker") and prometheus.up("yujing-cases"), \
                prometheus.log_path.read_text()[-2000:]
            time.sleep(5)  # a few more scrapes after the last change, for rate() and deriv()
            worker_metrics = httpx.get(f"http://{worker_target}/metrics", timeout=10).text
            case_metrics = httpx.get(f"http://{case_target}/metrics", timeout=10).text
            with engine.connect() as conn:
                merchant = conn.execute(
                    select(merchant_days.c.merchant_id).order_by(merchant_days.c.score.desc()).limit(1)
                ).scalar_one()
            run = ObservedRun(settings, prometheus.url, database_url, engine, worker_metrics, case_metrics,
                              started, merchant, expected_days)
            yield run, prometheus
        finally:
            for process in processes:
                stop_worker(process, timeout=30)
            prometheus.stop()
            engine.dispose()


def count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def scored_days(events_dir: Path, settings: Settings) -> list:
    days: list = []
    run_backtest(events_dir, partitions=settings.input_partitions,
                 allowed_lateness=timedelta(hours=settings.allowed_lateness_hours),
                 on_day_scored=days.append)
    return days


def dashboard_queries(kind: str) -> list[Query]:
    return [q for q in all_queries() if q.kind == kind]


@pytest.mark.kafka
@pytest.mark.postgres
def test_every_dashboard_promql_returns_data(observed: tuple[ObservedRun, LocalPrometheus]) -> None:
    run, prometheus = observed
    queries = dashboard_queries("prometheus")
    assert len(queries) >= 20
    empty = []
    for query in queries:
        promql = substitute(query, time_from=run.started, time_to=datetime.now(UTC), rate_interval="1m")
        if not prometheus.query(promql):
            empty.append(f"{query.dashboard} / {query.panel}: {promql}")
    assert not empty, "no data for:\n" + "\n".join(empty)


@pytest.mark.kafka
@pytest.mark.postgres
def test_every_alert_rule_evaluates_and_watches_series_that_exist(
    observed: tuple[ObservedRun, LocalPrometheus],
) -> None:
    run, prometheus = observed
    empty = []
    for rule in alert_rules():
        for signal in signals(rule["expr"]):
            if not prometheus.query(signal):
                empty.append(f"{rule['alert']}: {signal}")
        prometheus.query(rule["expr"])  # the whole rule is valid PromQL (it may well return nothing)
    assert not empty, "alert rules watch series with no data:\n" + "\n".join(empty)
    groups = httpx.get(f"{run.prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
    loaded = {r["name"]: r for g in groups for r in g["rules"]}
    assert set(loaded) == {r["alert"] for r in alert_rules()}
    assert all(r["health"] == "ok" for r in loaded.values()), {n: r.get("lastError") for n, r in loaded.items()}


@pytest.mark.kafka
@pytest.mark.postgres
def test_every_dashboard_sql_returns_rows(observed: tuple[ObservedRun, LocalPrometheus]) -> None:
    run, _ = observed
    queries = dashboard_queries("postgres")
    assert len(queries) >= 8
    with run.engine.connect() as conn:
        first, last = conn.execute(select(func.min(merchant_days.c.day), func.max(merchant_days.c.day))).one()
    # the dashboards' time range covers the simulated history (event time)
    time_from = datetime.combine(first, datetime.min.time(), UTC) - timedelta(days=1)
    time_to = datetime.combine(last, datetime.min.time(), UTC) + timedelta(days=2)
    empty = []
    with run.engine.connect() as conn:
        for query in queries:
            sql = substitute(query, time_from=time_from, time_to=time_to, merchant=run.merchant)
            if not conn.execute(text(sql)).fetchall():
                empty.append(f"{query.dashboard} / {query.panel}: {sql}")
    assert not empty, "no rows for:\n" + "\n".join(empty)


@pytest.mark.kafka
@pytest.mark.postgres
def test_drill_down_history_holds_every_scored_merchant_day(observed: tuple[ObservedRun, LocalPrometheus]) -> None:
    """What Grafana charts is what the engine computed: every scored merchant-day of the live run
    is a row, with the backtest's score and level, indicators alongside. Live skips only quiet
    days before a merchant's first live day (a partition's clock starts at its first transaction,
    and this replay sends profiles and complaints ahead of the transactions): days on which no
    reading raised the odds, so the probability is at most the base rate of the thresholds in
    force (the built-in set, live and in the backtest), and no level."""
    run, _ = observed
    # The worker read every profile before its day closed (no late version re-dated), as the
    # backtest does: otherwise days between a version's own day and its reading differ, rightly.
    assert 'yujing_events_late_total{topic="merchants"} 0.0' in run.worker_metrics
    base_rate = round(sigmoid(builtin_thresholds().scoring.intercept), 4)  # a day on which nothing fires
    with run.engine.connect() as conn:
        rows = {(r.merchant_id, r.day): r for r in conn.execute(select(merchant_days))}
        indicators = conn.execute(select(func.count()).select_from(merchant_indicator_days)).scalar_one()
    expected = {(r.merchant_id, day_date(r.day)): r for r in run.expected_days}
    assert rows.keys() <= expected.keys(), "the history holds a day the engine never scored"
    for key, row in rows.items():
        assert row.score == pytest.approx(expected[key].score.score), key
        assert row.level == expected[key].level, key
    first_live_day = {}
    for merchant_id, day in rows:
        first_live_day[merchant_id] = min(day, first_live_day.get(merchant_id, day))
    missing = [expected[key] for key in expected.keys() - rows.keys()]
    assert len(missing) < 0.02 * len(expected)
    for result in missing:
        assert day_date(result.day) < first_live_day[result.merchant_id], (result.merchant_id, result.day)
        drivers = [r.code for r in result.score.drivers]
        assert not drivers and result.score.score <= base_rate and result.level is None, (
            result.merchant_id, result.day, result.score.score, drivers)
    assert indicators >= len(rows)


@pytest.mark.kafka
@pytest.mark.postgres
def test_metrics_carry_no_ids_and_only_bounded_labels(observed: tuple[ObservedRun, LocalPrometheus]) -> None:
    run, _ = observed
    # version: a published thresholds version (a handful a year), on one gauge; indicator: the
    # fusion's reading codes (21), on the feedback learner's corrections
    allowed = {"topic", "reason", "level", "transition", "industry", "town", "table", "kind", "state", "action",
               "outcome", "le", "quantile", "version", "indicator"}
    for exposition in (run.worker_metrics, run.case_metrics):
        for line in exposition.splitlines():
            if line.startswith("yujing_") and "{" in line:
                names = set(re.findall(r'(\w+)="', line.split("{", 1)[1]))
                assert names <= allowed, line
        assert "consumer_id" not in exposition and "merchant_id" not in exposition
        with run.engine.connect() as conn:
            some_ids = [r[0] for r in conn.execute(select(merchant_days.c.merchant_id).distinct().limit(20))]
        assert not any(merchant_id in exposition for merchant_id in some_ids)
    series = [line for line in run.worker_metrics.splitlines() if line.startswith("yujing_")]
    assert len(series) < 2000, "label combinations grew beyond a bounded set"
    consumed = sum(float(line.rsplit(" ", 1)[1]) for line in series if line.startswith("yujing_events_consumed_total"))
    assert consumed > 0
    assert 'yujing_events_deadlettered_total{reason="invalid_json",topic="transactions"} 1.0' in run.worker_metrics
