"""``yujing evaluate``: simulate + replay + judge, with plots and JSON (small sets)."""

from __future__ import annotations

from pathlib import Path

import orjson
from typer.testing import CliRunner

from models.indicators import ALL_INDICATORS
from yujing.cli import app
from yujing.evaluation import ScenarioFigures, combine, evaluate


def test_lead_times_late_detections_and_false_alarms_are_counted() -> None:
    labels = [
        {"merchant_id": "a", "scenario": "slow_decline", "kind": "collapse", "collapse_date": "2026-03-01"},
        {"merchant_id": "b", "scenario": "slow_decline", "kind": "collapse", "collapse_date": "2026-03-01"},
        {"merchant_id": "c", "scenario": "slow_decline", "kind": "collapse", "collapse_date": "2026-03-01"},
        {"merchant_id": "d", "scenario": "viral_complaints", "kind": "lookalike", "collapse_date": None},
        {"merchant_id": "e", "scenario": "healthy", "kind": "healthy", "collapse_date": None},
    ]
    warnings = [
        {"merchant_id": "a", "level": "yellow", "transition": "raised", "raised_at": "2026-01-01T10:00:00+08:00"},
        {"merchant_id": "a", "level": "orange", "transition": "escalated", "raised_at": "2026-02-01T10:00:00+08:00"},
        {"merchant_id": "b", "level": "red", "transition": "raised", "raised_at": "2026-03-02T10:00:00+08:00"},
        {"merchant_id": "d", "level": "orange", "transition": "raised", "raised_at": "2026-02-01T10:00:00+08:00"},
        {"merchant_id": "e", "level": "yellow", "transition": "raised", "raised_at": "2026-02-01T10:00:00+08:00"},
    ]
    report = evaluate(labels, warnings)
    decline = report.scenarios["slow_decline"]
    assert (decline.caught, decline.late, decline.lead_days) == (1, 1, [28.0])
    assert decline.recall == 1 / 3
    assert report.false_alarm_rate("lookalike") == 1.0 and report.false_alarm_rate("healthy") == 0.0
    # flagged: a (in time), b (late), d (false alarm); e stayed yellow.
    assert report.precision == 1 / 3
    pooled = combine([report, report])
    assert pooled.overall.merchants == 6 and pooled.overall.caught == 2


def test_p25_of_lead_times() -> None:
    row = ScenarioFigures("x", "collapse", lead_days=[4.0, 8.0, 12.0, 40.0])
    assert row.median_lead_days == 10.0 and row.p25_lead_days == 7.0


def test_evaluate_command_simulates_replays_and_plots(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["evaluate", "--seeds", "3", "--merchants", "12", "--days", "150",
         "--work-dir", str(tmp_path / "work"), "--plots", str(tmp_path / "plots"), "--json"],
    )
    assert result.exit_code == 0, result.output
    payload = orjson.loads(result.stdout[result.stdout.index("{"):])
    figures = payload["seed 3"]
    assert figures["all collapses"]["merchants"] >= 4
    assert 0.0 <= figures["false_alarm_rate_healthy"] <= 1.0
    assert (tmp_path / "work" / "seed-3" / "warnings.jsonl").stat().st_size > 0
    for name in ("lead_time.png", "score_trajectories.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_rejects_bad_seeds_in_one_line() -> None:
    result = CliRunner().invoke(app, ["evaluate", "--seeds", "seven"])
    assert result.exit_code == 1
    assert "--seeds must be comma-separated integers" in result.output
    assert "Traceback" not in result.output


def test_indicator_table_in_docs_is_generated_from_the_code() -> None:
    from yujing.indicator_docs import markdown

    committed = (Path(__file__).parent.parent / "docs" / "indicators.md").read_text(encoding="utf-8")
    assert committed == markdown(), "docs/indicators.md is stale: run `yujing indicators --markdown > docs/indicators.md`"
    for indicator in ALL_INDICATORS:
        assert f"`{indicator.code}`" in committed and indicator.name_zh in committed and indicator.formula


def test_evaluate_with_simulated_staff_leaves_collapses_alone(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["evaluate", "--seeds", "3", "--merchants", "12", "--days", "150", "--simulate-staff",
         "--work-dir", str(tmp_path / "work"), "--json"],
    )
    assert result.exit_code == 0, result.output
    staff = orjson.loads(result.stdout[result.stdout.index("{"):])["seed 3"]["simulated_staff"]
    assert staff["collapses_unchanged"] and staff["recall_before"] == staff["recall_after"]
    for kind in ("healthy", "lookalike"):
        # the first alarm comes before any feedback: a merchant flagged stays flagged
        assert staff[f"false_alarm_rate_{kind}_after"] == staff[f"false_alarm_rate_{kind}_before"]
        assert staff[f"urgent_alarms_{kind}_after"] <= staff[f"urgent_alarms_{kind}_before"]
    staff_dir = tmp_path / "work" / "seed-3" / "staff"
    assert (staff_dir / "warnings.jsonl").exists() and (staff_dir / "transactions.jsonl").is_symlink()
    assert (staff_dir / "feedback.jsonl").read_bytes().count(b"\n") == staff["feedback"]
