"""The indicator evidence table: firing rates per group, the collapse window, lift, lead, pooling."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest

from contract.labels import Label
from engine.indicator_evidence import WINDOW_DAYS, evidence_table, first_firing, render_rows
from engine.recording import MerchantDays
from yujing.evaluation import World, WorldRun, combine, evaluate, evidence

COLLAPSE = date(2025, 5, 1)
C = COLLAPSE.toordinal()
CODES = ("silence", "sales_surge")


def _days(rows: list[tuple[str, int, float, float]]) -> MerchantDays:
    """(merchant, ordinal day, silence score, sales_surge score) rows."""
    return MerchantDays(
        np.array([r[0] for r in rows], dtype=object), np.array([r[1] for r in rows], dtype=np.int32), CODES,
        np.array([[r[2], r[3]] for r in rows], dtype=np.float32).reshape(len(rows), 2),
        np.zeros(len(rows), dtype=np.float32), (), np.zeros((len(rows), 0), dtype=np.float32),
    )


LABELS = {
    "a": Label("a", "run_away", "collapse", COLLAPSE),
    "b": Label("b", "run_away", "collapse", COLLAPSE),
    "h1": Label("h1", "healthy", "healthy", None),
    "h2": Label("h2", "healthy", "healthy", None),
    "r": Label("r", "renovation", "trap", None),
    "p": Label("p", "legal_promotion", "trap", None),
}


def test_only_the_window_before_a_collapse_counts_for_collapses() -> None:
    days = _days([
        ("a", C - WINDOW_DAYS - 1, 0.9, 0.0),  # before the window: ignored
        ("a", C - 20, 0.0, 0.4),
        ("a", C - 10, 0.6, 0.0),
        ("a", C, 0.0, 0.9),  # the collapse day itself: too late
        ("b", C + 2, 0.9, 0.9),  # only after its collapse: never fired, still a collapse
        ("h1", C + 300, 0.2, 0.0),  # healthy: the whole period counts
        ("h2", C, 0.0, 0.0),
        ("r", C - 400, 0.0, 0.3),
        ("p", C, 0.0, 0.0),
        ("x", C - 5, 0.9, 0.9),  # not labelled: ignored
    ])
    first = first_firing(days, LABELS)
    assert set(first) == set(LABELS)
    assert first["a"].tolist() == [C - 10, C - 20] and first["b"].tolist() == [-1, -1]
    rows = {row.code: row for row in evidence_table(days, LABELS)}
    silence, surge = rows["silence"], rows["sales_surge"]
    assert (silence.collapse_rate, silence.healthy_rate, silence.median_lead_days) == (0.5, 0.5, 10.0)
    assert silence.trap_rates == {"legal_promotion": 0.0, "renovation": 0.0} and silence.lift == 1.0
    assert (surge.collapse_rate, surge.healthy_rate, surge.median_lead_days) == (0.5, 0.0, 20.0)
    assert surge.worst_trap == ("renovation", 1.0)
    assert surge.lift == 0.5 / (0.5 / 2)  # healthy rate floored at half a merchant of two
    assert [row.code for row in evidence_table(days, LABELS)] == ["sales_surge", "silence"]  # strongest lift first


def test_fire_at_raises_the_bar() -> None:
    days = _days([("a", C - 3, 0.3, 0.8), ("h1", C, 0.3, 0.0)])
    loose = {row.code: row for row in evidence_table(days, LABELS)}
    strict = {row.code: row for row in evidence_table(days, LABELS, fire_at=0.5)}
    assert loose["silence"].collapse_rate == 1.0 and loose["silence"].healthy_rate == 1.0
    assert strict["silence"].collapse_rate == 0.0 and strict["silence"].healthy_rate == 0.0
    assert strict["sales_surge"].collapse_rate == 1.0 and strict["sales_surge"].median_lead_days == 3.0


def test_rendered_cells_and_json() -> None:
    days = _days([("a", C - 7, 0.0, 0.8), ("r", C, 0.0, 0.5), ("h1", C, 0.0, 0.0)])
    rows = evidence_table(days, LABELS)
    cells = dict((r[0], r[1:]) for r in render_rows(rows))
    assert cells["sales_surge"] == ["100%", "0.0%", "renovation 100%", "2.0", "7"]
    assert cells["silence"][-1] == ""  # never fired: no lead
    payload = rows[0].to_json()
    assert payload == {"code": "sales_surge", "collapse_rate": 1.0, "healthy_rate": 0.0,
                       "trap_rates": {"renovation": 1.0}, "median_lead_days": 7.0, "lift": 2.0}


def _run(name: str, days: MerchantDays, labels: dict[str, Label]) -> WorldRun:
    return WorldRun(World(name, Path(name)), evaluate(labels, []), labels, days=days)


def test_pooled_evidence_keeps_equal_merchant_ids_of_two_worlds_apart() -> None:
    # In world one "m" collapses and its silence fires; in world two "m" is healthy and quiet.
    one = _run("one", _days([("m", C - 4, 0.7, 0.0)]), {"m": Label("m", "run_away", "collapse", COLLAPSE)})
    two = _run("two", _days([("m", C - 4, 0.0, 0.0)]), {"m": Label("m", "healthy", "healthy", None)})
    pooled = {row.code: row for row in evidence([one, two])}
    assert (pooled["silence"].collapse_rate, pooled["silence"].healthy_rate) == (1.0, 0.0)
    assert pooled["silence"].median_lead_days == 4.0


@pytest.mark.parametrize("fire_at", [0.0, 0.5])
def test_a_world_pooled_with_itself_gives_its_own_rates(fire_at: float) -> None:
    days = _days([("a", C - 9, 0.6, 0.0), ("b", C - 30, 0.2, 0.9), ("h1", C, 0.7, 0.0), ("h2", C, 0.0, 0.0),
                  ("r", C, 0.0, 0.4), ("p", C, 0.0, 0.0)])
    run = _run("w", days, LABELS)
    alone = {row.code: row.to_json() for row in evidence([run], fire_at)}
    twice = {row.code: row.to_json() for row in evidence([run, _run("w2", days, LABELS)], fire_at)}
    assert set(alone) == set(twice) == set(CODES)
    for code, mine in alone.items():
        pooled = twice[code]
        if mine["healthy_rate"] == 0:  # lift rests on the floor of half a healthy merchant, which halves
            mine.pop("lift"), pooled.pop("lift")
        assert mine == pooled
    assert combine([run.report, run.report]).summary()["n_healthy"] == 4
