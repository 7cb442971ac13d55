"""``yujing evaluate``: warnings judged by the referee's rules on labelled sets (files given, or
randomised simulated worlds), with the indicator evidence table (``--indicators``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import typer
from rich.console import Console
from rich.table import Table

from yujing.settings import get_settings

if TYPE_CHECKING:
    from yujing.evaluation import WorldRun

_out = Console()
_err = Console(stderr=True)
if not _out.is_terminal:
    _out.width = max(_out.width, 140)  # piped or redirected: the tables' ten columns, unfolded
DEFAULT_WORLD_SEEDS = "1,2,3"


def _fail(message: str) -> typer.Exit:
    _err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)  # one line, however long
    return typer.Exit(1)


def _int_list(option: str, text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        values = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise _fail(f"{option} must be comma-separated integers, not {text!r}") from None
    if not values:
        raise _fail(f"{option} names no seed")
    return values


def evaluate_command(
    events: Path | None = typer.Option(
        None, "--events", help="Judge a labelled set of files instead of simulating: a directory with the input "
        "files and labels.json (the referee's layout) or labels.jsonl (the simulator's)."),
    warnings_file: Path | None = typer.Option(
        None, "--warnings", help="With --events: the warnings to judge (default DIR/warnings.jsonl)."),
    labels: Path | None = typer.Option(
        None, "--labels", help="With --events: the labels file (default labels.json, else labels.jsonl, in DIR)."),
    world_seeds: str | None = typer.Option(
        None, "--world-seeds", help=f"Without --events: randomised worlds to simulate, replay and judge (default "
        f"{DEFAULT_WORLD_SEEDS}). World seed w is simulated with population seed 100 + w, unless --seeds gives "
        "one seed per world seed."),
    seeds: str | None = typer.Option(
        None, "--seeds", help="Population seeds. Alone: the classic world (the simulator without a world seed) "
        "with each seed; with --world-seeds: paired one to one."),
    merchants: int = typer.Option(400, help="Simulated merchants per world."),
    days: int = typer.Option(300, help="Simulated days per world."),
    work_dir: Path = typer.Option(Path(".yujing/evaluate"), help="Where simulated files and warnings go."),
    plots: Path | None = typer.Option(None, "--plots", help="Write lead_time.png and score_trajectories.png here."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    simulate_staff: bool = typer.Option(
        False, "--simulate-staff",
        help="Without --events: replay each world a second time with simulated case staff marking every "
        "orange/red warning of a non-collapsing merchant a false alarm (3 days later); compare."),
    indicators: bool = typer.Option(
        False, "--indicators", help="Replay with every scored merchant-day recorded and show the indicator "
        "evidence table (per reading: share of collapses it fires on before the collapse, of healthy merchants, "
        "the worst look-alike kind, lift, median lead), per world and pooled. With --events the replay's own "
        "warnings are judged."),
    fire_at: float = typer.Option(
        0.0, "--fire-at", help="With --indicators: a reading fires when its score exceeds this (0: above its "
        "threshold)."),
    record: Path | None = typer.Option(
        None, "--record", metavar="FILE.npz", help="With --indicators: keep the recording (one set: FILE; "
        "several: FILE-<world>.npz each), for engine.recording.load_days."),
) -> None:
    """Recall, lead time, late detections and false alarms by the referee's rules (shared/pilot/score.py):
    randomised simulated worlds (simulate + replay + judge), or any labelled files; --indicators adds the
    indicator evidence table."""
    if record is not None and not indicators:
        raise _fail("--record needs --indicators (it keeps the replay's recording)")
    if not 0.0 <= fire_at < 1.0:
        raise _fail(f"--fire-at must be in [0, 1), not {fire_at}")
    world_list, seed_list = _int_list("--world-seeds", world_seeds), _int_list("--seeds", seeds)
    if events is not None:
        if world_list is not None or seed_list is not None or simulate_staff:
            raise _fail("--events judges the files given; --world-seeds, --seeds and --simulate-staff are for "
                        "simulated worlds")
        reports, runs = _labelled_files(events, warnings_file, labels, indicators=indicators)
    else:
        if labels is not None or warnings_file is not None:
            raise _fail("--labels and --warnings go with --events DIR")
        reports, runs = {}, _simulated_worlds(world_list, seed_list, merchants=merchants, days=days,
                                              work_dir=work_dir, record=indicators, simulate_staff=simulate_staff)
    _show(reports, runs, record=record, plots=plots, indicators=indicators, fire_at=fire_at, as_json=as_json)


def _labelled_files(events: Path, warnings_file: Path | None, labels: Path | None, *,
                    indicators: bool) -> tuple[dict[str, object], list[WorldRun]]:
    """``--events``: the files' warnings judged (or, with --indicators, a replay of the files)."""
    from yujing.evaluation import World

    if not events.is_dir():
        raise _fail(f"events directory not found: {events}")
    if labels is not None and not labels.is_file():
        raise _fail(f"labels file not found: {labels}")
    world = World(str(events), events, None, labels)
    if indicators:
        if warnings_file is not None:
            raise _fail("--indicators replays the files and judges the replay's own warnings; leave out "
                        "--warnings (or judge that file without --indicators)")
        return {}, _run_all([world], record=True, simulate_staff=False)
    return {world.name: _judge_files(world, warnings_file or events / "warnings.jsonl")}, []


