"""``yujing chaos``: the fault-injection run (``run``) and the flood measurement (``flood``).

Both print their tables and exit 1 when an invariant fails (something lost, duplicated or
doubled; a planned fault not injected; the flood ratio under 0.8). Errors are one line.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer
from rich.console import Console

if TYPE_CHECKING:
    from chaos.flood import FloodResult

chaos_app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)
console = Console()
err = Console(stderr=True)


def _fail(message: str) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(1)


def _say(message: str) -> None:
    console.print(f"[dim]{message}[/dim]", highlight=False)


def _flood(merchants: int, days: int, bad: int, repeat: int, seed: int) -> FloodResult:
    from chaos.flood import measure_flood

    _say(f"flood: {merchants} merchants x {days} days of good events, {bad:,} bad records mixed in")
    with tempfile.TemporaryDirectory(prefix="yujing-flood-") as work:
        return measure_flood(Path(work), merchants=merchants, days=days, bad=bad, repeat=repeat, seed=seed, say=_say)


@chaos_app.command("run")
def run_command(
    merchants: int = typer.Option(120, min=2, help="Simulated merchants."),
    days: int = typer.Option(365, min=30, help="Simulated days."),
    seed: int = typer.Option(16, help="Seed of the world and of the fault points."),
    kills: int = typer.Option(10, min=0, help="Worker SIGKILLs, spread over the consumption."),
    broker_restarts: int = typer.Option(1, min=0, help="Broker restarts mid-run."),
    postgres_restarts: int = typer.Option(1, min=0, help="PostgreSQL restarts under the case service."),
    partitions: int = typer.Option(4, min=1, help="Input partitions."),
    events: Path | None = typer.Option(None, help="Score these event files instead of a simulated world."),
    session_timeout: float = typer.Option(10.0, min=6, help="Faust's broker session timeout for the run's worker (s)."),
    timeout: float = typer.Option(3600.0, help="Seconds for the worker to consume everything, faults included."),
    flood: bool = typer.Option(True, help="Also measure the flood (yujing chaos flood) after the run."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the results as JSON here."),
    keep: Path | None = typer.Option(None, help="Keep the run's home (services' data and logs) here."),
) -> None:
    """Kill -9 the worker at drawn points of a year of events, restart the broker and PostgreSQL,
    kill the case service during a webhook delivery, and compare everything with the replay."""
    from chaos.report import FLOOD_FLOOR, print_report, write_json
    from chaos.run import ChaosOptions, run_chaos
    from yujing.services.lifecycle import ServiceError

    if events is not None and not events.is_dir():
        _fail(f"events directory not found: {events}")
    options = ChaosOptions(merchants=merchants, days=days, seed=seed, kills=kills, broker_restarts=broker_restarts,
                           postgres_restarts=postgres_restarts, partitions=partitions, events_dir=events,
                           timeout=timeout, keep=keep, session_timeout=session_timeout)
    try:
        report = run_chaos(options, _say)
    except ServiceError as exc:
        _fail(str(exc))
    measured = _flood(merchants, days, 100_000, 2, seed) if flood else None  # good events: the run's own year
    print_report(console, report, measured)
    if json_out is not None:
        write_json(json_out, report, measured)
    if not report.ok or (measured is not None and measured.ratio < FLOOD_FLOOR):
        raise typer.Exit(1)


@chaos_app.command("flood")
def flood_command(
    merchants: int = typer.Option(120, min=2, help="Simulated merchants (the good events; as `chaos run`)."),
    days: int = typer.Option(365, min=30, help="Simulated days."),
    bad: int = typer.Option(100_000, min=0, help="Bad records mixed into the transactions."),
    repeat: int = typer.Option(2, min=1, help="Alternating clean and flooded passes; the best of each counts."),
    seed: int = typer.Option(16),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the result as JSON here."),
) -> None:
    """Good-event throughput of the decode -> score path with and without a flood of bad records."""
    from chaos.report import FLOOD_FLOOR, print_report, write_json

    measured = _flood(merchants, days, bad, repeat, seed)
    print_report(console, None, measured)
    if json_out is not None:
        write_json(json_out, None, measured)
    if measured.ratio < FLOOD_FLOOR:
        raise typer.Exit(1)
