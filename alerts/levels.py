"""Warning levels with hysteresis: escalate at once, calm down only after sustained improvement.

>>> policy = LevelPolicy(cutoffs={"blue": 0.3, "yellow": 0.45, "orange": 0.6, "red": 0.8})
>>> state = AlertState()
>>> [policy.step(state, s) for s in (0.2, 0.72, 0.9, 0.6)]
[None, ('raised', None, 'orange'), ('escalated', 'orange', 'red'), None]
>>> [policy.step(state, 0.1) for _ in range(5)]
[None, None, None, None, None]
>>> policy.step(state, 0.1)  # 7th calm day: down to the highest level seen while calm
('de-escalated', 'red', 'orange')
"""

from __future__ import annotations

from dataclasses import dataclass, field

from models.learned import LEVEL_CUTOFFS
from models.packing import Reader, Writer

LEVELS: tuple[str, ...] = ("blue", "yellow", "orange", "red")
RANK = {level: i for i, level in enumerate(LEVELS)}


@dataclass
class AlertState:
    """One merchant's current level and how long its score has stayed below it."""

    level: str | None = None
    calm_days: int = 0
    calm_peak: int = -1  # highest level rank seen during the calm streak (-1: none)

    def pack(self, out: Writer) -> None:
        """Write the state for :meth:`unpack` (engine/state_codec.py).

        >>> out = Writer()
        >>> AlertState("orange", 3, 1).pack(out)
        >>> AlertState.unpack(Reader(out.getvalue()))
        AlertState(level='orange', calm_days=3, calm_peak=1)
        """
        out.optional_text(self.level)
        out.uint(self.calm_days)
        out.signed(self.calm_peak)

    @classmethod
    def unpack(cls, src: Reader) -> AlertState:
        return cls(level=src.optional_text(), calm_days=src.uint(), calm_peak=src.signed())


@dataclass(frozen=True)
class LevelPolicy:
    """Score cut-offs per level, a hysteresis margin and the days of calm before stepping down.

    The built-in cut-offs are probabilities of collapse within the horizon, chosen with the learned
    fusion (``models/learned.py``, ``yujing train``): each is the lowest that at most a set share
    of the training worlds' healthy merchants ever reach."""

    cutoffs: dict[str, float] = field(
        default_factory=lambda: dict(LEVEL_CUTOFFS)
    )
    margin: float = 0.05
    deescalate_after_days: int = 7
    clear_after_days: int = 14

    def level_for(self, score: float) -> str | None:
        """The highest level whose cut-off the score reaches.

        >>> policy = LevelPolicy(cutoffs={"blue": 0.3, "yellow": 0.45, "orange": 0.6, "red": 0.8})
        >>> policy.level_for(0.62), policy.level_for(0.1)
        ('orange', None)
        """
        reached = None
        for level in LEVELS:
            if score >= self.cutoffs[level]:
                reached = level
        return reached

    def step(self, state: AlertState, score: float) -> tuple[str, str | None, str] | None:
        """Feed one day's score; returns ``(transition, previous_level, level)`` or ``None``.

        A ``cleared`` transition carries the last level in both places, as the contract says.
        """
        target = self.level_for(score)
        target_rank = RANK[target] if target else -1
        current_rank = RANK[state.level] if state.level else -1
        if target_rank > current_rank:
            previous, state.level = state.level, target
            state.calm_days, state.calm_peak = 0, -1
            assert target is not None
            return ("raised" if previous is None else "escalated", previous, target)
        if state.level is None:
            return None
        # Within the margin below the current cut-off the level holds (no flapping).
        if score >= self.cutoffs[state.level] - self.margin:
            state.calm_days, state.calm_peak = 0, -1
            return None
        state.calm_days += 1
        state.calm_peak = max(state.calm_peak, target_rank)
        needed = self.clear_after_days if state.calm_peak < 0 else self.deescalate_after_days
        if state.calm_days < needed:
            return None
        previous = state.level
        state.calm_days = 0
        if state.calm_peak < 0:
            state.level, state.calm_peak = None, -1
            return ("cleared", previous, previous)
        state.level, state.calm_peak = LEVELS[state.calm_peak], -1
        return ("de-escalated", previous, state.level)
