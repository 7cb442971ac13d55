"""Case feedback on the scoring side (alerts/feedback.py, the engine, the backtest) and the
case-desk fields of every warning.

The complaint storms here are judged by a fusion stated in this file (``STORMS``), not by the
learned built-in one: ``yujing train`` changes the built-in weights and cut-offs, and what is
tested is what feedback does to a storm's levels, whatever the levels are made of."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path

import orjson
import pytest

from alerts.feedback import FeedbackEntry, FeedbackHold, MerchantFeedback
from alerts.threshold_history import ThresholdSchedule
from alerts.thresholds import ThresholdSet
from contract.records import (
    Complaint,
    DeadLetter,
    Feedback,
    InputEvent,
    MerchantProfile,
    Transaction,
    Warning,
    decode,
)
from engine.partition import PartitionEngine
from engine.replay import (
    FEEDBACK_FILE,
    BacktestResult,
    iter_events,
    partition_for,
    run_backtest,
    write_records,
)
from models.calendar import local_day
from models.state import MerchantState
from tests.factories import START, at, complaint, profile, sale, steady_merchant, time_ordered
from tests.stated_fusion import stated_data

# -- the pure rule ---------------------------------------------------------------------------

HOLD = FeedbackHold(level="orange", score=0.7, codes=frozenset({"complaint_surge", "severe_complaints"}))


@pytest.mark.parametrize(
    ("transition", "score", "codes", "allowed"),
    [
        (("raised", None, "orange"), 0.7, ["complaint_surge", "severe_complaints"], False),
        (("raised", None, "yellow"), 0.5, ["severe_complaints"], False),
        (("escalated", "blue", "orange"), 0.79, ["complaint_surge"], False),  # +0.09: not enough
        (("escalated", "blue", "orange"), 0.8, ["complaint_surge"], True),  # +0.10: new evidence
        (("raised", None, "blue"), 0.3, ["registry_change"], True),  # a new indicator
        (("raised", None, "red"), 0.85, ["complaint_surge"], True),  # above the level staff saw
        (("de-escalated", "red", "orange"), 0.5, [], True),
        (("cleared", "orange", "orange"), 0.0, [], True),
    ],
)
def test_hold_allows_only_new_evidence_or_a_higher_level(
    transition: tuple[str, str | None, str], score: float, codes: list[str], allowed: bool
) -> None:
    assert HOLD.allows(transition, score, codes) is allowed


def test_feedback_log_survives_pickling() -> None:
    state = MerchantState("m1", partition=0, first_day=1)
    log = MerchantFeedback()
    log.add(FeedbackEntry(5, 0.0, "f1", "false_alarm", HOLD))
    state.feedback = log
    restored = pickle.loads(pickle.dumps(state))
    assert restored.feedback.hold_at(5) == HOLD and restored.feedback.seen == {"f1"}
    # a state pickled before the field existed reads it as None
    old = MerchantState("m2", partition=0, first_day=1)
    del old.__dict__["feedback"]
    assert pickle.loads(pickle.dumps(old)).feedback is None


# -- the engine ------------------------------------------------------------------------------


def burst(mid: str, day: int, tag: int = 0, n: int = 12) -> list[InputEvent]:
    """A burst of refund refusals over two days: complaint_surge + severe_complaints -> orange."""
    return [complaint(mid, day + i % 2, "refund_refused", n=tag + i) for i in range(n)]


def bursts(mid: str = "m1", extra: Iterable[InputEvent] = ()) -> list[InputEvent]:
    """A healthy gym with two identical complaint storms (days 100 and 200), each orange, each
    calming down and clearing within two months."""
    return time_ordered(steady_merchant(mid, 260) + burst(mid, 100) + burst(mid, 200, tag=100) + list(extra))


def feedback_on(warning: Warning, disposition: str = "false_alarm", delay_days: int = 3, n: int = 1) -> Feedback:
    return Feedback(
        feedback_id=f"fb-{warning.warning_id}-{n}",
        merchant_id=warning.merchant_id,
        case_id=f"case-{warning.warning_id}",
        disposition=disposition,  # type: ignore[arg-type]
        level=warning.level,
        score=warning.score,
        indicator_codes=[i.code for i in warning.indicators],
        warning_ids=[warning.warning_id],
        effective_from=warning.raised_at + timedelta(days=delay_days),
        decided_at=warning.raised_at + timedelta(days=delay_days),
        decided_by_role="consumer_protection",
    )


# The stated set (tests/stated_fusion.py) with the intercept, cut-offs and weights of a storm's
# two readings stated here. A storm's days score: its first day (complaint_surge 1,
# severe_complaints 1/3) 0.525, yellow; the full storm (both 1) 0.786, orange; the second storm's
# first day (complaint_surge 0.57 against a baseline that holds the first storm, severe 1) 0.348,
# blue; severe complaints alone (the storm dying down) 0.039, nothing.
STORM_INTERCEPT = -5.0
STORM_WEIGHTS = {"complaint_surge": 4.5, "severe_complaints": 1.8}
STORM_CUTOFFS = {"blue": 0.3, "yellow": 0.45, "orange": 0.6, "red": 0.8}


def storm_thresholds() -> ThresholdSet:
    data = stated_data()
    data["scoring"]["intercept"] = STORM_INTERCEPT
    data["levels"]["cutoffs"] = dict(STORM_CUTOFFS)
    for code, weight in STORM_WEIGHTS.items():
        data["indicators"][code]["weight"] = weight
    return ThresholdSet.from_mapping(data)


STORMS = storm_thresholds()


def new_engine() -> PartitionEngine:
    # The hold alone: what verdicts teach the fusion is tests/test_online_learning.py's.
    return PartitionEngine(buckets={}, merchants={}, clocks={}, allowed_lateness=timedelta(hours=6),
                           schedule=ThresholdSchedule(STORMS), online_learning=False)


def replay(events: list[InputEvent], feedback: Iterable[Feedback] = ()) -> tuple[PartitionEngine, list[Warning]]:
    """Events in order, each feedback read as soon as event time reaches its effective_from."""
    engine, warnings = new_engine(), []
    pending = sorted(feedback, key=lambda f: f.effective_from)
    for event in events:
        while pending and pending[0].effective_from <= event.occurred_at:
            engine.process(pending.pop(0), 0)
        warnings.extend(engine.process(event, 0).warnings)
    return engine, warnings


def urgent(warnings: list[Warning], after: datetime | None = None) -> list[Warning]:
    return [
        w for w in warnings
        if w.level in ("orange", "red") and w.transition in ("raised", "escalated") and (after is None or w.raised_at > after)
    ]


SECOND_BURST = at(190)


def test_without_feedback_the_same_storm_is_orange_twice() -> None:
    _, warnings = replay(bursts())
    assert [w.level for w in urgent(warnings)] == ["orange", "orange"]
    assert len(urgent(warnings, after=SECOND_BURST)) == 1
    assert {w.thresholds_version for w in warnings} == {STORMS.version}


def test_false_alarm_holds_the_same_evidence_below_the_level_staff_saw() -> None:
    _, warnings = replay(bursts())
    first = urgent(warnings)[0]
    assert first.level == "orange"
    _, held = replay(bursts(), [feedback_on(first)])
    # the merchant clears, then shows the same evidence again: nothing is raised at all
    assert [w.transition for w in held if w.raised_at > first.raised_at][-1] == "cleared"
    assert not [w for w in held if w.raised_at > SECOND_BURST]
    assert [w.warning_id for w in held if w.raised_at <= SECOND_BURST] == [
        w.warning_id for w in warnings if w.raised_at <= SECOND_BURST
    ]


def test_rectified_holds_like_a_false_alarm() -> None:
    _, warnings = replay(bursts())
    _, held = replay(bursts(), [feedback_on(urgent(warnings)[0], "rectified")])
    assert not [w for w in held if w.raised_at > SECOND_BURST]


def test_new_evidence_goes_through_the_hold() -> None:
    # the legal representative changes just before the second storm: registry_change is new
    changed = [profile("m1", 195, 200_000.0, rep="rep-2")]
    _, warnings = replay(bursts(extra=changed))
    _, held = replay(bursts(extra=changed), [feedback_on(urgent(warnings)[0])])
    again = urgent(held, after=SECOND_BURST)
    assert again and "registry_change" in {i.code for i in again[0].indicators}


def test_a_level_above_the_held_one_goes_through_and_ends_the_hold() -> None:
    engine, warnings = replay(bursts())
    yellow = next(w for w in warnings if w.level == "yellow")  # the first storm's first warning
    assert yellow is warnings[0]
    _, held = replay(bursts(), [feedback_on(yellow, delay_days=20)])
    unheld = [w for w in warnings if w.raised_at > SECOND_BURST]
    second = [w for w in held if w.raised_at > SECOND_BURST]
    # without the hold the second storm is raised below orange first; with it, that level (not
    # above yellow) is held, and its orange, above yellow, is raised: the hold ends
    assert unheld[0].transition == "raised" and unheld[0].level in ("blue", "yellow")
    assert second[0].transition == "raised" and second[0].level == "orange"
    state = replay(bursts(), [feedback_on(yellow, delay_days=20)])[0].merchants["m1"]
    assert state.feedback.hold_at(local_day(SECOND_BURST) + 60) is None


def test_feedback_counts_from_the_day_after_effective_from_and_never_moves_the_clock() -> None:
    engine = new_engine()
    for event in time_ordered(steady_merchant("m1", 10)):
        engine.process(event, 0)
    clock = engine.clocks[0]
    before = (clock.max_event_time, clock.closed_through, clock.closable_through)
    _, warnings = replay(bursts())
    fb = feedback_on(urgent(warnings)[0]).model_copy(update={"effective_from": at(20, 23)})
    outcome = engine.process(fb, 0)
    assert not outcome.late and outcome.days_closed == 0 and not outcome.warnings
    assert (clock.max_event_time, clock.closed_through, clock.closable_through) == before
    log = engine.merchants["m1"].feedback
    assert log.hold_at(local_day(at(20))) is None and log.hold_at(local_day(at(21))) is not None
    assert engine.process(fb, 0).duplicate  # same feedback_id
    # feedback for a day already past the watermark counts from the first open day
    late = fb.model_copy(update={"feedback_id": "late", "effective_from": at(2), "level": "red"})
    outcome = engine.process(late, 0)
    assert outcome.late
    first_open = clock.closable_through + 1
    assert log.hold_at(first_open - 1) is None and log.hold_at(first_open).level == "red"


def test_feedback_for_a_merchant_never_seen_waits_for_it() -> None:
    _, warnings = replay(bursts())
    fb = feedback_on(urgent(warnings)[0])
    engine = new_engine()
    engine.process(fb, 0)  # read before anything of the merchant (live: topics interleave)
    assert engine.merchants["m1"].feedback.seen == {fb.feedback_id}
    read_first = []
    for event in bursts():
        read_first.extend(engine.process(event, 0).warnings)
    _, in_order = replay(bursts(), [fb])
    assert [w.model_dump(exclude={"emitted_at"}) for w in read_first] == [
        w.model_dump(exclude={"emitted_at"}) for w in in_order
    ]


def peer_group(confirmed: str | None = None, day: int = 100) -> PartitionEngine:
    """Six gyms in one town with different sales; ``confirmed`` gets confirmed_risk on ``day``."""
    events: list[InputEvent] = []
    for i in range(6):
        mid = f"g{i}"
        events.append(profile(mid, 0, 0.0))
        for d in range(160):
            events.append(sale(mid, d, 1000.0 * (i + 1)))
            events.append(Transaction(event_id=f"{mid}-r-{d}", type="redemption", merchant_id=mid, store_id="s",
                                      card_id="c", consumer_id="u", amount=900.0 * (i + 1), occurred_at=at(d, 15)))
    feedback = []
    if confirmed is not None:
        feedback.append(Feedback(feedback_id="fb-1", merchant_id=confirmed, case_id="c-1", disposition="confirmed_risk",
                                 level="orange", score=0.7, indicator_codes=["sales_surge"],
                                 effective_from=at(day, 12), decided_at=at(day, 12)))
    return replay(time_ordered(events), feedback)[0]


def test_confirmed_risk_leaves_the_peer_norms_and_freezes_the_merchants_baselines() -> None:
    free, confirmed = peer_group(), peer_group(confirmed="g5")
    # the median of 1..6 thousand a day is 3.5 thousand; without the confirmed g5, 3 thousand
    assert free.clocks[0].peer_sales["fitness|南桥镇"] == pytest.approx(3500.0 * 28)
    assert confirmed.clocks[0].peer_sales["fitness|南桥镇"] == pytest.approx(3000.0 * 28)
    learned = {m: (s.detector._seen, s.joint_detector._seen) for m, s in confirmed.merchants.items()}  # type: ignore[union-attr]
    # g5's detectors learned its days up to day 100 only (trading is observed from day 0)
    assert learned["g5"] == (101, 101)
    assert learned["g4"] == (160 - 1, 160 - 1) == (free.merchants["g4"].detector._seen,) * 2  # type: ignore[union-attr]
    # its level is otherwise left alone
    assert confirmed.merchants["g5"].alert == free.merchants["g5"].alert


def test_a_later_false_alarm_ends_a_confirmed_risk() -> None:
    engine = peer_group(confirmed="g5", day=60)
    log = engine.merchants["g5"].feedback
    assert not log.known_anomaly_at(local_day(at(60))) and log.known_anomaly_at(local_day(at(61)))
    later = Feedback(feedback_id="fb-2", merchant_id="g5", case_id="c-2", disposition="false_alarm", level="orange",
                     score=0.7, effective_from=at(170, 12), decided_at=at(170, 12))
    engine.process(later, 0)  # read ahead of the clock: waits for its day
    assert log.known_anomaly_at(local_day(at(171))) is False and log.hold_at(local_day(at(171))) is not None
    assert log.known_anomaly_at(local_day(at(170)))


# -- decoding and the backtest -----------------------------------------------------------------


def test_bad_feedback_is_dead_lettered_with_a_reason() -> None:
    bad = decode("feedback", b'{"feedback_id": "f", "merchant_id": "m", "case_id": "c", "disposition": "oops",'
                             b' "level": "orange", "effective_from": "2026-03-01", "decided_at": "2026-03-01T10:00:00+08:00"}',
                 source_topic="prepaid.feedback", partition=2, offset=7)
    assert isinstance(bad, DeadLetter)
    assert "field 'disposition' has 'oops'" in bad.error and "effective_from" in bad.error
    assert bad.source_topic == "prepaid.feedback" and bad.offset == 7
    good = decode("feedback", orjson.dumps({"feedback_id": "f", "merchant_id": "m", "case_id": "c",
                                            "disposition": "false_alarm", "level": None,
                                            "effective_from": "2026-03-01T10:00:00+08:00",
                                            "decided_at": "2026-03-05T10:00:00+08:00", "unknown": 1}))
    assert isinstance(good, Feedback) and good.occurred_at == good.effective_from


def write_events(events: list[InputEvent], out: Path) -> None:
    files = {Transaction: "transactions.jsonl", Complaint: "complaints.jsonl", MerchantProfile: "merchants.jsonl"}
    for kind, name in files.items():
        write_records([e for e in events if isinstance(e, kind)], out / name)


def test_backtest_replays_feedback_files_in_event_time_and_staff_answers_the_same(tmp_path: Path) -> None:
    other = [e.model_copy(update={"legal_representative": "rep-2"}) if isinstance(e, MerchantProfile) else e
             for e in bursts("m2")]  # not linked to m1
    write_events(time_ordered(bursts("m1") + other), tmp_path)

    def backtest(staff: Callable[[Warning], list[Feedback]] | None = None) -> BacktestResult:
        return run_backtest(tmp_path, partitions=2, allowed_lateness=timedelta(hours=6),
                            schedule=ThresholdSchedule(STORMS), staff=staff)

    plain = backtest()

    def staff(warning: Warning) -> list[Feedback]:
        alarm = warning.level in ("orange", "red") and warning.transition in ("raised", "escalated")
        return [feedback_on(warning)] if alarm else []

    answered = backtest(staff)
    assert len(answered.feedback) == 2 and len(urgent(answered.warnings)) == 2 < len(urgent(plain.warnings))
    # written in decision order (here: reversed), replayed by effective_from: the same warnings
    write_records(reversed(answered.feedback), tmp_path / FEEDBACK_FILE)
    kinds = [kind for kind, _ in iter_events(tmp_path)]
    assert kinds.count("feedback") == 2
    replayed = backtest()
    assert [w.model_dump(exclude={"emitted_at"}) for w in replayed.warnings] == [
        w.model_dump(exclude={"emitted_at"}) for w in answered.warnings
    ]
    assert {partition_for(m, 2) for m in ("m1", "m2")}  # routed like the inputs


# -- case-desk fields of every warning ----------------------------------------------------------


def test_every_warning_carries_name_chain_and_figures_point_in_time() -> None:
    renamed = MerchantProfile(merchant_id="m1", name="新名字健身", industry="fitness", district="南桥镇",
                              chain_id="chain-9", opened_on=START, status="open", custody_balance=200_000.0,
                              updated_at=at(190, 9))
    events = bursts(extra=[renamed])
    _, warnings = replay(events)
    profiles = [e for e in events if isinstance(e, MerchantProfile)]
    assert warnings and {w.merchant_name for w in warnings} == {"m1 健身", "新名字健身"}
    for w in warnings:
        day_end = datetime.combine(w.raised_at.date() + timedelta(days=1), datetime.min.time(), w.raised_at.tzinfo)
        in_force = [p for p in profiles if p.updated_at < day_end][-1]
        assert (w.merchant_name, w.chain_id) == (in_force.name, in_force.chain_id)
        figures = w.figures
        assert figures is not None and set(figures) == {
            "prepaid_balance", "sales_28d", "redeemed_28d", "refunds_28d", "complaints_28d", "custody_balance",
            "custody_required",
        }
        assert all(v is None or round(v, 2) == v for v in figures.values())
        assert figures["sales_28d"] == 3000.0 * 28  # the steady gym sells 3,000 a day
        assert figures["redeemed_28d"] == 2900.0 * 28
        assert figures["refunds_28d"] == 0.0 and figures["prepaid_balance"] > 0
        assert figures["custody_required"] == 0.0  # below the 200,000 yuan tier
    first = warnings[0]
    assert first.figures["complaints_28d"] >= 6 and first.figures["custody_balance"] == 200_000.0  # type: ignore[index]
    assert "consumer_id" not in first.model_dump_json() and "u-0" not in first.model_dump_json()


def test_the_worker_creates_and_reads_the_feedback_topic_with_the_inputs() -> None:
    from streams.topics import input_topics, worker_topics
    from yujing.settings import Settings, TopicNames

    settings = Settings(input_partitions=4, topics=TopicNames(feedback="t.fb"))
    created = {t.name: t for t in worker_topics(settings)}
    assert created["t.fb"].partitions == 4  # co-partitioned with the inputs, checked at start
    assert input_topics(settings)["feedback"] == "t.fb"
