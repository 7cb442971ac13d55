"""Detection quality of warnings against labelled outcomes: simulated worlds replayed and judged.

The judging itself follows the referee's rules (:mod:`engine.judging`, re-exported here). This
module runs the worlds: simulate (a randomised world per ``world_seed``, or the classic world),
replay with the live scoring core, judge, and optionally record every scored merchant-day for the
indicator evidence table (:mod:`engine.indicator_evidence`), replay again with simulated case
staff, and draw plots.

>>> labels = [{"merchant_id": "a", "scenario": "runaway_after_surge", "kind": "collapse",
...            "collapse_date": "2026-03-01"},
...           {"merchant_id": "b", "scenario": "healthy", "kind": "healthy", "collapse_date": None}]
>>> warnings = [{"merchant_id": "a", "level": "red", "transition": "raised",
...              "raised_at": "2026-02-01T10:00:00+08:00"}]
>>> report = evaluate(labels, warnings)
>>> report.overall.recall, report.overall.median_lead_days, report.false_alarm_rate("healthy")
(1.0, 28, 0.0)
>>> report.precision
1.0
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from contract.labels import Label
from engine.judging import URGENT, Report, ScenarioFigures, combine, evaluate, urgent_alarms

if TYPE_CHECKING:
    from alerts.threshold_history import ThresholdSchedule
    from engine.indicator_evidence import EvidenceRow
    from engine.recording import MerchantDays

__all__ = ["Report", "ScenarioFigures", "combine", "evaluate"]







STAFF_DELAY_DAYS = 3  # a realistic handling time between a warning and the case's disposition


def false_alarm_desk(labels: Mapping[str, Label], delay_days: int = STAFF_DELAY_DAYS):  # type: ignore[no-untyped-def]
    """Simulated case staff for ``run_backtest(staff=...)``: after each orange/red raise or
    escalation of a merchant the simulator does not let collapse, a ``false_alarm`` disposition
    with that warning's level, score and indicators, effective ``delay_days`` after it."""
    from datetime import timedelta

    from contract.records import Feedback

    def answer(warning):  # type: ignore[no-untyped-def]
        label = labels.get(warning.merchant_id)
        if (
            label is None or label.group == "collapse"
            or warning.level not in URGENT or warning.transition not in ("raised", "escalated")
        ):
            return []
        decided = warning.raised_at + timedelta(days=delay_days)
        return [Feedback(
            feedback_id=f"staff-{warning.warning_id}",
            merchant_id=warning.merchant_id,
            case_id=f"staff-case-{warning.warning_id}",
            disposition="false_alarm",
            level=warning.level,
            score=warning.score,
            indicator_codes=[i.code for i in warning.indicators],
            warning_ids=[warning.warning_id],
            effective_from=decided,
            decided_at=decided,
            decided_by_role="simulated",
        )]

    return answer


@dataclass
class StaffComparison:
    """The same simulation replayed without and with simulated staff feedback (false alarms)."""

    before: Report
    after: Report
    alarms_before: dict[str, int]  # orange/red raises and escalations per merchant kind
    alarms_after: dict[str, int]
    feedback: int  # false-alarm dispositions the staff sent
    collapses_unchanged: bool  # the collapsing merchants' warnings are identical in both runs

    def to_json(self) -> dict:
        kinds = ("healthy", "lookalike")
        return {
            "feedback": self.feedback,
            "collapses_unchanged": self.collapses_unchanged,
            "recall_before": self.before.overall.recall,
            "recall_after": self.after.overall.recall,
            "median_lead_days_before": self.before.overall.median_lead_days,
            "median_lead_days_after": self.after.overall.median_lead_days,
            **{f"false_alarm_rate_{k}_before": self.before.false_alarm_rate(k) for k in kinds},
            **{f"false_alarm_rate_{k}_after": self.after.false_alarm_rate(k) for k in kinds},
            **{f"urgent_alarms_{k}_before": self.alarms_before.get(k, 0) for k in kinds},
            **{f"urgent_alarms_{k}_after": self.alarms_after.get(k, 0) for k in kinds},
            "urgent_alarms_collapse_before": self.alarms_before.get("collapse", 0),
            "urgent_alarms_collapse_after": self.alarms_after.get("collapse", 0),
        }


