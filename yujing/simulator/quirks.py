"""Harmless quirks of healthy merchants: oddities that look a little like distress but are not.

In a drawn world a share of the healthy merchants (``world.healthy.quirk_share``) carries one or
two of these, picked by the world's weights, each at a random time of the window:

* ``holiday_closure``: closed 1-3 weeks around Spring Festival, the summer break or National Day,
  with or without a ``suspended`` status (the world's ``holiday_status_share``).
* ``staff_turnover``: a therapist or coach leaves: some visits refused, fewer redemptions and
  sales for weeks, a few service complaints.
* ``late_custody``: custody reports arrive weeks late and a few months go missing.
* ``registry_change``: a new legal representative or a capital change (up, or a cut).
* ``complaint_cluster``: a burst of ordinary complaints over a few days.
* ``corporate_bulk``: a company buys dozens of cards for its staff on one to three days.
* ``store_consolidation``: one store closes, its card holders move to the sister store.

Quirks use their own random stream, so adding them never shifts a merchant's other draws.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from .assumptions import WorldAssumptions
from .calendar import SimCalendar
from .merchants import MerchantPlan
from .timeline import Timeline, TimelineBuilder

Changes = list[tuple[int, int, dict[str, Any]]]


class _Quirk:
    """What the quirk builders share: the merchant, the window, the builder, the changes."""

    def __init__(self, plan: MerchantPlan, rng: random.Random, cal: SimCalendar,
                 world: WorldAssumptions, changes: Changes) -> None:
        self.plan, self.rng, self.cal, self.world = plan, rng, cal, world
        self.days = cal.days
        self.b = TimelineBuilder(cal.days)
        self.changes = changes
        self.store_moves: list[tuple[int, str, str]] = []
        self.custody_modes: list[tuple[int, str]] = []

    def day(self, room_after: int = 30) -> int:
        return self.rng.randint(min(14, self.days - 1), max(14, self.days - room_after))

    def office(self) -> int:
        return self.rng.randint(9 * 3600, 17 * 3600)


def _holiday_closure(q: _Quirk) -> tuple[int, int]:
    rng, cal = q.rng, q.cal
    anchors = [sf - rng.randint(2, 7) for sf in cal.spring_festivals]
    for year in range(cal.start.year, cal.date_of(q.days).year + 1):
        anchors.append(cal.index(cal.start.replace(year=year, month=7, day=rng.randint(10, 31))))
        anchors.append(cal.index(cal.start.replace(year=year, month=9, day=30)))
    anchors = [a for a in anchors if 7 <= a < q.days - 25] or [q.day()]
    first = rng.choice(anchors)
    last = first + rng.randint(7, 21) - 1
    q.b.stop_selling(first, last)
    q.b.stop_serving(first, last)
    if rng.random() < q.world.notices.holiday_status_share:
        q.changes.append((first - rng.randint(0, 7), q.office(), {"status": "suspended"}))
        q.changes.append((last + 1, rng.randint(7 * 3600, 9 * 3600), {"status": "open"}))
    return first, last


def _staff_turnover(q: _Quirk) -> tuple[int, int]:
    rng = q.rng
    first = q.day(40)
    last = first + rng.randint(21, 70)
    q.b.hold("honour", first, last, rng.uniform(0.7, 0.92))
    q.b.hold("visit_mult", first, last, rng.uniform(0.7, 0.92))
    q.b.hold("sales_mult", first, last, rng.uniform(0.5, 0.9))
    rate = rng.randint(2, 6) / (last - first + 1)
    q.b.complaints("service_quality", first, last, rate, rate)
    return first, last


def _late_custody(q: _Quirk) -> tuple[int, int]:
    rng = q.rng
    q.plan.custody_late_days = (rng.randint(7, 25), rng.randint(30, 75))
    first = q.day(60)
    last = first + rng.randint(45, 150)
    q.custody_modes += [(first, "missed"), (last, "compliant")]
    return first, last


def _registry_change(q: _Quirk) -> tuple[int, int]:
    rng, plan = q.rng, q.plan
    day = q.day(10)
    if plan.registered_capital is None or rng.random() < 0.55:
        change: dict[str, Any] = {"legal_representative": f"lr{rng.getrandbits(48):012x}"}
    elif rng.random() < 0.5:
        change = {"registered_capital": plan.registered_capital * rng.choice((2.0, 3.0, 5.0))}
    else:  # a harmless cut: capital paid in was never needed
        change = {"registered_capital": float(round(plan.registered_capital
                                                    * rng.uniform(0.2, 0.7), -3))}
    q.changes.append((day, q.office(), change))
    return day, day + 10


def _complaint_cluster(q: _Quirk) -> tuple[int, int]:
    rng = q.rng
    first = q.day(20)
    length = rng.randint(3, 14)
    total = rng.randint(4, 15)
    mix = {"service_quality": 0.45, "contract_dispute": 0.25, "other": 0.15,
           "refund_refused": 0.1, "false_advertising": 0.05}
    for category, share in mix.items():
        rate = total * share / length
        q.b.complaints(category, first, first + length - 1, rate, rate)
    return first, first + length - 1


def _corporate_bulk(q: _Quirk) -> tuple[int, int]:
    rng = q.rng
    first = q.day(10)
    length = rng.randint(1, 3)
    cards = rng.randint(10, 60)
    mult = 1.0 + cards / length / max(q.plan.sales_per_day, 0.05)
    q.b.hold("sales_mult", first, first + length - 1, mult)
    q.b.hold("deal_share", first, first + length - 1, 0.9)
    q.b.hold("deal_bonus", first, first + length - 1, rng.uniform(0.05, 0.25))
    return first, first + length - 1


def _store_consolidation(q: _Quirk) -> tuple[int, int]:
    rng, plan = q.rng, q.plan
    if len(plan.stores) < 2:  # it had a second outlet: that one closes
        plan.stores.append(f"{plan.merchant_id}-{len(plan.stores) + 1:02d}")
    day = q.day(40)
    q.store_moves.append((day, plan.stores[-1], plan.stores[0]))
    q.b.hold("visit_mult", day, day + 21, rng.uniform(0.75, 0.95))
    q.b.hold("refund_mult", day, day + 30, rng.uniform(1.5, 4.0))
    rate = rng.randint(1, 4) / 30
    q.b.complaints("contract_dispute", day, day + 29, rate, rate)
    return day, day + 30


BUILDERS: dict[str, Callable[[_Quirk], tuple[int, int]]] = {
    "holiday_closure": _holiday_closure,
    "staff_turnover": _staff_turnover,
    "late_custody": _late_custody,
    "registry_change": _registry_change,
    "complaint_cluster": _complaint_cluster,
    "corporate_bulk": _corporate_bulk,
    "store_consolidation": _store_consolidation,
}


def add_quirks(plan: MerchantPlan, timeline: Timeline, rng: random.Random, cal: SimCalendar,
               world: WorldAssumptions) -> Timeline:
    """The healthy ``timeline`` with the world's quirks added (or unchanged, for most)."""
    healthy = world.healthy
    if rng.random() >= healthy.quirk_share:
        return timeline
    names = list(healthy.quirk_weights)
    weights = list(healthy.quirk_weights.values())
    picked = [rng.choices(names, weights)[0]]
    if rng.random() < 0.15:
        second = rng.choices(names, weights)[0]
        if second != picked[0]:
            picked.append(second)
    q = _Quirk(plan, rng, cal, world, list(timeline.profile_changes))
    episodes = [BUILDERS[name](q) for name in picked]
    plan.quirks.extend(name for name in picked if name not in plan.quirks)
    first = min(e[0] for e in episodes)
    return q.b.build(
        profile_changes=q.changes,
        custody_modes=q.custody_modes,
        store_moves=q.store_moves,
        episode=(first, max(e[1] for e in episodes)),
    )
