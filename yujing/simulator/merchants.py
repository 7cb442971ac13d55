"""The merchant population: licences, stores, chains, size and custody habits.

Each merchant is one licence (``merchant_id``) with 1-3 stores. Chains are operators under one
controlling party (a shared ``chain_id`` and brand, usually branch companies, often the same
legal representative). ``size`` scales how many cards a store sells per day; ``price_tier``
scales service prices. Custody habits: some merchants have no custody account until their
balance crosses the 200,000 yuan tier (reporting ``null``), some report ``0``, some keep a small
voluntary deposit.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import date, timedelta

from .assumptions import CLASSIC, WorldAssumptions
from .naming import brand, draw_town, pseudonym, registered_name, uscc
from .timeline import Timeline

#: Cards sold per store per day at normal activity, before the merchant's ``size``.
BASE_SALES_PER_STORE: dict[str, float] = {
    "beauty": 0.4,
    "hairdressing": 0.4,
    "fitness": 0.22,
    "other": 0.36,
}

#: Industry mix per scenario (collapses skew to gyms and beauty, as in the news).
INDUSTRY_MIX: dict[str, dict[str, float]] = {
    "healthy": {"beauty": 0.33, "hairdressing": 0.33, "fitness": 0.24, "other": 0.10},
    "runaway_after_surge": {"beauty": 0.35, "hairdressing": 0.15, "fitness": 0.5},
    "slow_decline": {"beauty": 0.35, "hairdressing": 0.3, "fitness": 0.3, "other": 0.05},
    "chain_collapse": {"beauty": 0.3, "hairdressing": 0.15, "fitness": 0.55},
    "ownership_transfer": {"beauty": 0.35, "hairdressing": 0.15, "fitness": 0.5},
    "new_opening": {"beauty": 0.35, "hairdressing": 0.2, "fitness": 0.45},
    "legal_promotion": {"beauty": 0.4, "hairdressing": 0.3, "fitness": 0.3},
    "announced_renovation": {"beauty": 0.35, "hairdressing": 0.3, "fitness": 0.3, "other": 0.05},
    "viral_complaints": {"beauty": 0.4, "hairdressing": 0.3, "fitness": 0.3},
    "seasonal_gym": {"fitness": 1.0},
}
_COLLAPSING = frozenset({"runaway_after_surge", "slow_decline", "chain_collapse", "ownership_transfer"})
_INDIVIDUAL_SHARE = {"beauty": 0.4, "hairdressing": 0.6, "fitness": 0.15, "other": 0.5}


@dataclass
class MerchantPlan:
    """Everything fixed about one merchant before the run."""

    index: int
    merchant_id: str
    name: str
    industry: str
    district: str
    chain_id: str | None
    scenario: str
    stores: list[str]
    opened_on: date
    individual: bool
    legal_representative: str
    registered_capital: float | None
    size: float
    price_tier: float
    custody_habit: str  # "null" | "zero" | "voluntary"
    report_day: int  # day of month of the custody report
    promo_appetite: float  # probability of joining a calendar promotion
    # Drawn from the world (a separate random stream, so the classic world is unchanged):
    big_card_share: float = 0.0  # share of ordinary sales that are big cards above the caps
    big_card_max: int = 30_000  # yuan
    has_profile: bool = True  # False: the platform never received a profile record
    custody_enrolled: bool = True  # False: no custody account, custody_balance always null
    custody_reports: bool = True  # False: enrolled but never reports in the window
    custody_late_days: tuple[int, int] | None = None  # reports arrive this many days late
    custody_keeping: str = "tracks"  # "tracks" the requirement monthly | keeps a "stable" deposit
    quirks: list[str] = field(default_factory=list)
    timeline: Timeline = field(default_factory=lambda: Timeline(days=0))

    @property
    def sales_per_day(self) -> float:
        """Expected cards sold per day at normal activity, all stores together."""
        return BASE_SALES_PER_STORE[self.industry] * self.size * len(self.stores)


def draw_industry(rng: random.Random, scenario: str) -> str:
    mix = INDUSTRY_MIX[scenario]
    return rng.choices(list(mix), weights=list(mix.values()))[0]


def _opened_on(rng: random.Random, start: date) -> date:
    """Age of an existing business: a few months to 15 years, most a few years."""
    age_days = min(60 + int(rng.expovariate(1 / 1300)), 15 * 365)
    return start - timedelta(days=age_days)


def _capital(rng: random.Random, individual: bool) -> float | None:
    if individual:
        return None if rng.random() < 0.5 else float(rng.choice((30_000, 50_000, 100_000)))
    return float(rng.choice((100_000, 300_000, 500_000, 1_000_000, 2_000_000, 5_000_000)))


def build_merchant(
    rng: random.Random,
    *,
    index: int,
    scenario: str,
    industry: str,
    start: date,
    taken_ids: set[str],
    chain: ChainIdentity | None = None,
    world: WorldAssumptions = CLASSIC,
) -> MerchantPlan:
    """Draw one merchant's identity and habits (timeline added later by its scenario)."""
    individual = chain is None and rng.random() < _INDIVIDUAL_SHARE[industry]
    merchant_id = uscc(rng, individual)
    while merchant_id in taken_ids:
        merchant_id = uscc(rng, individual)
    taken_ids.add(merchant_id)
    town = draw_town(rng)
    if chain is not None:
        brand_name = chain.brand
        representative = chain.representative if rng.random() < 0.6 else pseudonym(rng, "lr")
    else:
        brand_name = brand(rng, industry)
        representative = pseudonym(rng, "lr")
    store_count = rng.choices((1, 2, 3), (0.6, 0.28, 0.12))[0]
    if chain is not None:
        store_count = rng.choices((1, 2), (0.75, 0.25))[0]
    market = world.industries[industry]
    plan = MerchantPlan(
        index=index,
        merchant_id=merchant_id,
        name=registered_name(rng, brand_name, industry, town, individual, chain is not None),
        industry=industry,
        district=town,
        chain_id=None if chain is None else chain.chain_id,
        scenario=scenario,
        stores=[f"{merchant_id}-{n:02d}" for n in range(1, store_count + 1)],
        opened_on=_opened_on(rng, start),
        individual=individual,
        legal_representative=representative,
        registered_capital=_capital(rng, individual),
        size=math.exp(rng.gauss(-0.05, 0.4)) * market.sales_level,
        price_tier=math.exp(rng.gauss(0.0, 0.15)) * market.price_level,
        custody_habit=rng.choices(tuple(world.custody.habits), tuple(world.custody.habits.values()))[0],
        report_day=rng.randint(1, world.custody.report_window),
        promo_appetite=rng.uniform(*world.promotions.appetite),
    )
    if world is not CLASSIC:
        _world_habits(plan, world, random.Random(f"yujing-habits:{merchant_id}"))
    return plan


