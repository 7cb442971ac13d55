"""Monthly custody reports under Shanghai's tiers (实施办法 Art. 10-11).

A compliant merchant whose prepaid balance is above 200,000 yuan keeps at least 40% of it in the
supervised custody account, 100% while it is under one year old. The balance used is the
outstanding stored value (face), which is never below the money received, so a compliant report
is compliant however a reader measures the balance. Below the tier a merchant reports ``null``
(no account yet), ``0`` or a small voluntary deposit, depending on its habit.

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
