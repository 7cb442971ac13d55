"""End to end on a real Apache Kafka broker: simulated events in, warnings out.

One simulated set (with run-aways and benign look-alikes) is published to fresh topics, a real
``yujing worker`` process scores it, and the warnings on the disposal-queue topic are compared
with the labels and with ``yujing backtest`` on the same files.

Worker and backtest score with the set whose fusion ``tests/stated_fusion.py`` states, given to the
worker as its thresholds file (``YUJING_THRESHOLDS_FILE``): these tests need run-aways, chain
members and collapsing merchants to reach orange, and the built-in weights and cut-offs are
learned and change with every ``yujing train``. The built-in set's own detection is measured by
``yujing evaluate`` on randomised worlds (docs/evaluate.md); its merchant-days live equal the
backtest's in tests/test_observability.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from alerts.threshold_history import ThresholdSchedule
from alerts.thresholds import render_yaml
from contract.records import Feedback, Warning
from engine.replay import FEEDBACK_FILE, BacktestResult, iter_events, run_backtest, write_records
from streams.case_desk_io import backlog
from streams.clients import group_progress, read_records
from streams.topics import input_topics
from tests.conftest import isolated_settings
from tests.stated_fusion import stated_thresholds
from tests.test_broker import free_ports
from yujing.services.processes import settings_env, start_worker, stop_worker
from yujing.settings import Settings
from yujing.simulator import SimulationConfig, simulate

pytestmark = pytest.mark.kafka

# Simulated signal strength varies by design; this set's run-away shows a clear surge. How many
# run-aways of every strength are caught (recall, lead time) is measured by `yujing evaluate`;
# these tests check that the live path delivers the warnings the stated fusion gives.
SIMULATION = SimulationConfig(merchants=16, days=200, seed=7)
BAD_RECORDS = [
    b"{this is not json",
    orjson.dumps({"event_id": "bad-1", "type": "gift", "merchant_id": "m", "store_id": "s", "card_id": "c",
                  "consumer_id": "u", "amount": 1, "occurred_at": "2025-09-02T10:00:00+08:00"}),
    orjson.dumps({"event_id": "bad-2", "type": "refund", "merchant_id": "m", "store_id": "s", "card_id": "c",
                  "consumer_id": "u", "amount": -5, "occurred_at": "2025-09-02T10:00:00+08:00"}),
]


@dataclass
class LiveRun:
    events_dir: Path
    labels: list[dict]
    warnings: list[dict]
    deadletters: list[dict]
    backtest: BacktestResult


@pytest.fixture(scope="module")
def stated_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stated set as a thresholds file, for the workers of this module."""
    path = tmp_path_factory.mktemp("thresholds") / "stated.yaml"
    path.write_text(render_yaml(stated_thresholds()), encoding="utf-8")
    return path


@pytest.fixture()
def kafka_settings(kafka_settings: Settings, stated_file: Path) -> Settings:
    """conftest's isolated settings, scoring with the stated set."""
    return kafka_settings.model_copy(update={"thresholds_file": stated_file})


def backtest(events_dir: Path, settings: Settings, **options: Any) -> BacktestResult:
    """``yujing backtest`` as a worker with ``settings`` scores: with its base thresholds."""
    return run_backtest(
        events_dir,
        partitions=settings.input_partitions,
        allowed_lateness=timedelta(hours=settings.allowed_lateness_hours),
        schedule=ThresholdSchedule(settings.base_thresholds()),
        **options,
    )


def consumed_fraction(settings: Settings) -> float:
    return group_progress(settings)[0]


def consumed_everything(settings: Settings) -> bool:
    return consumed_fraction(settings) >= 1.0


