"""The thresholds file (阈值文件): every number an operations team tunes, validated and versioned.

One file, YAML or TOML, holds each indicator's threshold, saturation and weight, the two online
detectors' weights, the level cut-offs with their hysteresis and the case response deadlines.
:class:`ThresholdSet` is its schema (pydantic, frozen, unknown keys refused); every problem of
a file is reported at once, one line each, naming the key and the allowed range.
:func:`builtin_thresholds` is today's behaviour, read from the code's defaults;
``deploy/thresholds/default.yaml`` is that set written out by :func:`render_yaml`
(``python -m alerts.thresholds --write deploy/thresholds/default.yaml``).

**Version.** ``ThresholdSet.version`` is ``"t-"`` and the first 12 hex digits of the SHA-256 of
the set's canonical JSON: the validated values only (integers for day counts, floats elsewhere,
``-0.0`` as ``0.0``), keys sorted, no whitespace. Comments, key order, quoting, ``1`` against
``1.0``, YAML against TOML do not change it; any changed value does. It identifies the numbers
that produced a warning (``thresholds_version``); it is not a sequence number.

>>> ts = builtin_thresholds()
>>> ts.indicators["silence"].threshold, ts.indicators["silence"].saturation, ts.level_policy().level_for(0.99)
(4.0, 3.0, 'red')
>>> ts.version[:2], len(ts.version)
('t-', 14)
>>> reformatted = render_yaml(ts).replace("margin: 0.05", "margin: 0.050   # tuned")
>>> parse_thresholds(reformatted, "yaml").version == ts.version
True
>>> data = ts.model_dump()
>>> data["indicators"]["silence"]["weight"] = 21.4
>>> data["levels"]["margin"] = 0.3
>>> data["levels"]["spare"] = 1
>>> try:
...     ThresholdSet.from_mapping(data)
... except ThresholdsError as error:
...     print(error)
indicators.silence.weight: 21.4 is outside the allowed range -20 to 20 (log-odds)
levels.margin: 0.3 is outside the allowed range 0 to 0.2
levels.spare: unknown key; allowed here: cutoffs, margin, deescalate_after_days, clear_after_days
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import textwrap
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from alerts.cases import ResponsePolicy, WorkingCalendar
from alerts.levels import LEVELS, LevelPolicy
from models.features import REGISTRY_CHANGE_LOOKBACK_DAYS
from models.indicators import ALL_INDICATORS, Indicator
from models.scoring import COMPLIANCE, DETECTOR_CODE, EXPOSURE, JOINT_DETECTOR_CODE, RiskScorer

SCHEMA_VERSION = 1
INDICATOR_CODES: tuple[str, ...] = tuple(c.code for c in ALL_INDICATORS)
RESPONSE_ORDER: tuple[str, ...] = tuple(reversed(LEVELS))  # red first: the shortest deadline
Loc = tuple[str | int, ...]
Problem = tuple[Loc, str]
Shape = Literal["rising", "falling", "times", "step"]


def _num(value: float) -> str:
    """A number as an operator wrote it: ``90`` rather than ``90.0``."""
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


@dataclass(frozen=True)
class Bound:
    """An allowed range, ``low`` to ``high`` inclusive; with ``above`` the low end is excluded.

    >>> str(Bound(0, 1)), str(Bound(0, 720, above=True, unit="working hours"))
    ('0 to 1', 'above 0 up to 720 working hours')
    >>> 0 in Bound(0, 1), 0 in Bound(0, 1, above=True)
    (True, False)
    """

    low: float
    high: float
    above: bool = False
    unit: str = ""

    def __contains__(self, value: float) -> bool:
        return (value > self.low if self.above else value >= self.low) and value <= self.high

    def __str__(self) -> str:
        low, high = _num(self.low), _num(self.high)
        text = f"above {low} up to {high}" if self.above else f"{low} to {high}"
        return f"{text} {self.unit}" if self.unit else text


@dataclass(frozen=True)
class IndicatorRange:
    """What an indicator's threshold and saturation mean, and which values make sense for them.

    ``shape`` says how the two relate: ``rising`` (higher is worse: saturation above the
    threshold), ``falling`` (lower is worse: saturation below it), ``times`` (saturation is a
    multiple of the threshold in force, so above 1) or ``step`` (the score is 1 within the
    threshold; there is no ramp, and saturation must equal the threshold).
    """

    threshold: Bound
    saturation: Bound
    shape: Shape


# Learned weights are log-odds per unit of reading score: negative lowers the odds.
WEIGHT = Bound(-20, 20, unit="(log-odds)")
INTERCEPT = Bound(-20, 0, unit="(log-odds)")
CAP = Bound(0.5, 20, unit="(log-odds)")
READING_CODES: tuple[str, ...] = (*INDICATOR_CODES, DETECTOR_CODE, JOINT_DETECTOR_CODE)
CUTOFF = Bound(0, 1, above=True)
MARGIN = Bound(0, 0.2)
DEESCALATE_DAYS = Bound(1, 90, unit="days")
CLEAR_DAYS = Bound(1, 180, unit="days")
RESPONSE_HOURS = Bound(0, 720, above=True, unit="working hours")


def _both(bound: Bound, shape: Shape) -> IndicatorRange:
    return IndicatorRange(bound, bound, shape)


_OWN_BASELINE = Bound(1, 50, unit="(times the own baseline)")
_BELOW_BASELINE = Bound(0, 1, unit="(times the own baseline)")
_TIMES_THRESHOLD = Bound(1, 20, above=True, unit="(times the threshold)")

# The values that make sense for each indicator's threshold and saturation, from what its number
# means in models/indicators/. Wide enough to tune, narrow enough to catch a wrong unit (40 for a
# share of 0.4, a ratio below 1 for a surge) or a ramp turned the wrong way round.
RANGES: dict[str, IndicatorRange] = {
    # 28-day card sales over the merchant's own baseline; below 1 would flag ordinary trading.
    "sales_surge": _both(_OWN_BASELINE, "rising"),
    # 28-day card sales over the peer group's median, for merchants without a baseline.
    "peer_sales_surge": _both(Bound(1, 50, unit="(times the peer median)"), "rising"),
    # Share of 28-day card sales sold with a bonus of 30% or more.
    "deep_discount_share": _both(Bound(0, 1, unit="(a share)"), "rising"),
    # Prepaid balance in months of redemptions; ten years is beyond any card sold.
    "liability_months": _both(Bound(0, 120, above=True, unit="months"), "rising"),
    # Custody held over custody required (lower is worse); up to 2 for a generous threshold.
    "custody_coverage": _both(Bound(0, 2, unit="(share of the required custody)"), "falling"),
    # Threshold: the floor of weighted complaints in 14 days (3x the usual level when higher);
    # saturation: a multiple of the threshold in force.
    "complaint_surge": IndicatorRange(Bound(1, 500, unit="weighted complaints"), _TIMES_THRESHOLD, "times"),
    # Threshold: days of silence, at least, and the multiple of the usual gap between
    # redemption days; saturation: a multiple of the threshold in force.
    "silence": IndicatorRange(Bound(1, 90, unit="days"), _TIMES_THRESHOLD, "times"),
    # 28-day redemptions over the own baseline (lower is worse); a decline is below 1.
    "redemption_decline": _both(_BELOW_BASELINE, "falling"),
    # The look-back in days; the features report changes of the last 90 days only.
    "registry_change": _both(Bound(1, REGISTRY_CHANGE_LOOKBACK_DAYS, unit="days"), "step"),
    # Cards sold above the legal caps in 28 days.
    "over_cap_cards": _both(Bound(0, 1000, unit="cards"), "rising"),
    # 28-day refunds over the own baseline (floored at 2 a month).
    "refund_pressure": _both(_OWN_BASELINE, "rising"),
    # Days since the last custody report; reports are monthly, so below 31 days every merchant
    # would be flagged between two reports.
    "custody_report_missing": _both(Bound(31, 365, unit="days"), "rising"),
    # 28-day card sales over the own baseline (lower is worse); a decline is below 1.
    "sales_decline": _both(_BELOW_BASELINE, "falling"),
    # Refund-refusal, closure and unavailable-service complaints in 28 days.
    "severe_complaints": _both(Bound(0, 1000, unit="complaints"), "rising"),
    # Highest level among sister stores: none 0, blue 1, yellow 2, orange 3, red 4.
    "chain_contagion": _both(Bound(0, 4, unit="(level rank)"), "rising"),
    # Merchants under the same legal representative that reached orange or red.
    "representative_link": _both(Bound(0, 100, unit="merchants"), "rising"),
    # Net new stored value of 28 days in units of the usual 28 days of service.
    "liability_growth": _both(Bound(0, 50, unit="(times the usual service)"), "rising"),
    # Store-closed complaints in 14 days.
    "closure_complaints": _both(Bound(0, 100, unit="complaints"), "rising"),
    # Days a store had been quiet when its pause was registered (0: in time); lower is better.
    "announced_pause": _both(Bound(0, 90, unit="days late"), "falling"),
    # Latest custody report over the earlier ones of 180 days, requirement's fall divided out
    # (lower is worse); above 1 the deposit grew.
    "custody_drawdown": _both(Bound(0, 1.5, unit="(share of an earlier deposit)"), "falling"),
}


def _within(bound: Bound) -> AfterValidator:
    def check(value: float) -> float:
        if value not in bound:
            raise PydanticCustomError(
                "out_of_range",
                "{value} is outside the allowed range {bound}",
                {"value": _num(value), "bound": str(bound)},
            )
        return value

    return AfterValidator(check)


Weight = Annotated[float, _within(WEIGHT)]


class _Frozen(BaseModel):
    # strict: a number written as text ("0.5") or a yes/no where a number belongs is an error.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class IndicatorThresholds(_Frozen):
    """One indicator: score 0 at ``threshold``, 1 at ``saturation``; ``weight`` in log-odds per unit score."""

    threshold: float
    saturation: float
    weight: Weight


class ScoringWeights(_Frozen):
    """The learned fusion's intercept (the log-odds of a merchant-day on which nothing fires) and
    the online detectors' weights (``baseline_anomaly``, ``joint_anomaly``)."""

    intercept: Annotated[float, _within(INTERCEPT)]
    detector_weight: Weight
    joint_weight: Weight
    # What one reading may add to the log-odds at most (models/fusion.py), and the learned
    # weights of pairs of readings, keyed "code_a*code_b".
    cap: Annotated[float, _within(CAP)]
    pairs: dict[str, Weight]

    @field_validator("pairs")
    @classmethod
    def _known_pairs(cls, value: dict[str, float]) -> dict[str, float]:
        for key in value:
            a, _, b = key.partition("*")
            if a not in READING_CODES or b not in READING_CODES or a == b:
                raise PydanticCustomError(
                    "unknown_pair", "{key} is not two different readings joined by '*'; readings: {codes}",
                    {"key": key, "codes": ", ".join(READING_CODES)})
        return value


