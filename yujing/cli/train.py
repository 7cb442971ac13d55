"""``yujing train``: learn the fusion and its level bands from randomised simulated worlds.

Each world (``--world-seeds``) is simulated with its own drawn assumptions (docs/worlds.md),
replayed with the live scoring core and recorded; the fusion is checked by leaving one world out
at a time (fit on the others, judge the one left out), then fitted on all of them. ``--write``
replaces ``models/learned.py`` (the built-in weights and cut-offs); nothing else changes until
the thresholds file is regenerated (``python -m alerts.thresholds --write ...``).

The fit's own settings (``--horizon``, ``--l2``, ``--cap``, ``--after-days``) and readings held
out of it (``--hold``) are options, so what each is worth can be measured the same way; ``--judge``
adds labelled sets the fit never saw (the pilot, say), judged by the fusion learned on all worlds.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from engine.training import AFTER_DAYS, CAP, L2
from models.fusion import HORIZON_DAYS

if TYPE_CHECKING:
    from engine.training import AlarmFigures, Fit, FitOptions, HeldOut, Reliability, World

console = Console()
err = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)  # one line, however long
    return typer.Exit(1)


def parse_seeds(text: str) -> list[int]:
    """``1-3,7`` -> [1, 2, 3, 7].

    >>> parse_seeds("1-3,7")
    [1, 2, 3, 7]
    """
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        low, _, high = part.partition("-")
        seeds.extend(range(int(low), int(high or low) + 1))
    return seeds


#: The packages whose code decides a recording's readings (the scoring core, its levels and the
#: records it reads): a recording made by other code is made again.
SCORING_PACKAGES = ("models", "engine", "alerts", "contract")
#: The code that decides a simulated world's files: a world simulated by other code is simulated
#: again (its assumptions and behaviours change with it).
SIMULATOR_PACKAGES = ("yujing/simulator",)
SIMULATED_BY = "simulated_by"  # the file beside a world's events naming the simulator code


def source_fingerprint(packages: tuple[str, ...], root: Path | None = None) -> str:
    """A digest of every source file of ``packages`` (names and bytes, in order).

    >>> len(source_fingerprint(SIMULATOR_PACKAGES)), scoring_fingerprint() == scoring_fingerprint()
    (16, True)
    """
    import hashlib

    base = root or Path(__file__).resolve().parents[2]
    digest = hashlib.sha256()
    for package in packages:
        for source in sorted((base / package).rglob("*.py")):
            digest.update(source.relative_to(base).as_posix().encode())
            digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def scoring_fingerprint(root: Path | None = None) -> str:
    """A digest of every source file of :data:`SCORING_PACKAGES`."""
    return source_fingerprint(SCORING_PACKAGES, root)


def simulated_by(events: Path) -> str:
    """The simulator fingerprint a world's files were made by ("" when unknown)."""
    marker = events / SIMULATED_BY
    return marker.read_text(encoding="utf-8").strip() if marker.is_file() else ""


def recording_is_current(recording: Path, fingerprint: str) -> bool:
    """Whether ``recording`` exists and was made by the scoring code of ``fingerprint``."""
    from engine.recording import recorded_by

    return recording.is_file() and recorded_by(recording) == fingerprint


def prepare_world(world_seed: int, merchants: int, days: int, work_dir: Path, fresh: bool,
                  partitions: int, lateness_hours: float) -> int:
    """Simulate (once per simulator code) and record (once per scoring code) world
    ``world_seed``; population seed 100 + world seed.

    Runs in a worker process (one world per process); returns the world seed when done."""
    from engine.recording import record_replay, save_days
    from yujing.simulator import SimulationConfig, simulate

    events = work_dir / f"world-{world_seed}"
    recording = work_dir / f"world-{world_seed}.npz"
    simulator = source_fingerprint(SIMULATOR_PACKAGES)
    if fresh or not (events / "labels.json").is_file() or simulated_by(events) != simulator:
        simulate(SimulationConfig(merchants=merchants, days=days, seed=100 + world_seed,
                                  world_seed=world_seed)).write(events)
        (events / SIMULATED_BY).write_text(simulator + "\n", encoding="utf-8")
        recording.unlink(missing_ok=True)
    fingerprint = scoring_fingerprint()
    if fresh or not recording_is_current(recording, fingerprint):
        recorded = record_replay(events, partitions=partitions, allowed_lateness_hours=lateness_hours)
        save_days(recorded, recording, made_by=fingerprint)
    return world_seed


