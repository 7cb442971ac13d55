"""Learning from case outcomes (models/online.py) in the engine: per partition, in event time,
kept in the partition's clock, equal live and in replay.

The thresholds set here states its own fusion (tests/stated_fusion.py's set with four weights
in log-odds, an intercept and cut-offs of its own, no pairs), so these tests do not depend on
whatever ``models/learned.py`` holds at the moment."""

from __future__ import annotations

import pickle
from datetime import timedelta
from pathlib import Path

import pytest

from alerts.threshold_history import ThresholdSchedule
from alerts.thresholds import ThresholdSet
from contract.labels import load_label_rows
from contract.records import InputEvent, MerchantProfile, Transaction, Warning
from engine.partition import PartitionClock
from engine.replay import FEEDBACK_FILE, BacktestResult, Replay, write_records
from models.online import MAX_CORRECTION, FeedbackLearner
from tests.factories import complaint, steady_merchant, time_ordered
from tests.stated_fusion import stated_data
from yujing.evaluation import URGENT, false_alarm_desk

# A complaint storm (complaint_surge + severe_complaints) scores 0.65 with these: orange.
WEIGHTS = {"complaint_surge": 2.08, "severe_complaints": 1.53, "silence": 4.16, "sales_surge": 1.53}
INTERCEPT = -3.0
CUTOFFS = {"blue": 0.3, "yellow": 0.45, "orange": 0.6, "red": 0.8}
STORM_DAYS = (60, 90, 120, 150, 180, 210)  # one healthy gym each, far enough apart to be answered
LATENESS = timedelta(hours=6)


def online_thresholds() -> ThresholdSet:
    """Every other reading weighs nothing: only the storm's two readings can raise a level."""
    data = stated_data()
    assert not data["scoring"]["pairs"], "the stated set has no pairs: each weight counts alone"
    for code, values in data["indicators"].items():
        values["weight"] = WEIGHTS.get(code, 0.0)
    data["scoring"].update(intercept=INTERCEPT, detector_weight=0.0, joint_weight=0.0)
    data["levels"]["cutoffs"] = dict(CUTOFFS)
    return ThresholdSet.from_mapping(data)


ONLINE = online_thresholds()


def schedule() -> ThresholdSchedule:
    return ThresholdSchedule(ONLINE)


def gym(n: int, storm_day: int) -> list[InputEvent]:
    """A healthy gym of its own legal representative with one storm of refund refusals."""
    mid = f"g{n}"
    events = [e.model_copy(update={"legal_representative": f"rep-{n}"}) if isinstance(e, MerchantProfile) else e
              for e in steady_merchant(mid, 260)]
    return events + [complaint(mid, storm_day + i % 2, "refund_refused", n=i) for i in range(12)]


@pytest.fixture(scope="module")
def events_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("online") / "events"
    target.mkdir()
    events = time_ordered(*(gym(n, day) for n, day in enumerate(STORM_DAYS)))
    write_records([e for e in events if isinstance(e, MerchantProfile)], target / "merchants.jsonl")
    write_records([e for e in events if isinstance(e, Transaction)], target / "transactions.jsonl")
    write_records([e for e in events if not isinstance(e, MerchantProfile | Transaction)], target / "complaints.jsonl")
    return target


LABELS = load_label_rows([{"merchant_id": f"g{n}", "scenario": "healthy", "kind": "healthy", "collapse_date": None}
                          for n in range(len(STORM_DAYS))])


def replay(events_dir: Path, *, staffed: bool = True, learning: bool = True) -> Replay:
    """One partition (every gym shares the learner); staff call every orange/red a false alarm."""
    run = Replay(events_dir, partitions=1, allowed_lateness=LATENESS, schedule=schedule(),
                 staff=false_alarm_desk(LABELS) if staffed else None, online_learning=learning)
    run.run()
    return run


def comparable(result: BacktestResult) -> list[dict]:
    return [w.model_dump(exclude={"emitted_at"}) for w in result.warnings]


def alarms(warnings: list[Warning]) -> int:
    """Orange/red raises and escalations: what the case desk receives."""
    return sum(w.level in URGENT and w.transition in ("raised", "escalated") for w in warnings)


