"""Assigning scenarios to merchants and building the whole plan (population + timelines).

The first merchants get one of each scenario of the mix (a collapsing chain counts two
merchants), so even a dozen merchants exercise everything; the rest are drawn from the mix. A collapsing chain is
drawn as one unit of 2-6 merchants, so its weight is divided by the mean chain size. Units are
shuffled, so neither ids nor positions give the scenario away. Healthy chains are formed
afterwards from non-collapsing merchants of one industry.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from . import collapses, lookalikes
from .calendar import SimCalendar
from .config import HEALTHY, SCENARIOS, SimulationConfig, scenario_kind
from .labels import label_rows
from .merchants import ChainIdentity, MerchantPlan, build_merchant, draw_industry, new_chain
from .naming import pseudonym
from .quirks import add_quirks
from .timeline import Timeline

CHAIN_SIZES = (2, 6)
_MEAN_CHAIN = sum(CHAIN_SIZES) / 2
#: When there are fewer merchants than scenarios, the ones that come first.
_PRIORITY = (
    "runaway_after_surge", HEALTHY, "new_opening", "slow_decline", "announced_renovation",
    "ownership_transfer", "viral_complaints", "legal_promotion", "seasonal_gym", "chain_collapse",
)

_LOOKALIKE_BUILDERS = {
    "new_opening": lookalikes.new_opening,
    "legal_promotion": lookalikes.legal_promotion,
    "announced_renovation": lookalikes.announced_renovation,
    "viral_complaints": lookalikes.viral_complaints,
    "seasonal_gym": lookalikes.seasonal_gym,
    HEALTHY: lookalikes.healthy,
}
_COLLAPSE_BUILDERS = {
    "runaway_after_surge": collapses.runaway_after_surge,
    "slow_decline": collapses.slow_decline,
    "ownership_transfer": collapses.ownership_transfer,
}


@dataclass
class WorldPlan:
    config: SimulationConfig
    calendar: SimCalendar
    merchants: list[MerchantPlan]

    def labels(self) -> list[dict[str, Any]]:
        """One row per merchant for ``labels.jsonl`` (see :mod:`.labels`)."""
        return label_rows(self.merchants, self.calendar)


def assign_units(n: int, mix: dict[str, float], rng: random.Random) -> list[tuple[str, int]]:
    """Scenario units ``(scenario, merchants)``; a collapsing chain is one unit of 2-6."""
    wanted = [s for s in _PRIORITY if mix.get(s, 0.0) > 0]  # each scenario of the mix once
    if n < len(wanted):
        units = [(s, 1) for s in wanted[:n]]
    else:
        chain = 2 if n > len(wanted) else 1
        units = [(s, chain if s == "chain_collapse" else 1) for s in wanted]
    remaining = n - sum(size for _, size in units)
    names = [s for s in SCENARIOS if mix.get(s, 0.0) > 0]
    weights = [mix[s] / (_MEAN_CHAIN if s == "chain_collapse" else 1.0) for s in names]
    while remaining > 0:
        scenario = rng.choices(names, weights)[0]
        size = 1
        if scenario == "chain_collapse" and remaining >= CHAIN_SIZES[0]:
            size = rng.randint(CHAIN_SIZES[0], min(CHAIN_SIZES[1], remaining))
        elif scenario == "chain_collapse" and len(names) > 1:
            continue  # one merchant left: no room for a chain
        units.append((scenario, size))
        remaining -= size
    rng.shuffle(units)
    return units


def plan_world(config: SimulationConfig) -> WorldPlan:
    """Draw the population, its chains and every merchant's scenario timeline."""
    world = config.assumptions
    cal = SimCalendar(config.start, config.days, world=world)
    rng = random.Random(f"yujing-plan:{config.seed}")
    units = assign_units(config.merchants, config.mix, rng)

    # One row per merchant: (scenario, industry, unit number); chains share one industry.
    rows: list[tuple[str, str, int]] = []
    for number, (scenario, size) in enumerate(units):
        industry = draw_industry(rng, scenario)
        rows.extend((scenario, industry, number) for _ in range(size))

    chain_of: dict[int, ChainIdentity] = {}
    for number, (scenario, _size) in enumerate(units):
        if scenario == "chain_collapse":
            industry = next(r[1] for r in rows if r[2] == number)
            identity = new_chain(rng, industry)
            for index, row in enumerate(rows):
                if row[2] == number:
                    chain_of[index] = identity
    _form_healthy_chains(rows, chain_of, config.chain_share, rng)

    taken: set[str] = set()
    merchants = [
        build_merchant(rng, index=i, scenario=scenario, industry=industry, start=config.start,
                       taken_ids=taken, chain=chain_of.get(i), world=world)
        for i, (scenario, industry, _) in enumerate(rows)
    ]
    ctx = collapses.CollapseContext(
        days=config.days, serial_representatives=[pseudonym(rng, "lr") for _ in range(3)],
        world=world, seed=config.seed,
    )
    _attach_timelines(merchants, rows, cal, ctx, config.seed)
    return WorldPlan(config=config, calendar=cal, merchants=merchants)


def _form_healthy_chains(
    rows: list[tuple[str, str, int]],
    chain_of: dict[int, ChainIdentity],
    share: float,
    rng: random.Random,
) -> None:
    """Group a share of the non-collapsing merchants of each industry into chains of 2-6."""
    for industry in ("beauty", "hairdressing", "fitness", "other"):
        candidates = [
            i for i, (scenario, ind, _) in enumerate(rows)
            if ind == industry and scenario_kind(scenario) != "collapse"
        ]
        rng.shuffle(candidates)
        pool = candidates[: int(round(share * len(candidates)))]
        while len(pool) >= CHAIN_SIZES[0]:
            size = min(rng.randint(*CHAIN_SIZES), len(pool))
            if len(pool) - size == 1:
                size += 1 if size < CHAIN_SIZES[1] else -1
            identity = new_chain(rng, industry)
            for index in pool[:size]:
                chain_of[index] = identity
            pool = pool[size:]


def _attach_timelines(
    merchants: list[MerchantPlan],
    rows: list[tuple[str, str, int]],
    cal: SimCalendar,
    ctx: collapses.CollapseContext,
    seed: int,
) -> None:
    chains: dict[int, tuple[collapses.ChainCollapse, list[int]]] = {}
    for scenario, _, number in rows:
        if scenario == "chain_collapse":
            members = [i for i, r in enumerate(rows) if r[2] == number]
            if number not in chains:
                chain_rng = random.Random(f"yujing-chain:{seed}:{number}")
                chains[number] = (
                    collapses.plan_chain_collapse(chain_rng, ctx, len(members)), members
                )
    for merchant, (scenario, _, number) in zip(merchants, rows, strict=True):
        rng = random.Random(f"yujing-timeline:{seed}:{merchant.index}")
        timeline: Timeline
        if scenario == "chain_collapse":
            chain, members = chains[number]
            order = members.index(merchant.index)
            timeline = collapses.chain_member(merchant, rng, ctx, chain, order)
        elif scenario in _COLLAPSE_BUILDERS:
            timeline = _COLLAPSE_BUILDERS[scenario](merchant, rng, ctx)
        else:
            timeline = _LOOKALIKE_BUILDERS[scenario](merchant, rng, cal, ctx.world)
        if scenario == HEALTHY and ctx.world.healthy.quirk_share > 0:
            quirk_rng = random.Random(f"yujing-quirks:{seed}:{merchant.index}")
            timeline = add_quirks(merchant, timeline, quirk_rng, cal, ctx.world)
        merchant.timeline = timeline
