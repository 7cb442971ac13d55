"""``yujing bench``: the live worker against the Kafka client, a bare Faust agent and a naive Faust
pipeline on a broker of its own; the replay against a raw decode; two workers against one;
latency at half load; state per merchant; catch-up against the backtest. One run, one table."""

from __future__ import annotations

from pathlib import Path

import typer

from yujing.cli.output import console, err, fail


def bench_command(
    merchants: int | None = typer.Option(None, min=2, help="Simulated merchants (default 60; --quick 16)."),
    days: int | None = typer.Option(None, min=30, help="Days of history (default 365; --quick 45)."),
    live_days: int | None = typer.Option(
        None, "--live-days", min=1, help="Days fed at half load after the catch-up (default 45; --quick 15)."),
    partitions: int = typer.Option(4, min=2, help="Input partitions (two workers share them)."),
    repeat: int = typer.Option(1, min=1, help="Alternating rounds of the baselines and the replay; the best counts "
                               "(the client limit and the raw decode run at least three times, the backtest twice)."),
    seed: int = typer.Option(7, help="Seed of the simulated world."),
    quick: bool = typer.Option(False, "--quick", help="Small sizes for a smoke run (a few minutes)."),
    only: str | None = typer.Option(
        None, "--only", metavar="SECTION[,SECTION]",
        help="Only these sections (and what their ratios need): client, faust, naive, worker, replay, scale, "
        "latency, state, catchup."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the figures and measurements as JSON."),
    png: Path | None = typer.Option(None, "--png", help="Also draw the must-show figures against their lines."),
    markdown: bool = typer.Option(False, "--markdown", help="Also print the table as Markdown."),
    keep: Path | None = typer.Option(None, "--keep", help="Keep the run's home (broker data, logs) here."),
) -> None:
    """Measure the live worker, the replay, scale-out, latency, state and catch-up against baselines
    of the same run, on a Kafka broker of the bench's own (ratios, not absolute times)."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    from bench.live import BenchError
    from bench.report import figures, table, write_json, write_png
    from bench.report import markdown as as_markdown
    from bench.run import SECTIONS, BenchOptions, run_bench
    from bench.steps import Steps
    from yujing.services.lifecycle import ServiceError

    sections = SECTIONS
    if only is not None:
        asked = {s.strip() for s in only.split(",") if s.strip()}
        unknown = sorted(asked - set(SECTIONS))
        if unknown or not asked:
            fail(f"--only {only!r}: unknown section(s) {', '.join(unknown) or '(none given)'}; "
                 f"choose from {', '.join(SECTIONS)}")
        sections = tuple(s for s in SECTIONS if s in asked)
    base = BenchOptions.quick() if quick else BenchOptions()
    options = BenchOptions(
        merchants=merchants or base.merchants, days=days or base.days, live_days=live_days or base.live_days,
        partitions=partitions, repeat=repeat, seed=seed, only=sections, keep=keep,
    )
    say = lambda message: err.print(f"[dim]{message}[/dim]", highlight=False)  # noqa: E731
    try:
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                      console=err, transient=True) as progress:
            measured = run_bench(options, Steps(progress, say))
    except (BenchError, ServiceError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"the bench could not run: {exc}")
    except KeyboardInterrupt:
        fail("interrupted (its broker and workers are stopped)")
    rows = figures(measured)
    title = (f"yujing bench: {options.merchants} merchants x {options.days} days "
             f"({measured.history_events:,} records), {options.partitions} partitions, {measured.seconds:.0f} s")
    console.print(table(rows, title))
    if markdown:
        console.print(as_markdown(rows), markup=False, highlight=False, soft_wrap=True)
    try:
        if json_out is not None:
            write_json(json_out, measured, rows)
        if png is not None:
            write_png(png, rows)
    except OSError as exc:
        fail(f"cannot write the report: {exc}")
