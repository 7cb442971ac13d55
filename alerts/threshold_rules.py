"""What a thresholds file may hold (see :mod:`alerts.threshold_set`): the allowed range of every
number, and the rules field types alone cannot state (each indicator's direction, every indicator
and level present once, cut-offs and deadlines in order), checked on the raw parsed content.

>>> str(RANGES["silence"].threshold), RANGES["silence"].shape
('1 to 90 days', 'times')
>>> semantic_problems({"levels": {"cutoffs": {"blue": 0.5, "yellow": 0.4, "orange": 0.6, "red": 0.8}}})
[(('levels', 'cutoffs', 'yellow'), "0.4 must be above blue's 0.5 (cut-offs rise strictly from blue to red)")]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from alerts.levels import LEVELS
from models.features import REGISTRY_CHANGE_LOOKBACK_DAYS
from models.indicators import ALL_INDICATORS
from models.scoring import DETECTOR_CODE, JOINT_DETECTOR_CODE

INDICATOR_CODES: tuple[str, ...] = tuple(c.code for c in ALL_INDICATORS)
RESPONSE_ORDER: tuple[str, ...] = tuple(reversed(LEVELS))  # red first: the shortest deadline
Loc = tuple[str | int, ...]
Problem = tuple[Loc, str]
Shape = Literal["rising", "falling", "times", "step"]


def shown_number(value: float) -> str:
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
        low, high = shown_number(self.low), shown_number(self.high)
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
    "bonus_escalation": _both(Bound(0, 1, unit="(rise of the bonus per week)"), "rising"),
}


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return value


def semantic_problems(data: object) -> list[Problem]:
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
                problems.append(((*loc, name), f"{shown_number(value)} is outside the allowed range {bound}"))
        if threshold is None or saturation is None or threshold not in allowed.threshold \
                or saturation not in allowed.saturation:
            continue
        t, s = shown_number(threshold), shown_number(saturation)
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
                             f"{shown_number(value)} must be {relation} {highest[0]}'s {shown_number(highest[1])} ({rule})"))
        if highest is None or value > highest[1]:
            highest = (level, value)
    return problems
