"""Hot reload on the real broker: a published thresholds version reaches a running worker and
changes the next warnings (and their ``thresholds_version``) without a restart, exactly as a
replay given the same publication scores them; an invalid version is refused and the last good
one kept (log line and metric).

The worker starts from the set whose fusion ``tests/stated_fusion.py`` states (a thresholds file),
not the built-in one, whose weights and cut-offs are learned and change with every ``yujing train``."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest
from kafka import KafkaProducer

from alerts.threshold_history import ThresholdSchedule, publication
from alerts.thresholds import ThresholdSet, builtin_thresholds, render_yaml
from engine.replay import INPUT_FILES, iter_events, run_backtest, write_records
from models.calendar import SHANGHAI, day_start, local_day
from streams.clients import publish_thresholds
from tests.conftest import _free_port
from tests.stated_fusion import stated_thresholds
from tests.test_end_to_end import publish_with_redeliveries, read_topic, wait_until_consumed
from yujing.services.processes import start_worker, stop_worker
from yujing.settings import Settings
from yujing.simulator import SimulationConfig, simulate

pytestmark = pytest.mark.kafka

SIMULATION = SimulationConfig(merchants=16, days=200, seed=7)


def split(events_dir: Path, cut: datetime, before: Path, after: Path) -> None:
    """The simulated files as two deliveries: everything before ``cut``, then the rest."""
    parts: dict[Path, dict[str, list]] = {before: {}, after: {}}
    for kind, record in iter_events(events_dir):
        part = before if record.occurred_at < cut else after
        parts[part].setdefault(kind, []).append(record)
    for part, by_kind in parts.items():
        for kind, records in by_kind.items():
            write_records(records, part / INPUT_FILES[kind])


def sensitive(base: ThresholdSet) -> ThresholdSet:
    """A candidate an operator might try: every level's cut-off a quarter lower."""
    data = base.model_dump(mode="json")
    data["levels"]["cutoffs"] = {level: round(cut * 0.75, 6) for level, cut in data["levels"]["cutoffs"].items()}
    return ThresholdSet.from_mapping(data)


def backtest(events_dir: Path, settings: Settings, schedule: ThresholdSchedule) -> list:
    return run_backtest(events_dir, partitions=settings.input_partitions,
                        allowed_lateness=timedelta(hours=settings.allowed_lateness_hours), schedule=schedule).warnings


def first_urgent(warnings: list) -> dict[str, datetime]:
    """When each merchant first reached orange or red."""
    first: dict[str, datetime] = {}
    for w in warnings:
        if w.level in ("orange", "red") and w.transition in ("raised", "escalated"):
            first.setdefault(w.merchant_id, w.raised_at)
    return first


def comparable(warning: dict) -> bytes:
    return orjson.dumps({k: v for k, v in warning.items() if k != "emitted_at"}, option=orjson.OPT_SORT_KEYS)