def wait_until_consumed(settings: Settings, timeout: float = 300, warnings: int = 0) -> None:
    """Until the group has committed everything, including the chain stage's messages, no new
    message appeared for two looks 3 s apart (days closing in lock-step keep producing them;
    after a rebalance the worker repeats its heartbeats within 2 s), and at least ``warnings``
    warnings were written."""
    deadline = time.monotonic() + timeout
    previous_total, stable = -1, 0
    while time.monotonic() < deadline:
        fraction, total = group_progress(settings)
        stable = stable + 1 if fraction >= 1.0 and total == previous_total else 0
        if stable >= 2 and warnings_written(settings) >= warnings:
            return
        previous_total = total if fraction >= 1.0 else -1
        time.sleep(3)
    raise AssertionError(f"worker did not consume all input (and write {warnings} warnings) within {timeout} s")


def warnings_written(settings: Settings) -> int:
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap)
    try:
        partitions = [TopicPartition(settings.topics.warnings, p) for p in range(settings.input_partitions)]
        return sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()


def read_topic(topic: str, settings: Settings) -> list[dict]:
    return list(read_records(topic, settings, idle_seconds=4))


def publish_with_redeliveries(events_dir: Path, settings: Settings, every: int = 0, *,
                              side_topics_read_first: bool = False) -> None:
    """Publish the files, re-sending every ``every``-th transaction right after itself (a
    platform retrying), then a few records that cannot be decoded.

    Profiles and complaints go out before the transactions. The watermark is driven by
    transactions, and in a replay of a year in seconds the worker's consumer may read one topic
    days of event time ahead of another; a profile or complaint read after the transactions of
    the following day would count as late, live but not in the backtest, which merges the files
    by time. Read early, they wait for their day (profiles are point-in-time versions, complaints
    sit in their day's bucket), exactly as in the backtest. In real time the skew is milliseconds.
    Sent first is not read first: a running worker's consumer fetches the topics side by side.
    ``side_topics_read_first`` (a worker already running): the transactions go out only once
    the worker's group has committed every profile and complaint, so none of them is late.
    """
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap, linger_ms=20)
    topics = input_topics(settings)
    records = list(iter_events(events_dir))
    ordered = [r for r in records if r[0] != "transactions"] + [r for r in records if r[0] == "transactions"]
    side = sum(1 for kind, _ in ordered if kind != "transactions")
    for n, (kind, record) in enumerate(ordered):
        if n == side and side_topics_read_first:
            producer.flush()
            _wait_until_committed(settings, {topics[k] for k, _ in ordered[:side]})
        value = orjson.dumps(record.model_dump(mode="json"))
        copies = 2 if every and kind == "transactions" and n % every == 0 else 1
        for _ in range(copies):
            producer.send(topics[kind], key=record.merchant_id.encode(), value=value,
                          timestamp_ms=int(record.occurred_at.timestamp() * 1000))
    if every:
        for raw in BAD_RECORDS:
            producer.send(settings.topics.transactions, key=b"m", value=raw)
    producer.flush()
    producer.close()


def _wait_until_committed(settings: Settings, topics: set[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while any(backlog(settings, settings.app_id, topic) for topic in topics):
        if time.monotonic() > deadline:
            raise AssertionError(f"the worker did not read {sorted(topics)} within {timeout} s")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[dict]]]:
    events_dir = tmp_path_factory.mktemp("events")
    sim = simulate(SIMULATION)
    sim.write(events_dir)
    yield events_dir, sim.labels


@pytest.fixture(scope="module")
def live_run(
    simulated: tuple[Path, list[dict]], kafka_bootstrap: str, stated_file: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveRun]:
    """One live run shared by the tests that inspect its output."""
    events_dir, labels = simulated
    tmp_path = tmp_path_factory.mktemp("live")
    kafka_settings = isolated_settings(kafka_bootstrap, tmp_path / "home").model_copy(
        update={"thresholds_file": stated_file})
    publish_with_redeliveries(events_dir, kafka_settings, every=40)
    worker = start_worker(kafka_settings, tmp_path / "worker.log")
    try:
        wait_until_consumed(kafka_settings)
    finally:
        code = stop_worker(worker)
    assert code == 0, (tmp_path / "worker.log").read_text()[-3000:]
    yield LiveRun(
        events_dir=events_dir,
        labels=labels,
        warnings=read_topic(kafka_settings.topics.warnings, kafka_settings),
        deadletters=read_topic(kafka_settings.topics.deadletter, kafka_settings),
        backtest=backtest(events_dir, kafka_settings),
    )


