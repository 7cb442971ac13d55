"""Thresholds files on disk: reading one (YAML or TOML) and writing the built-in set out.

What a file holds, how it is validated and versioned: :mod:`alerts.threshold_set`. The built-in
set is written as ``deploy/thresholds/default.yaml`` by :func:`render_yaml`
(``python -m alerts.thresholds --write deploy/thresholds/default.yaml``), with comments that give
each number's meaning, built-in value and allowed range. Reformatting a file does not change its
version:

>>> ts = builtin_thresholds()
>>> reformatted = render_yaml(ts).replace("margin: 0.05", "margin: 0.050   # tuned")
>>> parse_thresholds(reformatted, "yaml").version == ts.version
True
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml

from alerts.levels import LEVELS
from alerts.threshold_rules import RANGES, RESPONSE_ORDER, WEIGHT, shown_number
from alerts.threshold_set import (
    IndicatorThresholds,
    ThresholdsError,
    ThresholdSet,
    builtin_thresholds,
)
from models.indicators import ALL_INDICATORS
from models.indicators.base import Indicator
from models.scoring import COMPLIANCE, DETECTOR_CODE, EXPOSURE, JOINT_DETECTOR_CODE

# The set, its error and the built-in set are read from here by many callers, as before the split.
__all__ = [
    "FORMATS", "ThresholdSet", "ThresholdsError", "builtin_thresholds", "load_thresholds", "main",
    "parse_thresholds", "render_yaml",
]

FORMATS: dict[str, Literal["yaml", "toml"]] = {".yaml": "yaml", ".yml": "yaml", ".toml": "toml"}


def parse_thresholds(text: str, fmt: str) -> ThresholdSet:
    """Parse and validate a thresholds file's text; ``fmt`` is ``"yaml"`` or ``"toml"``.

    >>> try:
    ...     parse_thresholds("levels:\\n  margin: [0.05\\n", "yaml")
    ... except ThresholdsError as error:
    ...     print(error)
    (file): not valid YAML at line 3, column 1: expected ',' or ']', but got '<stream end>'
    """
    if fmt == "yaml":
        data = _load_yaml(text)
    elif fmt == "toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise ThresholdsError([f"(file): not valid TOML: {_one_line(str(error))}"]) from None
    else:
        raise ThresholdsError([f"(file): unknown format {fmt!r}; use yaml or toml"])
    return ThresholdSet.from_mapping(data)


def load_thresholds(path: str | Path) -> ThresholdSet:
    """Read a ``.yaml``, ``.yml`` or ``.toml`` thresholds file."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ThresholdsError([
            f"(file): {path.name} is neither YAML nor TOML; thresholds files end in {', '.join(FORMATS)}"
        ])
    return parse_thresholds(path.read_text(encoding="utf-8"), fmt)


