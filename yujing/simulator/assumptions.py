"""What a simulated world assumes: prices, custody habits, complaints, notices, promotions, collapses.

yujing's detection must hold on districts whose habits nobody wrote down for us. So the simulator
does not assume one world: a :class:`WorldAssumptions` is drawn at random from a ``world_seed``
(apart from the population seed), and every run of that seed lives in that world. The ranges are
wide on purpose, set by reasoning from the domain notes, never fitted to any labelled set:
hidden worlds written by other hands must fall inside them.

:meth:`WorldAssumptions.classic` is the one world the simulator knew before (the demo's and the
tests' figures): every value there reproduces the former constants exactly.

>>> a, b = draw_world(1), draw_world(1)
>>> a == b, a.world_seed, a == draw_world(2)
(True, 1, False)
>>> WorldAssumptions.classic().custody.cadence
'monthly'
>>> sorted(QUIRKS) == sorted(draw_world(3).healthy.quirk_weights)
True
"""

from __future__ import annotations

import math
import random
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

INDUSTRIES: tuple[str, ...] = ("beauty", "hairdressing", "fitness", "other")
#: Harmless oddities of healthy merchants, each looking a little like distress.
QUIRKS: tuple[str, ...] = (
    "holiday_closure", "staff_turnover", "late_custody", "registry_change",
    "complaint_cluster", "corporate_bulk", "store_consolidation",
)
#: How a renovation is announced: not at all, a status change on the day, under or over 30 days ahead.
NOTICE_REGIMES: tuple[str, ...] = ("none", "same_day", "short", "long")
CADENCES: tuple[str, ...] = ("monthly", "quarterly", "irregular")
COLLAPSES: tuple[str, ...] = (
    "runaway_after_surge", "slow_decline", "ownership_transfer", "chain_collapse",
)
Span = tuple[int, int]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class IndustryMarket(_Frozen):
    """Prices and card sizes of one industry in this world."""

    price_level: float = Field(1.0, gt=0, description="Multiplies service prices and card sizes.")
    sales_level: float = Field(1.0, gt=0, description="Multiplies cards sold per store and day.")
    big_card_share: float = Field(
        0.0, ge=0, le=1,
        description="Share of ordinary sales that are big cards above the caps (salons: named "
                    "cards of 5,000+ yuan; gyms: packages or memberships above the 三限).",
    )
    big_card_max: int = Field(30_000, ge=5_000, description="Largest big card, yuan.")


class CustodyAssumptions(_Frozen):
    cadence: Literal["monthly", "quarterly", "irregular"] = "monthly"
    irregular_rate: float = Field(0.5, gt=0, le=1, description="Irregular: chance a month reports.")
    report_window: int = Field(10, ge=1, le=28, description="Reports fall on day 1..N of the month.")
    miss_rate: float = Field(0.04, ge=0, le=1, description="A healthy report is missing.")
    late_share: float = Field(0.0, ge=0, le=1, description="Sound merchants habitually late.")
    late_days: Span = (0, 0)
    never_report_share: float = Field(0.0, ge=0, le=1, description="Enrolled, never report.")
    not_enrolled_share: float = Field(0.0, ge=0, le=1, description="No custody account at all.")
    unprofiled_share: float = Field(0.0, ge=0, le=1, description="No profile record at all.")
    habits: dict[str, float] = Field(
        default_factory=lambda: {"null": 0.45, "zero": 0.3, "voluntary": 0.25},
        description="Below the tier: report null, 0 or a voluntary deposit.",
    )
    # How a sound merchant's deposit moves once custody is required: ``tracks`` the requirement
    # month by month (a margin over 40% of the balance), or keeps a ``stable`` deposit set once,
    # topped up only when the requirement rises above it (the rest of this share track).
    stable_share: float = Field(
        0.0, ge=0, le=1, description="Sound merchants keeping a stable deposit (set once, topped up)."
    )
    stable_headroom: tuple[float, float] = Field(
        (1.1, 1.6), description="A stable deposit is set at this multiple of the requirement."
    )
    stable_noise: float = Field(0.02, ge=0, le=0.2, description="Relative noise of a stable deposit.")