class LevelThresholds(_Frozen):
    """The score cut-off of each level and the hysteresis of :class:`alerts.levels.LevelPolicy`."""

    cutoffs: dict[str, Annotated[float, _within(CUTOFF)]]
    margin: Annotated[float, _within(MARGIN)]
    deescalate_after_days: Annotated[int, _within(DEESCALATE_DAYS)]
    clear_after_days: Annotated[int, _within(CLEAR_DAYS)]

    @field_validator("cutoffs")
    @classmethod
    def _in_level_order(cls, value: dict[str, float]) -> dict[str, float]:
        return _ordered(value, LEVELS)


class ThresholdSet(_Frozen):
    """A complete, valid thresholds file. Build one with :meth:`from_mapping`,
    :func:`parse_thresholds` or :func:`load_thresholds` to get every problem at once."""

    schema_version: Literal[1]
    indicators: dict[str, IndicatorThresholds]
    scoring: ScoringWeights
    levels: LevelThresholds
    response_hours: dict[str, Annotated[float, _within(RESPONSE_HOURS)]]

    @field_validator("indicators")
    @classmethod
    def _in_indicator_order(cls, value: dict[str, IndicatorThresholds]) -> dict[str, IndicatorThresholds]:
        return _ordered(value, INDICATOR_CODES)

    @field_validator("response_hours")
    @classmethod
    def _in_response_order(cls, value: dict[str, float]) -> dict[str, float]:
        return _ordered(value, RESPONSE_ORDER)

    @model_validator(mode="after")
    def _consistent(self) -> ThresholdSet:
        # Reached only when every field is well-formed; from_mapping also runs these checks on
        # the raw data, so that a file's problems of every kind come out together.
        problems = _semantic_problems(self.model_dump())
        if problems:
            raise PydanticCustomError(_SEMANTIC, "{problems}", {"problems": "\n".join(_lines(problems))})
        return self

    @classmethod
    def from_mapping(cls, data: object) -> ThresholdSet:
        """Validate parsed file content; raises :class:`ThresholdsError` listing every problem."""
        if data is None:
            raise ThresholdsError([f"(file): empty; expected {_keys_text(cls)}"])
        problems = _semantic_problems(data)
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            details = error.errors()
            problems += [_from_pydantic(e) for e in details if e["type"] != _SEMANTIC]
            if not problems:  # cannot happen while both checks read the same data; never hide one
                problems = [((), str(e["ctx"]["problems"])) for e in details]
        raise ThresholdsError(_lines(problems))

    @cached_property
    def version(self) -> str:
        """``t-`` + 12 hex digits of the SHA-256 of the canonical JSON (see the module's doc)."""
        canonical = json.dumps(
            _plain_floats(self.model_dump(mode="json")),
            sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
        )
        return "t-" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]

    def scorer(self) -> RiskScorer:
        """Today's :class:`RiskScorer` with these indicator thresholds and weights."""
        indicators: list[Indicator] = []
        for indicator_class in ALL_INDICATORS:
            t = self.indicators[indicator_class.code]
            indicators.append(indicator_class(threshold=t.threshold, saturation=t.saturation, weight=t.weight))
        return RiskScorer(
            indicators, detector_weight=self.scoring.detector_weight, joint_weight=self.scoring.joint_weight,
            intercept=self.scoring.intercept, cap=self.scoring.cap,
            pairs={tuple(key.split("*", 1)): w for key, w in self.scoring.pairs.items()},  # type: ignore[misc]
        )

    def level_policy(self) -> LevelPolicy:
        """Today's :class:`LevelPolicy` with these cut-offs and this hysteresis."""
        return LevelPolicy(
            cutoffs={level: self.levels.cutoffs[level] for level in LEVELS},
            margin=self.levels.margin,
            deescalate_after_days=self.levels.deescalate_after_days,
            clear_after_days=self.levels.clear_after_days,
        )

    def response_policy(self, calendar: WorkingCalendar | None = None) -> ResponsePolicy:
        """The case response deadlines, in working hours of ``calendar``."""
        return ResponsePolicy(
            working_hours={level: self.response_hours[level] for level in RESPONSE_ORDER},
            calendar=calendar or WorkingCalendar(),
        )


