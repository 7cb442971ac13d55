"""``yujing backtest``: contract JSONL files (or the retained input topics) replayed through the
live scoring core without a worker; with ``--compare``, a what-if of two threshold sets."""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from yujing.cli.output import console, err, fail
from yujing.settings import Settings, get_settings

if TYPE_CHECKING:
    from alerts.thresholds import ThresholdSet
    from engine.whatif import WhatIf


def backtest_command(
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
    workers: int | None = typer.Option(
        None, "--workers", min=0, help="Processes replaying partitions in parallel (0: one per core, at most "
        "the partitions; default YUJING_REPLAY_WORKERS). The warnings are the same with any number."),
) -> None:
    """Replay contract JSONL files (or the retained topics) through the live scoring core, without a
    worker; with --compare, a what-if of two threshold sets side by side."""
    import tempfile
    from contextlib import ExitStack

    from yujing.cli.thresholds import resolve

    settings = get_settings()
    if events is None and not from_kafka:
        fail("give --events DIR (contract JSONL files) or --from-kafka (the retained input topics)")
    if events is not None and from_kafka:
        fail("--events and --from-kafka exclude each other")
    if report is not None and compare is None:
        fail("--report needs --compare SOURCE (the set to compare with)")
    window = _window(since, until)
    replay_set, replay_label = _replay_set(thresholds, settings)
    other = resolve(compare, settings) if compare is not None else None
    if labels is not None and not labels.is_file():
        fail(f"labels file not found: {labels}")

    started = time.perf_counter()
    with ExitStack() as stack:
        if from_kafka:
            events = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="yujing-backtest-")))
            _read_retained_topics(settings, events)
        assert events is not None
        if other is None:
            _replay(events, out, settings, replay_set, replay_label, window, started,
                    settings.replay_workers if workers is None else workers)
            return
        if labels is None and (events / "labels.jsonl").is_file():
            labels = events / "labels.jsonl"
        _what_if(events, settings, other, (replay_set, replay_label), window, labels=labels,
                 report=report or Path("whatif.html"), fresh=fresh, from_kafka=from_kafka)


def _window(since: str | None, until: str | None) -> tuple[date | None, date | None]:
    """``--since`` and ``--until`` as days (None: open), checked."""
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
    return first, last


def _replay_set(thresholds: str | None, settings: Settings) -> tuple[ThresholdSet, str]:
    """The set to replay with (``--thresholds``, else the settings' base set) and its label."""
    from alerts.thresholds import ThresholdsError
    from yujing.cli.thresholds import resolve

    try:
        if thresholds is not None:
            return resolve(thresholds, settings)
        label = str(settings.thresholds_file) if settings.thresholds_file else "builtin (base set)"
        return settings.base_thresholds(), label
    except ThresholdsError as exc:
        fail(f"YUJING_THRESHOLDS_FILE {settings.thresholds_file}: " + "; ".join(exc.problems))
    except OSError as exc:
        fail(f"cannot read YUJING_THRESHOLDS_FILE {settings.thresholds_file}: {exc.strerror or exc}")


def _read_retained_topics(settings: Settings, events: Path) -> None:
    """``--from-kafka``: the retained input topics into ``events`` as contract files."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from streams.clients import KafkaUnavailable
    from streams.retained import DEADLETTER_FILE, download_topics

    try:
        with Progress(TextColumn("[bold]reading the retained topics"), BarColumn(),
                      TextColumn("{task.completed:,} records"), TimeElapsedColumn(),
                      console=err, transient=True) as progress:
            task = progress.add_task("topics", total=None)
            read = download_topics(settings, events, on_record=lambda: progress.advance(task))
    except KafkaUnavailable as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write the topics to {events}: {exc}")
    rejected = read.pop(DEADLETTER_FILE)
    err.print(", ".join(f"{name}: {n:,}" for name, n in read.items()) + " records read"
              + (f"; {rejected:,} the worker dead-letters, in {events / DEADLETTER_FILE}" if rejected else ""),
              highlight=False)


def _replay(events: Path, out: Path, settings: Settings, replay_set: ThresholdSet, replay_label: str,
            window: tuple[date | None, date | None], started: float, workers: int) -> None:
    """One replay (its partitions in ``workers`` processes, see :mod:`engine.parallel_replay`);
    the warnings raised in the window to ``out``, in a fixed order, a summary to the terminal."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from alerts.threshold_history import ThresholdSchedule
    from engine.parallel_replay import (
        ReplayWorkerError,
        merged_order,
        replay_workers,
        run_parallel_backtest,
    )
    from engine.replay import EventFilesError, run_backtest, write_warnings

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

            processes = replay_workers(workers, settings.input_partitions)
            options = {"partitions": settings.input_partitions, "schedule": ThresholdSchedule(replay_set),
                       "allowed_lateness": timedelta(hours=settings.allowed_lateness_hours),
                       "online_learning": settings.online_learning}
            if processes > 1:
                result = run_parallel_backtest(events, workers=processes, **options,
                                               on_progress=lambda read: progress.update(task, completed=read))
            else:
                result = merged_order(run_backtest(events, on_event=tick, **options))
    except EventFilesError as exc:
        fail(str(exc))
    except ReplayWorkerError as exc:
        fail(f"a replay worker failed: {str(exc).strip().splitlines()[-1]}")
    except OSError as exc:
        fail(f"cannot read events: {exc}")
    kept = [w for w in result.warnings if _in_window(w.raised_at, window)]
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


def _in_window(moment: datetime, window: tuple[date | None, date | None]) -> bool:
    from models.calendar import SHANGHAI

    first, last = window
    day = moment.astimezone(SHANGHAI).date()
    return (first is None or day >= first) and (last is None or day <= last)


def _what_if(events: Path, settings: Settings, current: tuple[ThresholdSet, str],
             candidate: tuple[ThresholdSet, str], window: tuple[date | None, date | None], *,
             labels: Path | None, report: Path, fresh: bool, from_kafka: bool) -> None:
    """``--compare``: both sets replayed side by side; a terminal table and the HTML report."""
    from concurrent.futures.process import BrokenProcessPool

    import orjson
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from engine.checkpoints import CheckpointCache
    from engine.replay import EventFilesError
    from engine.whatif_replay import compare, count_events

    (current_set, current_label), (replay_set, replay_label) = current, candidate
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

            result = compare(
                events, current_set, replay_set,
                partitions=settings.input_partitions,
                allowed_lateness=timedelta(hours=settings.allowed_lateness_hours),
                since=window[0], until=window[1], labels=labels,
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
        result.source = f"the retained input topics at {settings.bootstrap}"
    _show_what_if(result, report)


def _show_what_if(result: WhatIf, report: Path) -> None:
    """The comparison in the terminal (the first ten merchants each way) and as the HTML report."""
    from yujing.whatif_report import describe, render_html, terminal_table

    console.print(terminal_table(result))
    for title, items in (("newly flagged", result.newly_flagged), ("no longer flagged", result.no_longer_flagged)):
        console.print(f"[bold]{title}: {len(items)}[/bold]")
        for item in items[:10]:
            console.print(f"  {describe(item)}", highlight=False, markup=False)
        if len(items) > 10:
            console.print(f"  … and {len(items) - 10} more in the report")
    try:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(render_html(result), encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {report}: {exc}")
    console.print(f"{result.timing}; report: {report}")

