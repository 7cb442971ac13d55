"""``yujing simulate``: write the simulation to JSON Lines files or produce it to Kafka.

The main CLI registers :func:`simulate_command`; errors print one red line and exit with 1.
"""

from __future__ import annotations

import collections
import time
from datetime import date
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from yujing.simulator.assumptions import WorldAssumptions
from yujing.simulator.config import SCENARIOS, SimulationConfig, scenario_kind
from yujing.simulator.output import BrokerUnreachable, Simulation

_console = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    _console.print(f"[red]{message}[/red]", highlight=False, soft_wrap=True)
    return typer.Exit(1)


def _summary(simulation: Simulation, counts: dict[str, int], title: str) -> Table:
    table = Table(title=title)
    table.add_column("records / scenario")
    table.add_column("kind")
    table.add_column("count", justify="right")
    for name, count in counts.items():
        table.add_row(name, "", f"{count:,}")
    mix = collections.Counter(label["scenario"] for label in simulation.labels)
    for scenario in SCENARIOS:
        if mix[scenario]:
            table.add_row(scenario, scenario_kind(scenario), str(mix[scenario]))
    return table


def _world_summary(config: SimulationConfig) -> str:
    """The drawn world in a few lines (the whole of it goes to world.json)."""
    w = config.assumptions
    prices = ", ".join(
        f"{name} x{m.price_level:.2f} big cards {m.big_card_share:.0%}" for name, m in w.industries.items()
    )
    promos = ", ".join(f"{p.name} {p.length}d x{p.boost:.1f}" for p in w.promotions.windows) or "none"
    regimes = ", ".join(f"{k} {v:.0%}" for k, v in w.notices.renovation_regimes.items())
    return "\n".join([
        f"world {w.world_seed}:",
        f"  prices: {prices}",
        f"  custody: {w.custody.cadence}, late {w.custody.late_share:.0%}, never reporting "
        f"{w.custody.never_report_share:.0%}, not enrolled {w.custody.not_enrolled_share:.0%}",
        f"  complaints: {w.complaints.background_per_store:.4f}/store-day, delay "
        f"{w.complaints.delay_mean_days:.1f} d",
        f"  renovation notice: {regimes}; promotions: {promos}",
        f"  run-aways with a surge {w.collapses.runaway_surge_share:.0%}; registry change before "
        f"collapse {w.collapses.registry_before_share:.0%}; healthy with quirks "
        f"{w.healthy.quirk_share:.0%}",
        _distress_summary(w),
    ])


def _distress_summary(w: WorldAssumptions) -> str:
    d = w.distress
    if d.service_trend is None or d.push_deep_share is None or d.push_depth is None:
        return "  before collapses: as scripted"
    return (f"  before collapses: service {d.service_trend:+.0%}, complaints x"
            f"{d.complaint_intensity:.2f} ({d.severe_share or 0:.0%} severe), push "
            f"{d.push_deep_share[0]:.0%}-{d.push_deep_share[1]:.0%} deep at x{d.push_depth[0]:.2f}-"
            f"{d.push_depth[1]:.2f} for {d.push_weeks} weeks; history {w.history_days} d")


def simulate_command(
    out: Path | None = typer.Option(  # noqa: B008 - typer's declaration style
        None, "--out", help="Directory for transactions/complaints/merchants .jsonl, labels.jsonl and labels.json."
    ),
    to_kafka: bool = typer.Option(  # noqa: B008
        False, "--to-kafka", help="Produce to the input topics of the configured broker."
    ),
    merchants: int = 500,
    days: int = 300,
    start: str = "2025-09-01",
    seed: int = 7,
    world_seed: int | None = typer.Option(  # noqa: B008
        None, "--world-seed",
        help="Draw the world's assumptions (prices, custody, notices, promotions, quirks...) from "
             "this seed; written to world.json. Without it: the classic world.",
    ),
) -> None:
    """Simulate Fengxian's prepaid-card merchants, with labelled collapses and look-alikes."""
    if out is None and not to_kafka:
        raise _fail("nothing to do: give --out DIR and/or --to-kafka")
    try:
        first_day = date.fromisoformat(start)
    except ValueError:
        raise _fail(f"--start must be a date YYYY-MM-DD, got {start!r}") from None
    try:
        config = SimulationConfig(merchants=merchants, days=days, start=first_day, seed=seed,
                                  world_seed=world_seed)
    except ValidationError as exc:
        reasons = "; ".join(f"--{e['loc'][0] if e['loc'] else 'world-seed'}: {e['msg'].lower()}"
                            for e in exc.errors())
        raise _fail(f"invalid simulation settings: {reasons}") from None
    simulation = Simulation(config)
    console = Console()
    if config.world is not None:
        console.print(_world_summary(config), highlight=False)
    if out is not None:
        began = time.perf_counter()
        try:
            counts = simulation.write(out)
        except OSError as exc:
            raise _fail(f"cannot write to {out}: {exc.strerror or exc}") from None
        elapsed = time.perf_counter() - began
        console.print(_summary(simulation, counts, f"yujing simulate -> {out} ({elapsed:.1f} s)"))
    if to_kafka:
        from streams.clients import SendRefused
        from yujing.settings import get_settings

        settings = get_settings()
        topics = {
            "transactions": settings.topics.transactions,
            "complaints": settings.topics.complaints,
            "merchants": settings.topics.merchants,
        }
        try:
            sent = simulation.produce(settings.bootstrap, topics, progress=True, security=settings.kafka_security)
        except BrokerUnreachable:
            raise _fail(f"Kafka is not reachable at {settings.bootstrap}") from None
        except SendRefused as exc:
            raise _fail(f"Kafka refused the records: {exc}") from None
        console.print(_summary(simulation, {topics[k]: v for k, v in sent.items()},
                               f"yujing simulate -> {settings.bootstrap}"))
