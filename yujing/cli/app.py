"""The ``yujing`` command line (typer). Errors are one clear line, never a traceback."""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from pathlib import Path

import typer
from rich.console import Console

from yujing.settings import get_settings

app = typer.Typer(
    help="yujing 预警: early warning of prepaid-card collapses (beauty, hairdressing, fitness).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err = Console(stderr=True)


def fail(message: str) -> None:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(1)


def _register_parts() -> None:
    from yujing.cli.cases import cases_app
    from yujing.cli.explain import explain_command
    from yujing.cli.simulate import simulate_command
    from yujing.cli.thresholds import thresholds_app
    from yujing.cli.train import train_command
    from yujing.services.broker import broker_app
    from yujing.services.database import db_app

    app.add_typer(broker_app, name="broker", help="Fetch, start, stop and inspect the local Kafka broker.")
    app.add_typer(db_app, name="db", help="Start, stop and inspect the local PostgreSQL (case service).")
    app.add_typer(cases_app, name="cases", help="The case desk: cases from warnings, API, web inbox, webhooks.")
    app.add_typer(thresholds_app, name="thresholds",
                  help="Threshold versions: validate, compare, publish to running workers, history.")
    app.command("simulate", help="Simulate merchants, consumers and complaints (files or Kafka).")(
        simulate_command
    )
    app.command("train", help="Learn the fusion's weights and level bands from randomised labelled worlds.")(
        train_command
    )
    app.command("explain", help="One merchant's timeline: activity, readings, score, levels, warnings (text + PNG).")(
        explain_command
    )


_register_parts()


@app.command()
def worker(
    loglevel: str = typer.Option("info", help="Log level of the worker."),
) -> None:
    """Run the Faust scoring worker: input topics in, warnings out (Ctrl-C stops it cleanly)."""
    from faust.worker import Worker
    from prometheus_client import start_http_server

    from alerts.threshold_history import ThresholdSchedule
    from alerts.thresholds import ThresholdsError
    from streams.agents import build_worker_app
    from streams.clients import KafkaUnavailable, PublicationReader, ensure_internal_topics
    from streams.metrics import WorkerMetrics
    from streams.threshold_feed import PublicationFeed, take_in

    settings = get_settings()
    try:
        ensure_internal_topics(settings)
    except KafkaUnavailable as exc:
        fail(str(exc))
    metrics = WorkerMetrics()  # the default registry: with the process_* metrics
    if settings.metrics_port:
        try:
            start_http_server(settings.metrics_port, addr=settings.metrics_host)
        except OSError as exc:
            fail(f"cannot serve metrics on {settings.metrics_host}:{settings.metrics_port}: {exc.strerror}"
                 " (set YUJING_METRICS_PORT, 0 turns it off)")
    # Every version published so far, before the first event is scored; later ones by the feed.
    try:
        schedule = ThresholdSchedule(settings.base_thresholds())
        reader = PublicationReader(settings)
        take_in(schedule, reader.read_all(), metrics)
    except ThresholdsError as exc:
        fail(f"YUJING_THRESHOLDS_FILE {settings.thresholds_file}: {str(exc).replace(chr(10), '; ')}")
    except KafkaUnavailable as exc:
        fail(str(exc))
    feed = PublicationFeed(reader)
    feed.start()
    faust_app = build_worker_app(settings, metrics, schedule, feed)
    # Faust's Worker parses no arguments of ours; give it a clean argv.
    sys.argv = [sys.argv[0]]
    Worker(faust_app, loglevel=loglevel).execute_from_commandline()


@app.command()
def backtest(
    events: Path | None = typer.Option(
        None, "--events", help="Directory with contract JSONL files (or --from-kafka)."),
    out: Path = typer.Option(Path("warnings.jsonl"), "--out", help="Where to write warnings (without --compare)."),
    thresholds: str | None = typer.Option(
        None, "--thresholds", metavar="FILE",
        help="Thresholds file to replay with (also builtin, current or a version id); default: the settings' "
        "base set (YUJING_THRESHOLDS_FILE, else built-in)."),
    compare: str | None = typer.Option(
        None, "--compare", metavar="SOURCE",
        help="What-if: also replay with SOURCE (builtin, current, a version id t-…, or a file) and compare the "
        "two side by side (terminal table and HTML report)."),
    report: Path | None = typer.Option(
        None, "--report", help="With --compare: where to write the HTML report (default whatif.html)."),
    since: str | None = typer.Option(
        None, "--since", metavar="DATE",
        help="First event day (YYYY-MM-DD, Shanghai) whose warnings count; the replay still starts at the "
        "first event, so state is warm. With --compare the candidate applies from this day on, and the "
        "history before it is replayed once and kept (YUJING_CACHE_DIR), so the next what-if replays the "
        "window only."),
    until: str | None = typer.Option(None, "--until", metavar="DATE", help="Last event day whose warnings count."),
    labels: Path | None = typer.Option(
        None, "--labels",
        help="With --compare: simulator labels for recall, lead time and false alarms (default: labels.jsonl "
        "in --events, if there)."),
    from_kafka: bool = typer.Option(
        False, "--from-kafka", help="Replay the retained input topics (read into a temporary directory) instead "
        "of --events."),
    fresh: bool = typer.Option(
        False, "--fresh", help="With --compare --since: replay the history before the window again, even if a "
        "checkpoint of it is kept."),
) -> None:
    """Replay contract JSONL files (or the retained topics) through the live scoring core, without a
    worker; with --compare, a what-if of two threshold sets side by side."""
    import tempfile
    from concurrent.futures.process import BrokenProcessPool
    from contextlib import ExitStack
    from datetime import date, datetime

    import orjson
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from alerts.threshold_history import ThresholdSchedule
    from alerts.thresholds import ThresholdsError
    from engine.replay import EventFilesError, run_backtest, write_warnings
    from models.calendar import SHANGHAI
    from streams.clients import KafkaUnavailable
    from yujing.cli.thresholds import resolve

    settings = get_settings()
    if events is None and not from_kafka:
        fail("give --events DIR (contract JSONL files) or --from-kafka (the retained input topics)")
    if events is not None and from_kafka:
        fail("--events and --from-kafka exclude each other")
    if report is not None and compare is None:
        fail("--report needs --compare SOURCE (the set to compare with)")
    window: dict[str, date | None] = {"since": None, "until": None}
    for name, text in (("since", since), ("until", until)):
        if text is not None:
            try:
                window[name] = date.fromisoformat(text)
            except ValueError:
                fail(f"--{name} {text!r}: not a date (YYYY-MM-DD)")
    first, last = window["since"], window["until"]
    if first is not None and last is not None and first > last:
        fail(f"--since {first} is after --until {last}")
    try:
        if thresholds is not None:
            replay_set, replay_label = resolve(thresholds, settings)
        else:
            replay_set = settings.base_thresholds()
            replay_label = str(settings.thresholds_file) if settings.thresholds_file else "builtin (base set)"
    except ThresholdsError as exc:
        fail(f"YUJING_THRESHOLDS_FILE {settings.thresholds_file}: " + "; ".join(exc.problems))
    except OSError as exc:
        fail(f"cannot read YUJING_THRESHOLDS_FILE {settings.thresholds_file}: {exc.strerror or exc}")
    other = resolve(compare, settings) if compare is not None else None
    if labels is not None and not labels.is_file():
        fail(f"labels file not found: {labels}")

    def in_window(moment: datetime) -> bool:
        day = moment.astimezone(SHANGHAI).date()
        return (first is None or day >= first) and (last is None or day <= last)

    started = time.perf_counter()
    with ExitStack() as stack:
        if from_kafka:
            from streams.retained import download_topics

            events = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="yujing-backtest-")))
            try:
                with Progress(TextColumn("[bold]reading the retained topics"), BarColumn(),
                              TextColumn("{task.completed:,} records"), TimeElapsedColumn(),
                              console=err, transient=True) as progress:
                    task = progress.add_task("topics", total=None)
                    read = download_topics(settings, events, on_record=lambda: progress.advance(task))
            except KafkaUnavailable as exc:
                fail(str(exc))
            except orjson.JSONDecodeError as exc:
                fail(f"a record on the input topics is not JSON: {exc}")
            except OSError as exc:
                fail(f"cannot write the topics to {events}: {exc}")
            err.print(", ".join(f"{name}: {n:,}" for name, n in read.items()) + " records read", highlight=False)
        assert events is not None
        if other is None:
            try:
                with Progress(
                    TextColumn("[bold]replaying"), BarColumn(), TextColumn("{task.completed:,} events"),
                    TimeElapsedColumn(), console=err, transient=True,
                ) as progress:
                    task = progress.add_task("events", total=None)
                    counter = [0]

                    def tick() -> None:
                        counter[0] += 1
                        if counter[0] % 5000 == 0:
                            progress.update(task, completed=counter[0])

                    result = run_backtest(
                        events,
                        partitions=settings.input_partitions,
                        allowed_lateness=timedelta(hours=settings.allowed_lateness_hours),
                        schedule=ThresholdSchedule(replay_set),
                        on_event=tick,
                        online_learning=settings.online_learning,
                    )
            except EventFilesError as exc:
                fail(str(exc))
            except OSError as exc:
                fail(f"cannot read events: {exc}")
            kept = [w for w in result.warnings if in_window(w.raised_at)]
            try:
                write_warnings(kept, out)
            except OSError as exc:
                fail(f"cannot write {out}: {exc}")
            by_level: dict[str, int] = {}
            for w in kept:
                by_level[f"{w.transition}:{w.level}"] = by_level.get(f"{w.transition}:{w.level}", 0) + 1
            console.print(
                f"{result.events:,} events ({result.duplicates} duplicates, {result.late} late, "
                f"{len(result.deadletters)} dead-lettered) -> {len(kept)} warnings in {out} "
                f"(thresholds {replay_set.version}, {replay_label}; {time.perf_counter() - started:.1f} s)"
            )
            console.print("  " + ", ".join(f"{k}={v}" for k, v in sorted(by_level.items())))
            return

        from engine.checkpoints import CheckpointCache
        from engine.whatif_replay import compare as what_if
        from engine.whatif_replay import count_events
        from yujing.whatif_report import describe, render_html, terminal_table

        current_set, current_label = other
        if labels is None and (events / "labels.jsonl").is_file():
            labels = events / "labels.jsonl"
        report = report or Path("whatif.html")
        try:
            total = count_events(events) if events.is_dir() else None
            with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TextColumn("events"), TimeElapsedColumn(), console=err, transient=True) as progress:
                tasks = [progress.add_task(f"replay with {current_set.version} (current)", total=total),
                         progress.add_task(f"replay with {replay_set.version} (candidate)", total=total)]
                if current_set.version == replay_set.version:
                    progress.remove_task(tasks.pop())

                def advance(done: list[int]) -> None:
                    for task_id, count in zip(tasks, done, strict=False):
                        progress.update(task_id, completed=count)

                result_whatif = what_if(
                    events, current_set, replay_set,
                    partitions=settings.input_partitions,
                    allowed_lateness=timedelta(hours=settings.allowed_lateness_hours),
                    since=first, until=last, labels=labels,
                    current_label=current_label, candidate_label=replay_label, on_progress=advance,
                    cache=None if fresh else CheckpointCache(settings.cache_dir / "checkpoints"),
                )
        except (EventFilesError, BrokenProcessPool) as exc:
            fail(str(exc) or "a replay process stopped unexpectedly")
        except OSError as exc:
            fail(f"cannot read events or labels: {exc}")
        except orjson.JSONDecodeError as exc:
            fail(f"cannot read labels {labels}: {exc}")
        if from_kafka:
            result_whatif.source = f"the retained input topics at {settings.bootstrap}"
        console.print(terminal_table(result_whatif))
        for title, items in (("newly flagged", result_whatif.newly_flagged),
                             ("no longer flagged", result_whatif.no_longer_flagged)):
            console.print(f"[bold]{title}: {len(items)}[/bold]")
            for item in items[:10]:
                console.print(f"  {describe(item)}", highlight=False, markup=False)
            if len(items) > 10:
                console.print(f"  … and {len(items) - 10} more in the report")
        try:
            report.parent.mkdir(parents=True, exist_ok=True)
            report.write_text(render_html(result_whatif), encoding="utf-8")
        except OSError as exc:
            fail(f"cannot write {report}: {exc}")
        console.print(f"{result_whatif.timing}; report: {report}")


