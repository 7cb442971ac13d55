"""Judge a recorded stretch of replay again with other thresholds, without replaying its records.

Most of a replay's work does not depend on thresholds: reading and decoding records, folding days
into merchants' state, computing features, running the online detectors. What does depend on them
is small: each merchant-day's indicator readings, score and level step, the notices that linked
merchants' levels changed, and what those notices do to the linked merchants' chain features.

A :class:`Trace` records, while a replay runs (``Replay.tracer``), every call into the engine that
matters for that part, in order: each merchant-day gathered (:class:`~engine.day_closing.GatheredDay`:
features, detector readings, figures), merchants appearing, staff's feedback taken in, stores
joining a chain, the days each call closed, and every chain watermark. :func:`rejudge` then runs
the same engine's judging code (``PartitionEngine.judge_day``), the same chain directory and the
same chain stage (:func:`engine.replay.settle`) over the trace, with another threshold schedule,
from the same starting state (the checkpoint the recording started from). The result is the
warnings a full replay with that schedule gives (tests compare them field by field), in a
fraction of the time.

One case cannot be judged from a trace: when the other thresholds change *which* merchants are
scored on a day (a chain signal to a store that has no record yet creates it, in one replay and
not in the other). :func:`rejudge` notices it and raises :class:`Diverged`; the caller replays in
full then.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from alerts.chains import ChainDirectory, ChainNotice, ChainSignal
from alerts.threshold_history import ThresholdSchedule
from contract.records import Feedback, Warning
from engine.day_closing import GatheredDay
from engine.partition import Outcome, PartitionEngine
from engine.replay import Checkpoint, settle
from models.state import MerchantState


class Diverged(Exception):
    """The thresholds being tried change which merchants are scored: the trace cannot tell."""


# What happened inside one call, in order:
#   ("member", merchant_id, partition, first_day)   a merchant appears (or an earlier record lowers its first day)
#   ("feedback", feedback, partition, day)          staff's feedback taken in, from ``day`` on
#   ("close", partition, day, gathered days)        a day closed: its members, gathered
Op = tuple[Any, ...]


@dataclass
class Call:
    """One call into the engine (a record processed, or a chain watermark delivered) that did
    something thresholds could change the outcome of."""

    kind: str  # "process" | "watermark"
    partition: int
    watermark: int | None = None
    ops: list[Op] = field(default_factory=list)
    joins: list[ChainNotice] = field(default_factory=list)  # stores joining a chain (event-driven)
    closed_through: int | None = None
    days_closed: int = 0

    def empty(self) -> bool:
        return self.kind == "process" and not self.ops and not self.joins and self.closed_through is None


@dataclass
class Trace:
    """The recording (see the module's doc). Implements the tracer protocols of
    :class:`~engine.partition.PartitionEngine` and :class:`~engine.replay.Replay`."""

    calls: list[Call] = field(default_factory=list)
    _open: Call | None = None

    # -- calls (Replay) -------------------------------------------------------------------------
    def call(self, kind: str, partition: int, watermark: int | None = None) -> None:
        self._open = Call(kind, partition, watermark)

    def returned(self, outcome: Outcome) -> None:
        call = self._open
        assert call is not None
        self._open = None
        call.joins = [n for n in outcome.chain_notices if n.level is None]
        call.closed_through = outcome.closed_through
        call.days_closed = outcome.days_closed
        # A record that did nothing of the kind (most of them) is left out; every watermark
        # stays, as the chain stage will ask for each.
        if not call.empty():
            self.calls.append(call)

    # -- inside a call (PartitionEngine) ----------------------------------------------------------
    def closed(self, partition: int, day: int, days: list[GatheredDay]) -> None:
        # The day's totals (and their event ids) serve only score trajectories: not kept.
        self._op(("close", partition, day, [d._replace(totals=None) for d in days]))

    def member(self, merchant_id: str, partition: int, first_day: int, by_signal: bool) -> None:
        if not by_signal:  # what signals do is judged again
            self._op(("member", merchant_id, partition, first_day))

    def feedback(self, feedback: Feedback, partition: int, day: int) -> None:
        self._op(("feedback", feedback, partition, day))

    def _op(self, op: Op) -> None:
        if self._open is not None:  # (a chain signal's effects are outside any call: judged again)
            self._open.ops.append(op)

    def __getstate__(self) -> dict[str, Any]:
        return {"calls": self.calls, "_open": None}


class _TracedEngine:
    """Stands in for the engine in :func:`settle`: chain signals go to the real engine; chain
    watermarks take their closed days from the trace and judge them there."""

    def __init__(self, engine: PartitionEngine, calls: list[Call]) -> None:
        self.engine = engine
        self.calls = calls
        self.next = 0

    def apply_chain_signal(self, signal: ChainSignal, partition: int) -> Outcome:
        return self.engine.apply_chain_signal(signal, partition)

    def apply_chain_watermark(self, source: int, watermark: int, partition: int) -> Outcome:
        call = self.take()
        if (call.kind, call.partition, call.watermark) != ("watermark", partition, watermark):
            raise Diverged(f"chain watermark {watermark} for partition {partition} where the trace has {call.kind}")
        return self.perform(call)

    def take(self) -> Call:
        if self.next >= len(self.calls):
            raise Diverged("the trace ended early")
        call = self.calls[self.next]
        self.next += 1
        return call

    def perform(self, call: Call) -> Outcome:
        """Do what ``call`` did, judging its closed days with this engine's thresholds."""
        engine = self.engine
        outcome = Outcome(closed_through=call.closed_through, days_closed=call.days_closed)
        links: list[ChainNotice] = []
        for op in call.ops:
            if op[0] == "member":
                _, merchant_id, partition, first_day = op
                state = engine.merchants.get(merchant_id)
                if state is None:
                    engine.merchants[merchant_id] = MerchantState(merchant_id, partition=partition, first_day=first_day)
                elif first_day < state.first_day:
                    state.first_day = first_day
            elif op[0] == "feedback":
                _, feedback, partition, day = op
                state = engine.merchants[feedback.merchant_id]
                engine.add_feedback(state, feedback, day)
            else:
                _, partition, day, days = op
                members = sorted(
                    (s for s in engine.merchants.values() if s.partition == partition and s.first_day <= day),
                    key=lambda s: s.merchant_id,
                )
                if [s.merchant_id for s in members] != [d.merchant_id for d in days]:
                    raise Diverged(f"other merchants scored on day {day} of partition {partition}")
                for warning, notices in engine.judge_day(members, day, days, relink=True):
                    if warning is not None:
                        outcome.warnings.append(warning)
                    links.extend(notices)
        outcome.chain_notices = [*call.joins, *links]
        return outcome


def rejudge(
    checkpoint: Checkpoint, trace: Trace, schedule: ThresholdSchedule,
    on_step: Callable[[int, int], None] | None = None,
) -> list[Warning]:
    """The warnings of the traced replay judged with ``schedule``, from ``checkpoint`` (the state
    the recording started from; it is used up). ``on_step(done, total)``: calls judged so far, now
    and then. Raises :class:`Diverged`."""
    engine = PartitionEngine(
        buckets={}, merchants=checkpoint.merchants, clocks=checkpoint.clocks,
        allowed_lateness=checkpoint.allowed_lateness, chain_sources=1, schedule=schedule,
        online_learning=checkpoint.online_learning,
    )
    chains: ChainDirectory = checkpoint.chains
    traced = _TracedEngine(engine, trace.calls)
    warnings = list(checkpoint.result.warnings)
    while traced.next < len(trace.calls):
        call = traced.take()
        if call.kind != "process":
            raise Diverged(f"a chain watermark for partition {call.partition} nobody asked for")
        settle(traced, chains, checkpoint.partitions, call.partition, traced.perform(call), warnings.extend)
        if on_step is not None and traced.next % 500 < 1:
            on_step(traced.next, len(trace.calls))
    return warnings
