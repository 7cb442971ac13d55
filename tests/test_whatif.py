"""What-if before apply (engine.whatif, engine.whatif_replay, yujing.whatif_report and ``yujing backtest --compare``): the current side's
figures are a plain backtest's, a looser candidate flags more merchants with reasons, a set
compared with itself changes nothing, the HTML report renders, the CLI works (pure: no Kafka).

The current side is the set whose fusion ``tests/stated_fusion.py`` states, not the built-in one:
the built-in weights and cut-offs are learned and change with every ``yujing train``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from alerts.levels import LEVELS, RANK
from alerts.threshold_history import ThresholdSchedule
from alerts.thresholds import ThresholdSet, render_yaml
from alerts.thresholds import _yaml_number as yaml_number
from contract.records import Warning
from engine.checkpoints import CheckpointCache
from engine.replay import run_backtest
from engine.whatif import WhatIf, tally
from engine.whatif_replay import compare, schedule_for
from models.calendar import SHANGHAI
from streams.retained import _merged
from tests.stated_fusion import STATED_CUTOFFS, stated_data, stated_thresholds
from yujing.cli.app import app
from yujing.evaluation import evaluate
from yujing.settings import get_settings
from yujing.simulator import SimulationConfig, simulate
from yujing.whatif_report import render_html

# Small enough to replay in a few seconds; each seed's mix still has collapses, look-alikes and
# healthy merchants, and the looser candidate below flags merchants the stated set does not.
SIMULATION = SimulationConfig(merchants=12, days=90, seed=7)
PARTITIONS = 6
LATENESS = timedelta(hours=6)
# Far below the stated cut-offs: with chain signals taking effect the next day (not a week later)
# the stated set already flags what cut-offs a quarter lower would add on this small world.
LOWER_CUTOFFS = {"blue": 0.1, "yellow": 0.15, "orange": 0.3, "red": 0.45}
assert all(LOWER_CUTOFFS[level] < cut for level, cut in STATED_CUTOFFS.items())
ENTERING = ("raised", "escalated")



@pytest.fixture(scope="module")
def events_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("whatif") / "events"
    simulate(SIMULATION).write(target)
    return target


@pytest.fixture(scope="module")
def lower() -> ThresholdSet:
    data = stated_data()
    data["levels"]["cutoffs"] = dict(LOWER_CUTOFFS)
    return ThresholdSet.from_mapping(data)


@pytest.fixture(scope="module")
def plain(events_dir: Path) -> list[Warning]:
    """A plain backtest with the schedule the what-if's current side uses."""
    schedule = ThresholdSchedule(stated_thresholds())
    return run_backtest(events_dir, partitions=PARTITIONS, allowed_lateness=LATENESS, schedule=schedule).warnings


@pytest.fixture(scope="module")
def whatif(events_dir: Path, lower: ThresholdSet) -> WhatIf:
    return compare(events_dir, stated_thresholds(), lower, partitions=PARTITIONS, allowed_lateness=LATENESS,
                   labels=events_dir / "labels.jsonl", current_label="stated", candidate_label="lower")


def top_code(warning: Warning) -> str:
    return max(warning.indicators, key=lambda r: r.contribution or 0.0).code


def local(warning: Warning) -> date:
    return warning.raised_at.astimezone(SHANGHAI).date()


def without_emission_time(warnings: list[Warning]) -> list[dict]:
    return [w.model_dump(mode="json", exclude={"emitted_at"}) for w in warnings]


def test_current_side_equals_a_plain_backtest(whatif: WhatIf, plain: list[Warning], events_dir: Path) -> None:
    cur = whatif.current
    assert cur.version == stated_thresholds().version
    assert sorted(map(orjson.dumps, without_emission_time(cur.warnings))) == sorted(
        map(orjson.dumps, without_emission_time(plain)))
    entering = [w for w in plain if w.transition in ENTERING]
    assert entering, "the simulation must raise warnings"
    assert cur.entering == {level: sum(1 for w in entering if w.level == level) for level in LEVELS}
    assert cur.transitions == {level: sum(1 for w in plain if w.level == level) for level in LEVELS}
    assert cur.by_indicator == dict(Counter(top_code(w) for w in entering))
    assert cur.by_town == dict(Counter(w.district for w in entering))
    assert cur.by_industry == dict(Counter(w.industry for w in entering))
    assert cur.flagged == {w.merchant_id for w in plain if RANK[w.level] >= RANK["yellow"]}
    labels = [orjson.loads(line) for line in (events_dir / "labels.jsonl").read_bytes().splitlines()]
    report = evaluate(labels, [w.model_dump(mode="json") for w in plain])
    assert cur.quality is not None
    assert (cur.quality.recall, cur.quality.median_lead_days) == (report.overall.recall, report.overall.median_lead_days)
    assert cur.quality.healthy_flagged / cur.quality.healthy == report.false_alarm_rate("healthy")
    assert cur.quality.lookalikes_flagged / cur.quality.lookalikes == report.false_alarm_rate("lookalike")
    # The summary table shows the same numbers.
    rows = {(r.section, r.figure): r for r in whatif.summary}
    assert rows[("warnings", "raised/escalated, all levels")].current == len(entering)
    assert rows[("merchants", "flagged (yellow or above)")].current == len(cur.flagged)