class ThresholdsError(ValueError):
    """A thresholds file that cannot be used; one line per problem (also in ``problems``)."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class Change:
    """One value that differs between two sets, by its dotted key."""

    key: str
    old: float | int | None
    new: float | int | None

    def __str__(self) -> str:
        def show(value: float | None) -> str:
            return "(none)" if value is None else _num(value)

        return f"{self.key}: {show(self.old)} → {show(self.new)}"


def builtin_thresholds() -> ThresholdSet:
    """The thresholds written in the code (indicator class defaults, :class:`RiskScorer`,
    :class:`LevelPolicy` and :class:`ResponsePolicy` defaults): today's behaviour."""
    scorer, policy, response = RiskScorer(), LevelPolicy(), ResponsePolicy()
    return ThresholdSet.from_mapping({
        "schema_version": SCHEMA_VERSION,
        "indicators": {
            c.code: {"threshold": c.default_threshold, "saturation": c.default_saturation, "weight": c.default_weight()}
            for c in ALL_INDICATORS
        },
        "scoring": {"intercept": scorer.intercept, "detector_weight": scorer.detector_weight,
                    "joint_weight": scorer.joint_weight, "cap": scorer.cap,
                    "pairs": {f"{a}*{b}": w for (a, b), w in scorer.pairs.items()}},
        "levels": {
            "cutoffs": dict(policy.cutoffs),
            "margin": policy.margin,
            "deescalate_after_days": policy.deescalate_after_days,
            "clear_after_days": policy.clear_after_days,
        },
        "response_hours": dict(response.working_hours),
    })


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