def load_world(world_seed: int, work_dir: Path) -> World:
    from contract.labels import load_labels
    from engine.recording import load_days
    from engine.training import World

    events = work_dir / f"world-{world_seed}"
    return World(f"world {world_seed}", load_days(work_dir / f"world-{world_seed}.npz"),
                 load_labels(events / "labels.json"))


def evidence_table_of(worlds: list) -> Table:  # type: ignore[type-arg]
    """The indicator evidence of the worlds pooled, with the lowest and highest lift of any world."""
    from engine.indicator_evidence import evidence_table
    from engine.recording import MerchantDays

    pooled_labels = {f"{w.name}/{m}": label for w in worlds for m, label in w.labels.items()}
    import dataclasses

    parts = []
    for w in worlds:
        ids = w.days.merchant_ids.astype(str)
        parts.append(dataclasses.replace(w.days, merchant_ids=(w.name + "/" + ids).astype(object)))
    relabelled = {k: dataclasses.replace(v, merchant_id=k) for k, v in pooled_labels.items()}
    pooled = evidence_table(MerchantDays.concat(parts), relabelled)
    per_world = {w.name: {r.code: r.lift for r in evidence_table(w.days, w.labels)} for w in worlds}
    table = Table(title=f"Indicator evidence, {len(worlds)} worlds pooled: fires (score > 0) on collapsing merchants "
                        "in the 180 days before the collapse, on healthy ones and look-alikes at any time")
    for column in ("reading", "collapses", "healthy", "worst look-alike", "lift", "lift, worst-best world",
                   "median lead (d)"):
        table.add_column(column)
    for row in pooled:
        lifts = [per_world[name].get(row.code, 0.0) for name in per_world]
        worst = row.worst_trap
        table.add_row(row.code, f"{row.collapse_rate:.0%}", f"{row.healthy_rate:.1%}",
                      f"{worst[0]} {worst[1]:.0%}" if worst else "", f"{row.lift:.1f}",
                      f"{min(lifts):.1f}-{max(lifts):.1f}",
                      "" if row.median_lead_days is None else f"{row.median_lead_days:.0f}")
    return table


