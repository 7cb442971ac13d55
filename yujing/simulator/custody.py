"""Monthly custody reports under Shanghai's tiers (实施办法 Art. 10-11).

A compliant merchant whose prepaid balance is above 200,000 yuan keeps at least 40% of it in the
supervised custody account, 100% while it is under one year old. The balance used is the
outstanding stored value (face), which is never below the money received, so a compliant report
is compliant however a reader measures the balance. Below the tier a merchant reports ``null``
(no account yet), ``0`` or a small voluntary deposit, depending on its habit.

How a sound merchant's deposit moves above the tier is a habit of the merchant: it ``tracks`` the
requirement (a margin over it at each report, so the deposit swings with the balance), or keeps a
``stable`` deposit set once at some headroom over the requirement, reported with small noise and
topped up only when the requirement rises above it (:func:`report_stable`).

Risk modes: ``frozen`` (the reported amount no longer follows the balance), ``falling`` (the
deposit is drawn down), ``missed`` (no report). ``diligent`` is compliant with a wider margin.
"""

from __future__ import annotations

import random

CUSTODY_TIER = 200_000.0  # yuan of prepaid balance above which custody is required
CUSTODY_SHARE = 0.40
YOUNG_BUSINESS_DAYS = 365


def required_custody(balance: float, age_days: int) -> float:
    """Minimum custody (yuan) for an outstanding balance and a business age.

    >>> required_custody(150_000, 2000), required_custody(500_000, 2000)
    (0.0, 200000.0)
    >>> required_custody(300_000, 100)
    300000.0
    """
    if balance <= CUSTODY_TIER:
        return 0.0
    return balance * (1.0 if age_days < YOUNG_BUSINESS_DAYS else CUSTODY_SHARE)


def report_custody(
    rng: random.Random,
    mode: str,
    habit: str,
    previous: float | None,
    balance: float,
    age_days: int,
) -> tuple[bool, float | None]:
    """``(reported, custody_balance)`` for one monthly report."""
    if mode == "missed":
        return False, previous
    if mode == "frozen":
        return True, previous
    if mode == "falling":
        return True, round((previous or 0.0) * rng.uniform(0.55, 0.85), -2)
    required = required_custody(balance, age_days)
    if required > 0:
        margin = rng.uniform(1.1, 1.4) if mode == "diligent" else rng.uniform(1.01, 1.2)
        if age_days < YOUNG_BUSINESS_DAYS:
            margin = min(margin, 1.08)
        return True, round(required * margin + 100.0, -2)
    if habit == "voluntary":
        return True, round(balance * rng.uniform(0.1, 0.3), -2)
    if habit == "zero" or previous is not None:
        return True, round(balance * CUSTODY_SHARE, -2) if previous else 0.0
    return True, None


def report_stable(
    rng: random.Random,
    level: float | None,
    balance: float,
    age_days: int,
    headroom: tuple[float, float],
    noise: float,
    diligent: bool = False,
    voluntary: bool = False,
) -> tuple[float | None, float | None]:
    """``(level, custody_balance)`` of a sound merchant keeping a stable deposit.

    The level is set the first time custody is required, at ``headroom`` times the requirement,
    and raised the same way only when the requirement (with a margin, wider when ``diligent``)
    rises above it; it is kept when the balance shrinks. A ``voluntary`` depositor sets its level
    below the tier too (10-30% of the balance). ``(None, None)`` before any level is set: the
    merchant's habit below the tier applies.

    >>> rng = random.Random(1)
    >>> level, report = report_stable(rng, None, 500_000, 2000, (1.2, 1.2), 0.0)
    >>> level, report
    (240000.0, 240000.0)
    >>> report_stable(rng, level, 300_000, 2000, (1.2, 1.2), 0.0)  # the balance shrank: kept
    (240000.0, 240000.0)
    >>> report_stable(rng, level, 650_000, 2000, (1.2, 1.2), 0.0)[0]  # required 260,000: topped up
    312000.0
    >>> report_stable(rng, None, 150_000, 2000, (1.2, 1.2), 0.0)
    (None, None)
    >>> level, _ = report_stable(rng, None, 150_000, 2000, (1.2, 1.2), 0.0, voluntary=True)
    >>> 15_000 <= level <= 45_000, report_stable(rng, level, 100_000, 2000, (1.2, 1.2), 0.0)[0] == level
    (True, True)
    """
    required = required_custody(balance, age_days)
    floor = required * (rng.uniform(1.1, 1.4) if diligent else 1.01)
    if level is None and required <= 0:
        if not voluntary:
            return None, None
        level = round(balance * rng.uniform(0.1, 0.3), -2)
    elif level is None or level < floor:
        level = round(max(required * rng.uniform(*headroom), floor), -2)
    report = level * (1.0 + rng.gauss(0.0, noise)) if noise > 0 else level
    return level, round(max(report, floor), -2)
