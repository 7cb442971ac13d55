"""The Grafana dashboards (deploy/grafana/dashboards.py): committed JSON and the catalogue in
docs/observability.md up to date, every query well-formed, on a provisioned datasource and naming
only real metrics.

Pure: no Grafana, Prometheus or PostgreSQL. Whether each query returns data is checked by the
test that runs them against real services.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from deploy.grafana import dashboards as gen
from deploy.grafana.targets import POSTGRES

ROOT = Path(__file__).resolve().parent.parent
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
CJK = re.compile(r"[\u4e00-\u9fff]")

# The metric names of /work/obs-spec.md (issue 5): worker and case service.
SPEC_METRICS = {
    "yujing_events_consumed_total", "yujing_events_deadlettered_total", "yujing_events_duplicate_total",
    "yujing_events_late_total", "yujing_consumer_lag_records", "yujing_event_processing_seconds",
    "yujing_event_to_warning_latency_seconds", "yujing_warnings_total", "yujing_active_warnings",
    "yujing_risk_score", "yujing_state_entries", "yujing_event_time_watermark_seconds",
    "yujing_worker_errors_total",
    "yujing_cases", "yujing_cases_overdue", "yujing_case_warnings_ingested_total",
    "yujing_webhook_deliveries_total", "yujing_outbox_pending", "yujing_case_consumer_lag_records",
    "yujing_merchant_days_recorded_total", "yujing_case_errors_total",
}
HISTOGRAMS = {"yujing_event_processing_seconds", "yujing_event_to_warning_latency_seconds", "yujing_risk_score"}
# Beyond the spec: the worker's partition watchdog (streams/watchdog.py), the case desk's
# compliance findings (cases/findings.py).
KNOWN_METRICS = SPEC_METRICS | {"yujing_partition_stalls_total", "yujing_compliance_findings"} | {f"{name}{suffix}" for name in HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")}

BOARDS = gen.dashboards()
QUERIES = gen.all_queries()
PANELS = [(uid, panel) for uid, board in BOARDS.items() for panel in board["panels"]]


def test_three_dashboards_with_their_uids() -> None:
    assert list(BOARDS) == ["yujing-overview", "yujing-merchant", "yujing-pipeline"]
    assert {uid: board["uid"] for uid, board in BOARDS.items()} == {uid: uid for uid in BOARDS}


def test_committed_json_and_catalogue_are_what_the_generator_writes() -> None:
    outdated = gen.stale(gen.outputs())
    assert not outdated, f"stale {outdated}: run python -m deploy.grafana.dashboards"


def test_check_names_a_stale_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    stale_file = tmp_path / "yujing-overview.json"
    stale_file.write_text("{}\n")
    monkeypatch.setattr(gen, "outputs", lambda: {stale_file: "{\"new\": 1}\n"})
    assert gen.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "stale" in err and "yujing-overview.json" in err
    assert stale_file.read_text() == "{}\n"  # --check writes nothing


def test_json_is_deterministic() -> None:
    again = gen.dashboards()
    assert [gen.render(board) for board in again.values()] == [gen.render(board) for board in BOARDS.values()]
    assert all(gen.render(board).endswith("}\n") for board in BOARDS.values())


@pytest.mark.parametrize(("uid", "panel"), PANELS, ids=[f"{uid}:{panel['title']}" for uid, panel in PANELS])
def test_panel_uses_a_provisioned_datasource(uid: str, panel: dict) -> None:
    assert panel["datasource"]["uid"] in gen.DATASOURCE_KINDS
    assert panel["targets"], "a panel without a query"
    for target in panel["targets"]:
        assert target["datasource"] == panel["datasource"]


@pytest.mark.parametrize(("uid", "panel"), PANELS, ids=[f"{uid}:{panel['title']}" for uid, panel in PANELS])
def test_panel_title_is_chinese_and_description_english(uid: str, panel: dict) -> None:
    assert CJK.search(panel["title"]), panel["title"]
    description = panel.get("description", "")
    assert len(re.findall(r"[A-Za-z]{3,}", description)) >= 5, description


def test_dashboard_titles_chinese_descriptions_english() -> None:
    for board in BOARDS.values():
        assert CJK.search(board["title"])
        assert len(re.findall(r"[A-Za-z]{3,}", board.get("description", ""))) >= 5


def test_panel_ids_unique_and_titles_unique_per_dashboard() -> None:
    for board in BOARDS.values():
        ids = [panel["id"] for panel in board["panels"]]
        titles = [panel["title"] for panel in board["panels"]]
        assert len(set(ids)) == len(ids) and len(set(titles)) == len(titles)


def test_all_queries_covers_every_target_and_variable() -> None:
    targets = sum(len(panel["targets"]) for _, panel in PANELS)
    variables = sum(1 for board in BOARDS.values() for v in board.get("templating", {}).get("list", [])
                    if v["type"] == "query")
    assert len([q for q in QUERIES if q.role == "target"]) == targets
    assert len([q for q in QUERIES if q.role == "variable"]) == variables == 3
    assert {q.kind for q in QUERIES} == {"prometheus", "postgres"}


@pytest.mark.parametrize("query", QUERIES, ids=[f"{q.dashboard}:{q.panel}:{q.ref_id}" for q in QUERIES])
def test_query_is_well_formed(query: gen.Query) -> None:
    assert query.expr.strip()
    assert "consumer_id" not in query.expr.lower()  # no consumer data, in SQL or PromQL
    allowed = gen.PROMQL_MACROS if query.kind == "prometheus" else gen.SQL_MACROS
    for used in re.findall(r"\$\{[^}]*\}|\$__\w+\(?\)?|\$\w+", query.expr):
        assert used in allowed, f"{used} is not one of the macros the query test fills in"
    filled = gen.substitute(query, time_from=datetime(2025, 9, 1, tzinfo=UTC),
                            time_to=datetime(2026, 9, 1, tzinfo=UTC), merchant="M0001")
    assert not re.search(r"\$\{?\w", filled), filled
    if query.kind == "prometheus":
        assert "merchant_id" not in query.expr  # bounded labels only
        names = set(re.findall(r"\byujing_[a-z_]+", query.promql))
        assert names or re.match(r"(up|process_\w+)\{job=~\"yujing-\.\*\"\}$", query.expr), query.expr
        assert names <= KNOWN_METRICS, names - KNOWN_METRICS
    else:
        assert query.expr.lstrip().upper().startswith("SELECT")


def test_variable_query_is_evaluable_promql() -> None:
    town = next(q for q in QUERIES if q.panel == "town")
    assert town.promql == "group by (town) (yujing_active_warnings)"


def test_sql_filters_use_the_regex_form_of_multi_value_variables() -> None:
    for query in QUERIES:
        if query.kind == "postgres":
            assert not re.search(r"\$(town|industry|level)\b", query.expr), query.expr
            for name in re.findall(r"\$\{(\w+):regex\}", query.expr):
                assert f"'^(${{{name}:regex}})$'" in query.expr


def test_red_orange_list_links_to_cases_and_merchant_drill_down() -> None:
    panel = next(p for _, p in PANELS if p["title"] == "当前红橙名单")
    urls = [link["url"] for override in panel["fieldConfig"]["overrides"]
            for prop in override["properties"] if prop["id"] == "links" for link in prop["value"]]
    assert "${cases_url}/cases/${__value.raw}" in urls
    assert any(url.startswith("/d/yujing-merchant?var-merchant=${__data.fields.merchant_id}") for url in urls)
    variables = {v["name"]: v for v in BOARDS["yujing-overview"]["templating"]["list"]}
    assert variables["cases_url"]["query"] == "http://localhost:8470"
    assert {variables[name]["allValue"] for name in ("town", "industry", "level")} == {".*"}


def test_provisioned_datasources_match_the_dashboards() -> None:
    config = yaml.safe_load((PROVISIONING / "datasources" / "yujing.yaml").read_text())
    by_uid = {source["uid"]: source for source in config["datasources"]}
    assert set(by_uid) == set(gen.DATASOURCE_KINDS)
    assert by_uid["yujing-prometheus"]["url"] == "http://prometheus:9090"
    postgres = by_uid["yujing-postgres"]
    assert postgres["type"] == POSTGRES.type_val and postgres["url"] == "postgres:5432"
    assert postgres["user"] == "yujing" and postgres["jsonData"]["database"] == "yujing"
    assert postgres["secureJsonData"]["password"] == "$YUJING_DB_PASSWORD"
    for _, panel in PANELS:
        assert panel["datasource"]["type"] == by_uid[panel["datasource"]["uid"]]["type"]


def test_dashboard_provider_loads_the_generated_files() -> None:
    config = yaml.safe_load((PROVISIONING / "dashboards" / "yujing.yaml").read_text())
    (provider,) = config["providers"]
    assert provider["type"] == "file" and provider["folder"] == "预付卡预警"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    assert sorted(path.name for path in gen.OUT_DIR.glob("*.json")) == sorted(f"{uid}.json" for uid in BOARDS)
