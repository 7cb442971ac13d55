"""``yujing simulate``: a deterministic, labelled simulator of Fengxian's prepaid-card merchants.

>>> sim = simulate(SimulationConfig(merchants=12, days=60, seed=1))
>>> sorted({label["kind"] for label in sim.labels})
['collapse', 'healthy', 'lookalike']

A run lives in the classic world unless given a ``world_seed`` (see ``docs/worlds.md``):

>>> SimulationConfig(world_seed=3).world == draw_world(3)
True
"""

from __future__ import annotations

from .assumptions import WorldAssumptions, draw_world
from .config import (
    COLLAPSE_SCENARIOS,
    DEFAULT_MIX,
    LOOKALIKE_SCENARIOS,
    SCENARIOS,
    SimulationConfig,
    scaled_mix,
    scenario_kind,
)
from .output import Simulation


def simulate(config: SimulationConfig | None = None) -> Simulation:
    """Plan a simulation; records are generated when iterated, written or produced."""
    return Simulation(config or SimulationConfig())


__all__ = [
    "COLLAPSE_SCENARIOS",
    "DEFAULT_MIX",
    "LOOKALIKE_SCENARIOS",
    "SCENARIOS",
    "Simulation",
    "SimulationConfig",
    "WorldAssumptions",
    "draw_world",
    "scaled_mix",
    "scenario_kind",
    "simulate",
]
