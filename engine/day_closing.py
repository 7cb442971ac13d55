"""Closing one merchant's day, the part of :mod:`engine.partition` that reads no partition state.

First the day is *gathered*: folded into the merchant's state and observed (features, detector
readings, the figures for the case desk), the same under every thresholds version. Then it is
*judged* with the thresholds in force: the score, the level step (under any hold staff put on
it), the warning of a transition and the level linked merchants hear of (:func:`link_groups`).
A what-if records the gathered days once and judges them again with other thresholds
(:mod:`engine.rejudge`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import NamedTuple

from alerts.chains import ChainNotice
from alerts.feedback import MerchantFeedback
from alerts.levels import AlertState, LevelPolicy
from alerts.warnings import build_warning
from contract.records import Warning
from models.calendar import day_date, day_end
from models.features import PeerNorms, case_figures
from models.indicators.bonus_escalation import raises_bonus
from models.indicators.deep_discount import sells_mostly_deep
from models.scoring import LINK_CODES, Evidence, MerchantScore, RiskScorer
from models.state import DayTotals, MerchantState, ProfileVersion


@dataclass
class DayResult:
    """A scored merchant-day, for replays that want the trajectory (not only transitions)."""

    merchant_id: str
    day: int
    score: MerchantScore
    level: str | None
    profile: ProfileVersion | None = None  # the profile in force that day
    totals: DayTotals | None = None  # that day's own activity (None: a quiet day)
    figures: dict[str, float | None] = field(default_factory=dict)  # case_figures of that day
    thresholds_version: str = "builtin-1"  # the version that scored it


class GatheredDay(NamedTuple):
    """A merchant-day folded and observed, not yet judged: all of it is the same under every
    thresholds version, so a what-if can record it once and judge it again with other thresholds."""

    merchant_id: str
    profile: ProfileVersion | None  # the profile in force that day
    totals: DayTotals | None  # that day's own activity (None: a quiet day)
    evidence: Evidence  # features (with the chain features as they stood) and detector readings
    figures: dict[str, float | None]  # case_figures of that day
    raised_at: datetime  # when a warning of that day is raised: its last event, or the day's end


def link_groups(profile: ProfileVersion) -> list[str]:
    """The groups whose members hear of each other's levels: the chain and the legal representative."""
    groups = [profile.chain_id] if profile.chain_id else []
    if profile.legal_representative:
        groups.append(f"rep:{profile.legal_representative}")
    return groups


def groups_ever(state: MerchantState, profile: ProfileVersion, day: int) -> list[str]:
    """Every group the merchant has belonged to by the end of ``day`` (each profile version
    registered by then, and ``profile``, the one in force), first joined first.

    A representative who handed a store over weeks before it collapsed is the serial operator
    market regulators look for behind several failed gyms: the store's level still reaches the
    other merchants behind them, not only those behind its new representative.

    >>> from datetime import datetime, timezone
    >>> def version(rep, month):
    ...     return ProfileVersion(updated_at=datetime(2026, month, 1, tzinfo=timezone.utc), name="gym",
    ...                           industry="fitness", district="南桥镇", chain_id=None, opened_on=1,
    ...                           status="open", custody_balance=None, legal_representative=rep,
    ...                           registered_capital=None)
    >>> state = MerchantState("m1", partition=0, first_day=1)
    >>> for v in (version("old", 1), version("new", 3), version("later", 9)):
    ...     state.add_profile(v)
    >>> groups_ever(state, state.profiles[1], datetime(2026, 4, 1).toordinal())
    ['rep:old', 'rep:new']
    """
    moment = day_end(day)
    versions = [p for p in state.profiles if p.updated_at < moment]
    return list(dict.fromkeys(g for p in [*versions, profile] for g in link_groups(p)))