class ComplaintAssumptions(_Frozen):
    background_per_store: float = Field(0.011, ge=0, description="Ordinary complaints per store-day.")
    spring_festival_peak: float = Field(1.6, ge=1, description="Complaint multiplier around 春节.")
    delay_mean_days: float = Field(0.0, ge=0, description="Refused visit/refund -> complaint.")
    stranded_delay_scale: float = Field(1.0, gt=0, description="Scales holders' delay after a collapse.")
    stranded_share_scale: float = Field(1.0, gt=0, description="Scales how many stranded holders complain.")


class NoticeAssumptions(_Frozen):
    renovation_regimes: dict[str, float] = Field(default_factory=lambda: {"long": 1.0})
    long_notice: Span = (30, 50)
    renovation_days: Span = (7, 30)
    closure_filed: dict[str, float] = Field(
        default_factory=lambda: {"runaway_after_surge": 0.45, "slow_decline": 0.55,
                                 "ownership_transfer": 0.3, "chain_collapse": 0.5},
        description="Share of collapses whose closure reaches the registry at all.",
    )
    closure_filing_days: Span = (5, 45)
    fake_renovation_share: float = Field(
        0.0, ge=0, le=1,
        description="Run-aways and declines posting 'suspended' just before the doors shut "
                    "(ownership transfers keep their own half).",
    )
    holiday_status_share: float = Field(0.0, ge=0, le=1, description="Holiday closures posted.")


class PromotionWindow(_Frozen):
    """One yearly promotion: it ends on ``month/day`` (or ``spring_offset`` days after 春节)."""

    name: str
    month: int = Field(0, ge=0, le=12)
    day: int = Field(0, ge=0, le=31)
    spring_offset: int | None = None
    length: int = Field(ge=1, le=60)
    industries: tuple[str, ...]
    boost: float = Field(gt=0)


def _classic_windows() -> tuple[PromotionWindow, ...]:
    everyone = INDUSTRIES
    return (
        PromotionWindow(name="618", month=6, day=18, length=18, industries=everyone, boost=1.7),
        PromotionWindow(name="double11", month=11, day=11, length=18, industries=everyone,
                        boost=1.9),
        PromotionWindow(name="womens_day", month=3, day=8, length=8, industries=("beauty",),
                        boost=1.6),
        PromotionWindow(name="new_year", month=1, day=10, length=14, industries=("fitness",),
                        boost=1.6),
        PromotionWindow(name="pre_spring_festival", spring_offset=-3, length=26,
                        industries=("beauty", "hairdressing", "other"), boost=1.6),
    )


class PromotionAssumptions(_Frozen):
    windows: tuple[PromotionWindow, ...] = Field(default_factory=_classic_windows)
    bonus: tuple[float, float] = (0.1, 0.3)
    bonus_share: float = Field(0.7, ge=0, le=1, description="Sales with the promotion's bonus.")
    appetite: tuple[float, float] = (0.3, 0.85)
    post_dip: float = Field(0.7, gt=0, le=1, description="Sales after a promotion (pulled forward).")
    post_days: int = 18


class CollapseAssumptions(_Frozen):
    leads: dict[str, Span] = Field(
        default_factory=lambda: {"runaway_after_surge": (7, 90), "slow_decline": (45, 150),
                                 "ownership_transfer": (20, 70), "chain_collapse": (20, 90)},
        description="Days from the first sign to the collapse, per scenario.",
    )
    custody: dict[str, dict[str, float]] = Field(
        default_factory=lambda: {
            "runaway_after_surge": {"frozen": 0.4, "missed": 0.3, "falling": 0.1, "compliant": 0.2},
            "slow_decline": {"missed": 0.5, "falling": 0.35, "compliant": 0.15},
            "ownership_transfer": {"falling": 0.35, "missed": 0.3, "frozen": 0.2,
                                   "compliant": 0.15},
            "chain_collapse": {"missed": 0.5, "frozen": 0.35, "compliant": 0.15},
        },
        description="Custody behaviour once in distress (compliant = no custody signal).",
    )
    drawdown: dict[str, float] = Field(
        default_factory=dict,
        description="Per scenario: share of collapses that draw their custody deposit down "
                    "(``falling``), the other modes scaled to the rest; empty: the mix as it stands.",
    )
    runaway_surge_share: float = Field(1.0, ge=0, le=1, description="Run-aways that surge first.")
    registry_before_share: float = Field(
        0.0, ge=0, le=1, description="Other collapses preceded by a registry change."
    )