def test_live_pipeline_warns_runaway_before_collapse_and_spares_lookalikes(live_run: LiveRun) -> None:
    """With the stated fusion (checked by a plain backtest of this simulation: the run-away is
    orange 25 days ahead, no look-alike above blue)."""
    by_merchant: dict[str, list[dict]] = {}
    for w in live_run.warnings:
        by_merchant.setdefault(w["merchant_id"], []).append(w)
    runaways = [label for label in live_run.labels if label["scenario"] == "runaway_after_surge"]
    assert runaways
    for label in runaways:
        urgent = [
            w for w in by_merchant.get(label["merchant_id"], [])
            if w["level"] in ("orange", "red") and w["transition"] in ("raised", "escalated")
        ]
        assert urgent, f"run-away {label['merchant_id']} got no orange/red warning"
        assert urgent[0]["raised_at"][:10] < label["collapse_date"], (urgent[0], label)
    for label in (x for x in live_run.labels if x["kind"] == "lookalike"):
        urgent = [w for w in by_merchant.get(label["merchant_id"], []) if w["level"] in ("orange", "red")]
        assert not urgent, f"look-alike {label['scenario']} {label['merchant_id']} was warned: {urgent[0]}"


def test_warnings_follow_the_contract(live_run: LiveRun) -> None:
    assert live_run.warnings
    for w in live_run.warnings:
        assert w["level"] in ("blue", "yellow", "orange", "red")
        assert w["transition"] in ("raised", "escalated", "de-escalated", "cleared")
        assert 0 <= w["score"] <= 1 and w["thresholds_version"] == stated_thresholds().version  # the worker's file
        assert "consumer_id" not in orjson.dumps(w).decode()
        if w["transition"] != "cleared":
            assert w["indicators"] and all(i["explanation_zh"] and i["explanation_en"] for i in w["indicators"])


def test_live_and_backtest_emit_the_same_warnings(live_run: LiveRun) -> None:
    """Field for field (scores, indicators, contributions, explanations), except the wall clock."""

    def comparable(warning: dict) -> bytes:
        return orjson.dumps({k: v for k, v in warning.items() if k != "emitted_at"}, option=orjson.OPT_SORT_KEYS)

    live = {w["warning_id"]: comparable(w) for w in live_run.warnings}
    replay = {w.warning_id: comparable(w.model_dump(mode="json")) for w in live_run.backtest.warnings}
    assert sorted(live) == sorted(replay), "live and backtest raised different warnings"
    differing = [(live[k], replay[k]) for k in sorted(live) if live[k] != replay[k]]
    assert not differing, f"{len(differing)} warning(s) differ in content, e.g. live {differing[0][0]!r} vs replay {differing[0][1]!r}"
    assert len(live) == len({w["warning_id"] for w in live_run.warnings}), "a warning was emitted twice"


def test_chain_contagion_crosses_partitions_live_as_in_the_backtest(live_run: LiveRun) -> None:
    """The chain's stores hash to different partitions; each still hears of the other's level
    (through the worker's chain agent live, in-line in the backtest) and the warnings agree."""
    from engine.replay import partition_for

    chain = [label["merchant_id"] for label in live_run.labels if label["chain_id"]]
    assert len(chain) >= 2 and len({partition_for(m, 4) for m in chain}) > 1
    heard = {
        w["merchant_id"] for w in live_run.warnings
        if w["merchant_id"] in chain and any(i["code"] == "chain_contagion" for i in w["indicators"])
    }
    assert heard == set(chain)
    live = sorted((w["warning_id"], orjson.dumps(w["indicators"])) for w in live_run.warnings if w["merchant_id"] in chain)
    replay = sorted(
        (w.warning_id, orjson.dumps(w.model_dump(mode="json")["indicators"]))
        for w in live_run.backtest.warnings if w.merchant_id in chain
    )
    assert live == replay