def test_a_published_version_changes_the_next_warnings_without_a_restart(
    kafka_settings: Settings, tmp_path: Path, worker_processes: list
) -> None:
    base = stated_thresholds()
    base_file = tmp_path / "stated.yaml"
    base_file.write_text(render_yaml(base), encoding="utf-8")
    settings = kafka_settings.model_copy(update={"metrics_port": _free_port(), "thresholds_file": base_file})
    events = tmp_path / "events"
    simulate(SIMULATION).write(events)
    times = sorted(record.occurred_at for _, record in iter_events(events))
    cut = times[int(len(times) * 0.6)]
    split(events, cut, tmp_path / "before", tmp_path / "after")
    candidate = sensitive(base)
    # In force from a week after the first delivery's last day: the worker has not scored it yet.
    effective = day_start(local_day(cut) + 7).astimezone(SHANGHAI)

    log = tmp_path / "worker.log"
    worker_processes.append(start_worker(settings, log))
    publish_with_redeliveries(tmp_path / "before", settings)
    wait_until_consumed(settings)

    published = publication(candidate, author="ops-test", reason="lower every cut-off by a quarter",
                            published_at=datetime.now(UTC), effective_from=effective)
    publish_thresholds(settings, published)
    # An invalid version after it (a weight of 21.5, as a hand-edited record would carry): refused.
    invalid = published.model_dump(mode="json")
    invalid["thresholds"]["indicators"]["silence"]["weight"] = 21.5
    invalid["publication_id"] = "broken@1"
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap)
    producer.send(settings.topics.thresholds, key=b"broken@1", value=orjson.dumps(invalid)).get(timeout=30)
    producer.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "refused" not in log.read_text():
        time.sleep(0.3)
    text = log.read_text()
    assert f"thresholds {candidate.version} by ops-test" in text and "applies from event day" in text
    assert re.search(rf"thresholds {candidate.version} by ops-test refused, keeping {candidate.version}: "
                     r"indicators\.silence\.weight: 21\.5 is outside the allowed range -20 to 20 \(log-odds\)",
                     text), text[-3000:]
    metrics = httpx.get(f"http://127.0.0.1:{settings.metrics_port}/metrics", timeout=10).text
    assert "yujing_thresholds_refused_total 1.0" in metrics

    publish_with_redeliveries(tmp_path / "after", settings)
    wait_until_consumed(settings)
    live = read_topic(settings.topics.warnings, settings)

    # The next warnings carry the new version, none dated before it applies; the old ones the base set's.
    versions = {w["thresholds_version"] for w in live}
    assert versions == {base.version, candidate.version}
    for w in live:
        applies = datetime.fromisoformat(w["raised_at"]) >= effective
        assert w["thresholds_version"] == (candidate.version if applies else base.version), w
    # Exactly what a replay given the same publication scores, field for field.
    schedule = ThresholdSchedule(base)
    schedule.add(published)
    expected = backtest(events, settings, schedule)
    assert sorted(comparable(w) for w in live) == sorted(
        comparable(w.model_dump(mode="json")) for w in expected)
    # ...and not what the base set alone would have raised: with every cut-off a quarter lower,
    # each merchant reaches orange or red no later, and some earlier (or at all).
    unchanged = backtest(events, settings, ThresholdSchedule(base))
    lowered, kept = first_urgent(expected), first_urgent(unchanged)
    assert all(m in lowered and lowered[m] <= at for m, at in kept.items()), (lowered, kept)
    assert any(m not in kept or at < kept[m] for m, at in lowered.items()), (lowered, kept)
    assert stop_worker(worker_processes.pop(), timeout=60) == 0


def test_publish_and_history_through_the_cli(kafka_settings: Settings, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from yujing.cli.app import app
    from yujing.services.processes import settings_env
    from yujing.settings import get_settings

    for key, value in settings_env(kafka_settings).items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        candidate = sensitive(builtin_thresholds())
        path = tmp_path / "candidate.yaml"
        path.write_text(render_yaml(candidate))
        bad = tmp_path / "bad.yaml"
        bad.write_text(render_yaml(candidate).replace("margin: 0.05", "margin: 0.5"))

        refused = runner.invoke(app, ["thresholds", "publish", str(bad), "--reason", "oops"])
        assert refused.exit_code == 1 and "levels.margin: 0.5" in refused.stderr
        first = runner.invoke(app, ["thresholds", "publish", str(path), "--reason", "earlier levels",
                                    "--author", "wang", "--effective-from", "2026-03-01"])
        assert first.exit_code == 0, first.output
        assert f"published {candidate.version}" in first.stdout and "2026-03-01 00:00" in first.stdout
        again = runner.invoke(app, ["thresholds", "publish", str(path), "--reason", "again"])
        assert again.exit_code == 0 and "already the current version" in again.stdout

        history = runner.invoke(app, ["thresholds", "history"], env={"COLUMNS": "250"})
        assert history.exit_code == 0, history.output
        rows = [line for line in history.stdout.splitlines() if candidate.version in line]
        assert len(rows) == 1 and "wang" in rows[0] and "earlier levels" in rows[0] and "applied" in rows[0]
        current = runner.invoke(app, ["thresholds", "show", "current"])
        assert f"version {candidate.version}" in current.stdout.splitlines()[0]
        changed = runner.invoke(app, ["thresholds", "diff", "builtin", "current"], env={"COLUMNS": "200"})
        assert "4 value(s) change" in changed.stdout
    finally:
        get_settings.cache_clear()
