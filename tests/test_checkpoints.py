"""Replay checkpoints (engine.replay.Replay, engine.checkpoints): a replay stopped at a moment
of event time, pickled and resumed, gives exactly what one replay from the start gives, also with
a threshold schedule that changes at the window; the cache finds a checkpoint only for the same
code, settings, thresholds and file prefixes, and keeps it valid when records are appended.

Replays use the set whose fusion ``tests/stated_fusion.py`` states, so that they raise warnings
whatever ``yujing train`` last learned."""

from __future__ import annotations

import pickle
from datetime import date, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from alerts.threshold_history import ThresholdSchedule
from alerts.thresholds import ThresholdSet
from contract.records import Feedback, Warning
from engine.checkpoints import CheckpointCache
from engine.replay import Replay, run_backtest
from engine.whatif_replay import schedule_for, warm_up
from models.calendar import SHANGHAI, day_start
from tests.stated_fusion import STATED_CUTOFFS, stated_data, stated_thresholds
from yujing.simulator import SimulationConfig, simulate

SIMULATION = SimulationConfig(merchants=16, days=120, seed=11)
PARTITIONS = 6
LATENESS = timedelta(hours=6)
SINCE = SIMULATION.start + timedelta(days=70)
LATER = SIMULATION.start + timedelta(days=100)



@pytest.fixture(scope="module")
def events_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("checkpoints") / "events"
    simulate(SIMULATION).write(target)
    return target


@pytest.fixture(scope="module")
def candidate() -> ThresholdSet:
    data = stated_data()
    data["levels"]["cutoffs"] = {"blue": 0.2, "yellow": 0.3, "orange": 0.45, "red": 0.65}
    assert all(data["levels"]["cutoffs"][level] < cut for level, cut in STATED_CUTOFFS.items())
    return ThresholdSet.from_mapping(data)


def comparable(warnings: list[Warning]) -> list[bytes]:
    return [orjson.dumps(w.model_dump(mode="json", exclude={"emitted_at"})) for w in warnings]


def day_of(warning: Warning) -> date:
    return warning.raised_at.astimezone(SHANGHAI).date()


def warm(events_dir: Path, until: date) -> Replay:
    replay = Replay(events_dir, partitions=PARTITIONS, allowed_lateness=LATENESS,
                    schedule=ThresholdSchedule(stated_thresholds()))
    replay.run(day_start(until.toordinal()))
    return replay


def test_a_pickled_checkpoint_resumed_with_the_candidate_equals_a_replay_from_the_start(
    events_dir: Path, candidate: ThresholdSet,
) -> None:
    schedule = schedule_for(stated_thresholds(), candidate, SINCE)
    whole = run_backtest(events_dir, partitions=PARTITIONS, allowed_lateness=LATENESS, schedule=schedule)
    checkpoint = warm(events_dir, SINCE).checkpoint()
    assert checkpoint.closed_through is not None and checkpoint.closed_through < SINCE.toordinal()
    assert 0 < checkpoint.result.events < whole.events
    resumed = Replay.resume(pickle.loads(pickle.dumps(checkpoint)),
                            schedule=schedule_for(stated_thresholds(), candidate, SINCE)).run()
    assert comparable(resumed.warnings) == comparable(whole.warnings)
    assert (resumed.events, resumed.duplicates, resumed.late, len(resumed.deadletters)) == (
        whole.events, whole.duplicates, whole.late, len(whole.deadletters))
    # The candidate changed something in the window (else this test would prove little) and
    # nothing before it.
    builtin = run_backtest(events_dir, partitions=PARTITIONS, allowed_lateness=LATENESS,
                           schedule=ThresholdSchedule(stated_thresholds())).warnings
    before = [w for w in builtin if day_of(w) < SINCE]
    assert comparable(whole.warnings[:len(before)]) == comparable(before)
    assert comparable(whole.warnings) != comparable(builtin)
    assert {w.thresholds_version for w in whole.warnings if day_of(w) >= SINCE} == {candidate.version}


