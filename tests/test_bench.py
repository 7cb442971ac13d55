"""``yujing bench``: the arithmetic, the pacing, the report, and one quick run on a real broker.

No timed assertions: speeds depend on the machine and its load; the run is checked for every
section having a positive, finite figure.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.latency import LatencyRun
from bench.live import StateSizes, WorkerSpan
from bench.measure import closable_day, closing_moments, latencies, percentile, rate, ratio
from bench.report import figures, markdown, table, write_json, write_png
from bench.run import NEEDS, SECTIONS, BenchOptions, Measured
from bench.world import split_files
from streams.baselines import Stopwatch, send_offsets
from yujing.cli.app import app
from yujing.simulator import SimulationConfig, simulate

SHANGHAI = timezone(timedelta(hours=8))
LATENESS = timedelta(hours=6)


def test_ratio_and_rate() -> None:
    assert ratio(6.0, 4.0) == 1.5
    assert ratio(1.0, 0.0) is None and ratio(None, 1.0) is None and ratio(float("nan"), 1.0) is None
    assert rate(300, 1.5) == 200.0


def test_percentile_interpolates_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 99) is None


def test_stopwatch_rate_counts_from_the_first_record() -> None:
    assert Stopwatch(events=1001, first=100.0, last=102.0).rate == 500.0


def test_pacing_schedule_spreads_records_evenly() -> None:
    offsets = send_offsets(1000, 250.0)
    assert offsets[0] == 0.0
    assert offsets[-1] == pytest.approx(999 / 250)
    gaps = {round(b - a, 9) for a, b in zip(offsets, offsets[1:], strict=False)}
    assert gaps == {0.004}


def test_a_day_closes_on_the_first_transaction_past_it_and_the_lateness() -> None:
    def at(day: int, hour: int) -> datetime:
        return datetime(2026, 3, day, hour, tzinfo=SHANGHAI)

    history = {0: closable_day(at(2, 12), LATENESS), 1: closable_day(at(2, 12), LATENESS)}
    first_open = history[0] + 1  # 2 March
    sends = [
        (0, at(2, 23), 10.0),  # 2 March still open: 23:00 - 6 h is 17:00 on the 2nd
        (1, at(3, 5), 10.5),  # partition 1: 05:00 - 6 h is still the 2nd
        (0, at(3, 6), 11.0),  # closes 2 March on partition 0
        (1, at(3, 7), 12.0),  # closes 2 March on partition 1
        (0, at(6, 8), 13.0),  # closes 3, 4 and 5 March on partition 0 at once
    ]
    moments = closing_moments(sends, LATENESS, history)
    assert moments[(0, first_open)] == 11.0 and moments[(1, first_open)] == 12.0
    assert [moments[(0, first_open + k)] for k in (1, 2, 3)] == [13.0, 13.0, 13.0]
    assert (1, first_open + 1) not in moments
    # Outputs of days closed before the feed (no cause in it) are left out.
    outputs = [(0, first_open, 11.4), (1, first_open, 12.9), (0, history[0], 9.0)]
    assert latencies(outputs, moments) == pytest.approx([0.4, 0.9])


def test_every_section_needs_itself() -> None:
    assert set(NEEDS) == set(SECTIONS)
    for section, needs in NEEDS.items():
        assert needs <= set(SECTIONS) and (section in needs or section == "catchup")
    assert BenchOptions(only=("latency",)).measures() == {"latency", "worker"}


def _measured() -> Measured:
    m = Measured(BenchOptions(), history_events=10_000, live_events=1_000)
    m.client = [Stopwatch(10_000, 0.0, 0.1), Stopwatch(10_000, 0.0, 0.2)]
    m.faust = [Stopwatch(10_000, 0.0, 1.0)]
    m.naive = [Stopwatch(10_000, 0.0, 5.0)]
    m.raw_decode, m.backtest = [0.05, 0.04], [2.0]
    m.worker = WorkerSpan(10_000, spawned=0.0, first=2.0, last=12.0)
    m.scale = WorkerSpan(10_000, spawned=0.0, first=2.0, last=9.0, second_joined=3.0)
    m.state = StateSizes({"m1": 4000, "m2": 6000}, {"bench-a-yujing-merchants-changelog": 9000}, 30, 0)
    m.latency = LatencyRun(500.0, 1_000, 2.1, [0.2, 0.4, 0.9], [0.1] * 50)
    return m


def test_report_has_a_row_per_figure_with_the_must_show_lines(tmp_path: Path) -> None:
    rows = {r.name: r for r in figures(_measured())}
    assert {r.section for r in rows.values()} == set(SECTIONS)
    worker = rows["live worker / bare Faust agent"]
    assert worker.value == pytest.approx(1000 / 9999) and worker.met is False
    assert rows["2 workers / 1 on 4 partitions"].value == pytest.approx(10 / 7)
    assert rows["replay (yujing backtest) / raw orjson decode"].value == pytest.approx(0.04 / 2.0)
    assert rows["state per merchant (merchants table)"].value == 5000 and rows[
        "state per merchant (merchants table)"].met is True
    assert rows["changelog bytes per merchant-day"].value == 300
    assert rows["event -> warning p99 at half load"].value == pytest.approx(0.89, abs=0.01)
    catchup = next(r for r in rows.values() if r.section == "catchup")
    assert catchup.value == pytest.approx(6.0) and catchup.met is False
    assert table(list(rows.values()), "bench").row_count == len(rows)
    assert markdown(list(rows.values())).count("\n") == len(rows) + 1
    write_json(tmp_path / "bench.json", _measured(), list(rows.values()))
    doc = json.loads((tmp_path / "bench.json").read_text())
    assert len(doc["figures"]) == len(rows) and doc["measured"]["worker"]["events"] == 10_000
    write_png(tmp_path / "bench.png", list(rows.values()))
    assert (tmp_path / "bench.png").read_bytes()[:4] == b"\x89PNG"


def test_a_section_not_asked_for_has_no_row() -> None:
    m = _measured()
    m.options = BenchOptions(only=("replay", "catchup"))
    assert [r.section for r in figures(m)] == ["replay", "catchup"]


def test_the_world_is_cut_by_event_time(tmp_path: Path) -> None:
    simulate(SimulationConfig(merchants=3, days=40, seed=3)).write(tmp_path / "all")
    cut = datetime(2025, 10, 1, tzinfo=SHANGHAI)
    before, after = split_files(tmp_path / "all", cut, tmp_path / "history", tmp_path / "live")
    lines = sum(len((tmp_path / "all" / n).read_bytes().splitlines())
                for n in ("transactions.jsonl", "complaints.jsonl", "merchants.jsonl"))
    assert before + after == lines and before > 0 and after > 0
    for line in (tmp_path / "live" / "transactions.jsonl").read_bytes().splitlines():
        assert datetime.fromisoformat(json.loads(line)["occurred_at"]) >= cut


def test_an_unknown_section_is_one_line() -> None:
    result = CliRunner().invoke(app, ["bench", "--only", "warp"])
    assert result.exit_code == 1
    assert "unknown section(s) warp" in result.output and "Traceback" not in result.output


@pytest.mark.kafka
@pytest.mark.slow
def test_a_quick_bench_measures_every_section(tmp_path: Path) -> None:
    """The whole bench on its own broker, small: every figure there, positive and finite."""
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, "-m", "yujing.cli.app", "bench", "--quick", "--json", str(out),
                           "--png", str(tmp_path / "bench.png")], capture_output=True, text=True, timeout=1500,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads(out.read_text())
    assert {f["section"] for f in doc["figures"]} == set(SECTIONS)
    for figure in doc["figures"]:
        assert figure["value"] is not None and math.isfinite(figure["value"]) and figure["value"] > 0, figure
    assert doc["measured"]["scale"]["second_joined"] is not None
    assert doc["measured"]["state"]["missing"] == 0
    assert (tmp_path / "bench.png").exists()
