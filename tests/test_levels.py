"""Level mapping and hysteresis (alerts/levels.py)."""

from __future__ import annotations

import pytest

from alerts.levels import AlertState
from alerts.levels import LevelPolicy as BuiltinPolicy

# These tests are about the mechanism; the cut-offs are fixed here, apart from the learned ones.
CUTOFFS = {"blue": 0.3, "yellow": 0.45, "orange": 0.6, "red": 0.8}


def LevelPolicy(**options: object) -> BuiltinPolicy:  # noqa: N802 - stands in for the class
    return BuiltinPolicy(cutoffs=dict(CUTOFFS), **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("score", "level"),
    [(0.0, None), (0.29, None), (0.3, "blue"), (0.5, "yellow"), (0.6, "orange"), (0.79, "orange"), (0.8, "red"), (1.0, "red")],
)
def test_level_for(score: float, level: str | None) -> None:
    assert LevelPolicy().level_for(score) == level


def test_escalation_is_immediate_and_each_step_is_reported() -> None:
    policy, state = LevelPolicy(), AlertState()
    assert policy.step(state, 0.35) == ("raised", None, "blue")
    assert policy.step(state, 0.5) == ("escalated", "blue", "yellow")
    assert policy.step(state, 0.95) == ("escalated", "yellow", "red")


def test_no_flapping_around_a_cut_off() -> None:
    policy, state = LevelPolicy(), AlertState()
    transitions = [policy.step(state, s) for s in [0.61, 0.58, 0.62, 0.57, 0.6, 0.59] * 5]
    assert [t for t in transitions if t] == [("raised", None, "orange")]


def test_de_escalation_needs_sustained_improvement() -> None:
    policy, state = LevelPolicy(deescalate_after_days=7), AlertState()
    policy.step(state, 0.9)
    results = [policy.step(state, 0.46) for _ in range(7)]
    assert results[:6] == [None] * 6
    assert results[6] == ("de-escalated", "red", "yellow")


def test_a_relapse_restarts_the_calm_period() -> None:
    policy, state = LevelPolicy(deescalate_after_days=3), AlertState()
    policy.step(state, 0.9)
    assert [policy.step(state, s) for s in (0.1, 0.1, 0.85)] == [None] * 3
    assert [policy.step(state, 0.1) for _ in range(13)] == [None] * 13
    assert policy.step(state, 0.1) == ("cleared", "red", "red")


def test_clearing_carries_the_last_level() -> None:
    policy, state = LevelPolicy(clear_after_days=14), AlertState()
    policy.step(state, 0.65)
    results = [policy.step(state, 0.0) for _ in range(14)]
    assert results[-1] == ("cleared", "orange", "orange")
    assert state.level is None
    assert policy.step(state, 0.65) == ("raised", None, "orange")