def staff_rows(comparison: StaffComparison) -> list[tuple[str, str, str]]:
    """(figure, without feedback, with simulated staff feedback) for a table."""

    def pct(value: float | None) -> str:
        return "" if value is None else f"{value:.1%}"

    before, after = comparison.before, comparison.after
    rows = [
        ("recall (orange/red before collapse)", pct(before.overall.recall), pct(after.overall.recall)),
        ("median lead (days)", f"{before.overall.median_lead_days or 0:.0f}", f"{after.overall.median_lead_days or 0:.0f}"),
    ]
    for kind, name in (("healthy", "healthy"), ("lookalike", "look-alikes")):
        rows.append((f"{name}: merchants flagged orange/red", pct(before.false_alarm_rate(kind)),
                     pct(after.false_alarm_rate(kind))))
        rows.append((f"{name}: orange/red warnings (raised/escalated)", str(comparison.alarms_before.get(kind, 0)),
                     str(comparison.alarms_after.get(kind, 0))))
    rows.append(("collapses: orange/red warnings", str(comparison.alarms_before.get("collapse", 0)),
                 str(comparison.alarms_after.get("collapse", 0))))
    rows.append(("false-alarm dispositions sent", "", str(comparison.feedback)))
    rows.append(("collapsing merchants' warnings identical", "", "yes" if comparison.collapses_unchanged else "NO"))
    return rows


def combine_staff(comparisons: Iterable[StaffComparison]) -> StaffComparison:
    """Pool the comparisons of several seeds."""
    items = list(comparisons)

    def add(counts: Iterable[dict[str, int]]) -> dict[str, int]:
        total: dict[str, int] = {}
        for c in counts:
            for k, v in c.items():
                total[k] = total.get(k, 0) + v
        return total

    return StaffComparison(
        before=combine(c.before for c in items),
        after=combine(c.after for c in items),
        alarms_before=add(c.alarms_before for c in items),
        alarms_after=add(c.alarms_after for c in items),
        feedback=sum(c.feedback for c in items),
        collapses_unchanged=all(c.collapses_unchanged for c in items),
    )



@dataclass(frozen=True)
class World:
    """One labelled set to replay and judge: a world to simulate into ``events_dir`` first
    (``config``), or event files that are there already (``config`` None)."""

    name: str
    events_dir: Path
    config: object | None = None  # a SimulationConfig
    labels_file: Path | None = None  # default: labels.json or labels.jsonl in events_dir

    @property
    def world_seed(self) -> int | None:
        return getattr(self.config, "world_seed", None)

    @property
    def seed(self) -> int | None:
        return getattr(self.config, "seed", None)


def plan_worlds(
    world_seeds: list[int] | None, seeds: list[int] | None, *, merchants: int, days: int, work_dir: Path,
) -> list[World]:
    """The simulated worlds to run. With world seeds, world seed *i* is simulated with population
    seed *i* of ``seeds``, by default 100 + the world seed (so world 1 is seed 101); without
    them, the classic world with each of ``seeds``. Raises ``ValueError`` when the lists differ
    in length."""
    from yujing.simulator import SimulationConfig

    if world_seeds is None:
        return [World(f"seed {s}", work_dir / f"seed-{s}", SimulationConfig(merchants=merchants, days=days, seed=s))
                for s in seeds or ()]
    paired = seeds if seeds is not None else [100 + w for w in world_seeds]
    if len(paired) != len(world_seeds):
        raise ValueError(f"{len(world_seeds)} world seeds but {len(paired)} seeds: give one seed per world seed")
    return [
        World(f"world {w}", work_dir / f"world-{w}",
              SimulationConfig(merchants=merchants, days=days, seed=s, world_seed=w))
        for w, s in zip(world_seeds, paired, strict=True)
    ]


@dataclass
class WorldRun:
    """One replayed and judged world: its report, the labels, a few score trajectories for the
    plots and, when recorded, every scored merchant-day."""

    world: World
    report: Report
    labels: dict[str, Label]
    trajectories: dict[str, list[tuple[date, float]]] = field(default_factory=dict)
    days: MerchantDays | None = None
    staff: StaffComparison | None = None

    @property
    def name(self) -> str:
        return self.world.name


