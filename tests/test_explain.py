"""``yujing explain``: one merchant's timeline is exactly what ``yujing backtest`` scores for it."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from alerts.threshold_history import ThresholdSchedule
from engine.explain import ExplainedDay, Timeline, collect, read_label, table_rows
from engine.partition import DayResult
from engine.replay import BacktestResult, partition_for, run_backtest
from models.calendar import SHANGHAI
from yujing.cli.app import app
from yujing.explain_plot import write_png
from yujing.settings import get_settings
from yujing.simulator import SimulationConfig, simulate

# Seed 1 of this size has a chain whose stores collapse one after another (chain_contagion readings).
SIMULATION = SimulationConfig(merchants=40, days=150, seed=1)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("explain") / "events"
    simulate(SIMULATION).write(target)
    return target


@pytest.fixture(scope="module")
def labels(world: Path) -> dict[str, dict]:
    return {row["merchant_id"]: row for row in map(orjson.loads, (world / "labels.jsonl").read_bytes().splitlines())}


def _options() -> dict:
    settings = get_settings()  # as the command reads them
    return {"partitions": settings.input_partitions,
            "allowed_lateness": timedelta(hours=settings.allowed_lateness_hours)}


@pytest.fixture(scope="module")
def backtest(world: Path) -> tuple[BacktestResult, dict[str, list[DayResult]]]:
    """A plain backtest of every partition, with every merchant's scored days."""
    days: dict[str, list[DayResult]] = defaultdict(list)
    result = run_backtest(world, schedule=ThresholdSchedule(), on_day_scored=lambda r: days[r.merchant_id].append(r),
                          **_options())
    return result, days


def _chain_merchant(labels: dict[str, dict]) -> str:
    return next(m for m, label in sorted(labels.items()) if label["scenario"] == "chain_collapse")


def _same_as_backtest(timeline: Timeline, backtest: tuple[BacktestResult, dict[str, list[DayResult]]]) -> None:
    result, days = backtest
    expected = days[timeline.merchant_id]
    assert [(d.day, d.score, d.level) for d in timeline.days] == [
        (date.fromordinal(r.day), r.score.score, r.level) for r in expected]
    assert [[(r.code, r.score, r.contribution) for r in d.readings] for d in timeline.days] == [
        sorted(((c.reading.code, c.reading.score, c.amount) for c in r.score.contributions),
               key=lambda x: (-x[2], x[0])) for r in expected]

    def dumped(warnings: list) -> list[bytes]:
        return [orjson.dumps(w.model_dump(mode="json", exclude={"emitted_at"})) for w in warnings]

    assert dumped(timeline.warnings) == dumped([w for w in result.warnings if w.merchant_id == timeline.merchant_id])


def test_partial_replay_gives_the_backtests_days_and_warnings(world: Path, labels: dict[str, dict], backtest) -> None:
    """A chain store: its sisters' levels reach it from other partitions, yet only the partitions
    that matter are replayed, and every day, reading and warning equals the full backtest's."""
    merchant = _chain_merchant(labels)
    timeline = collect(world, merchant, schedule=ThresholdSchedule(), **_options())
    assert len(timeline.replayed_partitions) < timeline.partitions  # the point of replaying less
    linked = {partition_for(m, timeline.partitions) for m, label in labels.items()
              if label["chain_id"] == labels[merchant]["chain_id"]}
    assert linked <= set(timeline.replayed_partitions)
    assert any(r.code == "chain_contagion" and r.score > 0 for d in timeline.days for r in d.readings)
    assert any(w.level in ("orange", "red") for w in timeline.warnings)
    _same_as_backtest(timeline, backtest)
    assert timeline.days[-1].day.toordinal() >= timeline.days[0].day.toordinal()
    assert timeline.cutoffs and all(0 < cut <= 1 for cut in timeline.cutoffs.values())
    assert any(e.kind == "custody_report" for e in timeline.profile_events)


def test_full_replay_agrees(world: Path, labels: dict[str, dict], backtest) -> None:
    merchant = next(m for m, label in sorted(labels.items()) if label["kind"] == "collapse" and not label["chain_id"])
    timeline = collect(world, merchant, schedule=ThresholdSchedule(), full=True, **_options())
    assert timeline.replayed_partitions == list(range(timeline.partitions))
    _same_as_backtest(timeline, backtest)


def test_command_prints_the_table_and_warnings_and_draws_the_png(
    world: Path, labels: dict[str, dict], backtest, tmp_path: Path,
) -> None:
    merchant = _chain_merchant(labels)
    collapse = date.fromisoformat(labels[merchant]["collapse_date"])
    png = tmp_path / "timeline.png"
    result = CliRunner().invoke(app, [
        "explain", merchant, "--events", str(world), "--png", str(png), "--labels", str(world / "labels.jsonl"),
        "--since", (collapse - timedelta(days=30)).isoformat(), "--until", collapse.isoformat(),
    ], env={"COLUMNS": "220"})
    assert result.exit_code == 0, result.output
    warnings = [w for w in backtest[0].warnings if w.merchant_id == merchant]
    assert f"warnings: {len(warnings)}" in result.output
    for w in warnings:
        assert f"{w.raised_at.astimezone(SHANGHAI).date()} {w.transition}" in result.output
    assert (collapse - timedelta(days=30)).isoformat() in result.output  # a row per day of the window
    assert (collapse - timedelta(days=31)).isoformat() not in result.output.split("warnings:")[0]
    assert "chain_collapse" in result.output
    image = png.read_bytes()
    assert image.startswith(b"\x89PNG") and 30_000 < len(image) < 400_000

    import matplotlib.image

    pixels = matplotlib.image.imread(str(png))
    assert pixels.shape[0] > 600 and pixels.std() > 0.05  # drawn, not blank


