"""Where the commands of :mod:`yujing.cli.app` print: stdout, stderr, and the error that ends a
command (one red line, exit status 1, never a traceback)."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

console = Console()
err = Console(stderr=True)


def fail(message: str) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(1)
