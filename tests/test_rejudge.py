"""Judging a recorded window again (engine.rejudge): for every kind of thresholds change, the
warnings are exactly a full replay's with the candidate published to take effect at the window,
on a history with chains, shared legal representatives and staff's feedback; a trace that does
not fit the replay is refused (Diverged), and a what-if then replays instead.

The current side is the set whose fusion ``tests/stated_fusion.py`` states (the built-in weights
and cut-offs are learned and change with every ``yujing train``); each candidate changes it."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from alerts.threshold_history import ThresholdSchedule
from alerts.thresholds import ThresholdSet
from contract.records import Feedback, Warning
from engine.checkpoints import CheckpointCache
from engine.rejudge import Diverged, Trace, rejudge
from engine.replay import Replay, run_backtest, write_records
from engine.whatif_replay import compare, schedule_for
from models.calendar import day_start
from tests.stated_fusion import STATED_CUTOFFS, stated_data, stated_thresholds
from yujing.simulator import SimulationConfig, simulate

# Seed 1 of this size has chains and shared representatives whose levels reach sister stores.
SIMULATION = SimulationConfig(merchants=40, days=150, seed=1)
PARTITIONS = 6
LATENESS = timedelta(hours=6)
SINCE = SIMULATION.start + timedelta(days=75)



@pytest.fixture(scope="module")
def events_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The simulation, with the feedback simulated staff gave (false alarms of healthy merchants)."""
    target = tmp_path_factory.mktemp("rejudge") / "events"
    simulate(SIMULATION).write(target)
    labels = {row["merchant_id"]: row for row in map(orjson.loads, (target / "labels.jsonl").read_bytes().splitlines())}

    def staff(warning: Warning) -> list[Feedback]:
        """Every raise or escalation to yellow or above answered three days later: orange/red of a collapsing
        merchant confirmed (a known anomaly from then on), anything else a false alarm (a hold at
        the level staff saw)."""
        if warning.transition not in ("raised", "escalated") or warning.level == "blue":
            return []
        collapses = labels.get(warning.merchant_id, {}).get("kind") == "collapse" and warning.level != "yellow"
        decided = warning.raised_at + timedelta(days=3)
        return [Feedback(
            feedback_id=f"staff-{warning.warning_id}", merchant_id=warning.merchant_id,
            case_id=f"case-{warning.warning_id}", disposition="confirmed_risk" if collapses else "false_alarm",
            level=warning.level, score=warning.score, indicator_codes=[i.code for i in warning.indicators],
            warning_ids=[warning.warning_id], effective_from=decided, decided_at=decided, decided_by_role="simulated",
        )]

    staffed = run_backtest(target, partitions=PARTITIONS, allowed_lateness=LATENESS, staff=staff,
                           schedule=ThresholdSchedule(stated_thresholds()))
    assert {f.disposition for f in staffed.feedback} == {"confirmed_risk", "false_alarm"}
    write_records(staffed.feedback, target / "feedback.jsonl")
    return target


@pytest.fixture(scope="module")
def recorded(events_dir: Path) -> tuple[bytes, Trace, list[Warning]]:
    """The checkpoint at the window (pickled) and the trace of the window replayed with the stated set."""
    replay = Replay(events_dir, partitions=PARTITIONS, allowed_lateness=LATENESS,
                    schedule=ThresholdSchedule(stated_thresholds()))
    replay.run(day_start(SINCE.toordinal()))
    checkpoint = pickle.dumps(replay.checkpoint())
    resumed = Replay.resume(pickle.loads(checkpoint), schedule=ThresholdSchedule(stated_thresholds()))
    trace = Trace()
    resumed.tracer = resumed.engine.tracer = trace
    warnings = resumed.run().warnings
    return checkpoint, pickle.loads(pickle.dumps(trace)), warnings


def comparable(warnings: list[Warning]) -> list[bytes]:
    return [orjson.dumps(w.model_dump(mode="json", exclude={"emitted_at"})) for w in warnings]


def changed(edit: Callable[[dict[str, Any]], None]) -> ThresholdSet:
    data = stated_data()
    edit(data)
    return ThresholdSet.from_mapping(data)


def _cutoffs(values: dict[str, float]) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        data["levels"]["cutoffs"] = values
    return edit


def _indicator(code: str, key: str, factor: float) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        data["indicators"][code][key] = round(data["indicators"][code][key] * factor, 6)
    return edit