def _world_habits(plan: MerchantPlan, world: WorldAssumptions, rng: random.Random) -> None:
    """The merchant's habits that exist only in drawn worlds: big cards, custody, profile."""
    market, custody = world.industries[plan.industry], world.custody
    if market.big_card_share > 0 and rng.random() < 0.8:  # a fifth sell no big card at all
        plan.big_card_share = min(0.9, market.big_card_share * math.exp(rng.gauss(0.0, 0.7)))
        plan.big_card_max = market.big_card_max
    plan.has_profile = rng.random() >= custody.unprofiled_share
    plan.custody_enrolled = rng.random() >= custody.not_enrolled_share
    sound = plan.scenario not in _COLLAPSING  # a collapse's custody follows its scenario
    plan.custody_reports = not sound or rng.random() >= custody.never_report_share
    if sound and rng.random() < custody.late_share:
        plan.custody_late_days = custody.late_days
    if rng.random() < custody.stable_share:  # distressed merchants too, until distress begins
        plan.custody_keeping = "stable"


@dataclass(frozen=True)
class ChainIdentity:
    chain_id: str
    brand: str
    representative: str


def new_chain(rng: random.Random, industry: str) -> ChainIdentity:
    return ChainIdentity(pseudonym(rng, "CH"), brand(rng, industry), pseudonym(rng, "lr"))