class DistressAssumptions(_Frozen):
    """How a collapse looks in the weeks before its date; the classic world keeps its scripts.

    Worlds written by different hands tell the same collapse differently: redemptions rise (new
    holders) or fall (staff gone), complaints build for weeks or not at all, the last push sells
    a few deep cards or nearly only "充1000送800".
    """

    service_trend: float | None = Field(
        None, ge=-0.6, le=0.5,
        description="Redemptions at the collapse vs before the first sign (-0.5 = halved), "
                    "the world's centre for run-aways, transfers and chains; None: scripted.",
    )
    complaint_intensity: float = Field(
        1.0, ge=0, description="Scales complaints before the collapse date (0: none until then).")
    severe_share: float | None = Field(
        None, ge=0, le=1,
        description="Share of pre-collapse complaints that are severe (refund refused, store "
                    "closed, service unavailable); None: the scenario's own mix.",
    )
    push_deep_share: tuple[float, float] | None = Field(
        None, description="Share of a collapse's push sales carrying the deep bonus.")
    push_depth: tuple[float, float] | None = Field(
        None, description="Face value / price of the push's deep bonus (1.8 = 充1000送800).")
    push_weeks: Span | None = Field(None, description="Length of the deep-bonus push, weeks.")
    push_escalates: float | None = Field(
        None, ge=0, le=1,
        description="Share of pushes whose bonus rises week by week up to its depth (充1000送300, "
                    "then 送500, then 送800); the others hold one offer. None: all hold.")
    push_beyond_caps: float | None = Field(
        None, ge=0, le=1,
        description="Share of distressed gyms whose push ignores the 三限 caps (memberships beyond "
                    "24 months, stored value and packages credited past 5,000 / 20,000 yuan): "
                    "selling in distress is itself the violation. None: pushes keep to the caps.")
    decline_depth: tuple[float, float] | None = Field(
        None, description="A slow decline's visits on its last day as a share of before it, "
                          "drawn per merchant in this range; None: the scenario's own script.")
    decline_shape: tuple[float, float] | None = Field(
        None, description="How a slow decline falls: 1 steadily, 3 most of it in the last weeks "
                          "(the exponent of the ramp), drawn per merchant in this range.")


class LegalPromotionAssumptions(_Frozen):
    """Look-alike promotions as varied as the collapses' pushes; None: the classic script."""

    deep_share: tuple[float, float] | None = None
    depth: tuple[float, float] | None = None
    weeks: Span | None = None
    escalates: float | None = Field(
        None, ge=0, le=1, description="Share of promotions whose bonus steps up week by week.")


class HealthyAssumptions(_Frozen):
    registry_noise: tuple[float, float, float] = (0.03, 0.02, 0.005)  # new rep, capital up, cut
    quirk_share: float = Field(0.0, ge=0, le=1, description="Healthy merchants with a quirk.")
    quirk_weights: dict[str, float] = Field(default_factory=lambda: dict.fromkeys(QUIRKS, 1.0))


