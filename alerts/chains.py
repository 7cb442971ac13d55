"""Contagion between linked merchants: when one reaches a high level, the others hear of it.

Two links, each a *group* of merchants: a chain (operators under one controlling party share a
``chain_id``: the money of every store goes to the same owner, and the first closure sets off a
run on the others), and a legal representative (group ``rep:<id>``: market regulators find the
same representative behind several gyms that later closed). The stores of
one chain hash to different input partitions, so the partition that raises a warning cannot
update its sisters itself. Instead it reports two kinds of :class:`ChainNotice` (a store belongs
to a chain; a store's level changed), a :class:`ChainDirectory` keyed by chain turns each level
change into one :class:`ChainSignal` per sister store, and each sister's own partition records
it. The backtest runs the directory in-line; the live worker runs it as a second agent between
two internal topics (``streams/agents.py``).

A signal takes effect ``EFFECT_DELAY_DAYS`` (1) day after the warning's day (``effective_day``),
in event time: the next day, the earliest a sister's day can read it without depending on timing.
To keep live processing equal to a replay, partitions also report the days they have closed
(:meth:`ChainDirectory.heartbeat`); once every partition has closed day X and the signals they
caused are sent, the directory announces the *chain watermark* X, and a partition closes day
X + 1 only after hearing it (``PartitionEngine(chain_sources=...)``). A day's content then never
depends on how fast the other partitions were read.

>>> directory = ChainDirectory()
>>> directory.notice(ChainNotice("c1", "m1", None, 100))   # membership only
[]
>>> directory.notice(ChainNotice("c1", "m2", None, 100))
[]
>>> directory.notice(ChainNotice("c1", "m1", "red", 120))
[ChainSignal(merchant_id='m2', group='c1', source_merchant_id='m1', level='red', effective_day=121)]
>>> directory.notice(ChainNotice("c1", "m3", None, 125))  # a store joining later hears the news
[ChainSignal(merchant_id='m3', group='c1', source_merchant_id='m1', level='red', effective_day=126)]
>>> directory = ChainDirectory(partitions=2)
>>> directory.heartbeat(0, partition=0, closed_through=130), directory.heartbeat(0, partition=1, closed_through=128)
(None, 128)
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import NamedTuple

# A signal takes effect this many days after the warning that caused it, and partitions may run
# that far ahead of the slowest one. One day, not a week: a chain's stores often fail within days
# of each other; the price is a replay faster than real time advancing a day per round trip
# through Kafka (docs/pipeline.md, measured).
EFFECT_DELAY_DAYS = 1


class ChainNotice(NamedTuple):
    """From a store's partition: it belongs to ``group``; with ``level``, its level changed
    on event-time ``day`` (ordinal). ``level`` ``"none"`` means cleared."""

    group: str
    merchant_id: str
    level: str | None
    day: int


class ChainSignal(NamedTuple):
    """To a linked store's partition: ``source_merchant_id`` is at ``level`` from ``effective_day``."""

    merchant_id: str
    group: str
    source_merchant_id: str
    level: str
    effective_day: int


@dataclass
class ChainMembers:
    """What the directory knows of one chain: its stores and their current levels."""

    members: dict[str, int] = field(default_factory=dict)  # store -> day it joined the group
    levels: dict[str, list[tuple[int, str]]] = field(default_factory=dict)  # store -> [(day, level)]


# What the directory's mapping holds under a key: a chain's members (key: the group), or the
# heartbeats of one source partition (key ``__heartbeats__|<source>``: input partition -> day).
ChainEntry = ChainMembers | dict[int, int]


class ChainDirectory:
    """Turns chain notices into signals for sister stores.

    State lives in a mapping ``group -> ChainMembers`` supplied by the caller (a plain dict in
    a backtest, a changelogged Faust table in the worker); the default is a dict.
    """

    def __init__(self, chains: MutableMapping[str, ChainEntry] | None = None, partitions: int = 1) -> None:
        self.chains: MutableMapping[str, ChainEntry] = chains if chains is not None else {}
        self.partitions = partitions  # input partitions that send heartbeats

    def notice(self, notice: ChainNotice) -> list[ChainSignal]:
        known = self.chains.get(notice.group)
        chain = known if isinstance(known, ChainMembers) else ChainMembers()
        signals: list[ChainSignal] = []
        if notice.merchant_id not in chain.members:
            chain.members[notice.merchant_id] = notice.day
            # A store first seen late hears the sisters' whole level history.
            for source, history in sorted(chain.levels.items()):
                for day, level in history:
                    signals.append(self._signal(chain, notice.merchant_id, notice.group, source, level, day))
        history = chain.levels.setdefault(notice.merchant_id, []) if notice.level is not None else []
        if notice.level is not None and (notice.day, notice.level) not in history:
            history.append((notice.day, notice.level))
            for sister in sorted(set(chain.members) - {notice.merchant_id}):
                signals.append(self._signal(chain, sister, notice.group, notice.merchant_id, notice.level, notice.day))
        self.chains[notice.group] = chain
        return signals

    @staticmethod
    def _signal(chain: ChainMembers, recipient: str, group: str, source: str, level: str, day: int) -> ChainSignal:
        # Effective the day after the later of the level change and the recipient's joining: the
        # same day whichever of the two notices reached the directory first, and never a day the
        # recipient's partition may already have closed.
        effective = max(day, chain.members[recipient]) + EFFECT_DELAY_DAYS
        return ChainSignal(recipient, group, source, level, effective)

    def heartbeat(
        self, source: int, *, partition: int, closed_through: int, repeat: bool = False
    ) -> int | None:
        """Input ``partition`` has closed every day up to ``closed_through`` (and its notices
        for them came before this heartbeat). Returns the new chain watermark of ``source`` (the
        directory's own partition, live) when it advanced: the last day every partition closed.

        A ``repeat`` heartbeat (the worker re-sends its partitions' progress now and then) returns
        the current watermark even when it did not advance: announcing it again is harmless and
        heals a heartbeat or watermark lost across a rebalance.

        >>> d = ChainDirectory(partitions=1)
        >>> d.heartbeat(0, partition=0, closed_through=5), d.heartbeat(0, partition=0, closed_through=5)
        (5, None)
        >>> d.heartbeat(0, partition=0, closed_through=5, repeat=True)
        5
        """
        key = f"__heartbeats__|{source}"
        stored = self.chains.get(key)
        beats: dict[int, int] = dict(stored) if isinstance(stored, dict) else {}
        previous = min(beats.values()) if len(beats) >= self.partitions else None
        beats[partition] = max(beats.get(partition, closed_through), closed_through)
        self.chains[key] = beats
        if len(beats) < self.partitions:
            return None
        watermark = min(beats.values())
        return watermark if repeat or previous is None or watermark > previous else None