def _levels(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        data["levels"][key] = value
    return edit


CANDIDATES = {
    "lower cut-offs": _cutoffs({"blue": 0.2, "yellow": 0.3, "orange": 0.45, "red": 0.65}),
    "higher cut-offs": _cutoffs({"blue": 0.4, "yellow": 0.55, "orange": 0.7, "red": 0.9}),
    "chain contagion weighs more": _indicator("chain_contagion", "weight", 1.3),
    "silence alarms sooner": _indicator("silence", "threshold", 0.5),
    "wider hysteresis": _levels("margin", 0.1),
}
assert STATED_CUTOFFS == {"blue": 0.3, "yellow": 0.45, "orange": 0.6, "red": 0.8}, "the cut-off candidates move these"


@pytest.mark.parametrize("name", CANDIDATES)
def test_judging_the_recording_equals_a_full_replay(
    name: str, events_dir: Path, recorded: tuple[bytes, Trace, list[Warning]],
) -> None:
    checkpoint, trace, _ = recorded
    candidate = changed(CANDIDATES[name])
    schedule = schedule_for(stated_thresholds(), candidate, SINCE)
    full = run_backtest(events_dir, partitions=PARTITIONS, allowed_lateness=LATENESS,
                        schedule=schedule_for(stated_thresholds(), candidate, SINCE)).warnings
    judged = rejudge(pickle.loads(checkpoint), trace, schedule)
    assert comparable(judged) == comparable(full)
    assert comparable(full) != comparable(recorded[2]), f"{name} must change some warning to prove anything"


def test_the_recording_itself_is_the_current_sides_replay(
    events_dir: Path, recorded: tuple[bytes, Trace, list[Warning]],
) -> None:
    checkpoint, trace, warnings = recorded
    plain = run_backtest(events_dir, partitions=PARTITIONS, allowed_lateness=LATENESS,
                         schedule=ThresholdSchedule(stated_thresholds())).warnings
    assert comparable(warnings) == comparable(plain)
    assert comparable(rejudge(pickle.loads(checkpoint), trace, ThresholdSchedule(stated_thresholds()))) == (
        comparable(plain))
    kinds = {op[0] for call in trace.calls for op in call.ops}
    assert kinds == {"member", "feedback", "close"}, "the window must hold every kind of traced step"
    assert any(call.joins for call in trace.calls) or any(
        m.chain_levels for m in pickle.loads(checkpoint).merchants.values()), "chains must be in play"


def test_a_trace_that_does_not_fit_is_refused(recorded: tuple[bytes, Trace, list[Warning]]) -> None:
    checkpoint, trace, _ = recorded
    # Without the step that made a merchant appear, the days it was scored on do not fit.
    calls = pickle.loads(pickle.dumps(trace.calls))
    for call in calls:
        members = [op for op in call.ops if op[0] == "member"]
        if members:
            call.ops.remove(members[0])
            break
    with pytest.raises(Diverged, match="other merchants scored"):
        rejudge(pickle.loads(checkpoint), Trace(calls=calls), ThresholdSchedule(stated_thresholds()))
    # Without the chain watermarks the replay had, or cut short before one.
    with pytest.raises(Diverged, match="chain watermark"):
        rejudge(pickle.loads(checkpoint), Trace(calls=[c for c in trace.calls if c.kind == "process"]),
                ThresholdSchedule(stated_thresholds()))
    first_watermark = next(i for i, c in enumerate(trace.calls) if c.kind == "watermark")
    with pytest.raises(Diverged, match="ended early"):
        rejudge(pickle.loads(checkpoint), Trace(calls=trace.calls[:first_watermark]),
                ThresholdSchedule(stated_thresholds()))


def test_a_what_if_replays_the_candidate_when_the_recording_does_not_fit(
    events_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    candidate = changed(CANDIDATES["lower cut-offs"])
    options: dict[str, Any] = {"partitions": PARTITIONS, "allowed_lateness": LATENESS, "since": SINCE,
                               "cache": CheckpointCache(tmp_path / "cache")}
    first = compare(events_dir, stated_thresholds(), candidate, **options)
    assert first.method == "replayed"
    judged = compare(events_dir, stated_thresholds(), candidate, **options)
    assert judged.method == "judged on the recording"
    assert judged.summary == first.summary

    def refuse(*_: object, **__: object) -> list[Warning]:
        raise Diverged("other merchants scored on day 1 of partition 0")

    monkeypatch.setattr("engine.whatif_replay.rejudge", refuse)
    replayed = compare(events_dir, stated_thresholds(), candidate, **options)
    assert replayed.method.startswith("replayed (the candidate changes which merchants are scored")
    assert replayed.summary == first.summary
    assert "the candidate changes which merchants are scored" in replayed.timing
