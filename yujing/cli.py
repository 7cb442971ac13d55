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
    from yujing.broker import broker_app
    from yujing.cases.cli import cases_app
    from yujing.database import db_app
    from yujing.explain_cli import explain_command
    from yujing.simulator.cli import simulate_command
    from yujing.thresholds_cli import thresholds_app

    app.add_typer(broker_app, name="broker", help="Fetch, start, stop and inspect the local Kafka broker.")
    app.add_typer(db_app, name="db", help="Start, stop and inspect the local PostgreSQL (case service).")
    app.add_typer(cases_app, name="cases", help="The case desk: cases from warnings, API, web inbox, webhooks.")
    app.add_typer(thresholds_app, name="thresholds",
                  help="Threshold versions: validate, compare, publish to running workers, history.")
    app.command("simulate", help="Simulate merchants, consumers and complaints (files or Kafka).")(
        simulate_command
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

    from streams.agents import build_worker_app
    from streams.metrics import WorkerMetrics
    from streams.thresholds import PublicationFeed, take_in
    from yujing.kafka_io import KafkaUnavailable, PublicationReader, ensure_internal_topics
    from yujing.threshold_history import ThresholdSchedule
    from yujing.thresholds import ThresholdsError

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

    from models.calendar import SHANGHAI
    from yujing.backtest import EventFilesError, run_backtest, write_warnings
    from yujing.kafka_io import KafkaUnavailable
    from yujing.threshold_history import ThresholdSchedule
    from yujing.thresholds import ThresholdsError
    from yujing.thresholds_cli import resolve

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
            from yujing.whatif import download_topics

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

        from yujing.checkpoints import CheckpointCache
        from yujing.whatif import compare as what_if
        from yujing.whatif import count_events, describe, render_html, terminal_table

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

    from yujing.backtest import EventFilesError
    from yujing.kafka_io import KafkaUnavailable, publish_files

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
    from yujing.broker import BrokerError
    from yujing.cases.db import DatabaseUnavailable
    from yujing.database import DatabaseError
    from yujing.demo import run_demo

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


@app.command()
def evaluate(
    events: Path | None = typer.Option(None, "--events", help="Judge existing files: a directory with labels.jsonl."),
    warnings_file: Path = typer.Option(Path("warnings.jsonl"), "--warnings", help="With --events: the warnings to judge."),
    seeds: str = typer.Option("7,11,13", help="Without --events: simulate and replay these seeds."),
    merchants: int = typer.Option(1000, help="Simulated merchants per seed."),
    days: int = typer.Option(365, help="Simulated days per seed."),
    work_dir: Path = typer.Option(Path(".yujing/evaluate"), help="Where simulated files and warnings go."),
    plots: Path | None = typer.Option(None, "--plots", help="Write lead_time.png and score_trajectories.png here."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    simulate_staff: bool = typer.Option(
        False, "--simulate-staff",
        help="Without --events: replay each seed a second time with simulated case staff marking every "
        "orange/red warning of a non-collapsing merchant a false alarm (3 days later); compare.",
    ),
) -> None:
    """Recall, lead time and false alarms against the simulator's labels (simulate + backtest, or files)."""
    import orjson
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from yujing.evaluation import (
        Report,
        SeedRun,
        StaffComparison,
        combine,
        combine_staff,
        run_seed,
        staff_rows,
        write_plots,
    )
    from yujing.evaluation import evaluate as judge

    reports: dict[str, Report] = {}
    runs: list[SeedRun] = []
    staffed: dict[str, StaffComparison] = {}
    if events is not None:
        try:
            labels = [orjson.loads(line) for line in (events / "labels.jsonl").read_bytes().splitlines() if line.strip()]
            warnings = [orjson.loads(line) for line in warnings_file.read_bytes().splitlines() if line.strip()]
        except (OSError, orjson.JSONDecodeError) as exc:
            fail(f"cannot read labels or warnings: {exc}")
        reports[str(events)] = judge(labels, warnings)
    else:
        try:
            seed_list = [int(s) for s in seeds.split(",") if s.strip()]
        except ValueError:
            fail(f"--seeds must be comma-separated integers, not {seeds!r}")
        settings = get_settings()
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,} events"),
                      TimeElapsedColumn(), console=err, transient=True) as progress:
            for seed in seed_list:
                task = progress.add_task(f"seed {seed}: simulate + replay", total=None)
                run = run_seed(seed, merchants=merchants, days=days, work_dir=work_dir,
                               partitions=settings.input_partitions,
                               allowed_lateness_hours=settings.allowed_lateness_hours,
                               on_event=lambda task=task: progress.advance(task), simulate_staff=simulate_staff)
                runs.append(run)
                reports[f"seed {seed}"] = run.report
                if run.staff is not None:
                    staffed[f"seed {seed}"] = run.staff
        if len(runs) > 1:
            reports["all seeds"] = combine(run.report for run in runs)
            if staffed:
                staffed["all seeds"] = combine_staff(staffed.values())
    if plots is not None and runs:
        for path in write_plots(runs, plots):
            err.print(f"wrote {path}")
    if as_json:
        payload = {name: _report_json(r) for name, r in reports.items()}
        for name, comparison in staffed.items():
            payload[name]["simulated_staff"] = comparison.to_json()
        console.print_json(orjson.dumps(payload).decode())
        return
    for name, report in reports.items():
        _print_report(name, report)
    if staffed:
        from rich.table import Table

        for name, comparison in staffed.items():
            table = Table(title=f"{name}: simulated staff marking non-collapsing merchants' orange/red false alarms")
            for column in ("figure", "without feedback", "with feedback"):
                table.add_column(column)
            for row in staff_rows(comparison):
                table.add_row(*row)
            console.print(table)


