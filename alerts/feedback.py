"""Case feedback on the scoring side: what a disposition by consumer-protection staff changes.

* ``false_alarm`` / ``rectified`` at level L, with the score S and indicator codes C of the warning
  staff saw, put a :class:`FeedbackHold` on the merchant: a raise or escalation to a level <= L is
  not taken unless there is *new evidence* (an indicator driving it that is not in C, or a score
  >= S + 0.10). A transition above L always goes through and ends the hold.
* ``confirmed_risk`` / ``referred_to_enforcement`` make the merchant a *known anomaly*: it no
  longer counts in its peer group's norms and its own online baselines stop learning from its
  days (river's ``protect_anomaly_detector`` idea). Its level is not otherwise changed.

A merchant's dispositions live in :class:`MerchantFeedback` (in ``MerchantState.feedback``), each
from its own start day on (event time; the engine decides the day). The latest disposition in
force on a day is the one that counts: a later false alarm ends an earlier confirmed risk, a later
confirmed risk ends a hold. Pure and pickle-safe (it lives in the worker's changelogged state).

>>> hold = FeedbackHold(level="orange", score=0.62, codes=frozenset({"sales_surge", "custody_coverage"}))
>>> hold.allows(("raised", None, "orange"), 0.64, ["custody_coverage", "sales_surge"])
False
>>> hold.allows(("raised", None, "blue"), 0.31, ["custody_coverage"])  # lower levels too
False
>>> hold.allows(("raised", None, "orange"), 0.64, ["custody_coverage", "silence"])  # a new indicator
True
>>> hold.allows(("raised", None, "orange"), 0.72, ["custody_coverage"])  # score up by >= 0.10
True
>>> hold.allows(("escalated", "orange", "red"), 0.81, ["custody_coverage"]), hold.ends_with(
...     ("escalated", "orange", "red"))  # above the level staff saw: always, and the hold ends
(True, True)
>>> hold.allows(("cleared", "orange", "orange"), 0.1, [])  # calming down is never held
True
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from alerts.levels import RANK
from models.packing import Reader, Writer

HOLD_DISPOSITIONS = frozenset({"false_alarm", "rectified"})
KNOWN_ANOMALY_DISPOSITIONS = frozenset({"confirmed_risk", "referred_to_enforcement"})
NEW_EVIDENCE_SCORE = 0.10  # a score this much above the one staff saw is new evidence


@dataclass(frozen=True)
class FeedbackHold:
    """Staff judged a warning at ``level`` (score ``score``, driven by ``codes``) a false alarm
    or saw it rectified: the same evidence must not raise the merchant to that level again."""

    level: str
    score: float
    codes: frozenset[str]

    def allows(self, transition: tuple[str, str | None, str], score: float, codes: Iterable[str]) -> bool:
        """Whether a candidate ``transition`` (``LevelPolicy.step``'s triple), at composite
        ``score`` and driven by the indicators ``codes``, may be taken under this hold."""
        kind, _previous, level = transition
        if kind not in ("raised", "escalated") or RANK[level] > RANK[self.level]:
            return True
        if set(codes) - self.codes:
            return True
        return score >= round(self.score + NEW_EVIDENCE_SCORE, 4)

    def ends_with(self, transition: tuple[str, str | None, str]) -> bool:
        """A raise or escalation above the held level ends the hold."""
        kind, _previous, level = transition
        return kind in ("raised", "escalated") and RANK[level] > RANK[self.level]


@dataclass(frozen=True)
class FeedbackEntry:
    """One disposition for one merchant, in force from ``start_day`` (a day ordinal)."""

    start_day: int
    effective_from: float  # POSIX time of the feedback's effective_from: orders entries of one day
    feedback_id: str
    disposition: str
    hold: FeedbackHold | None = None  # for false_alarm / rectified (None: no level to hold)

    @property
    def known_anomaly(self) -> bool:
        return self.disposition in KNOWN_ANOMALY_DISPOSITIONS


@dataclass
class MerchantFeedback:
    """A merchant's dispositions in event time.

    >>> log = MerchantFeedback()
    >>> hold = FeedbackHold("orange", 0.65, frozenset({"silence"}))
    >>> log.add(FeedbackEntry(10, 0.0, "f1", "false_alarm", hold)), log.add(FeedbackEntry(10, 0.0, "f1", "false_alarm", hold))
    (True, False)
    >>> log.hold_at(9) is None, log.hold_at(10) == hold, log.known_anomaly_at(12)
    (True, True, False)
    >>> _ = log.add(FeedbackEntry(20, 1.0, "f2", "confirmed_risk"))  # the latest disposition counts
    >>> log.hold_at(19) == hold, log.hold_at(20), log.known_anomaly_at(20)
    (True, None, True)
    >>> log.end_hold(15)  # e.g. escalated above orange on day 15
    >>> log.hold_at(16), log.known_anomaly_at(25)
    (None, True)
    """

    entries: list[FeedbackEntry] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)  # feedback ids taken in (duplicates are ignored)
    ended: set[str] = field(default_factory=set)  # holds ended by a transition above their level

    def add(self, entry: FeedbackEntry) -> bool:
        """Take in one disposition; ``False`` for a duplicate (same feedback id)."""
        if entry.feedback_id in self.seen:
            return False
        self.seen.add(entry.feedback_id)
        self.entries.append(entry)
        # Order by event time, not by arrival: the same feedback read in another order (live,
        # topics interleave) gives the same result.
        self.entries.sort(key=lambda e: (e.start_day, e.effective_from, e.feedback_id))
        return True

    def in_force(self, day: int) -> FeedbackEntry | None:
        """The latest disposition that has started by ``day``."""
        current = None
        for entry in self.entries:
            if entry.start_day > day:
                break
            current = entry
        return current

    def hold_at(self, day: int) -> FeedbackHold | None:
        entry = self.in_force(day)
        if entry is None or entry.hold is None or entry.feedback_id in self.ended:
            return None
        return entry.hold

    def known_anomaly_at(self, day: int) -> bool:
        entry = self.in_force(day)
        return entry is not None and entry.known_anomaly

    def end_hold(self, day: int) -> None:
        """End the hold in force on ``day`` (dispositions starting later are untouched)."""
        entry = self.in_force(day)
        if entry is not None and entry.hold is not None:
            self.ended.add(entry.feedback_id)

    def pack(self, out: Writer) -> None:
        """Write the log for :meth:`unpack` (engine/state_codec.py); sets in sorted order.

        >>> log = MerchantFeedback()
        >>> _ = log.add(FeedbackEntry(10, 1.5, "f1", "false_alarm", FeedbackHold("orange", 0.65, frozenset({"silence"}))))
        >>> log.end_hold(12)
        >>> out = Writer()
        >>> log.pack(out)
        >>> MerchantFeedback.unpack(Reader(out.getvalue())) == log
        True
        """
        out.uint(len(self.entries))
        for entry in self.entries:
            out.signed(entry.start_day)
            out.double(entry.effective_from)
            out.text(entry.feedback_id)
            out.text(entry.disposition)
            out.flag(entry.hold is not None)
            if entry.hold is not None:
                out.text(entry.hold.level)
                out.double(entry.hold.score)
                _write_names(out, entry.hold.codes)
        _write_names(out, self.seen)
        _write_names(out, self.ended)

    @classmethod
    def unpack(cls, src: Reader) -> MerchantFeedback:
        log = cls()
        for _ in range(src.uint()):
            start_day, effective_from, feedback_id, disposition = src.signed(), src.double(), src.text(), src.text()
            hold = FeedbackHold(src.text(), src.double(), frozenset(_read_names(src))) if src.flag() else None
            log.entries.append(FeedbackEntry(start_day, effective_from, feedback_id, disposition, hold))
        log.seen = set(_read_names(src))
        log.ended = set(_read_names(src))
        return log


def _write_names(out: Writer, names: Iterable[str]) -> None:
    ordered = sorted(names)
    out.uint(len(ordered))
    for name in ordered:
        out.text(name)


def _read_names(src: Reader) -> list[str]:
    return [src.text() for _ in range(src.uint())]