def test_a_replay_can_stop_and_go_on_in_the_same_process(events_dir: Path) -> None:
    whole = run_backtest(events_dir, partitions=PARTITIONS, allowed_lateness=LATENESS,
                         schedule=ThresholdSchedule(stated_thresholds()))
    assert whole.warnings, "the replay must raise warnings to prove anything"
    replay = Replay(events_dir, partitions=PARTITIONS, allowed_lateness=LATENESS,
                    schedule=ThresholdSchedule(stated_thresholds()))
    for day in (SINCE, SINCE, LATER):
        replay.run(day_start(day.toordinal()))
    assert comparable(replay.run().warnings) == comparable(whole.warnings)


def test_staff_answers_waiting_at_the_checkpoint_are_kept(events_dir: Path) -> None:
    def staff(warning: Warning) -> list[Feedback]:
        """Staff who find every raise a false alarm, five days later (some answers are still
        waiting to take effect when the replay stops)."""
        if warning.transition != "raised":
            return []
        decided = warning.raised_at + timedelta(days=5)
        return [Feedback(
            feedback_id=f"staff-{warning.warning_id}", merchant_id=warning.merchant_id,
            case_id=f"case-{warning.warning_id}", disposition="false_alarm", level=warning.level,
            score=warning.score, indicator_codes=[i.code for i in warning.indicators],
            warning_ids=[warning.warning_id], effective_from=decided, decided_at=decided, decided_by_role="simulated",
        )]

    def replay(stop: date | None) -> tuple[list[Warning], list[Feedback]]:
        replay = Replay(events_dir, partitions=PARTITIONS, allowed_lateness=LATENESS, staff=staff,
                        schedule=ThresholdSchedule(stated_thresholds()))
        if stop is not None:
            replay.run(day_start(stop.toordinal()))
            assert replay.checkpoint().scheduled, "answers must be waiting at the checkpoint"
            replay = Replay.resume(pickle.loads(pickle.dumps(replay.checkpoint())), staff=staff,
                                   schedule=ThresholdSchedule(stated_thresholds()))
        result = replay.run()
        return result.warnings, result.feedback

    whole_warnings, whole_feedback = replay(None)
    assert whole_feedback, "staff must answer some warnings in this simulation"
    warnings, feedback = replay(SINCE)
    assert comparable(warnings) == comparable(whole_warnings)
    assert [f.feedback_id for f in feedback] == [f.feedback_id for f in whole_feedback]


def _truncated(events_dir: Path, target: Path, before: date) -> Path:
    """The files of ``events_dir`` as they were when ``before`` began: each file's lines up to its
    first record of that day or later (what the retained topics held then)."""
    target.mkdir(parents=True)
    edge = day_start(before.toordinal())
    for path in events_dir.glob("*.jsonl"):
        kept = []
        for line in path.read_bytes().splitlines(keepends=True):
            record = orjson.loads(line)
            moment = record.get("occurred_at") or record.get("updated_at")
            if moment is not None and datetime.fromisoformat(moment) >= edge:
                break
            kept.append(line)
        (target / path.name).write_bytes(b"".join(kept))
    return target