def world_labels(world: World) -> dict[str, Label]:
    """The world's labels; ``ValueError`` (one readable line) when there are none or they do not read."""
    from contract.labels import find_labels, load_labels

    path = world.labels_file or find_labels(world.events_dir)
    if path is None:
        raise ValueError(f"no labels.json or labels.jsonl in {world.events_dir} (give --labels FILE)")
    try:
        return load_labels(path)
    except OSError as exc:
        raise ValueError(f"cannot read labels {path}: {exc.strerror or exc}") from exc


def count_records(events_dir: Path) -> int:
    """Lines in the input files: what a replay of ``events_dir`` will read (for a progress bar)."""
    from engine.replay import INPUT_FILES

    total = 0
    for name in INPUT_FILES.values():
        path = events_dir / name
        if path.is_file():
            with open(path, "rb") as source:
                total += sum(chunk.count(b"\n") for chunk in iter(lambda: source.read(1 << 20), b""))
    return total


def _as_dicts(warnings: Iterable[object]) -> list[dict]:
    return [w.model_dump(mode="json") for w in warnings]  # type: ignore[attr-defined]


def run_world(
    world: World,
    *,
    partitions: int,
    allowed_lateness_hours: float,
    schedule: ThresholdSchedule | None = None,
    record: bool = False,
    simulate_staff: bool = False,
    on_event: Callable[[], None] | None = None,
    on_phase: Callable[[str, int], None] | None = None,
) -> WorldRun:
    """Simulate (when the world has a config), replay with the live scoring core, judge.

    A simulated world's warnings are written to ``events_dir/warnings.jsonl``; event files given
    are only read. ``record``: keep every scored merchant-day (:class:`~engine.recording.DayRecorder`).
    ``on_phase(description, records)`` is told before each replay how many records it reads.
    With ``simulate_staff`` the world is replayed a second time with :func:`false_alarm_desk`
    answering the warnings, into ``events_dir/staff/``: ``feedback.jsonl`` (what staff sent),
    ``warnings.jsonl`` and links to the inputs, so ``yujing backtest --events .../staff`` replays it."""
    from datetime import timedelta

    from engine.partition import DayResult
    from engine.recording import DayRecorder
    from engine.replay import run_backtest, write_warnings
    from models.calendar import day_date

    if world.config is not None:
        from yujing.simulator import simulate

        if on_phase is not None:
            on_phase(f"{world.name}: simulate", 0)
        simulate(world.config).write(world.events_dir)  # type: ignore[arg-type]
    labels = world_labels(world)
    wanted = set(pick_examples(labels))
    trajectories: dict[str, list[tuple[date, float]]] = {m: [] for m in wanted}
    recorder = DayRecorder() if record else None

    def keep(result: DayResult) -> None:
        if result.merchant_id in wanted:
            trajectories[result.merchant_id].append((day_date(result.day), result.score.score))
        if recorder is not None:
            recorder(result)

    total = count_records(world.events_dir)
    if on_phase is not None:
        on_phase(f"{world.name}: replay", total)
    lateness = timedelta(hours=allowed_lateness_hours)
    result = run_backtest(world.events_dir, partitions=partitions, allowed_lateness=lateness, schedule=schedule,
                          on_day_scored=keep, on_event=on_event)
    if world.config is not None:
        write_warnings(result.warnings, world.events_dir / "warnings.jsonl")
    warnings = _as_dicts(result.warnings)
    report = evaluate(labels, warnings)
    run = WorldRun(world, report, labels, trajectories, recorder.finish() if recorder is not None else None)
    if simulate_staff:
        if on_phase is not None:
            on_phase(f"{world.name}: replay with simulated staff", total)
        staffed = run_backtest(world.events_dir, partitions=partitions, allowed_lateness=lateness,
                               schedule=schedule, on_event=on_event, staff=false_alarm_desk(labels))
        run.staff = _staff_comparison(world.events_dir, labels, report, warnings, staffed)
    return run