def render_yaml(ts: ThresholdSet) -> str:
    """``ts`` as a commented YAML thresholds file; the comments describe each number and give
    the built-in value and the allowed range, so an edited copy still reads right."""
    out = [
        "# yujing thresholds (预警阈值), schema_version 1",
        "#",
        "# Every number operations teams tune: per indicator the threshold (score 0), the saturation",
        "# (score 1; the score rises linearly in between, either direction) and the weight in the",
        "# learned fusion, P(collapse within 90 days) = 1 / (1 + exp(-(intercept + Σ weight × score))),",
        "# in log-odds per unit score (learned by `yujing train` from labelled worlds: see",
        "# docs/detection.md); the detectors' weights; the level cut-offs (probabilities) and their",
        "# hysteresis; the case response deadlines. Validated by alerts/thresholds.py; its",
        "# version is derived from the values alone (t- and 12 hex digits of SHA-256), so comments,",
        "# key order and formatting do not change it. Every indicator must be present.",
        "#",
        "# The built-in set is generated: python -m alerts.thresholds --write deploy/thresholds/default.yaml",
        "",
        f"schema_version: {ts.schema_version}",
        "",
        "indicators:",
    ]
    for indicator_class in ALL_INDICATORS:
        out += _indicator_block(indicator_class, ts.indicators[indicator_class.code])
    out += [
        "# The fusion's intercept (log-odds of a day on which nothing fires; allowed -20 to 0) and the",
        "# online detectors' learned weights: baseline_anomaly is river EWMean/EWVar on 7-day sales",
        "# and net new liability; joint_anomaly is half-space trees on 7-day sales, redemptions and",
        f"# refunds. Allowed: {WEIGHT}.",
        "scoring:",
        f"  intercept: {_yaml_number(ts.scoring.intercept)}",
        f"  detector_weight: {_yaml_number(ts.scoring.detector_weight)}  # {DETECTOR_CODE}",
        f"  joint_weight: {_yaml_number(ts.scoring.joint_weight)}  # {JOINT_DETECTOR_CODE}",
        "  # The most one reading may add to the log-odds (allowed 0.5 to 20): no single sign alone",
        "  # takes a merchant from the base rate to orange.",
        f"  cap: {_yaml_number(ts.scoring.cap)}",
        "  # Learned weights of pairs of readings seen together (log-odds per unit of both scores;",
        "  # half of each goes to either reading's contribution). Allowed -20 to 20 each.",
        "  pairs:" + ("" if ts.scoring.pairs else " {}"),
        *(f"    {key}: {_yaml_number(w)}" for key, w in ts.scoring.pairs.items()),
        "",
        "# Warning levels (alerts/levels.py). A level is raised at once when the probability reaches",
        "# its cut-off (above 0 up to 1, rising strictly from blue to red); it holds while it stays",
        "# within `margin` (0 to 0.2) below its cut-off; after `deescalate_after_days` (1 to 90) calm",
        "# days it steps down to the highest level seen meanwhile, and it clears after",
        "# `clear_after_days` (at least deescalate_after_days, at most 180) days below every cut-off.",
        "levels:",
        "  cutoffs:",
        *(f"    {level}: {_yaml_number(ts.levels.cutoffs[level])}" for level in LEVELS),
        f"  margin: {_yaml_number(ts.levels.margin)}",
        f"  deescalate_after_days: {ts.levels.deescalate_after_days}",
        f"  clear_after_days: {ts.levels.clear_after_days}",
        "",
        "# Working hours within which a case at each level must be taken up (above 0 up to 720;",
        "# red at most orange at most yellow at most blue).",
        "response_hours:",
        *(f"  {level}: {_yaml_number(ts.response_hours[level])}" for level in RESPONSE_ORDER),
    ]
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m alerts.thresholds [--write PATH]``: the built-in set as a YAML file."""
    parser = argparse.ArgumentParser(
        prog="python -m alerts.thresholds", description="Print or write the built-in thresholds as a YAML file."
    )
    parser.add_argument("--write", type=Path, metavar="PATH", help="write to PATH instead of standard output")
    args = parser.parse_args(argv)
    text = render_yaml(builtin_thresholds())
    if args.write is None:
        sys.stdout.write(text)
    else:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(text, encoding="utf-8")
    return 0


# -- files -----------------------------------------------------------------------------------

class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (it keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: the base class reports it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _load_yaml(text: str) -> object:
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ThresholdsError([f"(file): not valid YAML{where}: {_one_line(error.problem or str(error))}"]) from None
    except yaml.YAMLError as error:
        raise ThresholdsError([f"(file): not valid YAML: {_one_line(str(error))}"]) from None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _yaml_number(value: float) -> str:
    """A number PyYAML reads back as the same number (it wants a dot in ``1.0e-05``)."""
    text = repr(value)
    if "e" in text and "." not in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"
    return text


def _indicator_block(indicator_class: type[Indicator], values: IndicatorThresholds) -> list[str]:
    c, allowed = indicator_class, RANGES[indicator_class.code]
    group = ("exposure 资金敞口" if c.code in EXPOSURE else "compliance 合规" if c.code in COMPLIANCE
             else "distress 经营困境")
    built_in = c.range_text or f"{shown_number(c.default_threshold)} → {shown_number(c.default_saturation)}"
    direction = {
        "rising": "higher is worse",
        "falling": "lower is worse",
        "times": "saturation is a multiple of the threshold in force",
        "step": "score 1 within the threshold; saturation equals it",
    }[allowed.shape]
    comment = [
        f"{c.name_zh} · {c.name_en} ({group})",
        f"value: {c.formula}",
        f"built in: {built_in}, learned weight {shown_number(c.default_weight())}; {direction}",
        f"allowed: threshold and saturation {allowed.threshold}; weight {WEIGHT}"
        if allowed.threshold == allowed.saturation
        else f"allowed: threshold {allowed.threshold}; saturation {allowed.saturation}; weight {WEIGHT}",
    ]
    lines = []
    for text in comment:
        lines += textwrap.wrap(text, width=96, initial_indent="  # ", subsequent_indent="  #   ")
    return [
        *lines,
        f"  {c.code}:",
        f"    threshold: {_yaml_number(values.threshold)}",
        f"    saturation: {_yaml_number(values.saturation)}",
        f"    weight: {_yaml_number(values.weight)}",
        "",
    ]


if __name__ == "__main__":
    raise SystemExit(main())
