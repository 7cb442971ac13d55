"""Detection quality of a set of warnings against simulator labels.

A collapse counts as caught when the merchant is raised or escalated to orange or red before its
collapse date; the lead time is the number of days between that warning (event time) and the
collapse. Any orange or red warning on a healthy merchant or a look-alike is a false alarm.

>>> labels = [{"merchant_id": "a", "scenario": "runaway_after_surge", "kind": "collapse",
...            "collapse_date": "2026-03-01"},
...           {"merchant_id": "b", "scenario": "healthy", "kind": "healthy", "collapse_date": None}]
>>> warnings = [{"merchant_id": "a", "level": "red", "transition": "raised",
...              "raised_at": "2026-02-01T10:00:00+08:00"}]
>>> report = evaluate(labels, warnings)
>>> report.overall.recall, report.overall.median_lead_days, report.false_alarm_rate("healthy")
(1.0, 28.0, 0.0)
>>> report.precision
1.0
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

URGENT = ("orange", "red")


@dataclass
class ScenarioFigures:
    scenario: str
    kind: str
    merchants: int = 0
    caught: int = 0  # collapses: orange/red before the collapse date
    late: int = 0  # collapses: first orange/red on or after the collapse date
    flagged: int = 0  # healthy and look-alikes: any orange/red
    lead_days: list[float] = field(default_factory=list)

    @property
    def recall(self) -> float | None:
        return self.caught / self.merchants if self.kind == "collapse" and self.merchants else None

    @property
    def false_alarm_rate(self) -> float | None:
        return self.flagged / self.merchants if self.kind != "collapse" and self.merchants else None

    @property
    def median_lead_days(self) -> float | None:
        return float(statistics.median(self.lead_days)) if self.lead_days else None

    @property
    def p25_lead_days(self) -> float | None:
        if len(self.lead_days) < 2:
            return self.median_lead_days
        return float(statistics.quantiles(self.lead_days, n=4, method="inclusive")[0])


@dataclass
class Report:
    scenarios: dict[str, ScenarioFigures]
    overall: ScenarioFigures

    def false_alarm_rate(self, kind: str) -> float:
        rows = [s for s in self.scenarios.values() if s.kind == kind]
        merchants = sum(s.merchants for s in rows)
        return sum(s.flagged for s in rows) / merchants if merchants else 0.0

    @property
    def precision(self) -> float | None:
        """Of the merchants flagged orange/red, the share that collapsed after the flag.

        Strict: a flag on or after the collapse day counts against precision, as it warns
        nobody in time."""
        false = sum(s.flagged for s in self.scenarios.values() if s.kind != "collapse")
        late = sum(s.late for s in self.scenarios.values() if s.kind == "collapse")
        flagged = self.overall.caught + late + false
        return self.overall.caught / flagged if flagged else None


def first_urgent(warnings: Iterable[dict]) -> dict[str, date]:
    """Event-time day of each merchant's first orange or red warning."""
    first: dict[str, date] = {}
    for w in warnings:
        if w["level"] in URGENT and w["transition"] in ("raised", "escalated"):
            day = date.fromisoformat(w["raised_at"][:10])
            if w["merchant_id"] not in first or day < first[w["merchant_id"]]:
                first[w["merchant_id"]] = day
    return first


def evaluate(labels: Iterable[dict], warnings: Iterable[dict]) -> Report:
    first = first_urgent(warnings)
    scenarios: dict[str, ScenarioFigures] = {}
    overall = ScenarioFigures("all collapses", "collapse")
    for label in labels:
        row = scenarios.setdefault(label["scenario"], ScenarioFigures(label["scenario"], label["kind"]))
        row.merchants += 1
        warned = first.get(label["merchant_id"])
        if label["kind"] == "collapse":
            overall.merchants += 1
            collapse = date.fromisoformat(label["collapse_date"])
            if warned is not None and warned < collapse:
                for target in (row, overall):
                    target.caught += 1
                    target.lead_days.append(float((collapse - warned).days))
            elif warned is not None:
                row.late += 1
                overall.late += 1
        elif warned is not None:
            row.flagged += 1
    return Report(dict(sorted(scenarios.items())), overall)


