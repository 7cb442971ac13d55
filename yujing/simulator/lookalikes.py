"""Timelines of benign look-alikes (kind ``lookalike``) and the healthy merchants' noise.

Each look-alike shares one surface feature with a collapse but stays sound:

* ``new_opening``: pre-opening card push with early-bird bonuses (opens inside the window).
* ``legal_promotion``: a big promotion within the caps, custody topped up right after it. In a
  drawn world its deep-bonus share, depth and length are drawn as widely as a collapse's push.
* ``announced_renovation``: a pause, then ``open`` again. Classic: ``suspended`` published at least
  30 days ahead; drawn worlds also announce it days ahead, on the day, or not at all.
* ``viral_complaints``: a few days of complaint storm (social media) while business continues.
* ``seasonal_gym``: a gym whose quiet months bring few redemptions.
"""

from __future__ import annotations

import random
from typing import Any

from .assumptions import WorldAssumptions
from .calendar import SimCalendar
from .merchants import MerchantPlan
from .timeline import Timeline, TimelineBuilder

#: Monthly activity (Jan..Dec) of strongly seasonal gyms.
SEASONAL_GYM_PROFILES: dict[str, tuple[float, ...]] = {
    # swimming pools and outdoor training: summer peak, nearly empty in winter
    "summer": (0.2, 0.15, 0.35, 0.6, 1.0, 1.6, 2.0, 1.9, 1.0, 0.5, 0.25, 0.2),
    # New-Year-resolution studios: January and spring peaks, empty summer holidays
    "resolution": (1.8, 0.7, 1.6, 1.3, 1.0, 0.6, 0.25, 0.25, 0.7, 0.8, 0.8, 1.0),
}
QUIET_LEVEL = 0.45


def _office_second(rng: random.Random) -> int:
    return rng.randint(9 * 3600, 17 * 3600)


def _window_day(rng: random.Random, days: int, lo: int, room_after: int) -> int:
    """A day in ``[lo, days - room_after]``, squeezed into the window when it is short."""
    hi = max(days - room_after, 1)
    lo = min(lo, hi)
    return rng.randint(lo, hi)


def new_opening(
    plan: MerchantPlan, rng: random.Random, cal: SimCalendar, world: WorldAssumptions
) -> Timeline:
    days = cal.days
    opening = _window_day(rng, days, 45, 45)
    presale = min(rng.randint(14, 45), opening - 1)
    first = opening - presale
    plan.opened_on = cal.date_of(opening)
    b = TimelineBuilder(days)
    b.ramp("sales_mult", first, opening - 1, rng.uniform(2.0, 4.0), rng.uniform(1.5, 2.5))
    b.hold("deal_share", first, opening - 1, rng.uniform(0.6, 0.9))
    b.ramp("deal_bonus", first, opening - 1, rng.uniform(0.4, 0.8), rng.uniform(0.1, 0.3))
    settle = opening + rng.randint(30, 60)
    b.ramp("sales_mult", opening, settle, rng.uniform(1.4, 2.0), 1.0)
    b.stop_serving(first, opening - 1)
    return b.build(
        active_from=first,
        opened_day=opening,
        signal_start=first,
        episode=(first, settle),
        notes={"presale_days": presale},
    )


