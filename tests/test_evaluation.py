"""``yujing evaluate``: the referee's rules, simulated worlds replayed and judged, the indicator
evidence table, plots and JSON (small worlds, no services)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from contract.labels import load_labels
from models.indicators import ALL_INDICATORS
from yujing.cli.app import app
from yujing.evaluation import ScenarioFigures, combine, evaluate

ROOT = Path(__file__).resolve().parent.parent
REFEREE = ROOT.parent / "shared" / "pilot" / "score.py"  # in CI the repository sits beside ../shared
LOCAL = timezone(timedelta(hours=8))


def _json_tail(output: str) -> dict:
    return orjson.loads(output[output.index("{"):])


def _warning(merchant: str, when: str, level: str = "orange", transition: str = "raised") -> dict:
    return {"merchant_id": merchant, "level": level, "transition": transition, "raised_at": when}


def test_referee_rules_window_late_cleared_and_local_day() -> None:
    labels = [
        {"merchant_id": m, "scenario": "slow_decline", "kind": "collapse", "collapse_date": "2026-03-01"}
        for m in "abcfgk"
    ] + [
        {"merchant_id": "d", "scenario": "viral_complaints", "kind": "lookalike", "collapse_date": None},
        {"merchant_id": "e", "scenario": "healthy", "kind": "healthy", "collapse_date": None},
    ]
    warnings = [
        _warning("a", "2026-01-01T10:00:00+08:00", "yellow"),
        _warning("a", "2026-02-01T10:00:00+08:00", "orange", "escalated"),  # detected, 28 days ahead
        _warning("b", "2026-03-02T10:00:00+08:00", "red"),  # late: 1 day after
        _warning("c", "2026-03-09T10:00:00+08:00", "red"),  # 8 days after: missed
        _warning("f", "2025-08-01T10:00:00+08:00", "red"),  # 212 days ahead: outside the window ...
        _warning("f", "2026-02-20T10:00:00+08:00", "orange", "de-escalated"),  # ... this one counts: 9 days
        _warning("g", "2026-02-28T16:30:00+00:00", "orange"),  # 00:30 on 1 March at +08:00: late
        _warning("k", "2026-02-01T10:00:00+08:00", "orange", "cleared"),  # a clearance is no alarm
        _warning("d", "2026-02-01T10:00:00+08:00", "orange"),
        _warning("e", "2026-02-01T10:00:00+08:00", "yellow"),
        _warning("x", "2026-02-01T10:00:00+08:00", "red"),  # not labelled: counts against precision
        {**_warning("e", "2026-02-01 10:00:00", "red")},  # no offset: left out, as the referee does
    ]
    report = evaluate(labels, warnings)
    decline = report.scenarios["slow_decline"]
    assert (decline.caught, decline.late, decline.missed, sorted(decline.lead_days)) == (2, 2, 2, [9, 28])
    assert decline.recall == 2 / 6 and decline.any_level == 2
    assert report.false_alarm_rate("lookalike") == 1.0 and report.false_alarm_rate("healthy") == 0.0
    assert report.trap_rates() == {"viral_complaints": 1.0}
    # alarmed: a, b, c, f, g (labelled collapses), d, x; useful: a, f (detected), b, g (late)
    assert report.precision == 4 / 7
    assert (report.unknown_merchants, report.warnings, report.unreadable) == (1, 11, 1)
    pooled = combine([report, report])
    assert pooled.overall.merchants == 12 and pooled.overall.caught == 4 and pooled.precision == 4 / 7
    counted = ("n", "detected", "late", "missed", "any_level", "false_alarms", "median_lead_days")
    assert {k: {f: v[f] for f in counted} for k, v in pooled.summary()["per_kind"].items()} == {
        k: {**{f: 2 * v[f] for f in counted[:-1]}, "median_lead_days": v["median_lead_days"]}
        for k, v in report.summary()["per_kind"].items()}


def test_p25_and_median_of_lead_times() -> None:
    row = ScenarioFigures("x", "collapse", lead_days=[4, 8, 12, 40])
    assert row.median_lead_days == 10.0 and row.p25_lead_days == 7.0


@pytest.fixture(scope="module")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """One randomised world (40 merchants x 150 days) simulated, replayed, judged and recorded by the CLI."""
    work = tmp_path_factory.mktemp("evaluate")
    result = CliRunner().invoke(app, [
        "evaluate", "--world-seeds", "5", "--merchants", "40", "--days", "150", "--work-dir", str(work / "work"),
        "--indicators", "--record", str(work / "world5.npz"), "--json"])
    assert result.exit_code == 0, result.output
    return work, _json_tail(result.stdout)


def test_world_seeds_simulate_replay_judge_and_record(small_world: tuple[Path, dict]) -> None:
    from engine.indicator_evidence import evidence_table
    from engine.recording import READING_CODES, load_days

    work, payload = small_world
    assert list(payload) == ["world 5"]  # one world: no pooled entry
    figures = payload["world 5"]
    assert (figures["world_seed"], figures["seed"]) == (5, 105)  # population seed 100 + world seed
    world_dir = work / "work" / "world-5"
    labels = load_labels(world_dir / "labels.json")
    assert figures["n_collapse"] == sum(1 for label in labels.values() if label.group == "collapse") > 0
    assert figures["n_healthy"] == sum(1 for label in labels.values() if label.group == "healthy") > 0
    assert (world_dir / "warnings.jsonl").exists() and json.loads((world_dir / "world.json").read_text())
    days = load_days(work / "world5.npz")
    assert days.rows > 40 * 100 and set(days.merchant_ids) == set(labels)
    evidence = figures["indicator_evidence"]
    assert sorted(row["code"] for row in evidence) == sorted(READING_CODES)
    assert evidence == [row.to_json() for row in evidence_table(days, labels)]
    assert any(row["collapse_rate"] > 0 for row in evidence)


@pytest.mark.skipif(not REFEREE.is_file(), reason=f"the referee's scorer is not at {REFEREE}")
def test_figures_agree_with_the_referees_scorer(small_world: tuple[Path, dict], tmp_path: Path) -> None:
    """The replay's own warnings, and hand-made ones that hit every rule on the world's real labels,
    give the same figures from `yujing evaluate --events` as from score.py."""
    work, _ = small_world
    world_dir = work / "work" / "world-5"
    labels = load_labels(world_dir / "labels.json")
    lines = (world_dir / "warnings.jsonl").read_bytes().splitlines()
    position: dict[str, int] = {}
    for merchant, label in sorted(labels.items()):
        i = position[label.group] = position.get(label.group, -1) + 1  # each group meets every pattern
        anchor = label.collapse_date or date(2026, 1, 10)
        for offset, level, transition in [
            [(-200, "red", "raised"), (-12, "orange", "escalated")],  # the window: only -12 counts
            [(3, "red", "raised")],  # late
            [(9, "orange", "raised")],  # too late: missed
            [(-30, "yellow", "raised")],  # any level only
            [(-5, "orange", "raised"), (-4, "orange", "cleared")],
            [(-20, "red", "de-escalated")],
            [(-40, "orange", "cleared")],  # a clearance alone is no alarm
            [],
        ][i % 8]:
            moment = datetime(anchor.year, anchor.month, anchor.day, 23, 30, tzinfo=LOCAL) + timedelta(days=offset)
            when = moment.astimezone(UTC).isoformat() if i % 3 == 0 else moment.isoformat()
            lines.append(orjson.dumps(_warning(merchant, when, level, transition)))
    lines += [orjson.dumps(_warning("NOT-LABELLED", "2026-01-10T10:00:00+08:00", "red")), b"not json",
              orjson.dumps(_warning(next(iter(labels)), "2026-01-10", "red"))]
    warnings = tmp_path / "warnings.jsonl"
    warnings.write_bytes(b"\n".join(lines) + b"\n")
    for judged in (world_dir / "warnings.jsonl", warnings):
        referee = subprocess.run(
            [sys.executable, str(REFEREE), "--labels", str(world_dir / "labels.json"), "--warnings", str(judged),
             "--json"], capture_output=True, text=True, check=True)
        theirs = json.loads(referee.stdout.strip().splitlines()[-1])
        result = CliRunner().invoke(app, ["evaluate", "--events", str(world_dir), "--warnings", str(judged), "--json"])
        assert result.exit_code == 0, result.output
        ours = _json_tail(result.stdout)[str(world_dir)]
        shared = set(theirs) - {"contract_errors", "n_contract_errors", "detected_before_signal"}
        assert {k: ours[k] for k in shared} == {k: theirs[k] for k in shared}
    assert ours["n_detected"] and ours["n_late"] and ours["recall_any_level"] > ours["recall"]
    assert ours["false_alarm_rate_healthy"] > 0 and ours["unknown_merchants"] == 1
    assert ours["n_unreadable_warnings"] == 2 and ours["p25_lead_days"] < ours["median_lead_days"]


def test_events_with_indicators_replays_the_files(small_world: tuple[Path, dict]) -> None:
    work, payload = small_world
    world_dir = work / "work" / "world-5"
    result = CliRunner().invoke(app, ["evaluate", "--events", str(world_dir), "--labels",
                                      str(world_dir / "labels.jsonl"), "--indicators", "--fire-at", "0.0", "--json"])
    assert result.exit_code == 0, result.output
    again = _json_tail(result.stdout)[str(world_dir)]
    for key in ("indicator_evidence", "recall", "false_alarm_rate_healthy", "per_kind", "n_warnings"):
        assert again[key] == payload["world 5"][key], key
    stricter = CliRunner().invoke(app, ["evaluate", "--events", str(world_dir), "--indicators", "--fire-at", "0.5"])
    assert stricter.exit_code == 0, stricter.output
    assert "indicator evidence" in stricter.stdout and "score > 0.5" in stricter.stdout


def test_evaluate_classic_world_simulates_replays_and_plots(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["evaluate", "--seeds", "3", "--merchants", "12", "--days", "150",
         "--work-dir", str(tmp_path / "work"), "--plots", str(tmp_path / "plots"), "--json"],
    )
    assert result.exit_code == 0, result.output
    figures = _json_tail(result.stdout)["seed 3"]
    assert figures["world_seed"] is None and figures["n_collapse"] >= 4
    assert 0.0 <= figures["false_alarm_rate_healthy"] <= 1.0
    assert (tmp_path / "work" / "seed-3" / "warnings.jsonl").exists()
    for name in ("lead_time.png", "score_trajectories.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(("args", "message"), [
    (["--seeds", "seven"], "--seeds must be comma-separated integers"),
    (["--world-seeds", "1,2", "--seeds", "7"], "2 world seeds but 1 seeds"),
    (["--record", "x.npz"], "--record needs --indicators"),
    (["--events", "/nonexistent/dir"], "events directory not found: /nonexistent/dir"),
    (["--labels", "labels.json"], "--labels and --warnings go with --events DIR"),
])
def test_evaluate_rejects_bad_options_in_one_line(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["evaluate", *args])
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output


def test_unreadable_labels_and_missing_warnings_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "labels.json").write_text("{", encoding="utf-8")
    (tmp_path / "warnings.jsonl").write_text("", encoding="utf-8")
    result = CliRunner().invoke(app, ["evaluate", "--events", str(tmp_path)])
    assert result.exit_code == 1 and "not a labels file" in result.output and "Traceback" not in result.output
    (tmp_path / "labels.json").unlink()
    result = CliRunner().invoke(app, ["evaluate", "--events", str(tmp_path)])
    assert result.exit_code == 1 and "no labels.json or labels.jsonl in" in result.output
    (tmp_path / "labels.json").write_text("{}", encoding="utf-8")
    (tmp_path / "warnings.jsonl").unlink()
    result = CliRunner().invoke(app, ["evaluate", "--events", str(tmp_path)])
    assert result.exit_code == 1 and "warnings file not found" in result.output


def test_indicator_table_in_docs_is_generated_from_the_code() -> None:
    from models.indicator_docs import markdown

    committed = (ROOT / "docs" / "indicators.md").read_text(encoding="utf-8")
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
    staff = _json_tail(result.stdout)["seed 3"]["simulated_staff"]
    assert staff["collapses_unchanged"] and staff["recall_before"] == staff["recall_after"]
    for kind in ("healthy", "lookalike"):
        # the first alarm comes before any feedback: a merchant flagged stays flagged
        assert staff[f"false_alarm_rate_{kind}_after"] == staff[f"false_alarm_rate_{kind}_before"]
        assert staff[f"urgent_alarms_{kind}_after"] <= staff[f"urgent_alarms_{kind}_before"]
    staff_dir = tmp_path / "work" / "seed-3" / "staff"
    assert (staff_dir / "warnings.jsonl").exists() and (staff_dir / "transactions.jsonl").is_symlink()
    assert (staff_dir / "feedback.jsonl").read_bytes().count(b"\n") == staff["feedback"]
