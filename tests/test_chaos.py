"""Fault injection, measured (issue 16; docs/faults.md).

The comparison rules without any service: what counts as lost, extra, duplicated, re-published;
cases lost or doubled; webhooks per idempotency key. Then, marked ``slow`` (CI runs it), a small
real run: a simulated world through a worker killed with SIGKILL three times and restarted, a
broker restart, a case service with PostgreSQL restarted under it and killed during a webhook
delivery, all on the run's own broker and PostgreSQL, and nothing lost, duplicated or doubled.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from chaos.compare import DeskState, Push, compare_cases, compare_warnings, compare_webhooks
from chaos.flood import bad_record, write_flooded
from chaos.schedule import (
    HOLD_WEBHOOK,
    KILL_WORKER,
    RESTART_BROKER,
    RESTART_POSTGRES,
    fault_schedule,
)
from contract.faults import IN_FILES
from contract.records import DeadLetter, decode


def warning(warning_id: str, merchant: str = "m1", day: str = "2026-03-01", transition: str = "raised",
            level: str = "yellow", score: float = 0.3, emitted_at: str = "2026-12-07T10:00:00+00:00") -> dict:
    return {"warning_id": warning_id, "merchant_id": merchant, "raised_at": f"{day}T23:59:59+08:00",
            "transition": transition, "level": level, "score": score, "emitted_at": emitted_at}


REFERENCE = [warning("w1"), warning("w2", "m2"), warning("w3", "m1", "2026-03-09", "escalated", "orange", 0.6)]


def test_the_same_warnings_in_another_order_and_wall_clock_compare_clean() -> None:
    observed = [{**w, "emitted_at": "2026-12-08T00:00:00+00:00"} for w in reversed(REFERENCE)]
    result = compare_warnings(REFERENCE, observed)
    assert all(check.ok for check in result.checks())
    assert (result.lost, result.extra, result.duplicated, result.differing, result.republished) == ([], [], [], [], 0)


def test_a_warning_republished_with_its_id_and_content_is_counted_not_failed() -> None:
    """What a SIGKILL between a send and the offset commit gives (docs/pipeline.md)."""
    result = compare_warnings(REFERENCE, [*REFERENCE, REFERENCE[0], REFERENCE[0]])
    assert result.republished == 2 and result.records == 5 and result.distinct == 3
    assert not result.duplicated
    assert all(check.ok for check in result.checks())


def test_lost_extra_and_differing_warnings_fail() -> None:
    extra = warning("w9", "m3")
    changed = {**REFERENCE[1], "score": 0.31}
    result = compare_warnings(REFERENCE, [REFERENCE[0], changed, extra])
    assert (result.lost, result.extra, result.differing) == (["w3"], ["w9"], ["w2"])
    failed = {check.name for check in result.checks() if not check.ok}
    assert any(name.startswith("warnings lost") for name in failed)
    assert any(name.startswith("warnings extra") for name in failed)
    assert any(name.startswith("warnings differing") for name in failed)


def test_a_duplicate_deduplication_on_the_id_cannot_remove_fails() -> None:
    """One id with two contents, or a second id for a transition the reference has."""
    second_id = {**REFERENCE[0], "warning_id": "w1-again"}
    two_contents = {**REFERENCE[1], "level": "orange"}
    result = compare_warnings(REFERENCE, [*REFERENCE, second_id, two_contents])
    assert result.duplicated == ["w1-again", "w2"]
    assert not next(c for c in result.checks() if c.name.startswith("warnings duplicated")).ok


def test_cases_lost_doubled_unread_and_misfiled() -> None:
    reference = DeskState(cases={"YJ-1": "merchant:m1", "YJ-2": "merchant:m2"},
                          warnings={"w1": "YJ-1", "w2": "YJ-2", "w3": "YJ-1"}, webhooks={})
    same = compare_cases(reference, reference, ["w1", "w2", "w3"])
    assert all(check.ok for check in same.checks())
    live = DeskState(cases={"YJ-1": "merchant:m1", "YJ-1b": "merchant:m1"},
                     warnings={"w1": "YJ-1", "w3": "YJ-1b"}, webhooks={})
    result = compare_cases(reference, live, ["w1", "w2", "w3"])
    assert (result.lost, result.doubled, result.unread, result.misfiled) == (["YJ-2"], ["YJ-1b"], ["w2"], ["w3"])


def test_webhooks_redelivered_under_one_key_are_at_least_once_not_a_failure() -> None:
    key, other = "webhook:receiver:YJ-1:orange", "webhook:receiver:YJ-1:red"
    pushes = [Push(key, b'{"level":"orange"}', True), Push(key, b'{"level":"orange"}', True),
              Push(other, b'{"level":"red"}', True)]
    result = compare_webhooks([key, other], {key: "delivered", other: "delivered"}, pushes)
    assert result.redelivered == {key: 2} and result.requests == 3 and result.keys == 2
    assert all(check.ok for check in result.checks())


def test_webhooks_lost_unexpected_undelivered_conflicting_or_unsigned_fail() -> None:
    key, other, stray = "webhook:r:YJ-1:orange", "webhook:r:YJ-1:red", "webhook:r:YJ-9:red"
    pushes = [Push(key, b"a", True), Push(key, b"b", True), Push(stray, b"c", False)]
    result = compare_webhooks([key, other], {key: "delivered", other: "pending"}, pushes)
    assert (result.lost, result.unexpected, result.undelivered, result.conflicting, result.unsigned) == (
        [other], [stray], [other], [key], 1)
    assert sum(not check.ok for check in result.checks()) == 5


def test_the_fault_schedule_is_seeded_spread_and_complete() -> None:
    schedule = fault_schedule(16)
    assert schedule == fault_schedule(16) and schedule != fault_schedule(17)
    kinds = [f.kind for f in schedule]
    assert (kinds.count(KILL_WORKER), kinds.count(RESTART_BROKER), kinds.count(RESTART_POSTGRES),
            kinds.count(HOLD_WEBHOOK)) == (10, 1, 1, 1)
    kills = [f.at for f in schedule if f.kind == KILL_WORKER]
    # one kill in each tenth of the span: no two in one slice, none left out
    slices = [int((at - 0.04) / (0.88 / 10)) for at in kills]
    assert slices == list(range(10))


def test_every_flood_record_is_refused_and_the_good_lines_are_kept(tmp_path: Path) -> None:
    rng = random.Random(1)
    refused = [decode("transactions", bad_record(n, rng)) for n in range(18)]
    assert all(isinstance(r, DeadLetter) for r in refused)
    assert {r.reason for r in refused if isinstance(r, DeadLetter)} == set(IN_FILES)
    source = tmp_path / "clean"
    source.mkdir()
    good = [b'{"n": %d}' % n for n in range(10)]
    (source / "transactions.jsonl").write_bytes(b"\n".join(good) + b"\n")
    (source / "merchants.jsonl").write_bytes(b"")
    write_flooded(source, tmp_path / "flooded", bad=25)
    lines = (tmp_path / "flooded" / "transactions.jsonl").read_bytes().splitlines()
    assert len(lines) == 35 and [line for line in lines if line.startswith(b'{"n"')] == good
    assert (tmp_path / "flooded" / "merchants.jsonl").exists()


@pytest.mark.slow
@pytest.mark.kafka
@pytest.mark.postgres
def test_a_small_run_under_kills_and_restarts_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """Three SIGKILLs of the worker, a broker restart, a PostgreSQL restart under the case
    service and a SIGKILL of the case service during a webhook delivery: the warnings are the
    replay's (re-publications of an id allowed and counted), no case lost or doubled, every
    push received at least once and none applied twice after deduplication on its key."""
    from chaos.run import ChaosOptions, run_chaos

    options = ChaosOptions(merchants=12, days=90, seed=16, kills=3, timeout=420, keep=tmp_path / "run")
    report = run_chaos(options)
    failed = [f"{c.name}: {c.value} {c.detail}" for c in report.checks if not c.ok]
    assert not failed, f"{failed}; logs in {tmp_path / 'run' / 'logs'}"
    assert (report.count(KILL_WORKER), report.count(RESTART_BROKER), report.count(RESTART_POSTGRES)) == (3, 1, 1)
    assert next(c for c in report.checks if c.name.startswith("warnings in the replay")).value > 0