@app.command()
def publish(
    events: Path = typer.Option(..., "--events", help="Directory with contract JSONL files."),
) -> None:
    """Publish contract JSONL files to the input topics in event-time order (a replay)."""
    from rich.progress import Progress

    from engine.replay import EventFilesError
    from streams.clients import KafkaUnavailable, publish_files

    settings = get_settings()
    try:
        with Progress(console=err, transient=True) as progress:
            task = progress.add_task("publishing", total=None)
            counts = publish_files(events, settings, on_record=lambda: progress.advance(task))
    except (EventFilesError, KafkaUnavailable) as exc:
        fail(str(exc))
    console.print(", ".join(f"{topic}: {n:,}" for topic, n in counts.items()))


@app.command()
def demo(
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


def _register_evaluate() -> None:
    from yujing.cli.evaluate import evaluate_command

    app.command("evaluate", help="Recall, lead time and false alarms by the referee's rules, on randomised simulated "
                "worlds or any labelled files; --indicators: the indicator evidence table.")(evaluate_command)


_register_evaluate()


@app.command()
def indicators(
    as_markdown: bool = typer.Option(False, "--markdown", help="The Markdown table of docs/indicators.md."),
) -> None:
    """The indicator system: code, zh/en names, formula, threshold, weight, rationale."""
    from rich.table import Table

    from models.indicator_docs import indicator_rows, markdown

    if as_markdown:
        sys.stdout.write(markdown())
        return
    table = Table(title="风险预警指标体系 · indicator system")
    for column in ("code", "中文", "English", "group", "threshold → saturation", "weight"):
        table.add_column(column)
    for r in indicator_rows():
        table.add_row(r["code"], r["name_zh"], r["name_en"], r["group"], r["range"], r["weight"])
    console.print(table)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