def legal_promotion(
    plan: MerchantPlan, rng: random.Random, cal: SimCalendar, world: WorldAssumptions
) -> Timeline:
    days = cal.days
    promos = [
        p for p in cal.promotions
        if plan.industry in p.industries and 20 <= p.first and p.last < days - 10
    ]
    if promos and rng.random() < 0.5:  # ride a calendar promotion, bigger than the others
        promo = rng.choice(promos)
        first, last = promo.first, promo.last
    else:
        first = _window_day(rng, days, 30, 30)
        last = first + rng.randint(7, 21)
    peak = rng.uniform(2.0, 4.5)
    deal_share, deal_bonus = rng.uniform(0.6, 0.9), rng.uniform(0.15, 0.5)
    terms = world.legal_promotions
    if terms.deep_share is not None and terms.depth is not None and terms.weeks is not None:
        own = random.Random(f"yujing-legal-promotion:{plan.merchant_id}")  # keeps rng's draws
        deal_share, deal_bonus = own.uniform(*terms.deep_share), own.uniform(*terms.depth) - 1.0
        if last - first < 7 * terms.weeks[0] or own.random() < 0.5:  # its own length, not the calendar's
            last = min(days - 1, first + 7 * own.randint(*terms.weeks) - 1)
    b = TimelineBuilder(days)
    climb = max(1, (last - first) // 2)
    b.ramp("sales_mult", first, first + climb, 1.5, peak)
    b.hold("sales_mult", first + climb, last, peak)
    b.hold("deal_share", first, last, deal_share)
    if terms.escalates and random.Random(f"yujing-legal-escalation:{plan.merchant_id}").random() < terms.escalates:
        b.ramp("deal_bonus", first, last, deal_bonus * 0.35, deal_bonus)  # "the deeper the later" offers
    else:
        b.hold("deal_bonus", first, last, deal_bonus)
    top_up = (last + rng.randint(1, 5), _office_second(rng), {"_custody_report": True})
    return b.build(
        signal_start=first,
        episode=(first, last),
        profile_changes=[top_up],
        custody_modes=[(first, "diligent")],
        notes={"first": first, "last": last, "peak_sales": peak},
    )


def announced_renovation(
    plan: MerchantPlan, rng: random.Random, cal: SimCalendar, world: WorldAssumptions
) -> Timeline:
    days = cal.days
    notices = world.notices
    regime = "long"
    if notices.renovation_regimes != {"long": 1.0}:  # the classic world draws nothing here
        names = list(notices.renovation_regimes)
        regime = rng.choices(names, list(notices.renovation_regimes.values()))[0]
    announced = _window_day(rng, days, 20, 20 + notices.long_notice[1])
    notice = {"long": lambda: rng.randint(*notices.long_notice), "short": lambda: rng.randint(1, 29),
              "same_day": lambda: 0, "none": lambda: 0}[regime]()
    pause = announced + notice
    length = rng.randint(*notices.renovation_days)
    reopen = pause + length
    b = TimelineBuilder(days)
    b.stop_selling(pause, reopen - 1)
    b.stop_serving(pause, reopen - 1)
    if notice > 0:  # holders who heard of it ask for their money back
        b.hold("refund_mult", announced, pause - 1, rng.uniform(1.5, 3.0))
    b.hold("refund_honour", announced, reopen, 0.99)
    b.ramp("sales_mult", reopen, reopen + 21, rng.uniform(1.3, 2.0), 1.0)
    changes: list[tuple[int, int, dict[str, Any]]] = []
    if regime != "none":
        changes = [
            (announced, _office_second(rng), {"status": "suspended"}),
            (reopen, rng.randint(7 * 3600, 9 * 3600), {"status": "open"}),
        ]
    return b.build(
        signal_start=announced,
        episode=(announced, reopen),
        profile_changes=changes,
        tags=[f"notice_{regime}"],
        notes={"announced": announced, "pause": pause, "reopen": reopen, "notice": regime},
    )


def viral_complaints(
    plan: MerchantPlan, rng: random.Random, cal: SimCalendar, world: WorldAssumptions
) -> Timeline:
    days = cal.days
    burst = _window_day(rng, days, 30, 20)
    length = rng.randint(2, 5)
    total = rng.randint(8, 40)
    b = TimelineBuilder(days)
    peak = 2.0 * total / length
    b.complaints("service_quality", burst, burst + length - 1, 0.5 * peak, 0.1 * peak)
    b.complaints("false_advertising", burst, burst + length - 1, 0.35 * peak, 0.07 * peak)
    b.complaints("other", burst, burst + length - 1, 0.15 * peak, 0.03 * peak)
    b.hold("sales_mult", burst, burst + rng.randint(10, 21), rng.uniform(0.7, 0.9))
    return b.build(
        signal_start=burst,
        episode=(burst, burst + length - 1),
        complaint_channels={"online": 0.6, "12345": 0.25, "12315": 0.15},
        notes={"burst": burst, "complaints": total},
    )


def seasonal_gym(
    plan: MerchantPlan, rng: random.Random, cal: SimCalendar, world: WorldAssumptions
) -> Timeline:
    candidates: list[tuple[str, list[float], int]] = []
    for name, monthly in SEASONAL_GYM_PROFILES.items():
        season = cal.monthly_profile(monthly)
        quiet = [d for d in range(cal.days) if season[d + cal.offset] < QUIET_LEVEL]
        if quiet:
            candidates.append((name, season, quiet[0]))
    if not candidates:  # a window too short for any quiet month: keep the summer profile
        name = "summer"
        candidates.append((name, cal.monthly_profile(SEASONAL_GYM_PROFILES[name]), 0))
    name, season, first_quiet = rng.choice(candidates)
    return Timeline(days=cal.days, season=season, signal_start=first_quiet, notes={"profile": name})


def healthy(
    plan: MerchantPlan, rng: random.Random, cal: SimCalendar, world: WorldAssumptions
) -> Timeline:
    """Healthy business with ordinary registry noise (a new representative, a capital change)."""
    changes: list[tuple[int, int, dict[str, Any]]] = []
    new_rep, capital_up, capital_cut = world.healthy.registry_noise
    roll = rng.random()
    if roll < new_rep:
        changes.append((rng.randrange(cal.days), _office_second(rng),
                        {"legal_representative": f"lr{rng.getrandbits(48):012x}"}))
    elif roll < new_rep + capital_up and plan.registered_capital:
        changes.append((rng.randrange(cal.days), _office_second(rng),
                        {"registered_capital": plan.registered_capital * rng.choice((2.0, 5.0))}))
    elif roll < new_rep + capital_up + capital_cut and plan.registered_capital:
        changes.append((rng.randrange(cal.days), _office_second(rng),
                        {"registered_capital": plan.registered_capital * 0.5}))
    if changes:
        plan.quirks.append("registry_change")
    return Timeline(days=cal.days, profile_changes=changes)