def diff(old: ThresholdSet, new: ThresholdSet) -> list[Change]:
    """The values that differ, in the file's order (indicators as in ``ALL_INDICATORS``).

    >>> old = builtin_thresholds()
    >>> data = old.model_dump()
    >>> data["levels"]["margin"] = 0.04
    >>> data["indicators"]["silence"]["threshold"] = 5.0
    >>> [str(c) for c in diff(old, ThresholdSet.from_mapping(data))]
    ['indicators.silence.threshold: 4 → 5', 'levels.margin: 0.05 → 0.04']
    """
    before, after = _flat(old.model_dump()), _flat(new.model_dump())
    keys = list(before) + [k for k in after if k not in before]
    return [Change(k, before.get(k), after.get(k)) for k in keys if before.get(k) != after.get(k)]


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


# -- validation helpers ------------------------------------------------------------------

_SEMANTIC = "thresholds_consistency"


def _ordered(value: dict[str, Any], order: Sequence[str]) -> dict[str, Any]:
    """The same mapping with the known keys first, in ``order`` (dumps and diffs read in it)."""
    return {k: value[k] for k in order if k in value} | {k: v for k, v in value.items() if k not in order}


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return value


def _semantic_problems(data: object) -> list[Problem]:
    """What field types alone cannot say: per-indicator ranges and direction, every indicator
    and level present once, cut-offs and deadlines in order. Reads raw data and skips values
    that are not numbers (pydantic reports those)."""
    if not isinstance(data, Mapping):
        return []
    problems: list[Problem] = []
    indicators = data.get("indicators")
    if isinstance(indicators, Mapping):
        problems += _indicator_problems(indicators)
    levels = data.get("levels")
    if isinstance(levels, Mapping):
        cutoffs = levels.get("cutoffs")
        if isinstance(cutoffs, Mapping):
            problems += _level_keyed(("levels", "cutoffs"), cutoffs, LEVELS, CUTOFF, strictly=True,
                                     rule="cut-offs rise strictly from blue to red")
        deescalate, clear = levels.get("deescalate_after_days"), levels.get("clear_after_days")
        if (isinstance(deescalate, int) and isinstance(clear, int) and deescalate in DEESCALATE_DAYS
                and clear in CLEAR_DAYS and clear < deescalate):
            problems.append((("levels", "clear_after_days"),
                             f"{clear} must be at least deescalate_after_days ({deescalate})"))
    hours = data.get("response_hours")
    if isinstance(hours, Mapping):
        problems += _level_keyed(("response_hours",), hours, RESPONSE_ORDER, RESPONSE_HOURS, strictly=False,
                                 rule="deadlines may only lengthen from red to blue")
    return problems


