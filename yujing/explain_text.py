"""The text of ``yujing explain`` in the terminal (rich markup): the header, the day (or week)
table and the merchant's warnings. What is shown is :mod:`engine.explain`'s timeline; the PNG
is :mod:`yujing.explain_plot`.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from contract.records import Warning
from engine.explain import (
    LEVEL_ZH,
    TOP_CONTRIBUTIONS,
    WEEKLY_AFTER_DAYS,
    Timeline,
    table_rows,
    yuan,
)
from models.calendar import SHANGHAI

LEVEL_STYLE = {"blue": "blue", "yellow": "yellow", "orange": "dark_orange", "red": "bold red"}


def _level(level: str | None) -> str:
    return f"[{LEVEL_STYLE[level]}]{LEVEL_ZH[level]} {level}[/]" if level in LEVEL_STYLE else ""


def header(timeline: Timeline) -> str:
    p, label = timeline.profile, timeline.label
    parts = [f"[bold]{timeline.merchant_id}[/bold] {p.get('name') or ''}".rstrip()]
    parts += [str(p[k]) for k in ("industry", "district") if p.get(k)]
    if p.get("chain_id"):
        parts.append(f"chain {p['chain_id']}")
    if label is not None:
        text = f"label: {label['kind']}"
        if label.get("collapse_date"):
            text += f", collapse {label['collapse_date']}"
        if label.get("episode"):
            text += f", episode {label['episode'][0]}..{label['episode'][1]}"
        parts.append(text)
    if timeline.days:
        parts.append(f"{len(timeline.days)} scored days {timeline.days[0].day}..{timeline.days[-1].day}")
    parts.append(f"replayed partitions {timeline.replayed_partitions} of {timeline.partitions}")
    cutoffs = "  ".join(f"{LEVEL_ZH.get(k, k)}{k} {v:.2f}" for k, v in timeline.cutoffs.items())
    return " · ".join(parts) + (f"\nlevel cut-offs: {cutoffs}" if cutoffs else "")


def day_table(timeline: Timeline, since: date | None = None, until: date | None = None) -> Any:
    """The rich table of the days in the window (weeks when it is long)."""
    from rich.markup import escape
    from rich.table import Table

    days = timeline.window(since, until)
    weekly = len(days) > WEEKLY_AFTER_DAYS
    table = Table(title=f"{'weeks (Monday..Sunday; score and level: the worst day)' if weekly else 'days'}"
                  " · 售卡 sales, 核销 redeemed, 退款 refunds in yuan", title_justify="left")
    for name in ("week of" if weekly else "day", "售卡 sales", "核销 redeemed", "退款 refunds", "余额 balance",
                 "投诉", "profile records", "score", "level", "top contributions (weight × reading)"):
        table.add_column(name, justify="right" if name[0] in "售核退余投s" else "left", overflow="fold")
    for row in table_rows(days, timeline.profile_events, weekly):
        top = ", ".join(f"{r.code} {r.contribution:.2f}" for r in row.worst.top)
        table.add_row(row.first.isoformat(), yuan(row.sales_paid), yuan(row.redeemed), yuan(row.refunded),
                      yuan(row.prepaid_balance), str(row.complaints or ""), escape(row.profile), f"{row.worst.score:.2f}",
                      _level(row.level), top)
    return table


def warning_lines(warnings: list[Warning]) -> list[str]:
    """The merchant's warnings: day, transition, levels, score and the strongest reasons."""
    from rich.markup import escape

    lines = [f"[bold]warnings: {len(warnings)}[/bold]"]
    for w in warnings:
        day = w.raised_at.astimezone(SHANGHAI).date()
        previous = f"{w.previous_level} → " if w.previous_level and w.transition != "cleared" else ""
        lines.append(f"{day} {w.transition} {previous}{_level(w.level)} score {w.score:.2f}")
        for reading in w.indicators[:TOP_CONTRIBUTIONS]:
            share = f" +{reading.contribution:.2f}" if reading.contribution is not None else ""
            lines.append(escape(f"    {reading.code}{share}: {reading.explanation_zh} / {reading.explanation_en}"))
    return lines