def train_command(
    world_seeds: str = typer.Option("1-6", help="Randomised worlds to learn from, e.g. 1-6 or 1,3,5."),
    merchants: int = typer.Option(300, help="Merchants per world."),
    days: int = typer.Option(300, help="Simulated days per world."),
    work_dir: Path = typer.Option(Path(".yujing/train"), help="Simulated worlds and their recordings (kept)."),
    fresh: bool = typer.Option(False, "--fresh", help="Simulate and record again even when kept."),
    write: Path | None = typer.Option(None, "--write", help="Write the learned module here (models/learned.py)."),
    plots: Path | None = typer.Option(None, "--plots", help="Write reliability.png here."),
    jobs: int = typer.Option(2, min=1, help="Worlds simulated and replayed at once (processes)."),
    evidence: bool = typer.Option(True, "--evidence/--no-evidence",
                                  help="Print the indicator evidence table of the worlds (pooled, with the "
                                       "spread of lift across worlds)."),
    horizon: int = typer.Option(HORIZON_DAYS, min=1, help="Days ahead the fusion predicts a collapse within."),
    l2: float = typer.Option(L2, min=0.0, help="Ridge penalty on the weights."),
    cap: float = typer.Option(CAP, min=0.1, help="Most log-odds one reading may add."),
    after_days: int = typer.Option(AFTER_DAYS, min=0, help="Days after a collapse still taught as positive."),
    hold: list[str] = typer.Option([], "--hold", metavar="CODE",
                                   help="A reading kept out of the fit (weight 0, no pairs); repeatable."),
    judge: list[Path] = typer.Option([], "--judge", metavar="DIR",
                                     help="A labelled set of files (labels.json or labels.jsonl in DIR) "
                                          "judged by the fusion learned on all worlds; repeatable."),
) -> None:
    """Learn the fusion's weights and the level bands from labelled worlds; check each world held out."""
    import numpy as np

    from engine.training import fit_worlds, leave_one_world_out, reliability, render_learned_module

    try:
        seeds = parse_seeds(world_seeds)
    except ValueError:
        raise _fail(f"--world-seeds must be numbers and ranges like 1-6,9, not {world_seeds!r}") from None
    if len(seeds) < 2:
        raise _fail("--world-seeds needs at least two worlds (one is held out at a time)")
    unknown = sorted(set(hold) - set(_reading_codes()))
    if unknown:
        raise _fail(f"--hold {', '.join(unknown)}: no such reading (yujing indicators lists them)")
    missing = [str(d) for d in judge if _labels_file(d) is None]
    if missing:
        raise _fail(f"--judge {', '.join(missing)}: no labels.json or labels.jsonl there")
    options: FitOptions = {"horizon": horizon, "l2": l2, "cap": cap, "after": after_days}
    worlds = [without_readings(w, hold) for w in prepare_worlds(seeds, merchants, days, work_dir, fresh, jobs)]
    if evidence:
        console.print(evidence_table_of(worlds))
    held = leave_one_world_out(worlds, **options)
    console.print(held_out_table(held))
    curve = reliability(np.concatenate([h.probabilities for h in held]), np.concatenate([h.target for h in held]))
    console.print(reliability_table(curve, horizon))
    fit = fit_worlds(worlds, **options)
    if judge:
        console.print(judged_table(fit, [without_readings(load_judged(d, work_dir, fresh), hold) for d in judge]))
    console.print(weights_table(fit, len(worlds)))
    console.print("level cut-offs (probability): " + ", ".join(f"{k} {v:.3f}" for k, v in fit.cutoffs.items()))
    if plots is not None:
        from yujing.training_plots import reliability_plot

        console.print(f"wrote {reliability_plot(curve, plots / 'reliability.png')}")
    if write is not None:
        settings = "".join(f" --{name} {value}" for name, value, default in (
            ("horizon", horizon, HORIZON_DAYS), ("l2", l2, L2), ("cap", cap, CAP), ("after-days", after_days, AFTER_DAYS),
        ) if value != default) + "".join(f" --hold {code}" for code in hold)
        provenance = (f"Learned by `yujing train --world-seeds {world_seeds} --merchants {merchants} --days {days}"
                      f"{settings}`\nfrom {fit.rows:,} merchant-days of {len(worlds)} randomised worlds "
                      f"({fit.positives:,} within {horizon} days of a collapse).")
        write.write_text(render_learned_module(fit, provenance), encoding="utf-8")
        console.print(f"wrote {write}")


def prepare_worlds(seeds: list[int], merchants: int, days: int, work_dir: Path, fresh: bool,
                   jobs: int) -> list[World]:
    """Every world simulated and recorded (``jobs`` at a time, under a progress bar), then loaded."""
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from yujing.settings import get_settings

    settings = get_settings()
    work_dir.mkdir(parents=True, exist_ok=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} worlds"),
                  TimeElapsedColumn(), console=err, transient=True) as progress:
        task = progress.add_task("simulate + replay + record", total=len(seeds))
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(prepare_world, s, merchants, days, work_dir, fresh, settings.input_partitions,
                                   settings.allowed_lateness_hours) for s in seeds]
            for future in as_completed(futures):
                future.result()
                progress.advance(task)
    return [load_world(s, work_dir) for s in seeds]


def _reading_codes() -> list[str]:
    from models.learned import FUSION

    return list(FUSION.weights)