def _indicator_problems(indicators: Mapping[Any, Any]) -> list[Problem]:
    problems: list[Problem] = []
    for code in indicators:
        if code not in RANGES:
            problems.append((("indicators", code), f"unknown indicator; known: {', '.join(INDICATOR_CODES)}"))
    for code in INDICATOR_CODES:
        if code not in indicators:
            problems.append((("indicators", code),
                             "missing; every indicator needs its threshold, saturation and weight"))
            continue
        entry = indicators[code]
        if not isinstance(entry, Mapping):
            continue
        allowed = RANGES[code]
        loc: Loc = ("indicators", code)
        threshold, saturation = _number(entry.get("threshold")), _number(entry.get("saturation"))
        for name, value, bound in (("threshold", threshold, allowed.threshold),
                                   ("saturation", saturation, allowed.saturation)):
            if value is not None and value not in bound:
                problems.append(((*loc, name), f"{_num(value)} is outside the allowed range {bound}"))
        if threshold is None or saturation is None or threshold not in allowed.threshold \
                or saturation not in allowed.saturation:
            continue
        t, s = _num(threshold), _num(saturation)
        if allowed.shape == "rising" and not saturation > threshold:
            problems.append(((*loc, "saturation"), f"{s} must be above the threshold ({t}): higher values are worse"))
        elif allowed.shape == "falling" and not saturation < threshold:
            problems.append(((*loc, "saturation"), f"{s} must be below the threshold ({t}): lower values are worse"))
        elif allowed.shape == "step" and saturation != threshold:
            problems.append(((*loc, "saturation"), f"{s} must equal the threshold ({t}): the indicator scores 1 "
                                                   "for any value within the threshold and has no saturation"))
    return problems