def _staff_comparison(events_dir: Path, labels: dict[str, Label], report: Report, warnings: list[dict],
                      staffed: object) -> StaffComparison:
    from engine.replay import FEEDBACK_FILE, write_records, write_warnings

    staff_dir = events_dir / "staff"
    staff_dir.mkdir(exist_ok=True)
    for name in ("transactions.jsonl", "complaints.jsonl", "merchants.jsonl", "labels.jsonl", "labels.json"):
        link = staff_dir / name
        link.unlink(missing_ok=True)
        if (events_dir / name).exists():
            link.symlink_to(Path("..") / name)
    write_records(staffed.feedback, staff_dir / FEEDBACK_FILE)  # type: ignore[attr-defined]
    write_warnings(staffed.warnings, staff_dir / "warnings.jsonl")  # type: ignore[attr-defined]
    after = _as_dicts(staffed.warnings)  # type: ignore[attr-defined]

    def of_collapses(ws: list[dict]) -> list[dict]:
        return [{k: v for k, v in w.items() if k != "emitted_at"} for w in ws
                if w["merchant_id"] in labels and labels[w["merchant_id"]].group == "collapse"]

    return StaffComparison(
        before=report,
        after=evaluate(labels, after),
        alarms_before=urgent_alarms(labels.values(), warnings),
        alarms_after=urgent_alarms(labels.values(), after),
        feedback=len(staffed.feedback),  # type: ignore[attr-defined]
        collapses_unchanged=of_collapses(warnings) == of_collapses(after),
    )


def evidence(runs: list[WorldRun], fire_at: float = 0.0) -> list[EvidenceRow]:
    """The indicator evidence table of one recorded run, or of several pooled merchant by merchant
    (merchant ids are prefixed with the world's name, so equal ids of two worlds stay apart)."""
    import numpy as np

    from engine.indicator_evidence import evidence_table
    from engine.recording import MerchantDays

    recorded = [run for run in runs if run.days is not None]
    if len(recorded) == 1:
        return evidence_table(recorded[0].days, recorded[0].labels, fire_at)  # type: ignore[arg-type]
    parts, labels = [], {}
    for run in recorded:
        days = run.days
        assert days is not None
        prefixed = np.array([f"{run.name}/{m}" for m in days.merchant_ids], dtype=object)
        parts.append(replace(days, merchant_ids=prefixed))
        labels.update({f"{run.name}/{m}": replace(label, merchant_id=f"{run.name}/{m}")
                       for m, label in run.labels.items()})
    return evidence_table(MerchantDays.concat(parts), labels, fire_at)


def pick_examples(labels: Mapping[str, Label], per_scenario: int = 1) -> list[str]:
    """A few merchants to draw: the first of each kind (scenario), healthy included."""
    chosen: list[str] = []
    seen: dict[str, int] = {}
    for merchant_id, label in labels.items():
        count = seen.get(label.kind, 0)
        if count < per_scenario:
            chosen.append(merchant_id)
            seen[label.kind] = count + 1
    return chosen


def write_plots(runs: list[WorldRun], out_dir: object) -> list[object]:
    """Lead-time distribution and score trajectories as PNG files; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    out = Path(str(out_dir))
    out.mkdir(parents=True, exist_ok=True)
    paths = []

    pooled = combine(run.report for run in runs)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    leads = {name: row.lead_days for name, row in pooled.scenarios.items() if row.group == "collapse"}
    ax.hist(list(leads.values()), bins=range(0, 181, 7), stacked=True, label=list(leads.keys()))
    ax.set_xlabel("lead time: days between the first orange/red warning and the collapse")
    ax.set_ylabel("collapsing merchants")
    ax.set_title(f"Lead time, {len(runs)} world(s), recall {pooled.overall.recall or 0:.0%}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(out / "lead_time.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    run = runs[0]
    examples = [m for m in pick_examples(run.labels) if m in run.trajectories]
    fig, axes = plt.subplots(len(examples), 1, figsize=(9, 1.6 * len(examples)), sharex=True, squeeze=False)
    for ax, merchant_id in zip(axes[:, 0], examples, strict=True):
        points = run.trajectories[merchant_id]
        label = run.labels[merchant_id]
        ax.plot([p[0] for p in points], [p[1] for p in points], lw=1)
        for cut, colour in ((0.3, "tab:blue"), (0.45, "gold"), (0.6, "darkorange"), (0.8, "red")):
            ax.axhline(cut, color=colour, lw=0.6, ls="--")
        if label.collapse_date is not None:
            ax.axvline(label.collapse_date, color="black", lw=1.2)
        ax.set_ylim(0, 1)
        ax.set_ylabel(label.kind, rotation=0, ha="right", fontsize=8)
    axes[-1, 0].set_xlabel(f"event time ({run.name}); black line: collapse date; dashed: level cut-offs")
    fig.tight_layout()
    paths.append(out / "score_trajectories.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths
