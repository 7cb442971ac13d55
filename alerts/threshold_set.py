"""The thresholds file (阈值文件): every number an operations team tunes, validated and versioned.

One file, YAML or TOML, holds each indicator's threshold, saturation and weight, the two online
detectors' weights, the level cut-offs with their hysteresis and the case response deadlines.
:class:`ThresholdSet` is its schema (pydantic, frozen, unknown keys refused); every problem of
a file is reported at once, one line each, naming the key and the allowed range (the ranges and
the rules across fields are in :mod:`alerts.threshold_rules`).
:func:`builtin_thresholds` is today's behaviour, read from the code's defaults. Reading a file
and writing the built-in set out (``deploy/thresholds/default.yaml``) is :mod:`alerts.thresholds`.

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

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any, Literal

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
from alerts.threshold_rules import (
    CAP,
    CLEAR_DAYS,
    CUTOFF,
    DEESCALATE_DAYS,
    INDICATOR_CODES,
    INTERCEPT,
    MARGIN,
    RANGES,
    READING_CODES,
    RESPONSE_HOURS,
    RESPONSE_ORDER,
    WEIGHT,
    Bound,
    Loc,
    Problem,
    semantic_problems,
    shown_number,
)
from models.indicators import ALL_INDICATORS
from models.indicators.base import Indicator
from models.scoring import RiskScorer

SCHEMA_VERSION = 1


def _within(bound: Bound) -> AfterValidator:
    def check(value: float) -> float:
        if value not in bound:
            raise PydanticCustomError(
                "out_of_range",
                "{value} is outside the allowed range {bound}",
                {"value": shown_number(value), "bound": str(bound)},
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
        problems = semantic_problems(self.model_dump())
        if problems:
            raise PydanticCustomError(_SEMANTIC, "{problems}", {"problems": "\n".join(_lines(problems))})
        return self

    @classmethod
    def from_mapping(cls, data: object) -> ThresholdSet:
        """Validate parsed file content; raises :class:`ThresholdsError` listing every problem."""
        if data is None:
            raise ThresholdsError([f"(file): empty; expected {_keys_text(cls)}"])
        problems = semantic_problems(data)
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
            pairs={_pair(key): w for key, w in self.scoring.pairs.items()},
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
            return "(none)" if value is None else shown_number(value)

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


# -- validation helpers ------------------------------------------------------------------

_SEMANTIC = "thresholds_consistency"


def _pair(key: str) -> tuple[str, str]:
    """The two reading codes of a pair's key ``code_a*code_b`` (validated: two known codes)."""
    first, _, second = key.partition("*")
    return first, second


def _ordered(value: dict[str, Any], order: Sequence[str]) -> dict[str, Any]:
    """The same mapping with the known keys first, in ``order`` (dumps and diffs read in it)."""
    return {k: value[k] for k in order if k in value} | {k: v for k, v in value.items() if k not in order}


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
    free_keys: dict[Loc, str] = {
        ("indicators",): "a mapping of every indicator to its threshold, saturation and weight",
        ("levels", "cutoffs"): f"a mapping of {', '.join(LEVELS)}",
        ("response_hours",): f"a mapping of {', '.join(RESPONSE_ORDER)}",
    }
    return free_keys.get(loc)


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
