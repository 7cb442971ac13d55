"""The prepaid products each industry sells, with realistic prices and Shanghai's caps.

Money is kept in integer fen (cents) inside the simulator so card balances stay exact.

* Salons and hair salons sell stored-value cards (500-5,000 yuan, often "充1000送200"-style
  bonuses) and treatment packages; the national rule caps a named card at 5,000 yuan paid.
* Gyms sell memberships (quarter to one year, 600-4,000 yuan), coaching packages (<= 60 sessions,
  <= 20,000 yuan) and stored value (<= 5,000 yuan) under the "三限" rules in force from 2025-03.
* Distressed merchants also sell ``long`` products (5- and 10-year memberships, 终身卡, "年卡买一送一")
  and ``over_cap`` products (stored value above 5,000 yuan, packages above 20,000 yuan): these are
  only drawn when a risk scenario asks for them.
* ``big`` cards: in some worlds salons routinely sell named cards of 5,000-30,000 yuan and gyms
  sell packages or memberships above the 三限 caps to healthy customers (:func:`big_card_product`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

STORED_VALUE_CAP = 5_000_00  # fen: gym stored value per consumer; named cards nationally
PACKAGE_CAP = 20_000_00  # fen: gym class packages
PACKAGE_SESSION_CAP = 60
MEMBERSHIP_MONTHS_CAP = 24


@dataclass(frozen=True, slots=True)
class CardProduct:
    """One card as sold: what was paid, what was credited and how it is consumed."""

    kind: str  # "stored_value" | "package" | "membership"
    amount: int  # fen paid by the consumer
    face: int  # fen of stored value credited (>= amount with a bonus)
    unit: int  # fen consumed by a typical visit
    interval: float  # mean days between visits
    duration: int | None  # validity in days (memberships); None = until used up


def _bonus_face(amount: int, bonus: float, cap: int | None = None) -> int:
    """Face value after a bonus, rounded down to 10 yuan and kept within ``cap`` if given."""
    face = int(amount * (1.0 + bonus)) // 1000 * 1000
    face = max(face, amount)
    if cap is not None and amount <= cap:
        face = min(face, max(cap, amount))
    return face


def _usual_bonus(rng: random.Random, industry: str, amount: int) -> float:
    """The everyday bonus: most cards have none or a modest one, larger tiers get more."""
    if rng.random() < (0.45 if industry == "hairdressing" else 0.6):
        return 0.0
    yuan = amount / 100
    if industry == "hairdressing":
        return 0.1 if yuan < 1000 else 0.2 if yuan < 3000 else 0.3
    return 0.0 if yuan < 2000 else 0.1 if yuan < 5000 else 0.2


def draw_product(
    rng: random.Random,
    industry: str,
    price_tier: float,
    *,
    bonus: float | None = None,
    long_card: bool = False,
    over_cap: bool = False,
    within_caps: bool = True,
) -> CardProduct:
    """Draw the card a consumer buys.

    ``bonus`` (a fraction of the price, 0.5 = "充1000送500") replaces the everyday bonus during a
    promotion; compliant gym products are kept within the caps whatever the bonus, a distressed
    gym's push (``within_caps=False``) credits the whole bonus.

    >>> capped = draw_product(random.Random(0), "fitness", 1.0, bonus=0.8)  # 5,000 yuan of stored value
    >>> pushed = draw_product(random.Random(0), "fitness", 1.0, bonus=0.8, within_caps=False)
    >>> capped.face, pushed.face  # fen: kept at the cap, or credited in full
    (500000, 900000)
    """
    if long_card:
        return _long_product(rng, industry, price_tier, bonus)
    if over_cap:
        return _over_cap_product(rng, industry, price_tier, bonus)
    if industry == "fitness":
        return _gym_product(rng, price_tier, bonus, within_caps)
    return _salon_product(rng, industry, price_tier, bonus)


def _salon_product(
    rng: random.Random, industry: str, tier: float, bonus: float | None
) -> CardProduct:
    if industry == "beauty":
        if rng.random() < 0.35:  # treatment package (疗程卡)
            sessions = rng.choice((6, 8, 10, 12))
            per_session = int(rng.choice((198, 268, 298, 398, 498)) * tier) * 100
            sessions = max(1, min(sessions, STORED_VALUE_CAP // per_session))
            amount = sessions * per_session
            face = _bonus_face(amount, bonus if bonus is not None else 0.0)
            return CardProduct("package", amount, face, face // sessions, rng.uniform(8, 16), None)
        amount = rng.choices((1000, 2000, 3000, 5000), (0.2, 0.35, 0.28, 0.17))[0] * 100
        unit = int(rng.uniform(180, 380) * tier) * 100
        interval = rng.uniform(12, 26)
    elif industry == "hairdressing":
        amount = rng.choices((500, 1000, 2000, 3000), (0.3, 0.38, 0.22, 0.1))[0] * 100
        unit = int(rng.uniform(70, 160) * tier) * 100
        interval = rng.uniform(14, 32)
    else:
        amount = rng.choices((500, 1000, 2000, 3000), (0.25, 0.4, 0.25, 0.1))[0] * 100
        unit = int(rng.uniform(90, 220) * tier) * 100
        interval = rng.uniform(9, 24)
    actual_bonus = _usual_bonus(rng, industry, amount) if bonus is None else bonus
    return CardProduct("stored_value", amount, _bonus_face(amount, actual_bonus), unit, interval, None)


def _gym_product(rng: random.Random, tier: float, bonus: float | None, within_caps: bool = True) -> CardProduct:
    roll = rng.random()
    if roll < 0.42:  # year membership (年卡), bonus = extra months, within 24 months unless a push
        amount = int(rng.uniform(1000, 4000) * tier / 100) * 100 * 100
        amount = min(max(amount, 800_00), STORED_VALUE_CAP)
        extra = 0.0 if bonus is None else (min(bonus, 1.0) if within_caps else bonus)
        duration = int(365 * (1 + extra))
        face = _bonus_face(amount, extra)
        interval = rng.uniform(2.5, 8)
        return CardProduct("membership", amount, face, int(face * interval / duration), interval,
                           duration)
    if roll < 0.57:  # quarter or half-year membership
        months = rng.choice((3, 6))
        amount = int((600 if months == 3 else 1100) * tier * rng.uniform(0.85, 1.3)) // 10 * 1000
        extra = 0.0 if within_caps or bonus is None else bonus  # a push: extra months
        duration = int(months * 30 * (1 + extra))
        face = _bonus_face(amount, extra)
        interval = rng.uniform(2.5, 7)
        return CardProduct("membership", amount, face, int(face * interval / duration),
                           interval, duration)
    if roll < 0.82:  # private coaching package (私教课)
        sessions = rng.choice((10, 12, 20, 24, 30, 40, 60))
        per_session = int(rng.uniform(200, 400) * tier / 10) * 10 * 100
        amount = min(sessions * per_session, PACKAGE_CAP)
        sessions = min(sessions, PACKAGE_SESSION_CAP)
        face = _bonus_face(amount, 0.0 if bonus is None else bonus, cap=PACKAGE_CAP if within_caps else None)
        return CardProduct("package", amount, face, face // sessions, rng.uniform(3, 8), None)
    amount = rng.choice((1000, 2000, 3000, 5000)) * 100  # stored value for classes, swimming...
    usual = _usual_bonus(rng, "fitness", amount) if bonus is None else bonus
    face = _bonus_face(amount, usual, cap=STORED_VALUE_CAP if within_caps else None)
    return CardProduct("stored_value", amount, face, int(rng.uniform(40, 150)) * 100,
                       rng.uniform(5, 12), None)


def _long_product(rng: random.Random, industry: str, tier: float, bonus: float | None) -> CardProduct:
    """5-/10-year memberships, 终身卡 and "买一送一" cards pushed before a collapse."""
    deep = 1.0 if bonus is None else max(bonus, 0.3)
    if industry == "fitness":
        years = rng.choice((2, 5, 5, 10))  # 2 = "年卡买一送一"
        price = {2: 2000, 5: 4800, 10: 7800}[years] * tier * rng.uniform(0.8, 1.4)
        amount = int(price / 100) * 100 * 100
        duration = 365 * years
        face = _bonus_face(amount, deep if years == 2 else 0.0)
        interval = rng.uniform(3, 8)
        return CardProduct("membership", amount, face, int(face * interval / duration), interval,
                           duration)
    amount = rng.choice((6800, 9800, 12800, 19800)) * 100  # 年卡 / 终身卡
    face = _bonus_face(amount, deep)
    unit = int(rng.uniform(200, 400) * tier) * 100
    return CardProduct("stored_value", amount, face, unit, rng.uniform(10, 20), None)


def _over_cap_product(
    rng: random.Random, industry: str, tier: float, bonus: float | None
) -> CardProduct:
    """Stored value or packages above the caps, with a deep bonus."""
    deep = 0.5 if bonus is None else max(bonus, 0.3)
    if industry == "fitness" and rng.random() < 0.4:
        sessions = rng.choice((80, 100, 120))
        per_session = int(rng.uniform(220, 350) * tier) * 100
        amount = sessions * per_session
        return CardProduct("package", amount, amount, per_session, rng.uniform(3, 7), None)
    amount = rng.choice((8000, 10000, 20000)) * 100
    face = _bonus_face(amount, deep)
    if industry == "fitness":
        unit = int(rng.uniform(60, 150)) * 100
    else:
        unit = int(rng.uniform(150, 400) * tier) * 100
    return CardProduct("stored_value", amount, face, unit, rng.uniform(7, 16), None)


def big_card_product(
    rng: random.Random, industry: str, tier: float, bonus: float | None, max_yuan: int
) -> CardProduct:
    """An ordinary big card above the caps, sold by a sound merchant (a modest bonus at most).

    >>> card = big_card_product(random.Random(3), "beauty", 1.0, None, 30_000)
    >>> STORED_VALUE_CAP < card.amount <= 30_000_00, card.face >= card.amount
    (True, True)
    """
    extra = rng.choice((0.0, 0.1, 0.2, 0.3)) if bonus is None else bonus
    sizes = [y for y in (6_000, 8_000, 10_000, 12_800, 15_000, 20_000, 30_000) if y <= max_yuan]
    amount = rng.choice(sizes) * 100
    if industry == "fitness":
        if rng.random() < 0.5:  # a coaching package beyond 60 sessions or 20,000 yuan
            sessions = rng.choice((80, 100, 120))
            per_session = max(int(amount / sessions) // 100 * 100, 100_00)
            amount = sessions * per_session
            return CardProduct("package", amount, amount, per_session, rng.uniform(3, 8), None)
        years = rng.choice((2, 3, 5))  # a multi-year membership paid up front
        duration = 365 * years
        interval = rng.uniform(3, 8)
        return CardProduct("membership", amount, amount, int(amount * interval / duration),
                           interval, duration)
    if industry == "beauty" and rng.random() < 0.4:  # a named treatment course (疗程卡)
        per_session = int(rng.uniform(500, 1500) * tier) * 100
        sessions = max(1, amount // per_session)
        face = _bonus_face(sessions * per_session, extra)
        return CardProduct("package", sessions * per_session, face, face // sessions,
                           rng.uniform(8, 20), None)
    unit = int(rng.uniform(200, 600) * tier) * 100 if industry != "hairdressing" else int(
        rng.uniform(120, 400) * tier) * 100
    return CardProduct("stored_value", amount, _bonus_face(amount, extra), unit,
                       rng.uniform(10, 25), None)
