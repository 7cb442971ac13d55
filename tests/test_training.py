"""Learning the fusion from labelled worlds (engine/training.py, models/fusion.py): pure, no services."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pytest

from contract.labels import Label, load_labels
from engine.recording import MerchantDays
from engine.training import (
    LEVEL_ORDER,
    World,
    alarm_figures,
    fit_worlds,
    leave_one_world_out,
    render_learned_module,
    training_rows,
)
from models.fusion import LogisticFusion

CODES = ("sales_surge", "deep_discount_share", "registry_change", "over_cap_cards")
COLLAPSE = date(2025, 6, 1)


def synthetic_world(seed: int, merchants: int = 120, days: int = 120) -> World:
    """Collapsing merchants show a surge *with* deep bonuses in their last 40 days; healthy ones
    show each sign alone now and then, and breach caps as often as collapsing ones do."""
    rng = np.random.default_rng(seed)
    ids, day_rows, readings, labels = [], [], [], {}
    first = COLLAPSE.toordinal() - days
    for m in range(merchants):
        collapsing = m % 6 == 0
        merchant_id = f"w{seed}-m{m}"
        labels[merchant_id] = Label(merchant_id, "run_away" if collapsing else "healthy",
                                    "collapse" if collapsing else "healthy", COLLAPSE if collapsing else None)
        lone_sign = rng.integers(0, 2)  # which single sign a healthy merchant may show
        for d in range(first, first + days):
            row = np.zeros(len(CODES), dtype=np.float32)
            row[3] = float(rng.random() < 0.3)  # cap breaches: common and uninformative
            if collapsing and COLLAPSE.toordinal() - d <= 40:
                row[0] = row[1] = float(rng.random() < 0.8)
            elif not collapsing and rng.random() < 0.05:
                row[lone_sign] = 1.0
            ids.append(merchant_id)
            day_rows.append(d)
            readings.append(row)
    n = len(ids)
    days_columns = MerchantDays(np.array(ids, dtype=object), np.array(day_rows, dtype=np.int32), CODES,
                                np.array(readings), np.zeros(n, dtype=np.float32), (), np.zeros((n, 0), np.float32))
    return World(f"world {seed}", days_columns, labels)


def test_rows_after_a_collapse_are_left_out_and_the_horizon_sets_the_target() -> None:
    world = synthetic_world(1, merchants=6, days=120)
    mask, target = training_rows(world.days, world.labels, horizon=30)
    collapsing = world.days.merchant_ids == "w1-m0"
    assert mask[collapsing].sum() == 120  # every day lies before the collapse
    days_before = COLLAPSE.toordinal() - world.days.days[mask & collapsing]
    assert target[: collapsing.sum()].sum() == (days_before <= 30).sum() == 30


def test_the_fit_learns_that_signs_together_mean_collapse_and_cap_breaches_do_not() -> None:
    fit = fit_worlds([synthetic_world(s) for s in (1, 2, 3)], l2=1.0)
    assert fit.pairs[("sales_surge", "deep_discount_share")] > 1.0
    assert abs(fit.weights["over_cap_cards"]) < 0.5
    assert list(fit.cutoffs) == list(LEVEL_ORDER)
    assert all(a < b for a, b in zip(fit.cutoffs.values(), list(fit.cutoffs.values())[1:], strict=False))


def test_held_out_worlds_are_judged_by_a_fit_on_the_others() -> None:
    worlds = [synthetic_world(s) for s in (1, 2, 3)]
    held = leave_one_world_out(worlds, l2=1.0)
    assert [h.world for h in held] == ["world 1", "world 2", "world 3"]
    for h in held:
        assert h.figures.recall >= 0.9 and h.figures.healthy_false_alarms <= 0.05
        assert len(h.probabilities) == len(h.target)


def test_alarm_figures_follow_the_referees_rules() -> None:
    c = COLLAPSE.toordinal()
    days = MerchantDays(np.array(["a", "b", "h", "h"], dtype=object), np.array([c - 10, c + 2, c - 50, c - 49]),
                        ("x",), np.zeros((4, 1), np.float32), np.zeros(4, np.float32), (), np.zeros((4, 0), np.float32))
    labels = {"a": Label("a", "run_away", "collapse", COLLAPSE), "b": Label("b", "run_away", "collapse", COLLAPSE),
              "h": Label("h", "healthy", "healthy", None)}
    figures = alarm_figures(days, np.array([0.9, 0.9, 0.1, 0.95]), labels, cutoff=0.5)
    assert (figures.recall, figures.late, figures.median_lead_days, figures.healthy_false_alarms) == (0.5, 0.5, 10.0, 1.0)


def test_the_generated_module_holds_exactly_the_fit(tmp_path) -> None:  # type: ignore[no-untyped-def]
    fit = fit_worlds([synthetic_world(s) for s in (1, 2)], l2=1.0)
    source = render_learned_module(fit, "Made by a test.")
    namespace: dict = {}
    exec(compile(source, "learned.py", "exec"), namespace)  # noqa: S102 - our own generated source
    fusion, cutoffs = namespace["FUSION"], namespace["LEVEL_CUTOFFS"]
    assert (fusion.intercept, dict(fusion.weights), dict(fusion.pairs), fusion.cap) == (
        fit.intercept, fit.weights, fit.pairs, fit.cap)
    assert cutoffs == fit.cutoffs


def test_one_reading_and_the_matrix_form_give_the_same_probability() -> None:
    fusion = LogisticFusion(-5.0, {"a": 2.0, "b": 1.0, "c": -1.0}, pairs={("a", "b"): 3.0}, cap=2.5)
    rows = np.array([[1.0, 1.0, 0.0], [0.5, 0.2, 1.0], [0.0, 0.0, 0.0]])
    matrix = fusion.probabilities(rows, ("a", "b", "c"))
    for row, p in zip(rows, matrix, strict=True):
        assert fusion.probability(dict(zip(("a", "b", "c"), row, strict=True))) == pytest.approx(p)
    assert fusion.contributions({"a": 1.0, "b": 1.0})["a"] == 2.5  # capped
    assert math.isclose(fusion.probability({}), 1 / (1 + math.exp(5.0)))


def test_labels_of_both_layouts(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "labels.json").write_text('{"m1": {"kind": "renovation", "group": "trap", "collapse_date": null}}')
    (tmp_path / "labels.jsonl").write_text(
        '{"merchant_id": "m2", "scenario": "slow_decline", "kind": "collapse", "collapse_date": "2025-04-01"}\n')
    assert load_labels(tmp_path / "labels.json")["m1"].group == "trap"
    assert load_labels(tmp_path / "labels.jsonl")["m2"].collapse_date == date(2025, 4, 1)
    (tmp_path / "bad.json").write_text("[1, 2")
    with pytest.raises(ValueError, match="not a labels file"):
        load_labels(tmp_path / "bad.json")


def test_the_train_command_learns_from_small_worlds_and_writes_the_module(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Two tiny randomised worlds simulated, replayed, recorded, held out in turn, fitted, written."""
    from typer.testing import CliRunner

    from yujing.cli.app import app

    target = tmp_path / "learned.py"
    args = ["train", "--world-seeds", "1,2", "--merchants", "24", "--days", "60", "--work-dir", str(tmp_path / "w"),
            "--write", str(target), "--plots", str(tmp_path / "plots"), "--jobs", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    for text in ("Indicator evidence", "judged by a fusion learned on the others", "Reliability", "level cut-offs"):
        assert text in result.output
    namespace: dict = {}
    exec(compile(target.read_text(encoding="utf-8"), str(target), "exec"), namespace)  # noqa: S102
    assert list(namespace["LEVEL_CUTOFFS"]) == list(LEVEL_ORDER)
    assert (tmp_path / "plots" / "reliability.png").stat().st_size > 10_000
    assert (tmp_path / "w" / "world-1.npz").is_file() and (tmp_path / "w" / "world-2" / "labels.json").is_file()


def test_the_train_command_holds_readings_sets_the_fit_and_judges_unseen_sets(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """--hold keeps a reading out of the fit, --horizon/--cap reach the written module, and
    --judge replays a labelled set once and judges it with the fusion learned on the worlds."""
    from typer.testing import CliRunner

    from yujing.cli.app import app
    from yujing.simulator import SimulationConfig, simulate

    unseen = tmp_path / "unseen"
    simulate(SimulationConfig(merchants=24, days=60, seed=7, world_seed=9)).write(unseen)
    target = tmp_path / "learned.py"
    args = ["train", "--world-seeds", "1,2", "--merchants", "24", "--days", "60", "--work-dir", str(tmp_path / "w"),
            "--jobs", "1", "--no-evidence", "--hold", "sales_decline", "--hold", "redemption_decline",
            "--horizon", "60", "--cap", "2.5", "--judge", str(unseen), "--write", str(target)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Labelled sets judged by the fusion learned" in result.output and "│ unseen" in result.output
    assert (tmp_path / "w" / "judged-unseen.npz").is_file()
    text = target.read_text(encoding="utf-8")
    assert "--horizon 60 --cap 2.5 --hold sales_decline --hold redemption_decline" in text
    namespace: dict = {}
    exec(compile(text, str(target), "exec"), namespace)  # noqa: S102
    fusion = namespace["FUSION"]
    assert fusion.weights["sales_decline"] == 0.0 and fusion.weights["redemption_decline"] == 0.0
    assert not any("sales_decline" in pair or "redemption_decline" in pair for pair in fusion.pairs)
    assert fusion.horizon_days == 60 and fusion.cap == 2.5


def test_the_train_command_refuses_unknown_readings_and_unlabelled_sets(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from yujing.cli.app import app

    result = CliRunner().invoke(app, ["train", "--world-seeds", "1,2", "--hold", "no_such_reading"])
    assert result.exit_code == 1 and "no such reading" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(app, ["train", "--world-seeds", "1,2", "--judge", str(tmp_path)])
    assert result.exit_code == 1 and "no labels.json or labels.jsonl" in result.output


def test_the_train_command_refuses_one_world_in_one_line() -> None:
    from typer.testing import CliRunner

    from yujing.cli.app import app

    result = CliRunner().invoke(app, ["train", "--world-seeds", "3"])
    assert result.exit_code == 1 and "at least two worlds" in result.output and "Traceback" not in result.output


def test_a_recording_made_by_other_scoring_code_is_made_again(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Recordings are a cache of readings: kept while the scoring code is the same, made again
    (not silently reused) once it changed."""
    from engine.recording import load_days, recorded_by, save_days
    from yujing.cli.train import prepare_world, scoring_fingerprint

    recording = tmp_path / "world-3.npz"
    prepare_world(3, 24, 60, tmp_path, fresh=False, partitions=2, lateness_hours=6.0)
    assert recorded_by(recording) == scoring_fingerprint()
    kept = recording.stat().st_mtime_ns
    prepare_world(3, 24, 60, tmp_path, fresh=False, partitions=2, lateness_hours=6.0)
    assert recording.stat().st_mtime_ns == kept  # same code: not replayed again
    save_days(load_days(recording), recording, made_by="scoring code of another day")
    prepare_world(3, 24, 60, tmp_path, fresh=False, partitions=2, lateness_hours=6.0)
    assert recorded_by(recording) == scoring_fingerprint()


def test_a_world_simulated_by_other_simulator_code_is_simulated_again(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Simulated worlds are a cache too: once the simulator changed (a new world dimension, say),
    its worlds are simulated again and recorded again, not silently reused with old assumptions."""
    from engine.recording import recorded_by
    from yujing.cli.train import SIMULATOR_PACKAGES, prepare_world, simulated_by, source_fingerprint

    events, recording = tmp_path / "world-3", tmp_path / "world-3.npz"
    prepare_world(3, 24, 60, tmp_path, fresh=False, partitions=2, lateness_hours=6.0)
    assert simulated_by(events) == source_fingerprint(SIMULATOR_PACKAGES)
    labels = (events / "labels.json").stat().st_mtime_ns
    prepare_world(3, 24, 60, tmp_path, fresh=False, partitions=2, lateness_hours=6.0)
    assert (events / "labels.json").stat().st_mtime_ns == labels  # same simulator: kept
    (events / "simulated_by").write_text("the simulator of another day\n")
    (events / "transactions.jsonl").write_text("")  # what an older simulator wrote, say
    prepare_world(3, 24, 60, tmp_path, fresh=False, partitions=2, lateness_hours=6.0)
    assert simulated_by(events) == source_fingerprint(SIMULATOR_PACKAGES)
    assert (events / "transactions.jsonl").stat().st_size > 0 and recorded_by(recording)


def test_the_scoring_fingerprint_follows_every_source_file_of_the_scoring_packages(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from yujing.cli.train import SCORING_PACKAGES, scoring_fingerprint

    for package in SCORING_PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    before = scoring_fingerprint(tmp_path)
    (tmp_path / "models" / "features.py").write_text("WINDOW = 28\n")
    added = scoring_fingerprint(tmp_path)
    (tmp_path / "models" / "features.py").write_text("WINDOW = 29\n")
    changed = scoring_fingerprint(tmp_path)
    assert len({before, added, changed}) == 3
    (tmp_path / "models" / "notes.txt").write_text("not code")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "conf.py").write_text("outside the scoring packages")
    assert scoring_fingerprint(tmp_path) == changed