def _simulated_worlds(world_list: list[int] | None, seed_list: list[int] | None, *, merchants: int, days: int,
                      work_dir: Path, record: bool, simulate_staff: bool) -> list[WorldRun]:
    """The randomised worlds planned, simulated and replayed (the default world seeds if none given)."""
    from yujing.evaluation import plan_worlds

    if world_list is None and seed_list is None:
        world_list = _int_list("--world-seeds", DEFAULT_WORLD_SEEDS)
    try:
        worlds = plan_worlds(world_list, seed_list, merchants=merchants, days=days, work_dir=work_dir)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    return _run_all(worlds, record=record, simulate_staff=simulate_staff)


def _show(reports: dict[str, object], runs: list[WorldRun], *, record: Path | None, plots: Path | None,
          indicators: bool, fire_at: float, as_json: bool) -> None:
    """Each report (pooled too when several runs), with its indicator evidence and simulated staff, as
    tables or JSON; the recordings and plots written."""
    from yujing.evaluation import combine, combine_staff, write_plots

    for run in runs:
        reports[run.name] = run.report
    if len(runs) > 1:
        reports["pooled"] = combine(run.report for run in runs)
    if record is not None:
        _save_recordings(runs, record)
    if plots is not None and runs:
        for path in write_plots(runs, plots):
            _err.print(f"wrote {path}")
    evidence = _evidence(runs, fire_at) if indicators else {}
    staffed = {run.name: run.staff for run in runs if run.staff is not None}
    if len(staffed) > 1:
        staffed["pooled"] = combine_staff(staffed.values())
    if as_json:
        _out.print_json(orjson.dumps(_payload(reports, runs, evidence, staffed)).decode())
        return
    for name, report in reports.items():
        _print_report(name, report)
        if name in evidence:
            _print_evidence(name, evidence[name], fire_at)
        if name in staffed:
            _print_staff(name, staffed[name])


def _judge_files(world: object, warnings_path: Path) -> object:
    from engine.judging import evaluate, read_warnings
    from yujing.evaluation import world_labels

    try:
        labelled = world_labels(world)  # type: ignore[arg-type]
    except ValueError as exc:
        raise _fail(str(exc)) from None
    if not warnings_path.is_file():
        raise _fail(f"warnings file not found: {warnings_path} (replay first: yujing backtest --events DIR --out "
                    "FILE, or add --indicators to replay now)")
    try:
        warnings = read_warnings(warnings_path)
    except OSError as exc:
        raise _fail(f"cannot read {warnings_path}: {exc.strerror or exc}") from None
    return evaluate(labelled, warnings)


