"""The alert policy between the disposal queue and the case desk.

The scoring side already escalates at once and steps down only after sustained improvement
(:mod:`alerts.levels`); every transition arrives here as a warning. This policy decides what a
warning does to the cases:

* **deduplication**: one open warning per merchant and level. A warning that repeats the level
  the merchant already holds (a re-raise after a restart with other thresholds, a second
  emitter) is recorded but changes nothing.
* **grouping**: stores of one chain share one case (``chain:<chain_id>``); other merchants
  have their own (``merchant:<merchant_id>``).
* **cases**: a raise or escalation to ``case_level`` (yellow) or above opens a case or joins the
  open one; blue is "watch": recorded on the merchant, no case until it rises.
* **escalation** of an open case is immediate: its level is the highest current level of its
  merchants, and a higher level shortens its deadline.
* **de-escalation and clearing** only update the merchant's level in the case (the case stays
  open for staff to resolve); they never open a case and never push.
* **push** to outside systems for new orange/red cases and escalations of a case into them.
* **silences**: an operator mutes a merchant or a chain for a period, with a reason. A muted
  warning is recorded (visible) but opens no case and pushes nothing. Silences always expire;
  when one does and the merchant still stands at a case level, a case opens then.

>>> policy = AlertPolicy()
>>> policy.decide(Incoming("m1", None, "raised", None, "blue"), held_level=None, case_level=None)
Decision(action='record', reason='blue is a watch level: no case below yellow', push=False)
>>> policy.decide(Incoming("m1", None, "escalated", "blue", "orange"), held_level="blue", case_level=None)
Decision(action='open', reason='new orange warning', push=True)
>>> policy.decide(Incoming("m2", "c9", "raised", None, "red"), held_level=None, case_level="orange")
Decision(action='escalate', reason='case rises from orange to red', push=True)
>>> policy.decide(Incoming("m1", None, "raised", None, "orange"), held_level="orange", case_level="orange")
Decision(action='duplicate', reason='merchant already holds an open orange warning', push=False)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, NamedTuple

from alerts.levels import RANK

Action = Literal["open", "append", "escalate", "record", "duplicate", "silenced"]


def case_group(merchant_id: str, chain_id: str | None) -> str:
    """The entity a case is about: the chain when the merchant belongs to one.

    >>> case_group("m1", None), case_group("m1", "c7")
    ('merchant:m1', 'chain:c7')
    """
    return f"chain:{chain_id}" if chain_id else f"merchant:{merchant_id}"


class Incoming(NamedTuple):
    """The parts of a warning the policy looks at."""

    merchant_id: str
    chain_id: str | None
    transition: str
    previous_level: str | None
    level: str


@dataclass(frozen=True)
class Silence:
    """A mute on a merchant or a chain, with a reason and an expiry (wall-clock times).

    >>> from datetime import timezone
    >>> t = lambda d: datetime(2026, 3, d, tzinfo=timezone.utc)
    >>> s = Silence(1, "chain", "c7", "under enforcement", "chen", t(1), t(10))
    >>> s.covers("m1", "c7", t(5)), s.covers("m1", "c7", t(10)), s.covers("m1", None, t(5))
    (True, False, False)
    """

    silence_id: int
    target_kind: Literal["merchant", "chain"]
    target_id: str
    reason: str
    created_by: str
    starts_at: datetime
    ends_at: datetime
    cancelled_at: datetime | None = None

    def active(self, now: datetime) -> bool:
        return self.cancelled_at is None and self.starts_at <= now < self.ends_at

    def covers(self, merchant_id: str, chain_id: str | None, now: datetime) -> bool:
        if not self.active(now):
            return False
        if self.target_kind == "merchant":
            return self.target_id == merchant_id
        return chain_id is not None and self.target_id == chain_id


class Decision(NamedTuple):
    action: Action
    reason: str
    push: bool


@dataclass(frozen=True)
class AlertPolicy:
    """Which warnings open cases, which join them, which are pushed outside."""

    case_level: str = "yellow"
    push_levels: frozenset[str] = frozenset({"orange", "red"})

    def decide(
        self,
        warning: Incoming,
        *,
        held_level: str | None,
        case_level: str | None,
        case_open: bool | None = None,
        silences: Iterable[Silence] = (),
        now: datetime | None = None,
    ) -> Decision:
        """What ``warning`` does, given the level the merchant holds so far (``held_level``),
        the level of the open case of its group (``case_level``; None when there is no open case,
        or, with ``case_open=True``, when all its merchants have cleared) and the silences in
        force at ``now``."""
        if case_open is None:
            case_open = case_level is not None
        rising = warning.transition in ("raised", "escalated")
        if rising and held_level == warning.level:
            return Decision("duplicate", f"merchant already holds an open {warning.level} warning", False)
        muting = [
            s for s in silences
            if now is not None and s.covers(warning.merchant_id, warning.chain_id, now)
        ]
        if muting and rising:
            s = muting[0]
            return Decision(
                "silenced",
                f"muted by silence #{s.silence_id} on {s.target_kind} {s.target_id} until "
                f"{s.ends_at.isoformat()} ({s.reason})",
                False,
            )
        if not rising:
            if not case_open:
                return Decision("record", f"{warning.transition}: no open case to update", False)
            return Decision("append", f"{warning.transition} to {warning.level}", False)
        if not case_open:
            if RANK[warning.level] < RANK[self.case_level]:
                return Decision(
                    "record", f"{warning.level} is a watch level: no case below {self.case_level}", False
                )
            return Decision("open", f"new {warning.level} warning", warning.level in self.push_levels)
        if case_level is None or RANK[warning.level] > RANK[case_level]:
            return Decision(
                "escalate",
                f"case rises from {case_level or 'cleared'} to {warning.level}",
                warning.level in self.push_levels,
            )
        return Decision("append", f"{warning.level} joins the open {case_level} case", False)

    def opens_after_silence(self, held_level: str | None) -> bool:
        """Whether a merchant whose silence ended should get a case now (still at a case level).

        >>> AlertPolicy().opens_after_silence("orange"), AlertPolicy().opens_after_silence("blue")
        (True, False)
        """
        return held_level is not None and RANK[held_level] >= RANK[self.case_level]