def urgent_alarms(labels: Iterable[dict], warnings: Iterable[dict]) -> dict[str, int]:
    """Orange/red raises and escalations per merchant kind (every one, not only the first):
    what the case desk receives.

    >>> urgent_alarms([{"merchant_id": "b", "kind": "healthy"}],
    ...               [{"merchant_id": "b", "level": "orange", "transition": "raised"},
    ...                {"merchant_id": "b", "level": "orange", "transition": "de-escalated"}])
    {'healthy': 1}
    """
    kind_of = {label["merchant_id"]: label["kind"] for label in labels}
    counts: dict[str, int] = dict.fromkeys(sorted(set(kind_of.values())), 0)
    for w in warnings:
        if w["level"] in URGENT and w["transition"] in ("raised", "escalated") and w["merchant_id"] in kind_of:
            counts[kind_of[w["merchant_id"]]] += 1
    return counts


STAFF_DELAY_DAYS = 3  # a realistic handling time between a warning and the case's disposition


def false_alarm_desk(labels: dict[str, dict], delay_days: int = STAFF_DELAY_DAYS):  # type: ignore[no-untyped-def]
    """Simulated case staff for ``run_backtest(staff=...)``: after each orange/red raise or
    escalation of a merchant the simulator does not let collapse, a ``false_alarm`` disposition
    with that warning's level, score and indicators, effective ``delay_days`` after it."""
    from datetime import timedelta

    from yujing.contract import Feedback

    def answer(warning):  # type: ignore[no-untyped-def]
        label = labels.get(warning.merchant_id)
        if (
            label is None or label["kind"] == "collapse"
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


@dataclass
class SeedRun:
    """One evaluated simulation: its report and the score trajectories kept for plots."""

    seed: int
    report: Report
    trajectories: dict[str, list[tuple[date, float]]]
    labels: dict[str, dict]
    staff: StaffComparison | None = None  # with ``simulate_staff``


def combine(reports: Iterable[Report]) -> Report:
    """Pool several reports (e.g. seeds) into one, merchant by merchant."""
    scenarios: dict[str, ScenarioFigures] = {}
    overall = ScenarioFigures("all collapses", "collapse")
    for report in reports:
        for row in [*report.scenarios.values(), report.overall]:
            target = overall if row is report.overall else scenarios.setdefault(
                row.scenario, ScenarioFigures(row.scenario, row.kind)
            )
            target.merchants += row.merchants
            target.caught += row.caught
            target.late += row.late
            target.flagged += row.flagged
            target.lead_days.extend(row.lead_days)
    return Report(dict(sorted(scenarios.items())), overall)


def pick_examples(labels: dict[str, dict], per_scenario: int = 1) -> list[str]:
    """A few merchants to draw: the first of each non-healthy scenario, and one healthy one."""
    chosen: list[str] = []
    seen: dict[str, int] = {}
    for merchant_id, label in labels.items():
        count = seen.get(label["scenario"], 0)
        if count < per_scenario:
            chosen.append(merchant_id)
            seen[label["scenario"]] = count + 1
    return chosen


def write_plots(runs: list[SeedRun], out_dir: object) -> list[object]:
    """Lead-time distribution and score trajectories as PNG files; returns their paths."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    out = Path(str(out_dir))
    out.mkdir(parents=True, exist_ok=True)
    paths = []

    pooled = combine(run.report for run in runs)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    leads = {name: row.lead_days for name, row in pooled.scenarios.items() if row.kind == "collapse"}
    ax.hist(list(leads.values()), bins=range(0, 181, 7), stacked=True, label=list(leads.keys()))
    ax.set_xlabel("lead time: days between the first orange/red warning and the collapse")
    ax.set_ylabel("collapsing merchants")
    ax.set_title(f"Lead time, {len(runs)} seed(s), recall {pooled.overall.recall or 0:.0%}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(out / "lead_time.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    run = runs[0]
    examples = pick_examples(run.labels)
    fig, axes = plt.subplots(len(examples), 1, figsize=(9, 1.6 * len(examples)), sharex=True)
    for ax, merchant_id in zip(axes, examples, strict=False):
        points = run.trajectories.get(merchant_id, [])
        label = run.labels[merchant_id]
        ax.plot([p[0] for p in points], [p[1] for p in points], lw=1)
        for cut, colour in ((0.3, "tab:blue"), (0.45, "gold"), (0.6, "darkorange"), (0.8, "red")):
            ax.axhline(cut, color=colour, lw=0.6, ls="--")
        if label.get("collapse_date"):
            ax.axvline(date.fromisoformat(label["collapse_date"]), color="black", lw=1.2)
        ax.set_ylim(0, 1)
        ax.set_ylabel(label["scenario"], rotation=0, ha="right", fontsize=8)
    axes[-1].set_xlabel(f"event time (seed {run.seed}); black line: collapse date; dashed: level cut-offs")
    fig.tight_layout()
    paths.append(out / "score_trajectories.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def run_seed(
    seed: int,
    *,
    merchants: int,
    days: int,
    work_dir: object,
    partitions: int,
    allowed_lateness_hours: float,
    on_event: object | None = None,
    simulate_staff: bool = False,
) -> SeedRun:
    """Simulate one seed into ``work_dir/seed-N``, replay it with the live scoring core, judge it.

    With ``simulate_staff`` it is replayed a second time with :func:`false_alarm_desk` answering
    the warnings, into ``seed-N/staff/``: ``feedback.jsonl`` (what staff sent), ``warnings.jsonl``
    and links to the simulated inputs, so ``yujing backtest --events seed-N/staff`` replays it."""
    from datetime import timedelta
    from pathlib import Path

    import orjson

    from models.calendar import day_date
    from yujing.backtest import FEEDBACK_FILE, run_backtest, write_records, write_warnings
    from yujing.simulator import SimulationConfig, simulate

    events_dir = Path(str(work_dir)) / f"seed-{seed}"
    simulation = simulate(SimulationConfig(merchants=merchants, days=days, seed=seed))
    simulation.write(events_dir)
    labels = {label["merchant_id"]: label for label in simulation.labels}
    wanted = set(pick_examples(labels))
    trajectories: dict[str, list[tuple[date, float]]] = {m: [] for m in wanted}

    def keep(result) -> None:  # type: ignore[no-untyped-def]
        if result.merchant_id in wanted:
            trajectories[result.merchant_id].append((day_date(result.day), result.score.score))

    result = run_backtest(
        events_dir,
        partitions=partitions,
        allowed_lateness=timedelta(hours=allowed_lateness_hours),
        on_day_scored=keep,
        on_event=on_event,  # type: ignore[arg-type]
    )
    write_warnings(result.warnings, events_dir / "warnings.jsonl")
    warnings = [orjson.loads(orjson.dumps(w.model_dump(mode="json"))) for w in result.warnings]
    report = evaluate(labels.values(), warnings)
    staff = None
    if simulate_staff:
        staffed = run_backtest(
            events_dir,
            partitions=partitions,
            allowed_lateness=timedelta(hours=allowed_lateness_hours),
            on_event=on_event,  # type: ignore[arg-type]
            staff=false_alarm_desk(labels),
        )
        staff_dir = events_dir / "staff"
        staff_dir.mkdir(exist_ok=True)
        for name in ("transactions.jsonl", "complaints.jsonl", "merchants.jsonl", "labels.jsonl"):
            link = staff_dir / name
            link.unlink(missing_ok=True)
            link.symlink_to(Path("..") / name)
        write_records(staffed.feedback, staff_dir / FEEDBACK_FILE)
        write_warnings(staffed.warnings, staff_dir / "warnings.jsonl")
        after = [orjson.loads(orjson.dumps(w.model_dump(mode="json"))) for w in staffed.warnings]

        def of_collapses(ws: list[dict]) -> list[dict]:
            return [{k: v for k, v in w.items() if k != "emitted_at"} for w in ws
                    if labels.get(w["merchant_id"], {}).get("kind") == "collapse"]

        staff = StaffComparison(
            before=report,
            after=evaluate(labels.values(), after),
            alarms_before=urgent_alarms(labels.values(), warnings),
            alarms_after=urgent_alarms(labels.values(), after),
            feedback=len(staffed.feedback),
            collapses_unchanged=of_collapses(warnings) == of_collapses(after),
        )
    return SeedRun(seed, report, trajectories, labels, staff)
