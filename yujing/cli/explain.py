"""``yujing explain MERCHANT --events DIR``: the command (the main CLI registers :func:`explain_command`).

Errors print one red line and exit with 1, as everywhere in the CLI.
"""

from __future__ import annotations

import sys
import time
from datetime import date, timedelta
from pathlib import Path

import orjson
import typer
from rich.console import Console

from yujing.settings import get_settings

_out = Console()
_err = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    _err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)  # one line, however long
    return typer.Exit(1)


def _date(name: str, text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise _fail(f"--{name} {text!r}: not a date (YYYY-MM-DD)") from None


def explain_command(
    merchant: str = typer.Argument(..., help="The merchant_id to explain."),
    events: Path = typer.Option(..., "--events", help="Directory with contract JSONL files."),  # noqa: B008
    png: Path | None = typer.Option(  # noqa: B008
        None, "--png", help="Where to draw the timeline (default explain-MERCHANT.png): the --since/--until window, by default "
        "the last 365 days."),
    since: str | None = typer.Option(None, "--since", metavar="DATE", help="First day of the table and the plot (YYYY-MM-DD)."),
    until: str | None = typer.Option(None, "--until", metavar="DATE", help="Last day of the table and the plot (YYYY-MM-DD)."),
    labels: Path | None = typer.Option(  # noqa: B008
        None, "--labels", help="labels.json or labels.jsonl: draw the merchant's collapse date or episode."),
    as_json: bool = typer.Option(False, "--json", help="Print the timeline as JSON (days in the window)."),
    full: bool = typer.Option(
        False, "--full", help="Replay every partition, not only the merchant's and its linked merchants'."),
) -> None:
    """One merchant's timeline as backtest and worker score it: activity, balance, complaints, profile
    records, each indicator's reading, the fused score, levels and warnings (table and PNG)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from alerts.threshold_history import ThresholdSchedule
    from alerts.thresholds import ThresholdsError
    from engine.explain import UnknownMerchant, collect, read_label, timeline_json
    from engine.replay import EventFilesError
    from yujing.explain_plot import write_png
    from yujing.explain_text import day_table, header, warning_lines

    first, last = _date("since", since), _date("until", until)
    if first is not None and last is not None and first > last:
        raise _fail(f"--since {first} is after --until {last}")
    if labels is not None and not labels.is_file():
        raise _fail(f"labels file not found: {labels}")
    settings = get_settings()
    try:
        thresholds = settings.base_thresholds()
    except ThresholdsError as exc:
        raise _fail(f"YUJING_THRESHOLDS_FILE {settings.thresholds_file}: " + "; ".join(exc.problems)) from None
    except OSError as exc:
        raise _fail(f"cannot read YUJING_THRESHOLDS_FILE {settings.thresholds_file}: {exc.strerror or exc}") from None
    started = time.perf_counter()
    try:
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("records"),
                      TimeElapsedColumn(), console=_err, transient=True) as progress:
            task = progress.add_task("reading the event files", total=None)
            counter = [0]

            def start(total: int | None) -> None:
                progress.update(task, description="replaying", total=total, completed=0)

            def tick() -> None:
                counter[0] += 1
                if counter[0] % 2000 == 0:
                    progress.update(task, completed=counter[0])

            timeline = collect(
                events, merchant, partitions=settings.input_partitions,
                allowed_lateness=timedelta(hours=settings.allowed_lateness_hours),
                schedule=ThresholdSchedule(thresholds), full=full, on_start=start, on_event=tick,
            )
        if labels is not None:
            timeline.label = read_label(labels, merchant)
    except (EventFilesError, UnknownMerchant) as exc:
        raise _fail(str(exc)) from None
    except orjson.JSONDecodeError as exc:
        raise _fail(f"cannot read labels {labels}: {exc}") from None
    except OSError as exc:
        raise _fail(f"cannot read events or labels: {exc}") from None
    target = png or Path(f"explain-{merchant}.png")
    try:
        write_png(timeline, target, first, last)
    except OSError as exc:
        raise _fail(f"cannot write {target}: {exc}") from None
    if as_json:
        sys.stdout.write(orjson.dumps(timeline_json(timeline, first, last), option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    _out.print(header(timeline), highlight=False)
    _out.print(day_table(timeline, first, last))
    for line in warning_lines(timeline.warnings):
        _out.print(line, highlight=False)
    _out.print(f"plot: {target} ({time.perf_counter() - started:.1f} s)", highlight=False)