def test_the_cache_finds_a_checkpoint_only_for_the_same_history_code_and_settings(
    events_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = CheckpointCache(tmp_path / "cache")
    stop_at = day_start(SINCE.toordinal())
    version = stated_thresholds().version
    options = {"partitions": PARTITIONS, "allowed_lateness": LATENESS, "thresholds_version": version, "stop_at": stop_at}
    # Made on the history as it stood a little after the window opened...
    earlier = _truncated(events_dir, tmp_path / "earlier", SINCE + timedelta(days=3))
    assert cache.load(earlier, **options) is None
    cache.save(warm(earlier, SINCE).checkpoint(), thresholds_version=version, stop_at=stop_at)
    # ...it serves the full history too (records were appended), from another directory.
    found = cache.load(events_dir, **options)
    assert found is not None and found.events_dir == events_dir
    whole = run_backtest(events_dir, partitions=PARTITIONS, allowed_lateness=LATENESS,
                         schedule=ThresholdSchedule(stated_thresholds()))
    assert comparable(Replay.resume(found, schedule=ThresholdSchedule(stated_thresholds())).run().warnings) == (
        comparable(whole.warnings))
    # Not for another moment, thresholds version, partitioning or lateness.
    assert cache.load(events_dir, **{**options, "stop_at": stop_at + timedelta(days=1)}) is None
    assert cache.load(events_dir, **{**options, "thresholds_version": "t-000000000000"}) is None
    assert cache.load(events_dir, **{**options, "partitions": 3}) is None
    assert cache.load(events_dir, **{**options, "allowed_lateness": timedelta(hours=2)}) is None
    # Not once a record it read has changed, nor when a file appears.
    changed = tmp_path / "changed"
    changed.mkdir()
    for path in events_dir.glob("*.jsonl"):
        (changed / path.name).write_bytes(path.read_bytes())
    first = (changed / "transactions.jsonl").read_bytes()
    (changed / "transactions.jsonl").write_bytes(first.replace(b'"amount":', b'"amount": ', 1))
    assert cache.load(changed, **options) is None
    (changed / "transactions.jsonl").write_bytes(first)
    assert cache.load(changed, **options) is not None
    (changed / "feedback.jsonl").write_bytes(b"")
    assert cache.load(changed, **options) is None
    # Not after the code changed.
    monkeypatch.setattr("engine.checkpoints.code_fingerprint", lambda: "other code")
    assert cache.load(events_dir, **options) is None


def test_the_cache_keeps_the_most_recently_used_entries(events_dir: Path, tmp_path: Path) -> None:
    cache = CheckpointCache(tmp_path / "cache", keep=2)
    checkpoint = warm(events_dir, SINCE).checkpoint()
    for n in range(3):
        cache.save(checkpoint, thresholds_version=f"t-{n:012d}", stop_at=day_start(SINCE.toordinal()))
    entries = [p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]
    assert len(entries) == 2
    assert cache.load(events_dir, partitions=PARTITIONS, allowed_lateness=LATENESS,
                      thresholds_version=f"t-{0:012d}", stop_at=day_start(SINCE.toordinal())) is None
    assert cache.load(events_dir, partitions=PARTITIONS, allowed_lateness=LATENESS,
                      thresholds_version=f"t-{2:012d}", stop_at=day_start(SINCE.toordinal())) is not None


def test_a_damaged_entry_is_passed_over(events_dir: Path, tmp_path: Path) -> None:
    cache = CheckpointCache(tmp_path / "cache")
    stop_at = day_start(SINCE.toordinal())
    version = stated_thresholds().version
    entry = cache.save(warm(events_dir, SINCE).checkpoint(), thresholds_version=version, stop_at=stop_at)
    (entry / "checkpoint.pickle").write_bytes(b"not a pickle")
    assert cache.load(events_dir, partitions=PARTITIONS, allowed_lateness=LATENESS, thresholds_version=version,
                      stop_at=stop_at) is None


def test_checkpoint_refuses_other_partitioning(events_dir: Path) -> None:
    checkpoint = warm(events_dir, SINCE).checkpoint()
    with pytest.raises(ValueError, match="partitions"):
        Replay(events_dir, partitions=3, allowed_lateness=LATENESS, checkpoint=checkpoint)


def test_a_window_moved_forward_goes_on_from_the_earlier_checkpoint(events_dir: Path, tmp_path: Path) -> None:
    cache = CheckpointCache(tmp_path / "cache")
    options = {"partitions": PARTITIONS, "allowed_lateness": LATENESS, "cache": cache}
    _, first = warm_up(events_dir, stated_thresholds(), SINCE, **options)  # type: ignore[arg-type]
    assert not first.cached and first.resumed_from is None
    moved, later = warm_up(events_dir, stated_thresholds(), LATER, **options)  # type: ignore[arg-type]
    assert not later.cached and later.resumed_from == SINCE
    assert later.closed_through is not None and first.closed_through is not None
    assert first.closed_through < later.closed_through < LATER
    fresh, _ = warm_up(events_dir, stated_thresholds(), LATER, partitions=PARTITIONS, allowed_lateness=LATENESS)
    assert moved.positions == fresh.positions and moved.result.events == fresh.result.events
    rest = [Replay.resume(c, schedule=ThresholdSchedule(stated_thresholds())).run().warnings for c in (moved, fresh)]
    assert comparable(rest[0]) == comparable(rest[1])
    # And the moved window's own checkpoint is kept: the next what-if there starts from it.
    _, again = warm_up(events_dir, stated_thresholds(), LATER, **options)  # type: ignore[arg-type]
    assert again.cached
