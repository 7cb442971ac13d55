"""Timelines of the four collapse scenarios (kind ``collapse``).

``collapse_day`` is the day consumers lose access (store closed, owner gone): from then on the
merchant records no sale, redemption or refund, card holders with a balance complain over the
following weeks, and the registry status may or may not follow (a run-away owner does not file a
closure). Signal strength, lead time (a few days to about three months), custody behaviour and the
mix of complaints are drawn per merchant, so no two collapses follow one template.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from .assumptions import CLASSIC, DistressAssumptions, WorldAssumptions
from .merchants import MerchantPlan
from .timeline import Stranded, Timeline, TimelineBuilder

_SCRIPTED = DistressAssumptions()


@dataclass
class CollapseContext:
    """Shared by all merchants of one plan: the window and the serial legal representatives."""

    days: int
    serial_representatives: list[str]
    world: WorldAssumptions = CLASSIC
    seed: int = 0

    def lead(self, rng: random.Random, scenario: str, collapse_day: int) -> int:
        return _lead(rng, collapse_day, *self.world.collapses.leads[scenario])

    def custody(self, rng: random.Random, scenario: str) -> str:
        mix = self.world.collapses.custody[scenario]
        return rng.choices(tuple(mix), tuple(mix.values()))[0]

    def distress_extras(
        self,
        plan: MerchantPlan,
        rng: random.Random,
        collapse: int,
        lead: int,
        changes: list[tuple[int, int, dict]],
        tags: list[str],
    ) -> int:
        """A registry change or a fake renovation notice, as the world has them; the first sign.

        Appends to ``changes`` and ``tags``; returns the day of the earliest added sign (or the
        collapse day). The classic world draws nothing here.
        """
        first = collapse
        share = self.world.collapses.registry_before_share
        if share > 0 and rng.random() < share:
            day = collapse - max(3, int(lead * rng.uniform(0.3, 1.2)))
            change: dict[str, object] = {}
            if plan.registered_capital is None or rng.random() < 0.6:
                serial = rng.random() < 0.3
                change["legal_representative"] = (
                    rng.choice(self.serial_representatives) if serial
                    else f"lr{rng.getrandbits(48):012x}"
                )
                tags.extend(["registry_change", "serial_legal_rep"] if serial else ["registry_change"])
            else:
                capital = plan.registered_capital
                change["registered_capital"] = float(max(round(capital * rng.uniform(0.05, 0.5), -3), 1000))
                tags.append("registry_change")
            changes.append((max(day, 1), rng.randint(9 * 3600, 16 * 3600), change))
            first = max(day, 1)
        fake = self.world.notices.fake_renovation_share
        if fake > 0 and rng.random() < fake:
            day = collapse - rng.randint(0, 7)
            changes.append((day, rng.randint(8 * 3600, 12 * 3600), {"status": "suspended"}))
            tags.append("fake_renovation")
            first = min(first, day)
        return first

    def shape_distress(
        self,
        plan: MerchantPlan,
        b: TimelineBuilder,
        collapse: int,
        signal: int,
        pushes: list[tuple[int, int]],
        service: bool,
    ) -> int:
        """The world's telling of the weeks before a collapse; returns the (earlier) first sign.

        Deep-bonus pushes over ``pushes`` (the scenario's deal windows), the service trend (if
        ``service``) and the pre-collapse complaints, drawn from a stream of their own so the
        scenario's other draws stay put. The classic world keeps its scripts.
        """
        d = self.world.distress
        if d == _SCRIPTED:
            return signal
        rng = random.Random(f"yujing-distress:{self.seed}:{plan.index}")
        # Whether this push escalates: a stream of its own, so the other draws stay put.
        own = random.Random(f"yujing-escalation:{self.seed}:{plan.index}")
        opening = own.uniform(0.2, 0.5) if own.random() < (d.push_escalates or 0.0) else None
        for first, last in pushes:
            signal = min(signal, _push(b, rng, d, first, last, opening))
        if pushes and plan.industry == "fitness" and d.push_beyond_caps:
            # Whether this gym's push credits past the 三限 caps: a stream of its own, too.
            caps = random.Random(f"yujing-caps:{self.seed}:{plan.index}")
            b.deals_beyond_caps = caps.random() < d.push_beyond_caps
        unsettled = signal  # from here on refused visits and refunds are the world's complaints
        if service and d.service_trend is not None:
            unsettled, shown = _service_trend(b, rng, d.service_trend, collapse, signal)
            signal = min(signal, shown)
        intensity = d.complaint_intensity * math.exp(rng.gauss(0.0, 0.3))
        severe = min(1.0, max(0.0, (d.severe_share if d.severe_share is not None else 0.8)
                              + rng.gauss(0.0, 0.1)))
        b.reshape_complaints(collapse, intensity, severe)
        b.hold("complaint_scale", min(signal, unsettled), collapse - 1, intensity * severe)
        return signal

    def decline_path(self, plan: MerchantPlan, sales_end: float, visits_end: float) -> tuple[float, float, float]:
        """A slow decline's sales and visits on its last day and the ramp's power, as the world
        tells it (the scripted ends and a steady fall otherwise); a stream of its own."""
        d = self.world.distress
        if d.decline_depth is None:
            return sales_end, visits_end, 1.0
        rng = random.Random(f"yujing-decline:{self.seed}:{plan.index}")
        visits = rng.uniform(*d.decline_depth)
        sales = visits * rng.uniform(0.5, 1.0)  # fewer new cards than visits: the card sold last
        power = rng.uniform(*d.decline_shape) if d.decline_shape else 1.0
        return sales, visits, power

    def closure_record(self, rng: random.Random, scenario: str, day: int) -> list[tuple[int, int, dict]]:
        """The registry sometimes learns of the closure days or weeks later; often never."""
        notices = self.world.notices
        if rng.random() >= notices.closure_filed[scenario]:
            return []
        return [(day + rng.randint(*notices.closure_filing_days), rng.randint(9 * 3600, 17 * 3600),
                 {"status": "closed"})]

    @property
    def window(self) -> tuple[int, int]:
        """Allowed collapse days: ``[start + 120, end - 7]``, squeezed for short windows."""
        hi = self.days - 7
        lo = 120 if hi >= 120 else max(self.days // 2, 1)
        return lo, max(lo, hi)

    def draw_collapse_day(self, rng: random.Random, room_after: int = 0) -> int:
        lo, hi = self.window
        return rng.randint(lo, max(lo, hi - room_after))


def _push(b: TimelineBuilder, rng: random.Random, d: DistressAssumptions, first: int,
          last: int, opening: float | None = None) -> int:
    """The world's deep-bonus push over the last weeks of a deal window; its first day. An
    escalating push opens at ``opening`` of its final bonus and raises it day by day."""
    if d.push_deep_share is None or d.push_depth is None or d.push_weeks is None or last < first:
        return last
    start = max(first, last + 1 - 7 * rng.randint(*d.push_weeks))
    b.hold("deal_share", first, last, 0.0)
    b.hold("deal_share", start, last, rng.uniform(*d.push_deep_share))
    bonus = rng.uniform(*d.push_depth) - 1.0
    if opening is not None:
        b.ramp("deal_bonus", start, last, bonus * opening, bonus)
    else:
        b.hold("deal_bonus", start, last, bonus)
    return start


def _service_trend(b: TimelineBuilder, rng: random.Random, centre: float, collapse: int,
                   signal: int) -> tuple[int, int]:
    """Redemptions settle at ``1 + trend`` of normal over the last five weeks or so: holders
    rushing in (rise) or staff gone and bookings refused (decline). Returns when the trend
    starts and when it shows as a sign (a decline of over 20%; else ``signal``).

    Visits are booked an interval ahead, so the level is reached well before the last month.
    """
    trend = min(0.5, max(-0.6, centre + rng.gauss(0.0, 0.1)))
    start = max(0, collapse - max(collapse - signal, rng.randint(42, 70)))
    full = max(start + (collapse - start) // 3, collapse - 35)
    level = 1.0 + trend
    b.ramp("visit_mult", start, full, 1.0, level, multiply=True)
    b.hold("visit_mult", full + 1, collapse - 1, level, multiply=True)
    if trend >= 0.0:
        return start, signal
    b.ramp("honour", start, full, 1.0, 1.0 + trend / 2, multiply=True)  # some visits refused
    b.hold("honour", full + 1, collapse - 1, 1.0 + trend / 2, multiply=True)
    return start, min(signal, full) if trend < -0.2 else signal


def _custody_tag(tags: list[str], custody: str) -> list[str]:
    return [*tags, "custody_gap"] if custody != "compliant" else tags


def _lead(rng: random.Random, collapse_day: int, lo: int, hi: int) -> int:
    """Days from the first signal to the collapse, keeping two weeks of history before it."""
    return max(3, min(rng.randint(lo, hi), collapse_day - 14))


def runaway_after_surge(plan: MerchantPlan, rng: random.Random, ctx: CollapseContext) -> Timeline:
    """Aggressive sales with deep bonuses and long cards, then the owner disappears."""
    collapse = ctx.draw_collapse_day(rng)
    lead = ctx.lead(rng, "runaway_after_surge", collapse)
    surge = collapse - lead
    strength = rng.uniform(0.3, 1.0)
    surge_share = ctx.world.collapses.runaway_surge_share
    surged = surge_share >= 1.0 or rng.random() < surge_share  # some vanish without a push
    b = TimelineBuilder(ctx.days if surged else 0)  # no surge: its levers are drawn, not used
    peak = 1.0 + rng.uniform(1.5, 7.0) * strength
    climb = max(1, int(lead * rng.uniform(0.2, 0.7)))
    b.ramp("sales_mult", surge, surge + climb, 1.0, peak)
    b.hold("sales_mult", surge + climb, collapse - 1, peak)
    b.hold("deal_share", surge, collapse - 1, min(0.95, 0.35 + 0.55 * strength))
    b.hold("deal_bonus", surge, collapse - 1, rng.choice((0.5, 0.6, 0.8, 1.0)) * (0.6 + 0.4 * strength))
    b.hold("long_share", surge, collapse - 1, rng.uniform(0.05, 0.3) * strength)
    if rng.random() < 0.75:
        b.hold("over_cap_share", surge, collapse - 1, rng.uniform(0.02, 0.15) * strength)
    if not surged:
        b = TimelineBuilder(ctx.days)
    tail = min(lead, rng.randint(3, 21))
    b.ramp("honour", collapse - tail, collapse - 1, 1.0, rng.uniform(0.3, 0.9))
    b.ramp("refund_mult", collapse - tail, collapse - 1, 1.0, 1.5 + 4.0 * strength)
    b.ramp("refund_honour", collapse - tail, collapse - 1, 0.93, rng.uniform(0.1, 0.6))
    b.complaints("service_unavailable", collapse - tail, collapse - 1, 0.0, 0.03 + 0.2 * strength)
    b.complaints("refund_refused", collapse - tail, collapse - 1, 0.0, 0.02 + 0.1 * strength)
    b.stop_selling(collapse)
    b.stop_serving(collapse)
    custody = ctx.custody(rng, "runaway_after_surge")
    changes = ctx.closure_record(rng, "runaway_after_surge", collapse)
    tags = ["surge" if surged else "no_surge"]
    signal = surge if surged or custody != "compliant" else collapse - tail
    signal = min(signal, ctx.distress_extras(plan, rng, collapse, lead, changes, tags))
    pushes = [(surge, collapse - 1)] if surged else []
    signal = ctx.shape_distress(plan, b, collapse, signal, pushes, service=True)
    return b.build(
        collapse_day=collapse,
        signal_start=signal,
        tags=_custody_tag(tags, custody),
        custody_modes=[(surge, custody)],
        profile_changes=changes,
        stranded=Stranded(
            share=rng.uniform(0.15, 0.45),
            mean_delay=rng.uniform(3, 12),
            categories={"store_closed": 0.55, "refund_refused": 0.35, "other": 0.10},
        ),
        notes={"strength": strength, "peak_sales": peak if surged else 1.0, "lead": lead,
               "custody": custody},
    )


def slow_decline(plan: MerchantPlan, rng: random.Random, ctx: CollapseContext) -> Timeline:
    """Months of fading business, refunds refused, custody reports lapsing, then closure."""
    collapse = ctx.draw_collapse_day(rng)
    lead = ctx.lead(rng, "slow_decline", collapse)
    decline = collapse - lead
    strength = rng.uniform(0.3, 1.0)
    b = TimelineBuilder(ctx.days)
    sales_end = 1.0 - rng.uniform(0.4, 0.85) * strength
    visits_end = 1.0 - rng.uniform(0.3, 0.65) * strength
    sales_end, visits_end, power = ctx.decline_path(plan, sales_end, visits_end)
    b.ramp("sales_mult", decline, collapse - 1, 1.0, sales_end, power=power)
    b.ramp("visit_mult", decline, collapse - 1, 1.0, visits_end, power=power)
    last_third = collapse - max(lead // 3, 3)
    b.ramp("honour", last_third, collapse - 1, 1.0, 1.0 - rng.uniform(0.1, 0.5) * strength)
    b.ramp("refund_mult", decline, collapse - 1, 1.0, 1.0 + rng.uniform(2.0, 7.0) * strength)
    b.ramp("refund_honour", decline, collapse - 1, 0.93, rng.uniform(0.1, 0.6))
    b.complaints("service_unavailable", decline, collapse - 1, 0.0, 0.02 + 0.2 * strength)
    b.complaints("refund_refused", decline, collapse - 1, 0.0, 0.01 + 0.1 * strength)
    b.complaints("contract_dispute", decline, collapse - 1, 0.0, 0.02 * strength)
    clearance = rng.random() < 0.35
    if clearance:  # a last "clearance" card sale to raise cash while in distress
        first = collapse - rng.randint(14, 40)
        b.hold("sales_mult", first, collapse - 1, rng.uniform(1.5, 3.0), multiply=True)
        b.hold("deal_share", first, collapse - 1, rng.uniform(0.4, 0.7))
        b.hold("deal_bonus", first, collapse - 1, rng.uniform(0.3, 0.6))
    b.stop_selling(collapse)
    b.stop_serving(collapse)
    custody = ctx.custody(rng, "slow_decline")
    changes = ctx.closure_record(rng, "slow_decline", collapse)
    tags = ["clearance_sale"] if clearance else []
    first_sign = min(decline, ctx.distress_extras(plan, rng, collapse, lead, changes, tags))
    pushes = [(first, collapse - 1)] if clearance else []
    first_sign = ctx.shape_distress(plan, b, collapse, first_sign, pushes, service=False)
    return b.build(
        collapse_day=collapse,
        signal_start=first_sign,
        tags=_custody_tag(tags, custody),
        custody_modes=[(decline + lead // 3, custody)],
        profile_changes=changes,
        stranded=Stranded(
            share=rng.uniform(0.1, 0.35),
            mean_delay=rng.uniform(5, 20),
            categories={"store_closed": 0.45, "refund_refused": 0.4, "service_unavailable": 0.15},
        ),
        notes={"strength": strength, "lead": lead, "clearance": clearance, "custody": custody},
    )


def ownership_transfer(plan: MerchantPlan, rng: random.Random, ctx: CollapseContext) -> Timeline:
    """Registry change, then promotion, then "renovation"/"water outage", then cards dead."""
    collapse = ctx.draw_collapse_day(rng)
    lead = ctx.lead(rng, "ownership_transfer", collapse)
    transfer = collapse - lead
    strength = rng.uniform(0.3, 1.0)
    change: dict[str, object] = {}
    variant = rng.choices(("representative", "capital", "both"), (0.35, 0.2, 0.45))[0]
    if plan.registered_capital is None:  # an individual business has no capital to cut
        variant = "representative"
    if variant != "capital":
        serial = rng.random() < 0.5 and ctx.serial_representatives
        change["legal_representative"] = (
            rng.choice(ctx.serial_representatives) if serial else f"lr{rng.getrandbits(48):012x}"
        )
    if variant != "representative":
        capital = plan.registered_capital or 100_000.0
        change["registered_capital"] = float(max(round(capital * rng.uniform(0.05, 0.3), -3), 1000))
    changes: list[tuple[int, int, dict]] = [(transfer, rng.randint(9 * 3600, 16 * 3600), change)]
    b = TimelineBuilder(ctx.days)
    promo_first = transfer + rng.randint(3, max(4, lead // 3))
    promo_last = collapse - rng.randint(2, 8)
    peak = 1.0 + rng.uniform(1.0, 4.0) * strength
    b.ramp("sales_mult", promo_first, promo_last, 1.3, peak)
    b.hold("deal_share", promo_first, promo_last, rng.uniform(0.5, 0.9))
    b.hold("deal_bonus", promo_first, promo_last, rng.uniform(0.5, 1.0))
    b.hold("long_share", promo_first, promo_last, rng.uniform(0.05, 0.3) * strength)
    b.hold("over_cap_share", promo_first, promo_last, rng.uniform(0.0, 0.12) * strength)
    outage = rng.randint(0, 5)  # days of "water outage" excuses before the doors stay shut
    b.ramp("honour", collapse - outage - 3, collapse - 1, 0.9, rng.uniform(0.2, 0.8))
    b.complaints("service_unavailable", collapse - outage, collapse + 5, 0.1 + 0.3 * strength, 0.05)
    b.ramp("refund_honour", transfer, collapse - 1, 0.9, rng.uniform(0.1, 0.5))
    b.stop_selling(collapse)
    b.stop_serving(collapse)
    tags = ["registry_change"]
    if change.get("legal_representative") in ctx.serial_representatives:
        tags.append("serial_legal_rep")
    if rng.random() < 0.5:  # "装修"/"停水" posted without 30 days' notice
        changes.append((collapse - rng.randint(0, 3), rng.randint(8 * 3600, 12 * 3600),
                        {"status": "suspended"}))
        tags.append("fake_renovation")
    changes += ctx.closure_record(rng, "ownership_transfer", collapse + 15)
    custody = ctx.custody(rng, "ownership_transfer")
    signal = ctx.shape_distress(plan, b, collapse, transfer, [(promo_first, promo_last)],
                                service=True)
    return b.build(
        collapse_day=collapse,
        signal_start=signal,
        tags=_custody_tag(tags, custody),
        custody_modes=[(transfer, custody)],
        profile_changes=changes,
        stranded=Stranded(
            share=rng.uniform(0.2, 0.5),
            mean_delay=rng.uniform(4, 15),
            categories={"store_closed": 0.5, "refund_refused": 0.3, "service_unavailable": 0.15,
                        "false_advertising": 0.05},
        ),
        notes={"strength": strength, "lead": lead, "variant": variant, "custody": custody},
    )


@dataclass(frozen=True)
class ChainCollapse:
    """When one chain goes down: the first store's collapse and the followers' delays."""

    first_collapse: int
    signal_start: int
    delays: tuple[int, ...]


def plan_chain_collapse(rng: random.Random, ctx: CollapseContext, members: int) -> ChainCollapse:
    first = ctx.draw_collapse_day(rng, room_after=10)
    lead = ctx.lead(rng, "chain_collapse", first)
    delays, total = [0], 0
    for _ in range(members - 1):
        total += rng.randint(2, 12)
        delays.append(total)
    return ChainCollapse(first, first - lead, tuple(delays))


def chain_member(
    plan: MerchantPlan, rng: random.Random, ctx: CollapseContext, chain: ChainCollapse, order: int
) -> Timeline:
    """One store of a collapsing chain: unpaid wages, cancelled classes, then a run on the rest."""
    _, hi = ctx.window
    first = chain.first_collapse
    collapse = min(first + chain.delays[order], hi)
    signal = chain.signal_start + rng.randint(0, 10)
    signal = min(signal, collapse - 3)
    strength = rng.uniform(0.4, 1.0)
    b = TimelineBuilder(ctx.days)
    b.complaints("service_unavailable", signal, collapse - 1, 0.01, 0.05 + 0.25 * strength)
    b.ramp("honour", signal, collapse - 1, 1.0, 1.0 - rng.uniform(0.1, 0.4) * strength)
    b.ramp("refund_honour", signal, collapse - 1, 0.9, rng.uniform(0.1, 0.5))
    selling = rng.random() < 0.7
    if selling:  # selling cards while in distress
        b.hold("sales_mult", signal, first - 1, 1.0 + rng.uniform(0.2, 1.5) * strength)
        b.hold("deal_share", signal, first - 1, rng.uniform(0.3, 0.6))
        b.hold("deal_bonus", signal, first - 1, rng.uniform(0.3, 0.7))
    if collapse > first:  # the first closure sets off a run on the remaining stores
        b.hold("sales_mult", first, collapse - 1, rng.uniform(0.1, 0.4))
        b.hold("visit_mult", first, collapse - 1, rng.uniform(1.4, 2.2))
        b.hold("refund_mult", first, collapse - 1, rng.uniform(5.0, 12.0))
        b.hold("refund_honour", first, collapse - 1, rng.uniform(0.05, 0.35))
        b.complaints("refund_refused", first, collapse - 1, 0.1, 0.3)
    b.stop_selling(collapse)
    b.stop_serving(collapse)
    custody = ctx.custody(rng, "chain_collapse")
    changes = ctx.closure_record(rng, "chain_collapse", collapse)
    tags: list[str] = []
    first_sign = min(signal, ctx.distress_extras(plan, rng, collapse, collapse - signal, changes, tags))
    pushes = [(signal, first - 1)] if selling else []
    first_sign = ctx.shape_distress(plan, b, collapse, first_sign, pushes, service=True)
    return b.build(
        collapse_day=collapse,
        signal_start=first_sign,
        tags=_custody_tag(tags, custody),
        custody_modes=[(signal, custody)],
        profile_changes=changes,
        stranded=Stranded(
            share=rng.uniform(0.2, 0.45),
            mean_delay=rng.uniform(3, 12),
            categories={"store_closed": 0.45, "service_unavailable": 0.25, "refund_refused": 0.3},
        ),
        notes={"strength": strength, "order": order, "custody": custody},
    )