def _level_keyed(
    loc: Loc, values: Mapping[Any, Any], order: Sequence[str], bound: Bound, *, strictly: bool, rule: str
) -> list[Problem]:
    problems: list[Problem] = []
    for key in values:
        if key not in order:
            problems.append(((*loc, key), f"unknown level; the levels are {', '.join(order)}"))
    highest: tuple[str, float] | None = None
    for level in order:
        if level not in values:
            problems.append(((*loc, level), f"missing; allowed range {bound}"))
            continue
        value = _number(values[level])
        if value is None or value not in bound:
            continue
        if highest is not None and (value <= highest[1] if strictly else value < highest[1]):
            relation = "above" if strictly else "at least"
            problems.append(((*loc, level),
                             f"{_num(value)} must be {relation} {highest[0]}'s {_num(highest[1])} ({rule})"))
        if highest is None or value > highest[1]:
            highest = (level, value)
    return problems


_MODELS: dict[Loc, type[BaseModel]] = {
    (): ThresholdSet, ("scoring",): ScoringWeights, ("levels",): LevelThresholds,
}


def _model_at(loc: Loc) -> type[BaseModel] | None:
    if len(loc) == 2 and loc[0] == "indicators":
        return IndicatorThresholds
    return _MODELS.get(loc)


def _keys_text(model: type[BaseModel]) -> str:
    return ", ".join(model.model_fields)


def _bound_at(loc: Loc) -> Bound | None:
    match loc:
        case ("indicators", str(code), "threshold") if code in RANGES:
            return RANGES[code].threshold
        case ("indicators", str(code), "saturation") if code in RANGES:
            return RANGES[code].saturation
        case ("scoring", "intercept"):
            return INTERCEPT
        case ("scoring", "cap"):
            return CAP
        case ("scoring", "pairs", _):
            return WEIGHT
        case ("indicators", _, "weight") | ("scoring", _):
            return WEIGHT
        case ("levels", "cutoffs", _):
            return CUTOFF
        case ("levels", "margin"):
            return MARGIN
        case ("levels", "deescalate_after_days"):
            return DEESCALATE_DAYS
        case ("levels", "clear_after_days"):
            return CLEAR_DAYS
        case ("response_hours", _):
            return RESPONSE_HOURS
    return None


