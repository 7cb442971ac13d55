"""``yujing indicators``: the indicator system as a table (or docs/indicators.md's Markdown)."""

from __future__ import annotations

import sys

import typer

from yujing.cli.output import console


def indicators_command(
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