@app.command()
def indicators(
    as_markdown: bool = typer.Option(False, "--markdown", help="The Markdown table of docs/indicators.md."),
) -> None:
    """The indicator system: code, zh/en names, formula, threshold, weight, rationale."""
    from rich.table import Table

    from yujing.indicator_docs import indicator_rows, markdown

    if as_markdown:
        sys.stdout.write(markdown())
        return
    table = Table(title="风险预警指标体系 · indicator system")
    for column in ("code", "中文", "English", "group", "threshold → saturation", "weight"):
        table.add_column(column)
    for r in indicator_rows():
        table.add_row(r["code"], r["name_zh"], r["name_en"], r["group"], r["range"], r["weight"])
    console.print(table)


def _report_json(report: object) -> dict:
    rows = [*report.scenarios.values(), report.overall]  # type: ignore[attr-defined]
    payload: dict = {
        r.scenario: {
            "kind": r.kind, "merchants": r.merchants, "caught": r.caught, "recall": r.recall, "late": r.late,
            "median_lead_days": r.median_lead_days, "p25_lead_days": r.p25_lead_days,
            "flagged": r.flagged, "false_alarm_rate": r.false_alarm_rate,
        }
        for r in rows
    }
    payload["false_alarm_rate_healthy"] = report.false_alarm_rate("healthy")  # type: ignore[attr-defined]
    payload["false_alarm_rate_lookalike"] = report.false_alarm_rate("lookalike")  # type: ignore[attr-defined]
    payload["precision"] = report.precision  # type: ignore[attr-defined]
    return payload


def _print_report(name: str, report: object) -> None:
    from rich.table import Table

    def pct(value: float | None) -> str:
        return "" if value is None else f"{value:.1%}"

    def days(value: float | None) -> str:
        return "" if value is None else f"{value:.0f}"

    table = Table(title=f"{name}: orange/red warnings against labels")
    for column in ("scenario", "kind", "merchants", "recall", "late", "median lead (d)", "p25 lead (d)", "false alarms"):
        table.add_column(column)
    for r in [*report.scenarios.values(), report.overall]:  # type: ignore[attr-defined]
        table.add_row(r.scenario, r.kind, str(r.merchants), pct(r.recall), str(r.late) if r.kind == "collapse" else "",
                      days(r.median_lead_days), days(r.p25_lead_days), pct(r.false_alarm_rate))
    console.print(table)
    console.print(f"false alarms: healthy {report.false_alarm_rate('healthy'):.1%}, "  # type: ignore[attr-defined]
                  f"look-alikes {report.false_alarm_rate('lookalike'):.1%}; precision "
                  f"{pct(report.precision)} (flagged merchants warned before their collapse)")  # type: ignore[attr-defined]


def main() -> None:
    app()


if __name__ == "__main__":
    main()