def gather_day(
    state: MerchantState, day: int, totals: DayTotals | None, scorer: RiskScorer, peer_sales: dict[str, float],
    norms: PeerNorms,
) -> GatheredDay:
    """Fold the day (its ``totals``, None when quiet) into the merchant's state and take what it
    shows, before any threshold: features, detector readings (the detectors learn it), the
    figures for the case desk. The merchant's norms go into ``norms`` for the next day's peers."""
    state.fold(day, totals)
    # A profile topic compacted before it was read may hold only a later version: its
    # industry and town still describe the merchant.
    profile = state.profile_at(day_end(day)) or (state.profiles[0] if state.profiles else None)
    # Without a profile the trade is unknown: the ratios of every established merchant stand in.
    industry, town = (profile.industry, profile.district) if profile else (None, None)
    peers = PeerNorms.context(peer_sales, industry, town)
    feedback = state.feedback if isinstance(state.feedback, MerchantFeedback) else None
    # A risk confirmed by staff is a known anomaly: its days teach neither its own baselines
    # nor its peer group what normal looks like.
    known_anomaly = feedback is not None and feedback.known_anomaly_at(day)
    # The detectors are the same under every thresholds version (only their weights are not).
    evidence = scorer.evidence(state, day, peers, learn=not known_anomaly)
    f = evidence.features
    if profile is not None and "sales_baseline_28d" in f and not known_anomaly:
        surge = f["sales_28d"] / f["sales_baseline_28d"] if f["sales_baseline_28d"] >= 3000 else None
        base = f.get("redeemed_long_baseline_28d", 0.0)
        redeemed = f["redeemed_28d"] / base if base >= 5000 else None
        norms.add(profile.industry, profile.district, f["sales_28d"], surge, redeemed, sells_mostly_deep(f),
                  raises_bonus(f))
    raised_at = totals.last_event_at if totals and totals.last_event_at else day_end(day) - timedelta(seconds=1)
    gathered = GatheredDay(state.merchant_id, profile, totals, evidence, case_figures(state, day, f), raised_at)
    state.prune_profiles(day_end(day))
    return gathered


def judge_gathered_day(
    state: MerchantState, day: int, gathered: GatheredDay, rules: tuple[RiskScorer, LevelPolicy, str], *,
    correction: dict[str, float] | None = None, on_day_scored: Callable[[DayResult], None] | None = None,
) -> tuple[Warning | None, list[ChainNotice]] | None:
    """Judge one gathered merchant-day with ``rules`` (scorer, level policy and thresholds version
    in force that day) and the partition learner's ``correction``: the level step (tried on a copy
    under a staff hold), the warning of a transition, the notices for linked merchants. ``None``
    when nothing is to be sent."""
    profile = gathered.profile
    scorer, policy, version = rules
    result = scorer.judge(gathered.evidence, correction)
    feedback = state.feedback if isinstance(state.feedback, MerchantFeedback) else None
    if not isinstance(state.alert, AlertState):
        state.alert = AlertState()
    hold = feedback.hold_at(day) if feedback is not None else None
    if feedback is None or hold is None:
        transition = policy.step(state.alert, result.score)
    else:
        # Under a hold the step is tried on a copy: a raise the hold does not allow is
        # discarded with it (no warning, the level state does not move).
        trial = replace(state.alert)
        transition = policy.step(trial, result.score)
        if transition is not None and not hold.allows(transition, result.score, (c.reading.code for c in result.driving)):
            transition = None
        else:
            state.alert = trial
            if transition is not None and hold.ends_with(transition):
                feedback.end_hold(day)
    if on_day_scored is not None:
        on_day_scored(DayResult(state.merchant_id, day, result, state.alert.level, profile, gathered.totals,
                                gathered.figures, version))
    notices = link_notices(state, result, profile, day, scorer, policy)
    if transition is None:
        return (None, notices) if notices else None
    if transition[0] in ("raised", "escalated"):  # what staff will judge (see PartitionEngine._learn_outcomes)
        state.last_readings = {c.reading.code: c.reading.score for c in result.contributions}
    warning = build_warning(
        merchant_id=state.merchant_id,
        day=day_date(day).isoformat(),
        transition=transition,
        score=result.score,
        drivers=result.driving,
        raised_at=gathered.raised_at,
        industry=profile.industry if profile else None,
        district=profile.district if profile else None,
        thresholds_version=version,
        merchant_name=profile.name if profile else None,
        chain_id=profile.chain_id if profile else None,
        figures=gathered.figures,
    )
    return warning, notices


def link_notices(
    state: MerchantState, result: MerchantScore, profile: ProfileVersion | None, day: int, scorer: RiskScorer,
    policy: LevelPolicy,
) -> list[ChainNotice]:
    """Tell linked merchants this one's level on its *own* evidence: a level raised only by
    what linked merchants said must not echo back to them (no feedback loop)."""
    if profile is None:
        return []
    own = scorer.fuse([c for c in result.contributions if c.reading.code not in LINK_CODES])
    level = policy.level_for(own) or "none"
    if level == state.linked_level:
        return []
    state.linked_level = level
    return [ChainNotice(group, state.merchant_id, level, day) for group in groups_ever(state, profile, day)]