class WorldAssumptions(_Frozen):
    """Everything that differs between simulated worlds (see ``docs/worlds.md``)."""

    world_seed: int | None = None
    industries: dict[str, IndustryMarket] = Field(
        default_factory=lambda: {i: IndustryMarket() for i in INDUSTRIES}
    )
    custody: CustodyAssumptions = Field(default_factory=CustodyAssumptions)
    complaints: ComplaintAssumptions = Field(default_factory=ComplaintAssumptions)
    notices: NoticeAssumptions = Field(default_factory=NoticeAssumptions)
    promotions: PromotionAssumptions = Field(default_factory=PromotionAssumptions)
    collapses: CollapseAssumptions = Field(default_factory=CollapseAssumptions)
    healthy: HealthyAssumptions = Field(default_factory=HealthyAssumptions)
    distress: DistressAssumptions = Field(default_factory=DistressAssumptions)
    legal_promotions: LegalPromotionAssumptions = Field(default_factory=LegalPromotionAssumptions)
    history_days: int = Field(
        730, ge=0, le=730,
        description="Days of card history the platform holds before the window (0: the data "
                    "start with the window and balances build from nothing).",
    )

    @classmethod
    def classic(cls) -> WorldAssumptions:
        """The simulator's original world, unchanged."""
        return cls()

    @property
    def is_classic(self) -> bool:
        return self == CLASSIC


CLASSIC = WorldAssumptions()


