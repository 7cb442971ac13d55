"""Chain contagion: when one store of a chain reaches a high level, its sister stores hear of it.

Operators under one controlling party (same ``chain_id``) fall together: the money of every
store goes to the same owner, and the first closure sets off a run on the others. The stores of
one chain hash to different input partitions, so the partition that raises a warning cannot
update its sisters itself. Instead it reports two kinds of :class:`ChainNotice` (a store belongs
to a chain; a store's level changed), a :class:`ChainDirectory` keyed by chain turns each level
change into one :class:`ChainSignal` per sister store, and each sister's own partition records
it. The backtest runs the directory in-line; the live worker runs it as a second agent between
two internal topics (``streams/agents.py``).

A signal takes effect from the day after the warning's day (``effective_day``), in event time,
so that its arrival in the sister's partition is not a race with that partition's own clock.

>>> directory = ChainDirectory()
>>> directory.notice(ChainNotice("c1", "m1", None, 100))   # membership only
[]
>>> directory.notice(ChainNotice("c1", "m2", None, 100))
[]
>>> directory.notice(ChainNotice("c1", "m1", "red", 120))
[ChainSignal(merchant_id='m2', chain_id='c1', source_merchant_id='m1', level='red', effective_day=121)]
>>> directory.notice(ChainNotice("c1", "m3", None, 125))  # a store joining later hears the news
[ChainSignal(merchant_id='m3', chain_id='c1', source_merchant_id='m1', level='red', effective_day=126)]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

EFFECT_DELAY_DAYS = 1


class ChainNotice(NamedTuple):
    """From a store's partition: it belongs to ``chain_id``; with ``level``, its level changed
    on event-time ``day`` (ordinal). ``level`` ``"none"`` means cleared."""

    chain_id: str
    merchant_id: str
    level: str | None
    day: int


class ChainSignal(NamedTuple):
    """To a sister store's partition: ``source_merchant_id`` is at ``level`` from ``effective_day``."""

    merchant_id: str
    chain_id: str
    source_merchant_id: str
    level: str
    effective_day: int


@dataclass
class ChainMembers:
    """What the directory knows of one chain: its stores and their current levels."""

    members: set[str] = field(default_factory=set)
    levels: dict[str, tuple[str, int]] = field(default_factory=dict)  # store -> (level, day)


class ChainDirectory:
    """Turns chain notices into signals for sister stores.

    State lives in a mapping ``chain_id -> ChainMembers`` supplied by the caller (a plain dict in
    a backtest, a changelogged Faust table in the worker); the default is a dict.
    """

    def __init__(self, chains: dict[str, ChainMembers] | None = None) -> None:
        self.chains = chains if chains is not None else {}

    def notice(self, notice: ChainNotice) -> list[ChainSignal]:
        chain = self.chains.get(notice.chain_id) or ChainMembers()
        signals: list[ChainSignal] = []
        if notice.merchant_id not in chain.members:
            chain.members.add(notice.merchant_id)
            # A store that joins (or is first seen) late hears the sisters' standing levels.
            for source, (level, _) in sorted(chain.levels.items()):
                if source != notice.merchant_id and level != "none":
                    signals.append(
                        ChainSignal(notice.merchant_id, notice.chain_id, source, level,
                                    notice.day + EFFECT_DELAY_DAYS)
                    )
        if notice.level is not None and chain.levels.get(notice.merchant_id, ("none", 0))[0] != notice.level:
            chain.levels[notice.merchant_id] = (notice.level, notice.day)
            for sister in sorted(chain.members - {notice.merchant_id}):
                signals.append(
                    ChainSignal(sister, notice.chain_id, notice.merchant_id, notice.level,
                                notice.day + EFFECT_DELAY_DAYS)
                )
        self.chains[notice.chain_id] = chain
        return signals
