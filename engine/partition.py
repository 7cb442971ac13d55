"""One partition's processing, shared by the live worker and ``yujing backtest``.

For each validated event: drop duplicates, add it to its merchant's day bucket, and (for
transactions, which are dense enough to serve as the partition's clock) advance the
partition's event-time watermark. Every day the watermark passes is closed for every merchant
of the partition, in merchant-id order: the day is folded into the merchant's state, scored,
and the score is turned into level transitions and warnings. Case dispositions read back from
the case service (:class:`~contract.records.Feedback`, see ``alerts/feedback.py``) are kept in the
merchant's state from their event-time day on: a false alarm holds the same evidence below the
level staff saw, a confirmed risk keeps the merchant out of peer norms and its baselines.

Closing one merchant's day (gathering it, then judging it) is :mod:`engine.day_closing`.

State lives in three mappings supplied by the caller: plain dicts in a backtest, Faust tables
(changelogged to Kafka) in the worker. Nothing here imports Kafka.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from alerts.chains import EFFECT_DELAY_DAYS, ChainNotice, ChainSignal
from alerts.feedback import HOLD_DISPOSITIONS, FeedbackEntry, FeedbackHold, MerchantFeedback
from alerts.levels import LevelPolicy
from alerts.threshold_history import ThresholdSchedule
from contract.records import Complaint, Feedback, InputEvent, MerchantProfile, Transaction, Warning
from engine.day_closing import DayResult, GatheredDay, gather_day, judge_gathered_day, link_groups
from models.calendar import day_start, local_day
from models.features import CHAIN_FEATURES, PeerNorms, chain_features
from models.online import FeedbackLearner, outcome_label
from models.scoring import RiskScorer
from models.state import DayTotals, MerchantState, ProfileVersion, id_digest, merge_day_totals

# DayResult is still read from here by the worker, the shell's replays, a bench and tests.
__all__ = ["DayResult", "Outcome", "PartitionClock", "PartitionEngine", "Tracer", "bucket_key"]


@dataclass
class PartitionClock:
    """Event-time progress of one input partition."""

    max_event_time: datetime | None = None
    closed_through: int | None = None  # last day scored (ordinal)
    # Last day the watermark has passed. Days after closed_through up to here wait for the chain
    # stage (see chain_sources); events for them already count as late.
    closable_through: int | None = None
    # Chain watermark heard from each chain-stage source: every partition has closed this day
    # and every chain signal it caused has been delivered.
    chain_marks: dict[int, int] = field(default_factory=dict)
    # Peer-group norms of the partition's merchants at the last closed day (see PeerNorms).
    peer_sales: dict[str, float] = field(default_factory=dict)
    # What case outcomes of the partition's merchants taught (models/online.py): a correction to
    # the fusion's weights. A plain default: clocks pickled before it existed read it as None.
    learner: FeedbackLearner | None = None


@dataclass
class Outcome:
    """What processing one event did, for metrics and for emitting warnings."""

    duplicate: bool = False
    late: bool = False
    days_closed: int = 0
    warnings: list[Warning] = field(default_factory=list)
    chain_notices: list[ChainNotice] = field(default_factory=list)  # for the chain directory
    closed_through: int | None = None  # set when this partition closed days (a heartbeat)


class Tracer(Protocol):
    """Hears what a replay does that thresholds could change the outcome of (``engine.rejudge``)."""

    def closed(self, partition: int, day: int, days: list[GatheredDay]) -> None: ...

    def member(self, merchant_id: str, partition: int, first_day: int, by_signal: bool) -> None: ...

    def feedback(self, feedback: Feedback, partition: int, day: int) -> None: ...


def bucket_key(merchant_id: str, day: int) -> str:
    return f"{merchant_id}|{day}"


def _profile_version(p: MerchantProfile) -> ProfileVersion:
    return ProfileVersion(
        updated_at=p.updated_at,
        name=p.name,
        industry=p.industry,
        district=p.district,
        chain_id=p.chain_id,
        opened_on=p.opened_on.toordinal(),
        status=p.status,
        custody_balance=p.custody_balance,
        legal_representative=p.legal_representative,
        registered_capital=p.registered_capital,
    )


class PartitionEngine:
    """Processes the events of input partitions and returns the warnings they cause."""

    def __init__(
        self,
        *,
        buckets: MutableMapping[str, DayTotals],
        merchants: MutableMapping[str, MerchantState],
        clocks: MutableMapping[int, PartitionClock],
        scorer: RiskScorer | None = None,
        policy: LevelPolicy | None = None,
        allowed_lateness: timedelta = timedelta(hours=6),
        thresholds_version: str = "builtin-1",
        on_day_scored: Callable[[DayResult], None] | None = None,
        chain_sources: int | None = None,
        schedule: ThresholdSchedule | None = None,
        online_learning: bool = True,
    ) -> None:
        self.buckets = buckets
        self.merchants = merchants
        self.clocks = clocks
        self.scorer = scorer or RiskScorer()
        self.policy = policy or LevelPolicy()
        self.allowed_lateness = allowed_lateness
        self.thresholds_version = thresholds_version
        # Published threshold versions by event-time day; without one, ``scorer``, ``policy`` and
        # ``thresholds_version`` score every day.
        self.schedule = schedule
        self.on_day_scored = on_day_scored  # for replays that want score trajectories
        # With a chain stage, day X closes only once every one of ``chain_sources`` sources has
        # reported a chain watermark >= X - EFFECT_DELAY_DAYS: by then every signal taking effect
        # on X is here,
        # so a day's content never depends on how fast other partitions were read.
        self.chain_sources = chain_sources
        self.tracer: Tracer | None = None  # set by a what-if's recording replay
        # Case outcomes correct the fusion's weights per partition (see judge_day); off: the
        # learned weights alone, whatever staff decide.
        self.online_learning = online_learning

    # -- events -------------------------------------------------------------------------
    def process(self, event: InputEvent | Feedback, partition: int) -> Outcome:
        if isinstance(event, MerchantProfile):
            return self._profile(event, partition)
        if isinstance(event, Feedback):
            return self.apply_feedback(event, partition)
        return self._activity(event, partition)

    def _merchant(self, merchant_id: str, partition: int, day: int, *, by_signal: bool = False) -> MerchantState:
        state = self.merchants.get(merchant_id)
        if state is None:
            state = MerchantState(merchant_id, partition=partition, first_day=day)
        elif day < state.first_day:
            state.first_day = day
        else:
            return state
        if self.tracer is not None:  # a merchant is scored from first_day on: who is scored may change
            self.tracer.member(merchant_id, partition, day, by_signal)
        return state

    def _open_day(self, partition: int, day: int) -> tuple[int, bool]:
        """The day an event is counted in: its own, or the first open day if it came late."""
        clock = self.clocks.get(partition)
        # Lateness is judged against the watermark (closable_through), not against what the
        # chain stage has let close yet: that keeps it a function of this partition's own events.
        if clock is not None and clock.closable_through is not None and day <= clock.closable_through:
            return clock.closable_through + 1, True
        return day, False

    def _profile(self, profile: MerchantProfile, partition: int) -> Outcome:
        day, late = self._open_day(partition, local_day(profile.updated_at))
        state = self.merchants.get(profile.merchant_id)
        version = _profile_version(profile)
        if state is not None and (version in state.profiles or profile.updated_at.timestamp() in state.late_profiles):
            return Outcome(duplicate=True)
        if late:
            # Like a late event, a late profile version counts from the first open day: days the
            # watermark has passed must read the same profiles however long they wait to close.
            # It keeps its own time as ``reported_at``: a custody report keeps its own day.
            version = version._replace(updated_at=day_start(day), reported_at=profile.updated_at)
        state = self._merchant(profile.merchant_id, partition, day)
        joined = [g for g in link_groups(version) if all(g not in link_groups(p) for p in state.profiles)]
        state.add_profile(version)
        if late:
            state.late_profiles.add(profile.updated_at.timestamp())  # to recognise a re-delivery
        self.merchants[profile.merchant_id] = state
        outcome = Outcome(late=late)
        outcome.chain_notices.extend(ChainNotice(group, profile.merchant_id, None, day) for group in joined)
        return outcome

    def apply_feedback(self, feedback: Feedback, partition: int) -> Outcome:
        """Take in a case disposition (``prepaid.feedback``) for the merchant.

        It counts from the first day the partition closes after ``effective_from``'s day; if that
        day is already past the watermark, from the first open day (like a late profile version),
        so a day's scoring never depends on when the feedback was read. It never moves the
        watermark. A repeated ``feedback_id`` is a duplicate. Feedback for a merchant never seen
        is kept: its state is created (as a complaint would) and the disposition waits for it.
        """
        day, late = self._open_day(partition, local_day(feedback.effective_from) + 1)
        state = self.merchants.get(feedback.merchant_id)
        if state is not None and isinstance(state.feedback, MerchantFeedback) and feedback.feedback_id in state.feedback.seen:
            return Outcome(duplicate=True)
        state = self._merchant(feedback.merchant_id, partition, day)
        if self.tracer is not None:
            self.tracer.feedback(feedback, partition, day)
        self.add_feedback(state, feedback, day)
        return Outcome(late=late)

    def add_feedback(self, state: MerchantState, feedback: Feedback, day: int) -> None:
        """Keep ``feedback`` in the merchant's state from ``day`` on (its hold judged with the
        thresholds in force on its own day)."""
        log = state.feedback if isinstance(state.feedback, MerchantFeedback) else MerchantFeedback()
        log.add(FeedbackEntry(
            start_day=day,
            effective_from=feedback.effective_from.timestamp(),
            feedback_id=feedback.feedback_id,
            disposition=feedback.disposition,
            hold=self._hold(feedback),
        ))
        state.feedback = log
        self.merchants[feedback.merchant_id] = state

    def rules(self, day: int) -> tuple[RiskScorer, LevelPolicy, str]:
        """Scorer, level policy and thresholds version in force on event-time ``day``."""
        if self.schedule is None:
            return self.scorer, self.policy, self.thresholds_version
        scorer, policy = self.schedule.built(day)
        return scorer, policy, self.schedule.at(day).version

    def _hold(self, feedback: Feedback) -> FeedbackHold | None:
        """The hold a false alarm / rectification puts on the level staff saw. Without a level,
        the level of the score staff saw stands in; without a score, that level's cut-off."""
        if feedback.disposition not in HOLD_DISPOSITIONS:
            return None
        policy = self.rules(local_day(feedback.effective_from))[1]
        level = feedback.level or (policy.level_for(feedback.score) if feedback.score is not None else None)
        if level is None:
            return None  # nothing to hold: the disposition still ends one in force before it
        score = feedback.score if feedback.score is not None else policy.cutoffs[level]
        return FeedbackHold(level=level, score=score, codes=frozenset(feedback.indicator_codes))

    def apply_chain_signal(self, signal: ChainSignal, partition: int) -> Outcome:
        """Record that a sister store of the same chain is at ``signal.level`` from its
        effective day on. Idempotent; ``late`` when that day was already closed here (possible
        only when history is replayed faster than partitions keep pace with each other)."""
        state = self._merchant(signal.merchant_id, partition, signal.effective_day, by_signal=True)
        entry = (signal.effective_day, signal.level)
        history = state.chain_levels.setdefault(f"{signal.group}|{signal.source_merchant_id}", [])
        if entry in history:
            return Outcome(duplicate=True)
        history.append(entry)
        history.sort()
        self.merchants[signal.merchant_id] = state
        clock = self.clocks.get(partition)
        late = clock is not None and clock.closed_through is not None and signal.effective_day <= clock.closed_through
        return Outcome(late=late)

    def apply_chain_watermark(self, source: int, watermark: int, partition: int) -> Outcome:
        """The chain stage's ``source`` has delivered every signal of days up to ``watermark``:
        close the days of ``partition`` that were waiting for it."""
        clock = self.clocks.get(partition) or PartitionClock()
        outcome = Outcome()
        if watermark <= clock.chain_marks.get(source, watermark - 1):
            outcome.duplicate = True
            return outcome
        clock.chain_marks[source] = watermark
        if clock.closed_through is not None:
            self._close_pending(partition, clock, outcome)
        self.clocks[partition] = clock
        return outcome

    def _activity(self, event: Transaction | Complaint, partition: int) -> Outcome:
        own_day = local_day(event.occurred_at)
        day, late = self._open_day(partition, own_day)
        event_id = event.dedup_id
        digest = id_digest(event_id)
        state = self.merchants.get(event.merchant_id)
        if state is not None and digest in state.recent_ids:
            return Outcome(duplicate=True)
        for candidate in {own_day, day}:
            bucket = self.buckets.get(bucket_key(event.merchant_id, candidate))
            # (The id itself: a bucket changelogged before buckets kept digests.)
            if bucket is not None and (digest in bucket.event_ids or event_id in bucket.event_ids):
                return Outcome(duplicate=True)
        key = bucket_key(event.merchant_id, day)
        bucket = self.buckets.get(key) or DayTotals()
        if isinstance(event, Transaction):
            bucket.add_transaction(event.type, event.amount, event.stored_value, event.occurred_at)
        else:
            bucket.add_complaint(event.category, event.amount_involved, event.occurred_at)
        bucket.event_ids.add(digest)
        self.buckets[key] = bucket
        if state is None or day < state.first_day:
            self.merchants[event.merchant_id] = self._merchant(event.merchant_id, partition, day)
        outcome = Outcome(late=late)
        if isinstance(event, Transaction):
            self._advance(partition, event.occurred_at, outcome)
        return outcome

    # -- event time -----------------------------------------------------------------------
    def _advance(self, partition: int, occurred_at: datetime, outcome: Outcome) -> None:
        known = self.clocks.get(partition)
        clock = known or PartitionClock()
        if clock.max_event_time is not None and occurred_at <= clock.max_event_time:
            return
        days_before = (clock.closable_through, clock.closed_through)
        clock.max_event_time = occurred_at
        if clock.closed_through is None:
            clock.closed_through = clock.closable_through = local_day(occurred_at) - 1
            outcome.closed_through = clock.closed_through  # first heartbeat
            self._carry_early_days(partition, local_day(occurred_at))
        watermark = occurred_at - self.allowed_lateness
        closable = local_day(watermark) - 1  # days that ended at or before the watermark
        clock.closable_through = max(clock.closable_through or closable, closable)
        self._close_pending(partition, clock, outcome)
        # Stored (live: changelogged) when a day became closable or closed, not for every newer
        # event time: a clock recovered with an older max_event_time judges lateness and closes
        # days exactly as the lost one would (closable_through only grows, and an event between
        # the two times would not have moved it), and it saves a table write per transaction.
        if known is None or (clock.closable_through, clock.closed_through) != days_before:
            self.clocks[partition] = clock

    def _carry_early_days(self, partition: int, first_open: int) -> None:
        """Events read before the partition's first transaction for days before it (a complaint,
        say) are counted on its first open day, as they would be had they been read after it
        (late): the clock never closes days before that one, so left where they were they would
        be lost, and whether they were depended on the order the topics were read."""
        for state in [s for s in self.merchants.values() if s.partition == partition and s.first_day < first_open]:
            for day in range(state.first_day, first_open):
                early = self.buckets.get(bucket_key(state.merchant_id, day))
                if early is None:
                    continue
                del self.buckets[bucket_key(state.merchant_id, day)]
                key = bucket_key(state.merchant_id, first_open)
                self.buckets[key] = merge_day_totals(self.buckets.get(key) or DayTotals(), early)

    def _chain_allows(self, clock: PartitionClock, day: int) -> bool:
        if self.chain_sources is None:
            return True
        marks = clock.chain_marks
        return len(marks) >= self.chain_sources and min(marks.values()) >= day - EFFECT_DELAY_DAYS

    def _close_pending(self, partition: int, clock: PartitionClock, outcome: Outcome) -> None:
        assert clock.closed_through is not None and clock.closable_through is not None
        while clock.closed_through < clock.closable_through and self._chain_allows(clock, clock.closed_through + 1):
            clock.closed_through += 1
            for warning, notices in self._close_day(partition, clock.closed_through, clock):
                if warning is not None:
                    outcome.warnings.append(warning)
                outcome.chain_notices.extend(notices)
            outcome.days_closed += 1
            outcome.closed_through = clock.closed_through

    def _close_day(
        self, partition: int, day: int, clock: PartitionClock
    ) -> list[tuple[Warning | None, list[ChainNotice]]]:
        members = sorted(
            (s for s in self.merchants.values() if s.partition == partition and s.first_day <= day),
            key=lambda s: s.merchant_id,
        )
        norms = PeerNorms()
        days = [
            gather_day(state, day, self.buckets.pop(bucket_key(state.merchant_id, day), None), self.scorer,
                       clock.peer_sales, norms)
            for state in members
        ]
        clock.peer_sales = norms.finish()
        if self.tracer is not None:
            self.tracer.closed(partition, day, days)
        return self.judge_day(members, day, days, clock=clock)

    def judge_day(
        self, members: list[MerchantState], day: int, days: list[GatheredDay], *, relink: bool = False,
        clock: PartitionClock | None = None,
    ) -> list[tuple[Warning | None, list[ChainNotice]]]:
        """Judge each member's gathered day with the thresholds in force (levels, warnings, the
        notices for linked merchants). ``relink``: the days were recorded in another replay
        (:mod:`engine.rejudge`), so the chain features are read again from this one's state.
        ``clock``: the partition's clock being closed (else it is looked up).

        First the case outcomes that start on ``day`` teach the partition's learner, then every
        member is judged with its correction: both a function of event time alone, so the live
        worker, a replay and a rejudge agree."""
        correction = self._learn_outcomes(members, day, clock) if self.online_learning and members else None
        warnings: list[tuple[Warning | None, list[ChainNotice]]] = []
        for state, gathered in zip(members, days, strict=True):
            if relink:
                # Linked merchants' levels depend on the thresholds that judged them.
                features = {k: v for k, v in gathered.evidence.features.items() if k not in CHAIN_FEATURES}
                features.update(chain_features(state, day))
                gathered = gathered._replace(evidence=gathered.evidence._replace(features=features))
            emitted = judge_gathered_day(state, day, gathered, self.rules(day), correction=correction,
                                         on_day_scored=self.on_day_scored)
            if emitted is not None:
                warnings.append(emitted)
            self.merchants[state.merchant_id] = state
        return warnings

    def _learn_outcomes(
        self, members: list[MerchantState], day: int, clock: PartitionClock | None,
    ) -> dict[str, float] | None:
        """Let the partition's learner take the verdicts starting on ``day`` (members in
        merchant order, each one's dispositions in event-time order): ``x`` the readings of the
        warning judged, base log-odds from the thresholds in force. The correction to judge with."""
        partition = members[0].partition
        if clock is None:
            clock = self.clocks.get(partition)
        learner = clock.learner if clock is not None else None
        examples = []
        for state in members:
            log = state.feedback
            if isinstance(log, MerchantFeedback) and state.last_readings and log.entries and log.entries[-1].start_day >= day:
                for entry in log.entries:
                    label = outcome_label(entry.disposition) if entry.start_day == day else None
                    if label is not None:
                        examples.append((state.last_readings, label))
        if not examples:
            return learner.correction if learner is not None else None
        if clock is None:  # a rejudge over a partition the checkpoint had no clock for yet
            clock = self.clocks[partition] = PartitionClock()
        if clock.learner is None:
            clock.learner = FeedbackLearner()
        fusion = self.rules(day)[0].fusion
        for x, label in examples:
            clock.learner.learn_one(x, label, fusion.log_odds(x))
        return clock.learner.correction