def test_a_window_counts_its_own_warnings_and_levels_carried_into_it(plain: list[Warning]) -> None:
    days = sorted({local(w) for w in plain})
    since, until = days[len(days) // 2], days[-2]
    side = tally(plain, label="stated", version="v", since=since, until=until)
    inside = [w for w in plain if since <= local(w) <= until]
    assert sorted(w.warning_id for w in side.warnings) == sorted(w.warning_id for w in inside)
    assert sum(side.entering.values()) == sum(1 for w in inside if w.transition in ENTERING)
    held: dict[str, str] = {}  # level each merchant holds when the window opens
    for w in sorted(plain, key=lambda w: w.raised_at):
        if local(w) < since:
            if w.transition == "cleared":
                held.pop(w.merchant_id, None)
            else:
                held[w.merchant_id] = w.level
    expected = {m for m, level in held.items() if RANK[level] >= RANK["yellow"]}
    expected |= {w.merchant_id for w in inside if w.transition != "cleared" and RANK[w.level] >= RANK["yellow"]}
    assert side.flagged == expected


def test_lower_cutoffs_flag_more_merchants_with_reasons(whatif: WhatIf) -> None:
    cur, cand = whatif.current, whatif.candidate
    assert len(cand.flagged) >= len(cur.flagged)
    assert whatif.newly_flagged, "lower cut-offs must flag someone new"
    assert {m.merchant_id for m in whatif.newly_flagged} == cand.flagged - cur.flagged
    assert {m.merchant_id for m in whatif.no_longer_flagged} == cur.flagged - cand.flagged
    for item in whatif.newly_flagged:
        assert item.name and item.town and item.industry
        assert item.candidate_level is not None and RANK[item.candidate_level] >= RANK["yellow"]
        assert item.current_level is None or RANK[item.current_level] < RANK["yellow"]
        assert item.reasons and len(item.reasons) <= 3
        assert all(r.code and r.explanation_zh and r.explanation_en for r in item.reasons)
        assert [r.contribution for r in item.reasons] == sorted((r.contribution for r in item.reasons), reverse=True)
    assert {c.key for c in whatif.changes} == {f"levels.cutoffs.{level}" for level in LOWER_CUTOFFS}


def test_a_set_compared_with_itself_changes_nothing(events_dir: Path, whatif: WhatIf) -> None:
    same = compare(events_dir, stated_thresholds(), stated_thresholds(), partitions=PARTITIONS,
                   allowed_lateness=LATENESS, labels=events_dir / "labels.jsonl")
    assert same.changes == [] and same.newly_flagged == [] and same.no_longer_flagged == []
    assert same.summary, "the table is not empty"
    for row in same.summary:
        assert row.current == row.candidate, row
        assert row.change in (0, None), row
        assert row.cells()[2] in ("0", ""), row
    # ... and its figures are the other comparison's current side.
    for attribute in ("entering", "transitions", "by_indicator", "by_town", "by_industry", "highest", "quality"):
        assert getattr(same.current, attribute) == getattr(whatif.current, attribute), attribute


def test_the_html_report_renders(whatif: WhatIf) -> None:
    html = render_html(whatif)
    assert html.startswith("<!doctype html>")
    assert whatif.current.version in html and whatif.candidate.version in html
    assert html.count("<img ") == 3
    assert html.count('src="data:image/png;base64,') == 3
    assert "http://" not in html and "https://" not in html  # self-contained
    assert "levels.cutoffs.yellow" in html
    for item in whatif.newly_flagged:
        assert item.merchant_id in html
        assert item.reasons[0].explanation_zh in html


@pytest.fixture()
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The CLI's settings with a cache directory of this test's own."""
    monkeypatch.setenv("YUJING_CACHE_DIR", str(tmp_path / "cache"))
    get_settings.cache_clear()
    yield tmp_path / "cache"
    get_settings.cache_clear()


def test_the_cli_writes_a_what_if_report(events_dir: Path, lower: ThresholdSet, tmp_path: Path, own_cache: Path) -> None:
    candidate, current = tmp_path / "cand.yaml", tmp_path / "stated.yaml"
    candidate.write_text(render_yaml(lower), encoding="utf-8")
    current.write_text(render_yaml(stated_thresholds()), encoding="utf-8")
    report = tmp_path / "out.html"
    command = ["backtest", "--events", str(events_dir), "--thresholds", str(candidate), "--compare", str(current),
               "--report", str(report), "--since", "2025-10-15"]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    assert "newly flagged" in result.output and lower.version in result.output
    assert "before the window replayed once and kept" in result.output
    html = report.read_text(encoding="utf-8")
    assert lower.version in html and stated_thresholds().version in html
    assert "2025-10-15 to end" in html
    # The next what-if on this history and window starts from the checkpoint; --fresh does not.
    again = CliRunner().invoke(app, command)
    assert again.exit_code == 0, again.output
    assert "before the window from a checkpoint" in again.output
    assert "judged on the recording of its replay" in again.output
    assert report.read_text(encoding="utf-8").split("<h2>", 1)[1] == html.split("<h2>", 1)[1]
    fresh = CliRunner().invoke(app, [*command, "--fresh"])
    assert "before the window replayed once and kept" in fresh.output
    assert list(own_cache.glob("checkpoints/*/checkpoint.pickle"))


def test_with_a_window_the_candidate_applies_from_its_first_day(
    events_dir: Path, lower: ThresholdSet, tmp_path: Path,
) -> None:
    """Both sides share the history before the window (replayed once, then from the cache), and
    the candidate side is a plain replay with the candidate published to take effect at ``since``."""
    since = SIMULATION.start + timedelta(days=45)
    cache = CheckpointCache(tmp_path / "cache")
    options = {"partitions": PARTITIONS, "allowed_lateness": LATENESS, "since": since,
               "labels": events_dir / "labels.jsonl", "cache": cache}
    first = compare(events_dir, stated_thresholds(), lower, **options)  # type: ignore[arg-type]
    assert first.warm_up is not None and not first.warm_up.cached
    assert 0 < first.warm_up.events < first.current.events
    assert first.warm_up.closed_through is not None and first.warm_up.closed_through < since
    schedule = schedule_for(stated_thresholds(), lower, since)
    plain = run_backtest(events_dir, partitions=PARTITIONS, allowed_lateness=LATENESS, schedule=schedule).warnings
    in_window = [w for w in plain if local(w) >= since]
    assert sorted(map(orjson.dumps, without_emission_time(first.candidate.warnings))) == sorted(
        map(orjson.dumps, without_emission_time(in_window)))
    assert {w.thresholds_version for w in in_window} == {lower.version}
    second = compare(events_dir, stated_thresholds(), lower, **options)  # type: ignore[arg-type]
    assert second.warm_up is not None and second.warm_up.cached
    assert second.warm_up.events == first.warm_up.events
    assert second.summary == first.summary
    assert [m.merchant_id for m in second.newly_flagged] == [m.merchant_id for m in first.newly_flagged]


def test_the_cli_names_the_key_of_a_malformed_thresholds_file(events_dir: Path, tmp_path: Path) -> None:
    candidate = tmp_path / "cand.yaml"
    stated = stated_thresholds()
    silence = "\n".join([
        "  silence:", f"    threshold: {yaml_number(stated.indicators['silence'].threshold)}",
        f"    saturation: {yaml_number(stated.indicators['silence'].saturation)}", "    weight: {}\n"])
    text = render_yaml(stated)
    assert text.count(silence.format(yaml_number(stated.indicators["silence"].weight))) == 1
    candidate.write_text(text.replace(silence.format(yaml_number(stated.indicators["silence"].weight)),
                                      silence.format("21.4")), encoding="utf-8")
    result = CliRunner().invoke(app, ["backtest", "--events", str(events_dir), "--thresholds", str(candidate),
                                      "--compare", "builtin", "--report", str(tmp_path / "out.html")])
    assert result.exit_code == 1
    assert "indicators.silence.weight" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out.html").exists()


def test_the_cli_needs_events_or_kafka() -> None:
    result = CliRunner().invoke(app, ["backtest", "--compare", "builtin"])
    assert result.exit_code == 1
    assert "--events" in result.output and "--from-kafka" in result.output


def test_topic_partitions_merge_in_event_time_keeping_their_own_order(tmp_path: Path) -> None:
    def part(name: str, times: list[str]) -> Path:
        """A partition's file as download_topics writes it: ``<event time> <record>`` lines."""
        path = tmp_path / name
        path.write_bytes(b"".join(
            f"{datetime.fromisoformat(f'2026-03-01T{t}:00+08:00').timestamp()!r} ".encode()
            + orjson.dumps({"id": f"{name}{i}"}) + b"\n" for i, t in enumerate(times)))
        return path

    # Partition b has a late record (09:00 after 11:00): it must stay behind 11:00, as on the topic.
    lines = list(_merged([part("a", ["08:00", "10:00", "12:00"]), part("b", ["09:00", "11:00", "09:30"])]))
    assert [orjson.loads(line)["id"] for line in lines] == ["a0", "b0", "a1", "b1", "b2", "a2"]


def test_the_retained_topics_become_an_events_directory(
    events_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``--from-kafka`` without a broker: each topic arrives partition by partition interleaved
    (as one consumer reads several partitions); the files come out in event time. What the worker
    would dead-letter (a key that is not the merchant, bytes that are not JSON) goes to
    ``deadletters.jsonl`` with its class, not into the files a replay reads."""
    from types import SimpleNamespace

    import streams.retained as retained
    from contract.records import decode, dumps
    from engine.replay import INPUT_FILES, partition_for
    from streams.clients import RawMessage
    from streams.retained import download_topics

    settings = SimpleNamespace(input_partitions=PARTITIONS)
    topics = {"transactions": "t", "complaints": "c", "merchants": "m", "feedback": "f"}
    files = {"t": "transactions.jsonl", "c": "complaints.jsonl", "m": "merchants.jsonl"}
    first_transaction = (events_dir / "transactions.jsonl").read_bytes().splitlines()[0]
    strays = [RawMessage(0, 10**6, b"another-merchant", first_transaction), RawMessage(1, 10**6, None, b"{oops")]

    def read_messages(topic: str, _settings: object) -> list[RawMessage]:
        if topic not in files:
            return []
        parts: list[list[RawMessage]] = [[] for _ in range(PARTITIONS)]
        for line in (events_dir / files[topic]).read_bytes().splitlines():
            merchant_id = orjson.loads(line)["merchant_id"]
            partition = partition_for(merchant_id, PARTITIONS)
            parts[partition].append(RawMessage(partition, len(parts[partition]), merchant_id.encode(), line))
        arrived = []
        while any(parts):  # blocks of 50 from each partition in turn
            for part in parts:
                arrived.extend(part[:50])
                del part[:50]
        return arrived + (strays if topic == "t" else [])

    monkeypatch.setattr(retained, "input_topics", lambda _settings: topics)
    monkeypatch.setattr(retained, "read_messages", read_messages)
    counts = download_topics(settings, tmp_path / "events")
    assert counts["feedback.jsonl"] == 0
    for name in files.values():
        original = (events_dir / name).read_bytes().splitlines()
        read = (tmp_path / "events" / name).read_bytes().splitlines()
        assert counts[name] == len(original)
        kind = {v: k for k, v in INPUT_FILES.items()}[name]
        assert sorted(dumps(decode(kind, line)) for line in read) == sorted(dumps(decode(kind, line)) for line in original)
        times = [_record_time(orjson.loads(line)) for line in read]
        assert times == sorted(times), name
    deadletters = [orjson.loads(line) for line in (tmp_path / "events" / "deadletters.jsonl").read_bytes().splitlines()]
    assert [d["reason"] for d in deadletters] == ["key_mismatch", "invalid_json"]
    assert counts["deadletters.jsonl"] == 2
    assert not list((tmp_path / "events").glob(".*.part"))


def _record_time(record: dict) -> float:
    from datetime import datetime

    return datetime.fromisoformat(record.get("occurred_at") or record["updated_at"]).timestamp()
