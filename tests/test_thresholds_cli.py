"""`yujing thresholds show|validate|diff` on files and the built-in set (no Kafka needed)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from yujing.cli import app
from yujing.thresholds import builtin_thresholds, load_thresholds

runner = CliRunner()


def shown(tmp_path: Path) -> Path:
    result = runner.invoke(app, ["thresholds", "show", "builtin"])
    assert result.exit_code == 0, result.output
    path = tmp_path / "candidate.yaml"
    path.write_text(result.stdout)
    return path


def test_show_prints_a_file_that_loads_back_as_the_same_version(tmp_path: Path) -> None:
    path = shown(tmp_path)
    assert path.read_text().startswith(f"# builtin: version {builtin_thresholds().version}\n")
    assert load_thresholds(path).version == builtin_thresholds().version


def test_validate_lists_every_problem_with_its_key_and_range(tmp_path: Path) -> None:
    path = shown(tmp_path)
    text = path.read_text().replace("orange: 0.6\n", "orange: 0.4\n")
    text = text.replace("  silence:\n    threshold: 4.0\n    saturation: 3.0\n    weight: 0.75",
                        "  silence:\n    threshold: 4.0\n    saturation: 3.0\n    weight: 1.75")
    path.write_text(text)
    result = runner.invoke(app, ["thresholds", "validate", str(path)])
    assert result.exit_code == 1
    assert "indicators.silence.weight: 1.75 is outside the allowed range 0 to 1" in result.stderr
    assert "levels.cutoffs.orange: 0.4 must be above yellow's 0.45" in result.stderr


def test_validate_names_the_version_of_a_good_file(tmp_path: Path) -> None:
    path = shown(tmp_path)
    path.write_text(path.read_text().replace("orange: 0.6\n", "orange: 0.55\n"))
    result = runner.invoke(app, ["thresholds", "validate", str(path)])
    assert result.exit_code == 0, result.output
    version = load_thresholds(path).version
    assert f"valid, version {version}" in " ".join(result.stdout.split()) and version != builtin_thresholds().version


def test_diff_shows_each_changed_key_with_old_and_new_values(tmp_path: Path) -> None:
    path = shown(tmp_path)
    path.write_text(path.read_text().replace("orange: 0.6\n", "orange: 0.55\n").replace("margin: 0.05", "margin: 0.1"))
    result = runner.invoke(app, ["thresholds", "diff", "builtin", str(path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if "levels." in line]
    assert len(rows) == 2
    assert "levels.cutoffs.orange" in rows[0] and "0.6" in rows[0] and "0.55" in rows[0]
    assert "levels.margin" in rows[1] and "0.05" in rows[1] and "0.1" in rows[1]
    assert "2 value(s) change" in result.stdout
    same = runner.invoke(app, ["thresholds", "diff", "builtin", str(shown(tmp_path))])
    assert same.exit_code == 0 and "no difference" in same.stdout


def test_a_missing_or_unknown_source_is_one_clear_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["thresholds", "diff", "builtin", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "nope.yaml" in result.stderr
