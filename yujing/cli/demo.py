"""``yujing demo``: the command; the demo itself is :mod:`yujing.demo`."""

from __future__ import annotations

import typer

from yujing.cli.output import console, fail
from yujing.settings import get_settings


def demo_command(
    merchants: int = typer.Option(60, help="Simulated merchants."),
    days: int = typer.Option(240, help="Simulated days."),
    seed: int = typer.Option(7, help="Simulation seed."),
    duration: float = typer.Option(900, help="Stop after this many seconds at most."),
    keep_running: bool = typer.Option(
        False, help="Afterwards keep the case desk (web inbox, API), database and broker up until Ctrl-C."),
) -> None:
    """Fresh broker + database + worker + case desk + simulator: warnings and cases arrive live."""
    from cases.db import DatabaseUnavailable
    from yujing.demo import run_demo
    from yujing.services.broker import BrokerError
    from yujing.services.database import DatabaseError

    try:
        state = run_demo(
            get_settings(), merchants=merchants, days=days, seed=seed, duration=duration,
            keep_running=keep_running, log=console.print,
        )
    except (BrokerError, DatabaseError, DatabaseUnavailable) as exc:
        fail(str(exc))
    urgent = sum(1 for w in state.warnings if w["level"] in ("orange", "red") and w["transition"] != "cleared")
    console.print(f"demo finished: {len(state.warnings)} warnings, {urgent} of them orange or red; "
                  f"{sum(state.cases.values())} open cases, {len(state.hotline_orders)} pushed to the 12345 stand-in.")
    if state.metrics:
        console.print("as Prometheus saw it: " + "; ".join(state.metrics) + ".")
