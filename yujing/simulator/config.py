"""Simulation configuration and the catalogue of labelled scenarios.

Scenarios come in three kinds: ``collapse`` (consumers lose their prepaid money on a known
``collapse_date``), ``lookalike`` (benign merchants that share a surface feature with a collapse,
e.g. a big promotion or a suspension) and ``healthy``. The mix is a parameter; the default is
about 78% healthy, 10% collapsing and 12% look-alikes.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .assumptions import CLASSIC, WorldAssumptions, draw_world

ScenarioKind = Literal["collapse", "lookalike", "healthy"]

COLLAPSE_SCENARIOS: tuple[str, ...] = (
    "runaway_after_surge",
    "slow_decline",
    "chain_collapse",
    "ownership_transfer",
)
LOOKALIKE_SCENARIOS: tuple[str, ...] = (
    "new_opening",
    "legal_promotion",
    "announced_renovation",
    "viral_complaints",
    "seasonal_gym",
)
HEALTHY = "healthy"
SCENARIOS: tuple[str, ...] = (*COLLAPSE_SCENARIOS, *LOOKALIKE_SCENARIOS, HEALTHY)

DEFAULT_MIX: dict[str, float] = {
    HEALTHY: 0.78,
    "runaway_after_surge": 0.03,
    "slow_decline": 0.025,
    "chain_collapse": 0.025,
    "ownership_transfer": 0.02,
    "new_opening": 0.025,
    "legal_promotion": 0.03,
    "announced_renovation": 0.02,
    "viral_complaints": 0.025,
    "seasonal_gym": 0.02,
}


def scenario_kind(scenario: str) -> ScenarioKind:
    """The label kind of a scenario name."""
    if scenario in COLLAPSE_SCENARIOS:
        return "collapse"
    if scenario in LOOKALIKE_SCENARIOS:
        return "lookalike"
    if scenario == HEALTHY:
        return "healthy"
    raise ValueError(f"unknown scenario {scenario!r}")


def scaled_mix(collapse: float = 0.10, lookalike: float = 0.12) -> dict[str, float]:
    """The default mix rescaled so collapses and look-alikes take the given shares.

    >>> round(sum(scaled_mix(0.2, 0.2).values()), 6)
    1.0
    >>> round(scaled_mix(0.2, 0.2)["healthy"], 6)
    0.6
    """
    if collapse < 0 or lookalike < 0 or collapse + lookalike > 1:
        raise ValueError("shares must be non-negative and sum to at most 1")
    base_collapse = sum(DEFAULT_MIX[s] for s in COLLAPSE_SCENARIOS)
    base_lookalike = sum(DEFAULT_MIX[s] for s in LOOKALIKE_SCENARIOS)
    mix = {HEALTHY: 1.0 - collapse - lookalike}
    mix.update({s: DEFAULT_MIX[s] / base_collapse * collapse for s in COLLAPSE_SCENARIOS})
    mix.update({s: DEFAULT_MIX[s] / base_lookalike * lookalike for s in LOOKALIKE_SCENARIOS})
    return mix


class SimulationConfig(BaseModel):
    """What to simulate. The same config (seed included) always gives byte-identical output."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    merchants: int = Field(500, ge=1, le=100_000, description="Number of licensed operators.")
    days: int = Field(300, ge=30, le=3_650, description="Length of the simulated window.")
    start: date = Field(date(2025, 9, 1), description="First simulated day (local time).")
    seed: int = 7
    mix: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_MIX),
        description="Scenario name -> share of merchants; normalised, missing names get 0.",
    )
    chain_share: float = Field(
        0.15, ge=0, le=1, description="Share of non-collapsing merchants grouped into chains."
    )

    world_seed: int | None = Field(
        None, description="Draws the world's assumptions (None: the classic world)."
    )
    world: WorldAssumptions | None = Field(
        None, description="Explicit assumptions; drawn from world_seed when only that is given."
    )

    @model_validator(mode="before")
    @classmethod
    def _draw_world(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("world_seed") is not None:
            seed = int(data["world_seed"])
            world = data.get("world")
            if world is None:
                data = {**data, "world": draw_world(seed)}
            else:
                drawn_seed = world.world_seed if isinstance(world, WorldAssumptions) else (
                    world.get("world_seed") if isinstance(world, dict) else None)
                if drawn_seed is not None and drawn_seed != seed:
                    raise ValueError("world_seed differs from the given world's world_seed")
        return data

    @property
    def assumptions(self) -> WorldAssumptions:
        """The world this run lives in: the given or drawn one, else the classic world."""
        return self.world if self.world is not None else CLASSIC

    @field_validator("mix")
    @classmethod
    def _check_mix(cls, mix: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(mix) - set(SCENARIOS))
        if unknown:
            raise ValueError(f"unknown scenarios in mix: {', '.join(unknown)}")
        if any(share < 0 for share in mix.values()):
            raise ValueError("mix shares must be non-negative")
        total = sum(mix.values())
        if total <= 0:
            raise ValueError("mix shares must not all be zero")
        return {s: mix.get(s, 0.0) / total for s in SCENARIOS}
