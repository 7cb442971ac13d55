"""The replay on every core gives the warnings of one process, record for record.

A simulated world with chains (stores of one chain hash to different partitions, so the chain
stage crosses processes), bad lines in the files and staff feedback is replayed once in one
process (:func:`engine.replay.run_backtest`) and then in 2 and 3 processes
(:func:`engine.parallel_replay.run_parallel_backtest`); warnings, dead letters, feedback and
counts must be equal, in :func:`~engine.parallel_replay.merged_order`.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from random import Random

import orjson
import pytest

from contract.faults import IN_FILES, bad_records
from contract.records import Feedback, Warning
from engine.parallel_replay import ReplayWorkerError, merged_order, run_parallel_backtest
from engine.replay import BacktestResult, EventFilesError, run_backtest, write_records
from yujing.simulator import SimulationConfig, simulate

PARTITIONS = 6
LATENESS = timedelta(hours=6)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A year of 40 merchants, 5 bad lines of each file-borne fault class among the
    transactions, and the feedback simulated staff gave on the false alarms."""
    events = tmp_path_factory.mktemp("parallel") / "events"
    simulate(SimulationConfig(merchants=40, days=300, seed=23)).write(events)
    rng = Random(23)
    path = events / "transactions.jsonl"
    lines = path.read_bytes().splitlines()
    good = [orjson.loads(line) for line in rng.sample(lines, 200)]
    for bad in bad_records(good, 5, rng):
        if bad.reason in IN_FILES and bad.value is not None:
            lines.insert(rng.randrange(len(lines) + 1), bad.value)
    path.write_bytes(b"\n".join(lines) + b"\n")
    staffed = run_backtest(events, partitions=PARTITIONS, allowed_lateness=LATENESS, staff=_desk())
    assert staffed.feedback, "the world should give staff something to answer"
    write_records(staffed.feedback, events / "feedback.jsonl")
    return events


def _desk():  # type: ignore[no-untyped-def]
    """Simulated staff answering every raise or escalation a week later, in turn a false alarm
    (a hold on the level), a confirmed risk and a rectification (so learners and holds act)."""
    answered = [0]

    def answer(warning: Warning) -> list[Feedback]:
        if warning.transition not in ("raised", "escalated"):
            return []
        answered[0] += 1
        decided = warning.raised_at + timedelta(days=7)
        return [Feedback(
            feedback_id=f"staff-{warning.warning_id}", merchant_id=warning.merchant_id,
            case_id=f"case-{warning.warning_id}",
            disposition=("false_alarm", "confirmed_risk", "rectified")[answered[0] % 3],
            level=warning.level, score=warning.score, indicator_codes=[i.code for i in warning.indicators],
            warning_ids=[warning.warning_id], effective_from=decided, decided_at=decided, decided_by_role="simulated",
        )]

    return answer


def _plain(result: BacktestResult) -> tuple[object, ...]:
    return (
        [w.model_dump(exclude={"emitted_at"}) for w in result.warnings],
        [d.model_dump(exclude={"received_at"}) for d in result.deadletters],
        [f.model_dump() for f in result.feedback],
        result.events, result.duplicates, result.late,
    )


@pytest.fixture(scope="module")
def one_process(world: Path) -> BacktestResult:
    return merged_order(run_backtest(world, partitions=PARTITIONS, allowed_lateness=LATENESS))


def test_the_world_exercises_what_crosses_processes(one_process: BacktestResult) -> None:
    assert len(one_process.warnings) > 20
    assert len(one_process.deadletters) == 5 * len(IN_FILES)
    assert one_process.feedback
    assert any(c.code == "chain_contagion" for w in one_process.warnings for c in w.indicators), \
        "no warning heard of a sister store: the chain stage would go untested"


@pytest.mark.parametrize("workers", [2, 3])
def test_parallel_replay_equals_one_process(world: Path, one_process: BacktestResult, workers: int) -> None:
    read: list[int] = []
    parallel = run_parallel_backtest(world, partitions=PARTITIONS, allowed_lateness=LATENESS, workers=workers,
                                     on_progress=read.append)
    assert _plain(parallel) == _plain(one_process)
    assert read and read == sorted(read)  # progress only goes forward


def test_a_missing_directory_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(EventFilesError, match="events directory not found"):
        run_parallel_backtest(tmp_path / "nowhere", partitions=PARTITIONS, allowed_lateness=LATENESS, workers=2)


def test_a_failing_worker_is_reported_with_its_traceback(tmp_path: Path) -> None:
    events = tmp_path / "events"
    events.mkdir()
    (events / "transactions.jsonl").write_bytes(b"")
    (events / "merchants.jsonl").mkdir()  # a directory where a file should be: the workers' read fails
    with pytest.raises(ReplayWorkerError, match="IsADirectoryError"):
        run_parallel_backtest(events, partitions=PARTITIONS, allowed_lateness=LATENESS, workers=2)
