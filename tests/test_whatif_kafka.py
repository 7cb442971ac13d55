"""What-if on the retained topics of a real broker (``yujing backtest --from-kafka --compare``):
the same report as on the files that were published, and the next what-if on the same topics
starts from the checkpoint and judges its candidate on the recording, although every run reads
the topics into a new temporary directory.

The current side is the set whose fusion ``tests/stated_fusion.py`` states, given to the CLI as a
file: the built-in weights and cut-offs are learned and change with every ``yujing train``, so a
fixed candidate could flag no one new against them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alerts.thresholds import ThresholdSet, render_yaml
from engine.whatif_replay import compare
from streams.clients import publish_files
from tests.stated_fusion import STATED_CUTOFFS, stated_data, stated_thresholds
from yujing.cli.app import app
from yujing.services.processes import settings_env
from yujing.settings import Settings, get_settings
from yujing.simulator import SimulationConfig, simulate
from yujing.whatif_report import render_html

pytestmark = pytest.mark.kafka

SIMULATION = SimulationConfig(merchants=12, days=90, seed=7)
SINCE = SIMULATION.start + timedelta(days=45)
# Below the stated cut-offs: on this simulation the candidate flags a merchant the stated set does not.
LOWER_CUTOFFS = {"blue": 0.15, "yellow": 0.25, "orange": 0.35, "red": 0.55}
assert all(LOWER_CUTOFFS[level] < cut for level, cut in STATED_CUTOFFS.items())


@pytest.fixture()
def cli_settings(kafka_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The CLI pointed at this test's topics, with a cache directory of its own."""
    for key, value in settings_env(kafka_settings).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("YUJING_CACHE_DIR", str(tmp_path / "cache"))
    get_settings.cache_clear()
    yield kafka_settings
    get_settings.cache_clear()


def test_a_what_if_on_the_retained_topics(cli_settings: Settings, tmp_path: Path) -> None:
    events = tmp_path / "events"
    simulate(SIMULATION).write(events)
    publish_files(events, cli_settings)
    current = tmp_path / "stated.yaml"
    current.write_text(render_yaml(stated_thresholds()), encoding="utf-8")
    data = stated_data()
    data["levels"]["cutoffs"] = dict(LOWER_CUTOFFS)
    candidate = ThresholdSet.from_mapping(data)
    path = tmp_path / "candidate.yaml"
    path.write_text(render_yaml(candidate), encoding="utf-8")
    report = tmp_path / "whatif.html"
    command = ["backtest", "--from-kafka", "--thresholds", str(path), "--compare", str(current),
               "--since", SINCE.isoformat(), "--report", str(report), "--labels", str(events / "labels.jsonl")]

    first = CliRunner().invoke(app, command, env={"COLUMNS": "250"})
    assert first.exit_code == 0, first.output
    assert "records read" in first.output and "before the window replayed once and kept" in first.output
    html = report.read_text(encoding="utf-8")
    assert f"the retained input topics at {cli_settings.bootstrap}" in html
    # The same figures as a what-if on the files that were published.
    local = compare(events, stated_thresholds(), candidate, partitions=cli_settings.input_partitions,
                    allowed_lateness=timedelta(hours=cli_settings.allowed_lateness_hours), since=SINCE,
                    labels=events / "labels.jsonl", current_label=str(current), candidate_label=str(path))
    assert local.newly_flagged, "the candidate must flag merchants the stated set does not"
    assert html.split("<h2>", 1)[1] == render_html(local).split("<h2>", 1)[1]

    again = CliRunner().invoke(app, command, env={"COLUMNS": "250"})
    assert again.exit_code == 0, again.output
    assert "before the window from a checkpoint" in again.output
    assert "judged on the recording of its replay" in again.output
    assert report.read_text(encoding="utf-8").split("<h2>", 1)[1] == html.split("<h2>", 1)[1]