def test_bad_input_is_dead_lettered_and_duplicates_ignored(live_run: LiveRun) -> None:
    errors = sorted(d["error"] for d in live_run.deadletters)
    assert len(errors) == len(BAD_RECORDS)
    assert any("not valid JSON" in e for e in errors)
    assert any("field 'type'" in e for e in errors)
    assert any("field 'amount'" in e for e in errors)
    assert all(d["source_topic"].endswith(".transactions") and d["offset"] is not None for d in live_run.deadletters)
    # duplicates changed nothing: the parity test compares with a backtest without them


def test_restart_mid_stream_loses_and_duplicates_nothing(
    simulated: tuple[Path, list[dict]], kafka_settings: Settings, tmp_path: Path, worker_processes: list
) -> None:
    events_dir, _ = simulated
    expected = backtest(events_dir, kafka_settings).warnings
    publish_with_redeliveries(events_dir, kafka_settings)
    log = tmp_path / "worker.log"
    worker = start_worker(kafka_settings, log)
    worker_processes.append(worker)
    # stop it part-way through the input, the way an operator restarts a worker
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and (consumed_fraction(kafka_settings) < 0.4 or warnings_written(kafka_settings) < 3):
        time.sleep(0.3)
    assert not consumed_everything(kafka_settings), "the worker finished before it could be stopped"
    assert stop_worker(worker) == 0, log.read_text()[-3000:]
    before_restart = len(read_topic(kafka_settings.topics.warnings, kafka_settings))
    assert 0 < before_restart < len(expected)

    worker = start_worker(kafka_settings, log)
    worker_processes.append(worker)
    wait_until_consumed(kafka_settings)
    assert stop_worker(worker) == 0, log.read_text()[-3000:]
    live_ids = [w["warning_id"] for w in read_topic(kafka_settings.topics.warnings, kafka_settings)]
    assert len(live_ids) == len(set(live_ids)), "a warning was emitted twice across the restart"
    assert sorted(live_ids) == sorted(w.warning_id for w in expected), "a warning was lost across the restart"


def test_two_workers_share_the_partitions_and_still_match_the_backtest(
    simulated: tuple[Path, list[dict]], kafka_settings: Settings, tmp_path: Path, worker_processes: list
) -> None:
    """Scaling out: a second worker joins mid-stream, the group rebalances, tables move with
    their partitions, and the warnings are still exactly the backtest's, none twice."""
    events_dir, _ = simulated
    # Once in four runs faust left a partition unread after the rebalance: the watchdog heals that
    # (test_a_partition_faust_stopped_fetching_…); sooner here than the default 120 s.
    kafka_settings = kafka_settings.model_copy(update={"stall_seconds": 30.0})
    expected = sorted(w.warning_id for w in backtest(events_dir, kafka_settings).warnings)
    publish_with_redeliveries(events_dir, kafka_settings)
    logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    worker_processes.append(start_worker(kafka_settings, logs[0]))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and consumed_fraction(kafka_settings) < 0.1:
        time.sleep(0.3)
    worker_processes.append(start_worker(kafka_settings, logs[1]))
    wait_until_consumed(kafka_settings, warnings=len(expected))
    for worker, log in zip(worker_processes, logs, strict=True):
        assert stop_worker(worker) == 0, log.read_text()[-3000:]
    # after the rebalance each worker owned some input partitions (its last assignment line)
    for log in logs:
        assignments = re.findall(r"input partitions assigned: \[([0-9, ]*)\]", log.read_text())
        assert assignments and assignments[-1], f"{log.name} ended with no partition: {assignments}"
    live = sorted(w["warning_id"] for w in read_topic(kafka_settings.topics.warnings, kafka_settings))
    assert live == expected