# -- drawing a world ------------------------------------------------------------------------------
def _log_uniform(rng: random.Random, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def _span(rng: random.Random, lo: Span, width: Span) -> Span:
    first = rng.randint(*lo)
    return first, first + rng.randint(*width)


def _weights(rng: random.Random, names: tuple[str, ...], floor: float = 0.1) -> dict[str, float]:
    raw = {n: rng.uniform(floor, 1.0) for n in names}
    total = sum(raw.values())
    return {n: round(w / total, 4) for n, w in raw.items()}


def _industries(rng: random.Random) -> dict[str, IndustryMarket]:
    # (chance big cards are common, common range, rare ceiling): salons sell 5,000-30,000 yuan
    # named cards routinely in some districts; gyms under the 三限 mostly do not, some still do.
    # Where they are common they can be most of a premium salon's sales.
    big = {"beauty": (0.5, (0.08, 0.6), 0.04), "hairdressing": (0.4, (0.05, 0.45), 0.03),
           "other": (0.3, (0.03, 0.3), 0.02), "fitness": (0.45, (0.02, 0.15), 0.0)}
    markets = {}
    for industry in INDUSTRIES:
        common, (lo, hi), rare = big[industry]
        share = rng.uniform(lo, hi) if rng.random() < common else rng.uniform(0.0, rare)
        markets[industry] = IndustryMarket(
            price_level=round(_log_uniform(rng, 0.6, 1.8), 3),
            sales_level=round(_log_uniform(rng, 0.6, 1.6), 3),
            big_card_share=round(share, 4),
            big_card_max=rng.choice((10_000, 20_000, 30_000)),
        )
    return markets


def _custody(rng: random.Random) -> CustodyAssumptions:
    return CustodyAssumptions(
        cadence=rng.choices(CADENCES, (0.45, 0.35, 0.2))[0],
        irregular_rate=round(rng.uniform(0.3, 0.8), 3),
        report_window=rng.randint(5, 28),
        miss_rate=round(rng.uniform(0.0, 0.15), 3),
        late_share=round(rng.uniform(0.0, 0.3), 3),
        late_days=_span(rng, (3, 15), (10, 60)),
        never_report_share=round(rng.uniform(0.0, 0.12), 3),
        not_enrolled_share=round(rng.uniform(0.0, 0.35), 3),
        unprofiled_share=round(rng.uniform(0.0, 0.05), 3),
        habits=_weights(rng, ("null", "zero", "voluntary")),
    )


def _complaints(rng: random.Random) -> ComplaintAssumptions:
    return ComplaintAssumptions(
        background_per_store=round(_log_uniform(rng, 0.003, 0.03), 5),
        spring_festival_peak=round(rng.uniform(1.0, 2.5), 3),
        delay_mean_days=round(rng.uniform(0.0, 21.0), 2),
        stranded_delay_scale=round(_log_uniform(rng, 0.5, 3.0), 3),
        stranded_share_scale=round(rng.uniform(0.5, 1.5), 3),
    )


def _notices(rng: random.Random) -> NoticeAssumptions:
    base = rng.uniform(0.05, 0.85)
    return NoticeAssumptions(
        renovation_regimes=_weights(rng, NOTICE_REGIMES, floor=0.05),
        long_notice=(30, rng.randint(30, 60)),
        renovation_days=_span(rng, (3, 14), (7, 46)),
        closure_filed={s: round(min(1.0, base * rng.uniform(0.6, 1.4)), 3) for s in COLLAPSES},
        closure_filing_days=_span(rng, (0, 14), (5, 80)),
        fake_renovation_share=round(rng.uniform(0.0, 0.5), 3),
        holiday_status_share=round(rng.uniform(0.0, 0.8), 3),
    )


def _promotions(rng: random.Random) -> PromotionAssumptions:
    salons = ("beauty", "hairdressing", "other")
    # name, (month, day) or spring offset, inclusion chance, industries
    candidates: list[tuple[str, tuple[int, int] | int, float, tuple[str, ...]]] = [
        ("618", (6, 18), 0.85, INDUSTRIES),
        ("double11", (11, 11), 0.85, INDUSTRIES),
        ("double12", (12, 12), 0.5, INDUSTRIES if rng.random() < 0.5 else salons),
        ("38", (3, 8), 0.7, ("beauty",) if rng.random() < 0.6 else ("beauty", "hairdressing")),
        ("new_year_fitness", (1, rng.randint(5, 31)), 0.7, ("fitness",)),
        ("spring_festival", -rng.randint(1, 7), 0.7,
         salons if rng.random() < 0.7 else INDUSTRIES),
    ]
    windows = []
    for name, anchor, chance, industries in candidates:
        if rng.random() >= chance:
            continue
        length = rng.randint(3, 30)
        boost = round(_log_uniform(rng, 1.2, 3.0), 3)
        if isinstance(anchor, int):
            window = PromotionWindow(name=name, spring_offset=anchor, length=length,
                                     industries=industries, boost=boost)
        else:
            window = PromotionWindow(name=name, month=anchor[0], day=anchor[1], length=length,
                                     industries=industries, boost=boost)
        windows.append(window)
    lo = rng.uniform(0.05, 0.3)
    return PromotionAssumptions(
        windows=tuple(windows),
        bonus=(round(lo, 3), round(lo + rng.uniform(0.05, 0.35), 3)),
        bonus_share=round(rng.uniform(0.3, 0.9), 3),
        appetite=(round(rng.uniform(0.05, 0.5), 3), round(rng.uniform(0.55, 0.95), 3)),
        post_dip=round(rng.uniform(0.5, 1.0), 3),
        post_days=rng.randint(0, 30),
    )


def _custody_mix(rng: random.Random, modes: tuple[str, ...], signal: float) -> dict[str, float]:
    """Custody modes once in distress: ``signal`` of them show a gap, the rest stay compliant."""
    split = _weights(rng, modes)
    mix = {m: round(signal * w, 4) for m, w in split.items()}
    mix["compliant"] = round(1.0 - signal, 4)
    return mix


def _collapses(rng: random.Random) -> CollapseAssumptions:
    return CollapseAssumptions(
        leads={
            "runaway_after_surge": _span(rng, (3, 30), (14, 120)),
            "slow_decline": _span(rng, (14, 60), (30, 210)),
            "ownership_transfer": _span(rng, (10, 40), (14, 80)),
            "chain_collapse": _span(rng, (7, 45), (14, 105)),
        },
        custody={
            "runaway_after_surge": _custody_mix(rng, ("frozen", "missed", "falling"),
                                                rng.uniform(0.15, 0.95)),
            "slow_decline": _custody_mix(rng, ("missed", "falling"), rng.uniform(0.3, 0.95)),
            "ownership_transfer": _custody_mix(rng, ("falling", "missed", "frozen"),
                                               rng.uniform(0.3, 0.95)),
            "chain_collapse": _custody_mix(rng, ("missed", "frozen"), rng.uniform(0.3, 0.95)),
        },
        runaway_surge_share=round(rng.uniform(0.3, 1.0), 3),
        registry_before_share=round(rng.uniform(0.0, 0.6), 3),
    )


def _range(rng: random.Random, lo: float, hi: float, width: float) -> tuple[float, float]:
    """A sub-range of ``[lo, hi]`` at most ``width`` wide, placed at random."""
    first = rng.uniform(lo, hi - 0.02)
    return round(first, 3), round(min(hi, first + rng.uniform(0.02, width)), 3)


def _distress(rng: random.Random) -> DistressAssumptions:
    return DistressAssumptions(
        service_trend=round(rng.uniform(-0.5, 0.4), 3),
        complaint_intensity=0.0 if rng.random() < 0.25 else round(rng.uniform(0.05, 2.5), 3),
        severe_share=round(rng.uniform(0.2, 1.0), 3),
        push_deep_share=_range(rng, 0.2, 1.0, 0.3),
        push_depth=_range(rng, 1.3, 2.0, 0.35),
        push_weeks=_span(rng, (2, 8), (0, 4)),
    )


def _legal_promotions(rng: random.Random) -> LegalPromotionAssumptions:
    first_week = rng.randint(1, 8)
    return LegalPromotionAssumptions(
        deep_share=_range(rng, 0.2, 1.0, 0.4),
        depth=_range(rng, 1.1, 2.0, 0.4),
        weeks=(first_week, min(12, first_week + rng.randint(0, 4))),
    )


def _widen(world: WorldAssumptions, world_seed: int) -> WorldAssumptions:
    """Dimensions added when two worlds told collapses two ways (issue 14): their own stream,
    so the earlier dimensions of every world stay as they were drawn."""
    rng = random.Random(f"yujing-world-distress:{world_seed}")
    distress = _distress(rng)
    legal = _legal_promotions(rng)
    lo = rng.uniform(0.05, 0.5)  # calendar promotions: from 送5% up to 充1000送1000
    promotions = world.promotions.model_copy(update={
        "bonus": (round(lo, 3), round(min(1.0, lo + rng.uniform(0.05, 0.5)), 3)),
        "bonus_share": round(rng.uniform(0.3, 1.0), 3),
    })
    history = 0 if rng.random() < 0.35 else round(rng.randint(1, 24) * 365 / 12)
    return world.model_copy(update={
        "distress": distress, "legal_promotions": legal, "promotions": promotions,
        "history_days": min(730, history),
    })


def _widen_custody(world: WorldAssumptions, world_seed: int) -> WorldAssumptions:
    """How deposits move (issue 14: a pilot kept stable deposits and saw them drawn down before
    collapses, our worlds did neither): its own stream, so earlier dimensions stay as drawn.

    A share of sound merchants keeps a stable deposit; every collapse kind may draw its deposit
    down, each with its own chance per world (from rare to most)."""
    rng = random.Random(f"yujing-world-custody:{world_seed}")
    lo = rng.uniform(1.02, 1.4)
    custody = world.custody.model_copy(update={
        "stable_share": round(rng.uniform(0.0, 1.0), 3),
        "stable_headroom": (round(lo, 3), round(lo + rng.uniform(0.0, 0.6), 3)),
        "stable_noise": round(rng.uniform(0.0, 0.05), 4),
    })
    drawdown = {scenario: round(rng.uniform(0.05, 0.7), 3) for scenario in world.collapses.custody}
    mixes = {scenario: _with_drawdown(mix, drawdown[scenario])
             for scenario, mix in world.collapses.custody.items()}
    collapses = world.collapses.model_copy(update={"drawdown": drawdown, "custody": mixes})
    return world.model_copy(update={"custody": custody, "collapses": collapses})


def _widen_decline(world: WorldAssumptions, world_seed: int) -> WorldAssumptions:
    """How deep and how late a slow decline falls (issue 14: a pilot's slow declines lost half
    their visits or more, most of it in the last month or two; ours lost a tenth to two thirds,
    steadily). Its own stream, so earlier dimensions stay as drawn."""
    rng = random.Random(f"yujing-world-decline:{world_seed}")
    deepest = rng.uniform(0.15, 0.6)
    shallowest = min(0.95, deepest + rng.uniform(0.1, 0.45))
    steepest = rng.uniform(1.0, 3.0)
    distress = world.distress.model_copy(update={
        "decline_depth": (round(deepest, 3), round(shallowest, 3)),
        "decline_shape": (1.0, round(steepest, 3)),
    })
    return world.model_copy(update={"distress": distress})


def _widen_escalation(world: WorldAssumptions, world_seed: int) -> WorldAssumptions:
    """Whether a collapse's push raises its bonus week by week or holds one offer (issue 14: a
    pilot's run-aways raised it for weeks; our pushes held one offer, as a promotion does), and
    how many sound promotions step up too. Its own stream, so earlier dimensions stay as drawn."""
    rng = random.Random(f"yujing-world-escalation:{world_seed}")
    distress = world.distress.model_copy(update={"push_escalates": round(rng.uniform(0.0, 1.0), 3)})
    legal = world.legal_promotions.model_copy(update={"escalates": round(rng.uniform(0.0, 0.25), 3)})
    return world.model_copy(update={"distress": distress, "legal_promotions": legal})


def _widen_caps(world: WorldAssumptions, world_seed: int) -> WorldAssumptions:
    """How many distressed gyms break the 三限 caps in their last push (issue 14: our gyms' pushes
    kept every card within the caps, so half their push sales showed no bonus; a pilot's
    distressed gyms credited past the caps, as the domain notes say a push in distress does).
    From a few to all, per world; its own stream, so earlier dimensions stay as drawn."""
    rng = random.Random(f"yujing-world-caps:{world_seed}")
    distress = world.distress.model_copy(update={"push_beyond_caps": round(rng.uniform(0.2, 1.0), 3)})
    return world.model_copy(update={"distress": distress})


def _widen_push(world: WorldAssumptions, world_seed: int) -> WorldAssumptions:
    """How whole a collapse's deep-bonus push is (issue 14: the pilot's run-aways sold 58-100% of
    their last two months' cards at a deep bonus, every card once the push began; ours drew a band
    anywhere from 20% to 100%, so a world where the push is the only offer at the counter was
    rare). In half the worlds the push is whole (85-100% of its sales deep); the others keep the
    band drawn. Its own stream, so earlier dimensions stay as drawn."""
    rng = random.Random(f"yujing-world-push:{world_seed}")
    if rng.random() >= 0.5:
        return world
    whole = (round(rng.uniform(0.85, 0.95), 3), 1.0)
    return world.model_copy(update={"distress": world.distress.model_copy(update={"push_deep_share": whole})})


def _with_drawdown(mix: dict[str, float], falling: float) -> dict[str, float]:
    """``mix`` with ``falling`` at the given share and the other modes scaled to the rest.

    >>> _with_drawdown({"missed": 0.5, "frozen": 0.3, "compliant": 0.2}, 0.5)
    {'missed': 0.25, 'frozen': 0.15, 'compliant': 0.1, 'falling': 0.5}
    """
    rest = {m: w for m, w in mix.items() if m != "falling"}
    total = sum(rest.values()) or 1.0
    out = {m: round(w * (1.0 - falling) / total, 4) for m, w in rest.items()}
    out["falling"] = falling
    return out


def draw_world(world_seed: int) -> WorldAssumptions:
    """A random world; the same seed always gives the same world."""
    rng = random.Random(f"yujing-world:{world_seed}")
    world = _widen_custody(_widen(_draw_base(rng, world_seed), world_seed), world_seed)
    world = _widen_caps(_widen_escalation(_widen_decline(world, world_seed), world_seed), world_seed)
    return _widen_push(world, world_seed)


def _draw_base(rng: random.Random, world_seed: int) -> WorldAssumptions:
    return WorldAssumptions(
        world_seed=world_seed,
        industries=_industries(rng),
        custody=_custody(rng),
        complaints=_complaints(rng),
        notices=_notices(rng),
        promotions=_promotions(rng),
        collapses=_collapses(rng),
        healthy=HealthyAssumptions(
            registry_noise=(0.0, 0.0, 0.0),  # harmless registry changes come as quirks here
            quirk_share=round(rng.uniform(0.03, 0.35), 3),
            quirk_weights=_weights(rng, QUIRKS, floor=0.2),
        ),
    )
