"""The what-if's report for people: the HTML page (with bar charts) operations teams open before
they apply a threshold change, the terminal table and one line per changed merchant.

The comparison itself is :mod:`engine.whatif` (pure); this module only renders it.
"""

from __future__ import annotations

import base64
import io
import warnings as python_warnings
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alerts.levels import LEVELS
from engine.whatif import Figures, MerchantChange, Row, WhatIf, keys_of, number_text
from models.calendar import SHANGHAI

CJK_FONTS = (
    "Noto Sans CJK SC", "Noto Serif CJK SC", "Source Han Sans SC", "Source Han Sans CN",
    "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Microsoft YaHei", "SimHei", "PingFang SC",
)


TEMPLATES = Path(__file__).parent / "templates"


def cjk_font() -> str | None:
    """A font family with Chinese glyphs that matplotlib can use, or ``None``. Fonts installed
    after matplotlib built its font cache (fonts-noto-cjk, by deploy/local/setup.sh) are added."""
    from matplotlib import font_manager

    def known() -> str | None:
        names = {f.name for f in font_manager.fontManager.ttflist}
        return next((name for name in CJK_FONTS if name in names), None)

    found = known()
    if found is None:
        for path in font_manager.findSystemFonts():
            if "CJK" in Path(path).name or "wqy" in Path(path).name.lower():
                font_manager.fontManager.addfont(path)
        found = known()
    return found


def _bars(title: str, keys: Sequence[str], current: Figures, candidate: Figures, attribute: str,
          font: str | None) -> str:
    """Grouped bars, current against candidate, as a base64 PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a, b = getattr(current, attribute), getattr(candidate, attribute)
    style = {"font.family": [font, "DejaVu Sans"] if font else ["DejaVu Sans"]}
    with matplotlib.rc_context(style), python_warnings.catch_warnings():
        python_warnings.simplefilter("ignore", UserWarning)  # missing glyphs without a CJK font
        height = max(2.6, 0.38 * len(keys) + 1.2)
        fig, ax = plt.subplots(figsize=(8, height))
        positions = range(len(keys))
        ax.barh([p - 0.2 for p in positions], [a.get(k, 0) for k in keys], height=0.4,
                label=f"current {current.version}", color="#9aa5b1")
        ax.barh([p + 0.2 for p in positions], [b.get(k, 0) for k in keys], height=0.4,
                label=f"candidate {candidate.version}", color="#1f6feb")
        ax.set_yticks(list(positions), list(keys))
        ax.invert_yaxis()
        ax.set_xlabel("raised/escalated warnings in the window")
        ax.set_title(title)
        ax.legend(fontsize=8, loc="best")
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100)
        plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def plots(whatif: WhatIf, font: str | None) -> list[tuple[str, str]]:
    """(title, base64 PNG) of warnings per level, per driving indicator and per town."""
    cur, cand = whatif.current, whatif.candidate
    return [
        ("预警等级 · warnings per level", _bars("warnings per level", list(LEVELS), cur, cand, "entering", font)),
        ("驱动指标 · per driving indicator",
         _bars("per driving indicator", keys_of(cur.by_indicator, cand.by_indicator), cur, cand, "by_indicator", font)),
        ("街镇 · per town", _bars("per town", keys_of(cur.by_town, cand.by_town), cur, cand, "by_town", font)),
    ]


def render_html(whatif: WhatIf) -> str:
    """A self-contained HTML report: versions, the differing thresholds, the side-by-side
    table, plots (embedded PNG) and the merchants newly flagged and no longer flagged."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    from models.indicator_docs import indicator_rows

    font = cjk_font()
    environment = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    sections: dict[str, list[tuple[Row, tuple[str, str, str]]]] = {}
    for row in whatif.summary:
        sections.setdefault(row.section, []).append((row, row.cells()))
    return environment.get_template("whatif.html").render(
        w=whatif,
        sections=sections,
        plots=plots(whatif, font),
        font=font,
        names={row["code"]: row["name_zh"] for row in indicator_rows()},
        generated_at=datetime.now(UTC).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M"),
        number=number_text,
    )


def terminal_table(whatif: WhatIf) -> Any:
    """The side-by-side figures as a rich table (current | candidate | change)."""
    from rich.table import Table

    table = Table(title=f"What-if, warnings of {whatif.window}: {whatif.current.label} → {whatif.candidate.label}",
                  title_justify="left")
    table.add_column("figure")
    table.add_column(f"current\n{whatif.current.version}", justify="right")
    table.add_column(f"candidate\n{whatif.candidate.version}", justify="right")
    table.add_column("change", justify="right")
    section = None
    for row in whatif.summary:
        if row.section != section:
            if section is not None:
                table.add_section()
            table.add_row(f"[bold]{row.section}[/bold]", "", "", "")
            section = row.section
        current, candidate, change = row.cells()
        colour = "yellow" if (row.change or 0) > 0 else "cyan" if (row.change or 0) < 0 else ""  # no good/bad
        table.add_row(f"  {row.figure}", current, candidate, f"[{colour}]{change}[/{colour}]" if colour else change)
    return table


def describe(item: MerchantChange) -> str:
    """One line for a merchant that changes: who, levels under each set, why."""
    who = f"{item.name} ({item.merchant_id})" if item.name else item.merchant_id
    why = "; ".join(f"{r.code} {r.explanation_zh} / {r.explanation_en}" for r in item.reasons)
    return (f"{who}, {item.town or '?'}, {item.industry or '?'}: {item.current_level or 'none'} → "
            f"{item.candidate_level or 'none'}; {why}")