def test_a_partition_faust_stopped_fetching_is_read_again_and_nothing_is_lost(
    simulated: tuple[Path, list[dict]], kafka_settings: Settings, tmp_path: Path, worker_processes: list
) -> None:
    """The failure the watchdog exists for: a worker stops fetching one input partition and
    loses records already fetched for it (tests/stalling_worker.py does both, once). The
    watchdog notices, seeks the partition back to its committed offset, and the warnings are
    exactly the backtest's."""
    events_dir, _ = simulated
    expected = sorted(w.warning_id for w in backtest(events_dir, kafka_settings).warnings)
    publish_with_redeliveries(events_dir, kafka_settings)
    (metrics_port,) = free_ports(1)
    settings = kafka_settings.model_copy(update={"stall_seconds": 5.0, "metrics_port": metrics_port})
    log = tmp_path / "worker.log"
    with log.open("ab") as out:
        worker = subprocess.Popen([sys.executable, "-m", "tests.stalling_worker"],
                                  env={**os.environ, **settings_env(settings)}, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    worker_processes.append(worker)
    wait_until_consumed(settings)
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
        metrics = response.read().decode()
    assert stop_worker(worker) == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert re.search(rf"test: stopped fetching {re.escape(settings.topics.transactions)}\[0\]", text), text[-3000:]
    assert re.search(rf"partition {re.escape(settings.topics.transactions)}\[0\] stalled: committed offset \d+ "
                     r"unmoved for 5 s with \d+ record\(s\) waiting .*paused\); resuming", text), text[-3000:]
    assert re.search(r'^yujing_partition_stalls_total\{topic="transactions"\} [1-9]', metrics, re.M), metrics
    live = sorted(w["warning_id"] for w in read_topic(settings.topics.warnings, settings))
    assert live == expected


def test_a_partition_still_stalled_after_being_read_again_makes_the_worker_rejoin_its_group(
    simulated: tuple[Path, list[dict]], kafka_settings: Settings, tmp_path: Path, worker_processes: list
) -> None:
    """The watchdog's second remedy: the stalled partition is "read again" by a remedy that does
    nothing (YUJING_TEST_HEAL_FAILS), so at the next verdict the worker rejoins its group; the
    rebalance starts every partition afresh and the warnings are exactly the backtest's."""
    events_dir, _ = simulated
    expected = sorted(w.warning_id for w in backtest(events_dir, kafka_settings).warnings)
    publish_with_redeliveries(events_dir, kafka_settings)
    settings = kafka_settings.model_copy(update={"stall_seconds": 5.0})
    log = tmp_path / "worker.log"
    with log.open("ab") as out:
        worker = subprocess.Popen([sys.executable, "-m", "tests.stalling_worker"],
                                  env={**os.environ, **settings_env(settings), "YUJING_TEST_HEAL_FAILS": "1"},
                                  stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    worker_processes.append(worker)
    wait_until_consumed(settings, warnings=len(expected))
    assert stop_worker(worker) == 0, log.read_text()[-3000:]
    text = log.read_text()
    topic = re.escape(settings.topics.transactions)
    assert re.search(rf"partition {topic}\[0\] stalled: committed offset \d+; test: not resuming it", text), text[-3000:]
    assert re.search(rf"partition {topic}\[0\] still stalled at committed offset \d+ after being read again; "
                     r"rejoining the group", text), text[-3000:]
    assert len(re.findall(r"input partitions assigned: \[0, 1, 2, 3\]", text)) >= 2, text[-3000:]  # the rebalance
    live = sorted(w["warning_id"] for w in read_topic(settings.topics.warnings, settings))
    assert live == expected


def staff_desk(labels: list[dict]) -> Callable[[Warning], list[Feedback]]:
    """Case staff answering every raise and escalation three days later: a collapsing merchant's
    orange or red is a confirmed risk, anything else a false alarm."""
    collapsing = {label["merchant_id"] for label in labels if label["kind"] == "collapse"}

    def answer(warning: Warning) -> list[Feedback]:
        if warning.transition not in ("raised", "escalated"):
            return []
        urgent = warning.level in ("orange", "red")
        disposition = "confirmed_risk" if urgent and warning.merchant_id in collapsing else "false_alarm"
        decided = warning.raised_at + timedelta(days=3)
        return [Feedback(
            feedback_id=f"fb-{warning.warning_id}", merchant_id=warning.merchant_id, case_id=f"case-{warning.warning_id}",
            disposition=disposition, level=warning.level, score=warning.score,  # type: ignore[arg-type]
            indicator_codes=[i.code for i in warning.indicators], warning_ids=[warning.warning_id],
            effective_from=decided, decided_at=decided, decided_by_role="consumer_protection",
        )]

    return answer


def comparable(warning: dict) -> bytes:
    return orjson.dumps({k: v for k, v in warning.items() if k != "emitted_at"}, option=orjson.OPT_SORT_KEYS)


def test_feedback_on_the_feedback_topic_changes_live_warnings_as_in_the_backtest(
    simulated: tuple[Path, list[dict]], kafka_settings: Settings, tmp_path: Path, worker_processes: list
) -> None:
    """The case service's dispositions, published to the feedback topic, change the live worker's
    later warnings exactly as ``feedback.jsonl`` changes the backtest's; bad feedback is
    dead-lettered with its reason."""
    source, labels = simulated
    plain = backtest(source, kafka_settings).warnings
    answered = backtest(source, kafka_settings, staff=staff_desk(labels))
    assert {f.disposition for f in answered.feedback} == {"false_alarm", "confirmed_risk"}
    events_dir = tmp_path / "events"
    shutil.copytree(source, events_dir)
    write_records(reversed(answered.feedback), events_dir / FEEDBACK_FILE)  # in order of decision
    expected = backtest(events_dir, kafka_settings).warnings
    assert [w.warning_id for w in expected] == [w.warning_id for w in answered.warnings]
    assert {w.warning_id for w in expected} != {w.warning_id for w in plain}, "the feedback changed nothing"

    publish_with_redeliveries(events_dir, kafka_settings)  # feedback goes out with the profiles, ahead
    producer = KafkaProducer(bootstrap_servers=kafka_settings.bootstrap)
    producer.send(kafka_settings.topics.feedback, key=b"m-unknown",
                  value=orjson.dumps({"feedback_id": "bad", "merchant_id": "m-unknown", "disposition": "shrug"}))
    producer.flush()
    producer.close()
    log = tmp_path / "worker.log"
    worker = start_worker(kafka_settings, log)
    worker_processes.append(worker)
    wait_until_consumed(kafka_settings)
    assert stop_worker(worker) == 0, log.read_text()[-3000:]

    live = {w["warning_id"]: comparable(w) for w in read_topic(kafka_settings.topics.warnings, kafka_settings)}
    replay = {w.warning_id: comparable(w.model_dump(mode="json")) for w in expected}
    assert sorted(live) == sorted(replay), "live and backtest (same feedback) raised different warnings"
    differing = [k for k in sorted(live) if live[k] != replay[k]]
    assert not differing, f"{len(differing)} warning(s) differ, e.g. live {live[differing[0]]!r} vs {replay[differing[0]]!r}"
    deadletters = read_topic(kafka_settings.topics.deadletter, kafka_settings)
    assert [d["source_topic"] for d in deadletters] == [kafka_settings.topics.feedback]
    assert "field 'disposition' has 'shrug'" in deadletters[0]["error"]
    assert "missing required field 'case_id'" in deadletters[0]["error"]