def test_json_output(world: Path, labels: dict[str, dict], tmp_path: Path) -> None:
    merchant = next(m for m, label in sorted(labels.items()) if label["kind"] == "healthy" and not label["chain_id"])
    result = CliRunner().invoke(app, ["explain", merchant, "--events", str(world), "--json",
                                      "--png", str(tmp_path / "m.png"), "--since", "2025-12-01"])
    assert result.exit_code == 0, result.output
    payload = orjson.loads(result.stdout)
    assert payload["merchant_id"] == merchant and payload["days"]
    assert payload["days"][0]["day"] == "2025-12-01"
    assert {"score", "level", "readings", "prepaid_balance"} <= set(payload["days"][0])


def test_unknown_merchant_is_one_line(world: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["explain", "NO-SUCH-MERCHANT", "--events", str(world),
                                      "--png", str(tmp_path / "x.png")])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)  # no traceback
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "NO-SUCH-MERCHANT not found" in lines[0]
    assert not (tmp_path / "x.png").exists()


def test_bad_dates_and_missing_events_are_one_line(tmp_path: Path) -> None:
    for args, message in (
        (["--events", str(tmp_path / "none")], "events directory not found"),
        (["--events", str(tmp_path), "--since", "2026-13-01"], "not a date"),
        (["--events", str(tmp_path), "--since", "2026-02-01", "--until", "2026-01-01"], "is after"),
    ):
        result = CliRunner().invoke(app, ["explain", "m1", *args])
        assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output


def test_labels_in_both_layouts(tmp_path: Path) -> None:
    pilot = tmp_path / "labels.json"
    pilot.write_bytes(orjson.dumps({"m1": {"kind": "renovation", "group": "trap", "collapse_date": None,
                                           "episode": ["2025-02-21", "2025-05-02"]}}))
    simulator = tmp_path / "labels.jsonl"
    simulator.write_bytes(orjson.dumps({"merchant_id": "m2", "scenario": "slow_decline", "kind": "collapse",
                                        "collapse_date": "2026-01-20", "signal_start": "2025-11-06"}) + b"\n")
    assert read_label(pilot, "m1") == {"kind": "renovation", "group": "trap", "collapse_date": None,
                                       "signal_start": None, "episode": ["2025-02-21", "2025-05-02"]}
    assert read_label(simulator, "m2")["collapse_date"] == "2026-01-20"
    assert read_label(simulator, "m2")["kind"] == "slow_decline"
    assert read_label(pilot, "m2") is None


def _day(day: date, sales: float, score: float, level: str | None) -> ExplainedDay:
    return ExplainedDay(day, sales, sales, 10.0, 0.0, {"store_closed": 1} if score > 0.5 else {}, 100.0, None, None,
                        score, level, "v1", ())


def test_weekly_rows_sum_the_week_and_show_its_worst_day() -> None:
    monday = date(2026, 3, 2)
    days = [_day(monday + timedelta(days=i), 100.0 * i, 0.1 * i, "yellow" if i == 5 else None) for i in range(10)]
    weeks = table_rows(days, [], weekly=True)
    assert [(w.first, w.last) for w in weeks] == [(monday, monday + timedelta(days=6)),
                                                  (monday + timedelta(days=7), monday + timedelta(days=9))]
    assert weeks[0].sales_paid == sum(100.0 * i for i in range(7)) and weeks[0].redeemed == 70.0
    assert weeks[0].worst.score == pytest.approx(0.6) and weeks[0].level == "yellow"
    assert (weeks[0].complaints, weeks[1].complaints) == (1, 3) and weeks[1].level is None
    assert len(table_rows(days, [], weekly=False)) == 10


def test_png_without_cjk_font_and_with_an_empty_timeline(tmp_path: Path) -> None:
    monday = date(2026, 3, 2)
    days = [_day(monday + timedelta(days=i), 100.0 * i, 0.1 * i, None) for i in range(10)]
    timeline = Timeline("m1", days, [], [], {"blue": 0.3}, 6, [0], label={
        "kind": "run_away", "collapse_date": "2026-03-08", "signal_start": None, "episode": None})
    assert write_png(timeline, tmp_path / "a.png", cjk=False).stat().st_size > 10_000
    empty = Timeline("m1", [], [], [], {}, 6, [0])
    assert write_png(empty, tmp_path / "b.png").is_file()
