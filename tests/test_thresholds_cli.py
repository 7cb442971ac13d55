"""`yujing thresholds show|validate|diff` on files and the built-in set (no Kafka needed).

The built-in weights and cut-offs are learned (``yujing train``): the edits below find their text
from the built-in values instead of writing them down."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from alerts.threshold_rules import shown_number
from alerts.thresholds import ThresholdSet, builtin_thresholds, load_thresholds
from alerts.thresholds import _yaml_number as yaml_number
from yujing.cli.app import app

runner = CliRunner()


def shown(tmp_path: Path) -> Path:
    result = runner.invoke(app, ["thresholds", "show", "builtin"])
    assert result.exit_code == 0, result.output
    path = tmp_path / "candidate.yaml"
    path.write_text(result.stdout)
    return path


def cutoffs_text(cutoffs: dict[str, float]) -> str:
    """The level cut-offs as ``render_yaml`` writes them."""
    return "  cutoffs:\n" + "".join(f"    {level}: {yaml_number(cut)}\n" for level, cut in cutoffs.items())


def with_cutoffs(text: str, cutoffs: dict[str, float]) -> str:
    old = cutoffs_text(builtin_thresholds().levels.cutoffs)
    assert text.count(old) == 1
    return text.replace(old, cutoffs_text(cutoffs))


def weight_text(ts: ThresholdSet, code: str, weight: float | None = None) -> str:
    t = ts.indicators[code]
    return (f"  {code}:\n    threshold: {yaml_number(t.threshold)}\n    saturation: {yaml_number(t.saturation)}\n"
            f"    weight: {yaml_number(t.weight if weight is None else weight)}\n")


def test_show_prints_a_file_that_loads_back_as_the_same_version(tmp_path: Path) -> None:
    path = shown(tmp_path)
    assert path.read_text().startswith(f"# builtin: version {builtin_thresholds().version}\n")
    assert load_thresholds(path).version == builtin_thresholds().version


def test_validate_lists_every_problem_with_its_key_and_range(tmp_path: Path) -> None:
    path = shown(tmp_path)
    builtin = builtin_thresholds()
    text = with_cutoffs(path.read_text(), {"blue": 0.3, "yellow": 0.45, "orange": 0.4, "red": 0.8})
    assert text.count(weight_text(builtin, "silence")) == 1
    text = text.replace(weight_text(builtin, "silence"), weight_text(builtin, "silence", 21.75))
    path.write_text(text)
    result = runner.invoke(app, ["thresholds", "validate", str(path)])
    assert result.exit_code == 1
    assert "indicators.silence.weight: 21.75 is outside the allowed range -20 to 20 (log-odds)" in result.stderr
    assert "levels.cutoffs.orange: 0.4 must be above yellow's 0.45" in result.stderr
    assert result.stderr.count("\n") == 2, result.stderr


def test_validate_names_the_version_of_a_good_file(tmp_path: Path) -> None:
    path = shown(tmp_path)
    cutoffs = builtin_thresholds().levels.cutoffs
    path.write_text(with_cutoffs(path.read_text(), {**cutoffs, "orange": (cutoffs["yellow"] + cutoffs["orange"]) / 2}))
    result = runner.invoke(app, ["thresholds", "validate", str(path)])
    assert result.exit_code == 0, result.output
    version = load_thresholds(path).version
    assert f"valid, version {version}" in " ".join(result.stdout.split()) and version != builtin_thresholds().version


def test_diff_shows_each_changed_key_with_old_and_new_values(tmp_path: Path) -> None:
    path = shown(tmp_path)
    builtin = builtin_thresholds()
    orange = builtin.levels.cutoffs["orange"]
    lowered = round((builtin.levels.cutoffs["yellow"] + orange) / 2, 6)
    margin = builtin.levels.margin
    assert path.read_text().count(f"  margin: {yaml_number(margin)}\n") == 1
    path.write_text(with_cutoffs(path.read_text(), {**builtin.levels.cutoffs, "orange": lowered}).replace(
        f"  margin: {yaml_number(margin)}\n", f"  margin: {yaml_number(margin * 2)}\n"))
    result = runner.invoke(app, ["thresholds", "diff", "builtin", str(path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if "levels." in line]
    assert len(rows) == 2
    assert "levels.cutoffs.orange" in rows[0] and shown_number(orange) in rows[0] and shown_number(lowered) in rows[0]
    assert "levels.margin" in rows[1] and shown_number(margin) in rows[1] and shown_number(margin * 2) in rows[1]
    assert "2 value(s) change" in result.stdout
    same = runner.invoke(app, ["thresholds", "diff", "builtin", str(shown(tmp_path))])
    assert same.exit_code == 0 and "no difference" in same.stdout


def test_a_missing_or_unknown_source_is_one_clear_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["thresholds", "diff", "builtin", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "nope.yaml" in result.stderr