def _run_all(worlds: list, *, record: bool, simulate_staff: bool) -> list:
    """Replay each world under a progress bar; one-line errors."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from alerts.threshold_history import ThresholdSchedule
    from alerts.thresholds import ThresholdsError
    from engine.replay import EventFilesError
    from yujing.evaluation import run_world

    settings = get_settings()
    try:
        schedule = ThresholdSchedule(settings.base_thresholds())  # what `yujing backtest` replays with
    except ThresholdsError as exc:
        raise _fail(f"YUJING_THRESHOLDS_FILE {settings.thresholds_file}: " + "; ".join(exc.problems)) from None
    except OSError as exc:
        raise _fail(f"cannot read YUJING_THRESHOLDS_FILE {settings.thresholds_file}: {exc.strerror or exc}") from None
    runs = []
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("records"),
                  TimeElapsedColumn(), console=_err, transient=True) as progress:
        state = {"task": None, "count": 0}

        def phase(description: str, total: int) -> None:
            if state["task"] is not None:
                progress.remove_task(state["task"])  # type: ignore[arg-type]
            state["task"], state["count"] = progress.add_task(description, total=total or None), 0

        def tick() -> None:
            state["count"] += 1  # type: ignore[operator]
            if state["count"] % 5000 == 0:  # type: ignore[operator]
                progress.update(state["task"], completed=state["count"])  # type: ignore[arg-type]

        for world in worlds:
            try:
                runs.append(run_world(
                    world, partitions=settings.input_partitions, allowed_lateness_hours=settings.allowed_lateness_hours,
                    schedule=schedule, record=record, simulate_staff=simulate_staff, on_event=tick, on_phase=phase))
            except (ValueError, EventFilesError) as exc:
                raise _fail(str(exc)) from None
            except OSError as exc:
                raise _fail(f"{world.name}: {exc.strerror or exc}: {getattr(exc, 'filename', '') or ''}") from None
    return runs


def _save_recordings(runs: list, record: Path) -> None:
    from engine.recording import save_days

    for run in runs:
        target = record if len(runs) == 1 else record.with_name(f"{record.stem}-{run.world.events_dir.name}.npz")
        try:
            save_days(run.days, target)
        except OSError as exc:
            raise _fail(f"cannot write {target}: {exc.strerror or exc}") from None
        _err.print(f"wrote {target} ({run.days.rows:,} merchant-days)")


def _evidence(runs: list, fire_at: float) -> dict[str, list]:
    from yujing.evaluation import evidence

    tables = {run.name: evidence([run], fire_at) for run in runs}
    if len(runs) > 1:
        tables["pooled"] = evidence(runs, fire_at)
    return tables


def _payload(reports: dict, runs: list, evidence: dict, staffed: dict) -> dict:
    worlds = {run.name: run.world for run in runs}
    payload: dict = {}
    for name, report in reports.items():
        entry: dict = {}
        world = worlds.get(name)
        if world is not None:
            entry.update(events_dir=str(world.events_dir), world_seed=world.world_seed, seed=world.seed)
        entry.update(report.summary())
        if name in evidence:
            entry["indicator_evidence"] = [row.to_json() for row in evidence[name]]
        if name in staffed:
            entry["simulated_staff"] = staffed[name].to_json()
        payload[name] = entry
    return payload


def _pct(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}%}"


def _days(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _print_report(name: str, report: object) -> None:
    s = report.summary()  # type: ignore[attr-defined]
    table = Table(title=f"{name}: orange/red alarms against labels (the referee's rules)")
    for column in ("kind", "group", "merchants", "detected", "late", "missed", "any level", "false alarms",
                   "median lead (d)", "p25 lead (d)"):
        left = column in ("kind", "group")
        table.add_column(column, justify="left" if left else "right", overflow="fold" if left else "ellipsis")
    for kind, r in s["per_kind"].items():
        collapse = r["group"] == "collapse"
        table.add_row(kind, r["group"], str(r["n"]), *(
            (str(r["detected"]), str(r["late"]), str(r["missed"]), str(r["any_level"]), "",
             _days(r["median_lead_days"]), _days(r["p25_lead_days"])) if collapse else
            ("", "", "", "", f"{r['false_alarms']} ({r['false_alarms'] / r['n']:.0%})", "", "")))
    _out.print(table)
    lines = [
        f"recall (orange/red before collapse)  {_pct(s['recall'])} ({s['n_detected']}/{s['n_collapse']}); "
        f"lead days median {_days(s['median_lead_days'])}, p25 {_days(s['p25_lead_days'])}",
        f"late (first alarm 0-{s['late_days']} d after)    {_pct(s['late_detection_rate'])} ({s['n_late']}); "
        f"recall at any level {_pct(s['recall_any_level'])}",
        f"false alarms, healthy                {_pct(s['false_alarm_rate_healthy'])} of {s['n_healthy']} "
        f"(quirky healthy: {_pct(s['false_alarm_rate_healthy_quirky'])})",
        "false alarms, look-alikes            " + (" ".join(
            f"{k} {_pct(v)}" for k, v in s["false_alarm_rate_by_trap"].items()) or "(none labelled)"),
    ]
    if s["false_alarms_by_quirk"]:
        lines.append("false alarms by quirk                " + " ".join(
            f"{k} {v}" for k, v in s["false_alarms_by_quirk"].items()))
    lines.append(f"precision (by merchant)              {_pct(s['precision'])} ({s['n_alarmed_merchants']} alarmed "
                 f"merchants, {s['unknown_merchants']} warned merchants not in the labels)")
    lines.append(f"warnings judged {s['n_warnings']:,}" + (
        f", {s['n_unreadable_warnings']} unreadable left out" if s["n_unreadable_warnings"] else ""))
    for line in lines:
        _out.print(line, highlight=False, soft_wrap=True)


def _print_evidence(name: str, rows: list, fire_at: float) -> None:
    from engine.indicator_evidence import render_rows

    fires = "score > 0 (above threshold)" if fire_at == 0 else f"score > {fire_at:g}"
    table = Table(title=f"{name}: indicator evidence (fires = {fires}; collapses: 180 days before the collapse; "
                  "others: whole period)")
    for column in ("reading", "collapses", "healthy", "worst look-alike", "lift", "median lead (d)"):
        left = column in ("reading", "worst look-alike")
        table.add_column(column, justify="left" if left else "right", overflow="fold" if left else "ellipsis")
    for cells in render_rows(rows):
        table.add_row(*cells)
    _out.print(table)


def _print_staff(name: str, comparison: object) -> None:
    from yujing.evaluation import staff_rows

    table = Table(title=f"{name}: simulated staff marking non-collapsing merchants' orange/red false alarms")
    for column in ("figure", "without feedback", "with feedback"):
        table.add_column(column)
    for row in staff_rows(comparison):  # type: ignore[arg-type]
        table.add_row(*row)
    _out.print(table)
