"""A feed the team did not write, with bad records mixed in, on a real Apache Kafka broker.

300 malformed transactions of ten fault classes (:mod:`contract.faults`: each a spoiled copy of
a real transaction, so letting one in would change a merchant's figures) go out among a simulated
set's good records: 240 of eight classes as lines of the files themselves, and 60 that only Kafka
can carry (a tombstone, a record under another merchant's key) sent next to them. A real worker
scores the topics; then:

- all 300 are on the dead-letter topic, each with its class and a one-line reason;
- the live warnings equal, id for id and field for field, ``yujing backtest`` on the same files;
- and ``yujing backtest --from-kafka`` (the retained topics read back, keys and all) agrees too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from random import Random

import orjson
import pytest
from kafka import KafkaProducer

from contract.faults import FAULT_CLASSES, IN_FILES, BadRecord, bad_records
from contract.records import DeadLetter
from engine.replay import BacktestResult, iter_events
from streams.clients import raw_value, read_records
from streams.retained import DEADLETTER_FILE, download_topics
from streams.topics import input_topics
from tests.conftest import isolated_settings
from tests.test_end_to_end import SIMULATION, backtest, comparable, stated_file, wait_until_consumed
from yujing.services.processes import start_worker, stop_worker
from yujing.settings import Settings
from yujing.simulator import simulate

pytestmark = pytest.mark.kafka
__all__ = ["stated_file"]  # a fixture, used by name

PER_CLASS = 30  # 10 classes x 30 = the 300 bad records of the trial
KAFKA_ONLY = tuple(c for c in FAULT_CLASSES if c not in IN_FILES)


@dataclass
class BadFeedRun:
    feed_dir: Path
    settings: Settings
    warnings: list[dict]
    deadletters: list[dict]
    backtest: BacktestResult


def mixed_feed(events_dir: Path, feed_dir: Path, rng: Random) -> list[BadRecord]:
    """``events_dir`` copied to ``feed_dir`` with bad lines of every file-borne class spread
    through transactions.jsonl; returns the bad records only Kafka can carry, to send alongside."""
    feed_dir.mkdir()
    for path in events_dir.iterdir():
        if path.name != "transactions.jsonl":
            (feed_dir / path.name).write_bytes(path.read_bytes())
    lines = (events_dir / "transactions.jsonl").read_bytes().splitlines()
    good = [orjson.loads(line) for line in rng.sample(lines, 500)]
    spoiled = bad_records(good, PER_CLASS, rng)
    in_files = [b.value for b in spoiled if b.reason in IN_FILES]
    for bad in in_files:
        assert bad is not None and b"\n" not in bad
        lines.insert(rng.randrange(len(lines) + 1), bad)
    (feed_dir / "transactions.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    return [b for b in spoiled if b.reason in KAFKA_ONLY]


def publish_feed(feed_dir: Path, kafka_only: list[BadRecord], settings: Settings, rng: Random) -> None:
    """The files as ``yujing publish`` sends them (good records keyed by merchant, a line that does
    not decode exactly as it is), profiles and complaints first (see
    ``tests/test_end_to_end.publish_with_redeliveries`` for why), and the Kafka-only bad records
    at random points among the transactions."""
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap, linger_ms=20)
    topics = input_topics(settings)
    records = list(iter_events(feed_dir))
    ordered = [r for r in records if r[0] != "transactions"] + [r for r in records if r[0] == "transactions"]
    extra_at = {rng.randrange(len(ordered)): bad for bad in kafka_only}
    while len(extra_at) < len(kafka_only):  # two drew the same point: place the rest after it
        extra_at[max(extra_at) + 1] = kafka_only[len(extra_at)]
    for n, (kind, record) in enumerate(ordered):
        if isinstance(record, DeadLetter):
            producer.send(topics[kind], value=raw_value(record))
        else:
            producer.send(topics[kind], key=record.merchant_id.encode(), value=orjson.dumps(record.model_dump(mode="json")),
                          timestamp_ms=int(record.occurred_at.timestamp() * 1000))
        if n in extra_at:
            bad = extra_at.pop(n)
            producer.send(topics["transactions"], key=bad.key, value=bad.value)
    for bad in extra_at.values():
        producer.send(topics["transactions"], key=bad.key, value=bad.value)
    producer.flush()
    producer.close()


@pytest.fixture(scope="module")
def bad_feed_run(kafka_bootstrap: str, stated_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BadFeedRun]:
    tmp_path = tmp_path_factory.mktemp("bad-feed")
    simulate(SIMULATION).write(tmp_path / "events")
    rng = Random(16)
    kafka_only = mixed_feed(tmp_path / "events", tmp_path / "feed", rng)
    settings = isolated_settings(kafka_bootstrap, tmp_path / "home").model_copy(update={"thresholds_file": stated_file})
    publish_feed(tmp_path / "feed", kafka_only, settings, rng)
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        wait_until_consumed(settings)
    finally:
        code = stop_worker(worker)
    assert code == 0, (tmp_path / "worker.log").read_text()[-3000:]
    yield BadFeedRun(
        feed_dir=tmp_path / "feed",
        settings=settings,
        warnings=list(read_records(settings.topics.warnings, settings, idle_seconds=4)),
        deadletters=list(read_records(settings.topics.deadletter, settings, idle_seconds=4)),
        backtest=backtest(tmp_path / "feed", settings),
    )


def test_every_bad_record_is_dead_lettered_with_its_class(bad_feed_run: BadFeedRun) -> None:
    classes = Counter(d["reason"] for d in bad_feed_run.deadletters)
    assert classes == dict.fromkeys(FAULT_CLASSES, PER_CLASS), classes
    assert sum(classes.values()) == 300
    for letter in bad_feed_run.deadletters:
        assert letter["error"] and "\n" not in letter["error"]
        assert letter["source_topic"] == bad_feed_run.settings.topics.transactions
        assert letter["offset"] is not None
    # The replay of the files refuses the same lines for the same reasons.
    assert Counter(d.reason for d in bad_feed_run.backtest.deadletters) == dict.fromkeys(IN_FILES, PER_CLASS)


def test_live_warnings_equal_the_backtest_of_the_same_files(bad_feed_run: BadFeedRun) -> None:
    live = {w["warning_id"]: comparable(w) for w in bad_feed_run.warnings}
    replay = {w.warning_id: comparable(w.model_dump(mode="json")) for w in bad_feed_run.backtest.warnings}
    assert live, "the feed raised no warning: nothing to compare"
    assert sorted(live) == sorted(replay), "live and backtest raised different warnings"
    differing = [k for k in live if live[k] != replay[k]]
    assert not differing, f"{len(differing)} warning(s) differ in content, e.g. {differing[0]}"
    assert len(bad_feed_run.warnings) == len(live), "a warning was emitted twice"


def test_a_replay_of_the_retained_topics_takes_in_what_the_worker_took_in(
    bad_feed_run: BadFeedRun, tmp_path: Path,
) -> None:
    """``yujing backtest --from-kafka``: the topics read back with their keys; a record under
    another merchant's key and a tombstone are set aside with their class, as the worker did."""
    counts = download_topics(bad_feed_run.settings, tmp_path / "retained")
    assert counts[DEADLETTER_FILE] == 300
    set_aside = Counter(orjson.loads(line)["reason"]
                        for line in (tmp_path / "retained" / DEADLETTER_FILE).read_bytes().splitlines())
    assert set_aside == dict.fromkeys(FAULT_CLASSES, PER_CLASS)
    replayed = backtest(tmp_path / "retained", bad_feed_run.settings)
    assert not replayed.deadletters
    live = {w["warning_id"]: comparable(w) for w in bad_feed_run.warnings}
    assert {w.warning_id: comparable(w.model_dump(mode="json")) for w in replayed.warnings} == live
