"""The run's tables (rich) and its JSON."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from chaos.flood import FloodResult
from chaos.run import ChaosReport

FLOOD_FLOOR = 0.8  # issue 16: good-event throughput within 20% under a flood


def faults_table(report: ChaosReport) -> Table:
    table = Table(title="Faults injected", title_justify="left")
    for column in ("#", "fault", "planned at", "injected at", "s into run", "detail"):
        table.add_column(column, justify="right" if column in ("#", "planned at", "injected at", "s into run") else "left")
    for n, fault in enumerate(report.faults, start=1):
        planned = f"{fault.planned:.1%}" if fault.planned is not None else "-"
        table.add_row(str(n), fault.kind, planned, f"{fault.progress:.1%}", f"{fault.seconds:.0f}", fault.detail)
    return table


def checks_table(report: ChaosReport) -> Table:
    table = Table(title="Against the replay reference", title_justify="left")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_column("must be", justify="right")
    table.add_column("", justify="center")
    table.add_column("detail")
    for check in report.checks:
        mark = "ok" if check.ok else "[red]FAIL[/red]"
        table.add_row(check.name, str(check.value), check.expected, mark if check.expected != "-" else "", check.detail)
    return table


def flood_table(flood: FloodResult) -> Table:
    table = Table(title=f"Good-event throughput under a flood of {flood.bad_records:,} bad records", title_justify="left")
    for column in ("run", "good events", f"seconds (best of {flood.runs})", "good events / s"):
        table.add_column(column, justify="left" if column == "run" else "right")
    table.add_row("clean", f"{flood.good_events:,}", f"{flood.clean_seconds:.1f}", f"{flood.clean_rate:,.0f}")
    table.add_row("flooded", f"{flood.good_events:,}", f"{flood.flooded_seconds:.1f}", f"{flood.flooded_rate:,.0f}")
    table.add_row("ratio", "", "", f"{flood.ratio:.2f} (floor {FLOOD_FLOOR})")
    return table


def print_report(console: Console, report: ChaosReport | None, flood: FloodResult | None) -> None:
    if report is not None:
        console.print(faults_table(report))
        console.print(checks_table(report))
        phases = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in report.phases.items())
        console.print(f"{report.events:,} records, run took {report.seconds:.0f} s ({phases})")
    if flood is not None:
        console.print(flood_table(flood))
        reasons = ", ".join(f"{reason} {n:,}" for reason, n in flood.reasons.items())
        console.print(f"dead-lettered by class: {reasons}")


def as_json(report: ChaosReport | None, flood: FloodResult | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if report is not None:
        out["run"] = {
            "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(report.options).items()},
            "records": report.events, "seconds": round(report.seconds, 1), "phases": report.phases,
            "faults": [asdict(f) for f in report.faults],
            "checks": [{**asdict(c), "ok": c.ok} for c in report.checks],
            "ok": report.ok,
        }
    if flood is not None:
        out["flood"] = {**asdict(flood), "clean_rate": flood.clean_rate, "flooded_rate": flood.flooded_rate,
                        "ratio": flood.ratio, "ok": flood.ratio >= FLOOD_FLOOR}
    return out


def write_json(path: Path, report: ChaosReport | None, flood: FloodResult | None) -> None:
    path.write_bytes(orjson.dumps(as_json(report, flood), option=orjson.OPT_INDENT_2))