def _mapping_text(loc: Loc) -> str | None:
    """What belongs at ``loc`` when it is a mapping: its keys."""
    model = _model_at(loc)
    if model is not None:
        return f"a mapping of {_keys_text(model)}"
    return {
        ("indicators",): "a mapping of every indicator to its threshold, saturation and weight",
        ("levels", "cutoffs"): f"a mapping of {', '.join(LEVELS)}",
        ("response_hours",): f"a mapping of {', '.join(RESPONSE_ORDER)}",
    }.get(loc)


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    return {list: "a list", str: "text", bool: "yes/no", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__
    )


def _from_pydantic(error: ErrorDetails) -> Problem:
    """A pydantic error as a problem an operator can act on: the key, what is wrong, the range."""
    loc: Loc = tuple(error["loc"])
    kind, value = error["type"], error.get("input")
    bound = _bound_at(loc)
    hint = f"; allowed range {bound}" if bound else ""
    mapping = _mapping_text(loc)
    if kind == "missing" and loc == ("schema_version",):
        message = f"missing; this yujing reads schema_version {SCHEMA_VERSION}"
    elif kind == "missing":
        message = f"missing; {mapping}" if mapping else f"missing{hint}"
    elif kind == "extra_forbidden":
        parent = _model_at(loc[:-1])
        message = f"unknown key; allowed here: {_keys_text(parent)}" if parent else "unknown key"
    elif kind in ("float_type", "float_parsing"):
        message = f"{value!r} is not a number{hint}"
    elif kind in ("int_type", "int_parsing", "int_from_float"):
        message = f"{value!r} is not a whole number{hint}"
    elif kind == "finite_number":
        message = f"{value!r} is not a finite number{hint}"
    elif kind in ("dict_type", "model_type", "model_attributes_type"):
        message = f"expected {mapping or 'a mapping'}, got {_kind(value)}"
    elif kind == "literal_error" and loc == ("schema_version",):
        message = f"{value!r} is not supported; this yujing reads schema_version {SCHEMA_VERSION}"
    elif kind == "string_type" and loc and loc[-1] == "[key]":
        loc, message = loc[:-1], "keys must be text"
    else:
        message = error["msg"]
    return loc, message


_POSITIONS: dict[str | int, int] = {
    **{name: i for i, name in enumerate(ThresholdSet.model_fields)},
    **{code: i for i, code in enumerate(INDICATOR_CODES)},
    **{name: i for i, name in enumerate(IndicatorThresholds.model_fields)},
    **{name: i for i, name in enumerate(LevelThresholds.model_fields)},
    **{name: i for i, name in enumerate(ScoringWeights.model_fields)},
    **{level: i for i, level in enumerate(LEVELS)},
}
_RESPONSE_POSITIONS: dict[str | int, int] = {level: i for i, level in enumerate(RESPONSE_ORDER)}


def _lines(problems: list[Problem]) -> list[str]:
    """One line per problem, in the file's order (unknown keys after the known ones)."""
    def order(problem: Problem) -> list[tuple[int, str]]:
        loc = problem[0]
        positions = _RESPONSE_POSITIONS if loc[:1] == ("response_hours",) else _POSITIONS
        return [(positions.get(part, _POSITIONS.get(part, len(_POSITIONS))), str(part)) for part in loc]

    return [f"{'.'.join(str(p) for p in loc) or '(file)'}: {message}" for loc, message in sorted(problems, key=order)]


def _plain_floats(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain_floats(v) for k, v in value.items()}
    if isinstance(value, float):
        return value + 0.0  # -0.0 is 0.0
    return value


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(value, dict):
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, item in value.items():
        flat |= _flat(item, f"{prefix}.{key}" if prefix else str(key))
    return flat


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
    built_in = c.range_text or f"{_num(c.default_threshold)} → {_num(c.default_saturation)}"
    direction = {
        "rising": "higher is worse",
        "falling": "lower is worse",
        "times": "saturation is a multiple of the threshold in force",
        "step": "score 1 within the threshold; saturation equals it",
    }[allowed.shape]
    comment = [
        f"{c.name_zh} · {c.name_en} ({group})",
        f"value: {c.formula}",
        f"built in: {built_in}, learned weight {_num(c.default_weight())}; {direction}",
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