def _labels_file(directory: Path) -> Path | None:
    for name in ("labels.json", "labels.jsonl"):
        if (directory / name).is_file():
            return directory / name
    return None


def without_readings(world: World, codes: list[str]) -> World:
    """``world`` with the readings ``codes`` at 0 on every day: the fit cannot use them."""
    if not codes:
        return world
    import dataclasses

    readings = world.days.readings.copy()
    for code in codes:
        if code in world.days.codes:
            readings[:, world.days.codes.index(code)] = 0.0
    return dataclasses.replace(world, days=dataclasses.replace(world.days, readings=readings))


def load_judged(directory: Path, work_dir: Path, fresh: bool) -> World:
    """A labelled set of files, replayed and recorded once (kept in ``work_dir``), with its labels."""
    from contract.labels import load_labels
    from engine.recording import load_days, record_replay, save_days
    from engine.training import World
    from yujing.settings import get_settings

    recording = work_dir / f"judged-{directory.resolve().name}.npz"
    fingerprint = scoring_fingerprint()
    if fresh or not recording_is_current(recording, fingerprint):
        settings = get_settings()
        with err.status(f"replaying and recording {directory}"):
            save_days(record_replay(directory, partitions=settings.input_partitions,
                                    allowed_lateness_hours=settings.allowed_lateness_hours), recording,
                      made_by=fingerprint)
    labels = _labels_file(directory)
    assert labels is not None
    return World(directory.resolve().name, load_days(recording), load_labels(labels))


def judged_table(fit: Fit, sets: list[World]) -> Table:
    """Labelled sets the fit never saw, judged with its orange cut-off (from the scores alone)."""
    from engine.training import alarm_figures

    return figures_table(
        "Labelled sets judged by the fusion learned on all worlds (orange = alarm, scores alone)", "set",
        [(w.name, alarm_figures(w.days, fit.probabilities(w.days), w.labels, fit.cutoffs["orange"])) for w in sets])


def held_out_table(held: list[HeldOut]) -> Table:
    return figures_table("Each world judged by a fusion learned on the others (orange = alarm)", "world",
                         [(h.world, h.figures) for h in held])


def figures_table(title: str, what: str, rows: list[tuple[str, AlarmFigures]]) -> Table:
    """The referee's figures, one row per labelled set."""
    table = Table(title=title)
    for column in (what, "recall", "late", "median lead", "healthy FA", "worst look-alike"):
        table.add_column(column)
    for name, f in rows:
        worst = max(f.trap_false_alarms.items(), key=lambda kv: kv[1], default=("", 0.0))
        table.add_row(name, f"{f.recall:.1%}", f"{f.late:.1%}", f"{f.median_lead_days or 0:.0f} d",
                      f"{f.healthy_false_alarms:.1%}", f"{worst[0]} {worst[1]:.0%}")
    return table


def reliability_table(curve: Reliability, horizon: int = HORIZON_DAYS) -> Table:
    rel = Table(title=f"Reliability of held-out probabilities (P(collapse within {horizon} d) vs observed)")
    for column in ("bin", "merchant-days", "mean predicted", "observed"):
        rel.add_column(column)
    for low, high, n, pr, ob in zip(curve.edges[:-1], curve.edges[1:], curve.counts, curve.predicted,
                                    curve.observed, strict=True):
        rel.add_row(f"{low:.2f}-{min(high, 1):.2f}", f"{n:,}", "" if pr is None else f"{pr:.3f}",
                    "" if ob is None else f"{ob:.3f}")
    return rel


def weights_table(fit: Fit, worlds: int) -> Table:
    weights = Table(title=f"Learned on all {worlds} worlds: {fit.rows:,} merchant-days, {fit.positives:,} "
                          f"within 90 d of a collapse; intercept {fit.intercept:.2f}")
    weights.add_column("reading")
    weights.add_column("weight (log-odds per unit score)", justify="right")
    for code, weight in sorted(fit.weights.items(), key=lambda kv: -kv[1]):
        weights.add_row(code, f"{weight:+.2f}")
    return weights