def test_false_alarms_lower_the_weights_behind_them_and_the_repeats(events_dir: Path) -> None:
    learned, fixed = replay(events_dir), replay(events_dir, learning=False)
    without_staff = replay(events_dir, staffed=False)
    # without learning every gym's storm is orange (a hold is per merchant); staff alone change nothing here
    assert alarms(fixed.result.warnings) == alarms(without_staff.result.warnings) == len(STORM_DAYS)
    assert fixed.engine.clocks[0].learner is None
    learner = learned.engine.clocks[0].learner
    assert isinstance(learner, FeedbackLearner) and learner.examples == len(learned.result.feedback) >= 1
    # the indicators behind the false alarms count less, within the bound; the others are untouched
    assert -MAX_CORRECTION <= learner.correction["complaint_surge"] < 0
    assert -MAX_CORRECTION <= learner.correction["severe_complaints"] < 0
    assert set(learner.correction) == {"complaint_surge", "severe_complaints"}
    assert alarms(learned.result.warnings) < alarms(fixed.result.warnings)
    # the first storm is judged before any verdict: the same warnings up to its disposition
    first = fixed.result.warnings[0].raised_at + timedelta(days=3)
    assert [w.warning_id for w in learned.result.warnings if w.raised_at <= first] == [
        w.warning_id for w in fixed.result.warnings if w.raised_at <= first
    ]


def test_a_warning_names_each_contribution_with_its_corrected_weight(events_dir: Path) -> None:
    learned = replay(events_dir)
    base = ONLINE.scorer().fusion.weights
    later = [w for w in learned.result.warnings if w.raised_at > learned.result.feedback[0].effective_from]
    assert later
    corrected = {i.code: i.weight for w in later for i in w.indicators}
    assert corrected["complaint_surge"] < base["complaint_surge"]
    for w in later:
        for i in w.indicators:
            assert i.contribution == pytest.approx(i.weight * i.score, abs=1e-3)


def test_the_same_staffed_replay_twice_and_from_its_feedback_file_gives_the_same(events_dir: Path, tmp_path: Path) -> None:
    first, second = replay(events_dir), replay(events_dir)
    assert comparable(first.result) == comparable(second.result)
    # live == replay: what staff sent, as feedback.jsonl next to the inputs, replays the same run
    files = tmp_path / "events"
    files.mkdir()
    for name in ("merchants.jsonl", "transactions.jsonl", "complaints.jsonl"):
        (files / name).symlink_to(events_dir / name)
    write_records(reversed(first.result.feedback), files / FEEDBACK_FILE)  # written in any order
    from_file = replay(files, staffed=False)
    assert comparable(from_file.result) == comparable(first.result)
    assert from_file.engine.clocks[0].learner.correction == first.engine.clocks[0].learner.correction


def test_a_checkpoint_keeps_the_learner_and_goes_on_to_the_same_warnings(events_dir: Path) -> None:
    whole = replay(events_dir)
    run = Replay(events_dir, partitions=1, allowed_lateness=LATENESS, schedule=schedule(), staff=false_alarm_desk(LABELS))
    run.run(whole.result.feedback[0].effective_from + timedelta(days=2))  # after the first verdict
    checkpoint = pickle.loads(pickle.dumps(run.checkpoint()))  # as a worker restart reads its tables
    assert checkpoint.clocks[0].learner.examples == 1 and checkpoint.online_learning
    resumed = Replay.resume(checkpoint, schedule=schedule(), staff=false_alarm_desk(LABELS))
    assert comparable(resumed.run()) == comparable(whole.result)
    with pytest.raises(ValueError, match="online learning"):
        Replay.resume(pickle.loads(pickle.dumps(run.checkpoint())), schedule=schedule(), online_learning=False)


def test_a_partition_clock_pickles_with_its_learner_and_old_clocks_load() -> None:
    learner = FeedbackLearner()
    learner.learn_one({"over_cap_cards": 1.0}, 0, base_log_odds=0.5)
    clock = PartitionClock(closed_through=10, learner=learner)
    restored = pickle.loads(pickle.dumps(clock))
    assert restored.learner.correction == learner.correction and restored.learner.examples == 1
    # a clock pickled before the field existed reads it as None
    old = PartitionClock(closed_through=10)
    del old.__dict__["learner"]
    assert pickle.loads(pickle.dumps(old)).learner is None


def test_confirmed_risks_raise_the_weights_and_rectified_teaches_nothing() -> None:
    learner = FeedbackLearner()
    x = {"sales_surge": 1.0, "deep_discount_share": 0.5}
    assert learner.learn_one(x, 1, base_log_odds=-0.5)
    assert learner.correction["sales_surge"] > learner.correction["deep_discount_share"] > 0
    for _ in range(100):
        learner.learn_one(x, 1, base_log_odds=-3.0)
    assert max(learner.correction.values()) == MAX_CORRECTION
    from models.online import outcome_label

    assert [outcome_label(d) for d in ("rectified", "confirmed_risk", "false_alarm", "other")] == [None, 1, 0, None]
