"""The PNG of ``yujing explain``: one merchant's timeline as stacked panels on one event-time axis.

From top to bottom: daily card sales and redemptions; the prepaid balance with custody; complaints
by category and profile records; a heat strip of every indicator's reading (0..1) per day; the
fused score with the level cut-offs, the level band and the warnings. With a label, the collapse
date (and a look-alike's episode) is drawn across all panels.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

from engine.explain import LEVEL_ZH, Timeline
from models.calendar import SHANGHAI

CJK_FONTS = (
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
    Path("/usr/share/fonts/opentype/noto-cjk/NotoSansCJK-Regular.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
)
LEVEL_COLOURS = {"blue": "#3a78c2", "yellow": "#e8c31c", "orange": "#f07f13", "red": "#d62728"}
COMPLAINTS = (
    ("refund_refused", "拒绝退款", "o", "#d62728"),
    ("store_closed", "门店关闭", "X", "#000000"),
    ("service_unavailable", "无法服务", "s", "#9467bd"),
    ("false_advertising", "虚假宣传", "^", "#8c564b"),
    ("service_quality", "服务质量", "v", "#7f7f7f"),
    ("contract_dispute", "合同纠纷", "D", "#17becf"),
    ("other", "其他", ".", "#bcbd22"),
)
PROFILE_KINDS = (
    ("registered", "档案", "s", "#7f7f7f"),
    ("custody_report", "存管报告", "o", "#2ca02c"),
    ("status", "状态", "v", "#d62728"),
    ("legal_representative", "法人", "*", "#9467bd"),
    ("registered_capital", "注册资本", "P", "#8c564b"),
    ("chain", "连锁", "D", "#17becf"),
)
MARKED_KINDS = {"status", "legal_representative", "registered_capital", "chain"}  # drawn across all panels


def cjk_font() -> str | None:
    """Register the first CJK font found and return its family name (None: English labels only)."""
    from matplotlib import font_manager

    for path in CJK_FONTS:
        if path.is_file():
            font_manager.fontManager.addfont(str(path))
            return str(font_manager.FontProperties(fname=str(path)).get_name())
    return None


def _text(zh: str, en: str, cjk: bool) -> str:
    return f"{zh} {en}" if cjk else en


DEFAULT_SPAN_DAYS = 365  # without --since, the last year: replays may carry years of card history


def write_png(timeline: Timeline, out: Path, since: date | None = None, until: date | None = None, *,
              cjk: bool | None = None) -> Path:
    """Draw the days of ``timeline`` from ``since`` (default: a year before the last) to ``until`` into
    ``out`` (PNG). ``cjk=False``: English labels only."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    if since is None and timeline.days:
        since = (until or timeline.days[-1].day) - timedelta(days=DEFAULT_SPAN_DAYS - 1)
    timeline = timeline.zoomed(since, until)
    family = cjk_font() if cjk is not False else None
    use_cjk = family is not None
    with plt.rc_context({"font.family": [family, "DejaVu Sans"] if family else ["DejaVu Sans"],
                         "font.size": 8, "axes.titlesize": 9, "axes.titlelocation": "left"}):
        codes = _codes(timeline)
        fig, axes = plt.subplots(
            6, 1, figsize=(12, 11.5), sharex=True,
            gridspec_kw={"height_ratios": [2.2, 1.6, 1.5, 1.0, max(1.2, 0.22 * len(codes)), 2.2]},
        )
        _activity(axes[0], timeline, use_cjk)
        _balance(axes[1], timeline, use_cjk)
        _complaints(axes[2], timeline, use_cjk)
        _profile(axes[3], timeline, use_cjk)
        _heat(fig, axes[4], timeline, codes, use_cjk)
        _score(axes[5], timeline, use_cjk)
        for ax in axes:
            _marks(ax, timeline)
        p = timeline.profile
        title = " · ".join(x for x in (timeline.merchant_id, p.get("name") if use_cjk else None, p.get("industry"),
                                        p.get("district") if use_cjk else None) if x)
        if timeline.label:
            title += f" · label {timeline.label['kind']}"
            if timeline.label.get("collapse_date"):
                title += f", collapse {timeline.label['collapse_date']} (solid black line; dashed: first sign)"
            elif timeline.label.get("episode"):
                title += " (grey: the look-alike's episode)"
        fig.suptitle(title, x=0.01, ha="left", fontsize=10, fontweight="bold")
        if timeline.days:
            axes[-1].set_xlim(timeline.days[0].day - timedelta(days=1), timeline.days[-1].day + timedelta(days=1))
        axes[-1].set_xlabel(_text("事件时间(上海)", "event time (Shanghai day)", use_cjk))
        fig.align_ylabels(axes)
        fig.tight_layout(rect=(0, 0, 1, 0.975), h_pad=0.6)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=90)
        plt.close(fig)
    return out


def _codes(timeline: Timeline) -> list[str]:
    """Indicators that gave a reading on some day, the ones that ever contributed most first."""
    best: dict[str, float] = {}
    for d in timeline.days:
        for r in d.readings:
            best[r.code] = max(best.get(r.code, 0.0), r.contribution)
    return sorted(best, key=lambda code: (-best[code], code))


def _activity(ax: Any, timeline: Timeline, cjk: bool) -> None:
    days = [d.day for d in timeline.days]
    ax.bar(days, [d.sales_paid for d in timeline.days], width=1.0, color="#4c72b0", alpha=0.75,
           label=_text("售卡(实付)", "card sales (paid)", cjk))
    ax.plot(days, [d.redeemed for d in timeline.days], color="#dd8452", lw=0.9,
            label=_text("核销", "redemptions", cjk))
    ax.plot(days, [d.refunded for d in timeline.days], color="#55a868", lw=0.8,
            label=_text("退款", "refunds", cjk))
    ax.set_ylabel(_text("元/天", "yuan / day", cjk))
    ax.set_title(_text("每日售卡、核销与退款", "daily card sales, redemptions and refunds", cjk))
    ax.legend(loc="best", fontsize=7, ncol=3, framealpha=0.8)


def _balance(ax: Any, timeline: Timeline, cjk: bool) -> None:
    days = [d.day for d in timeline.days]
    ax.plot(days, [d.prepaid_balance or 0.0 for d in timeline.days], color="#4c72b0", lw=1.2,
            label=_text("预收余额", "prepaid balance", cjk))
    ax.step(days, [d.custody_balance for d in timeline.days], where="post", color="#2ca02c", lw=1.0,
            label=_text("存管资金(报告)", "custody (reported)", cjk))
    ax.plot(days, [d.custody_required for d in timeline.days], color="#2ca02c", lw=0.8, ls="--",
            label=_text("应存管", "custody required", cjk))
    ax.set_ylabel(_text("元", "yuan", cjk))
    ax.set_title(_text("预收余额与存管", "prepaid balance and custody", cjk))
    ax.legend(loc="best", fontsize=7, ncol=3, framealpha=0.8)


def _complaints(ax: Any, timeline: Timeline, cjk: bool) -> None:
    for row, (category, _, marker, colour) in enumerate(COMPLAINTS):
        points = [(d.day, d.complaints[category]) for d in timeline.days if d.complaints.get(category)]
        if points:
            ax.scatter([p[0] for p in points], [row] * len(points), s=[18 + 14 * (p[1] - 1) for p in points],
                       marker=marker, color=colour, zorder=3)
    ax.set_yticks(range(len(COMPLAINTS)), [_text(zh, c, cjk) for c, zh, _, _ in COMPLAINTS], fontsize=7)
    ax.set_ylim(len(COMPLAINTS) - 0.5, -0.5)
    total = sum(sum(d.complaints.values()) for d in timeline.days)
    ax.set_title(_text("投诉(按类别,点越大当天越多)", f"complaints by category: {total} (larger: more that day)", cjk))
    ax.grid(axis="y", color="#eeeeee")


def _profile(ax: Any, timeline: Timeline, cjk: bool) -> None:
    rows = {kind: i for i, (kind, *_rest) in enumerate(PROFILE_KINDS)}
    for kind, _, marker, colour in PROFILE_KINDS:
        events = [e for e in timeline.profile_events if e.kind == kind]
        if events:
            ax.scatter([e.day for e in events], [rows[kind]] * len(events), marker=marker, color=colour, s=28,
                       zorder=3)
            if kind in MARKED_KINDS:
                middle = timeline.days[len(timeline.days) // 2].day if timeline.days else None
                for e in events:
                    left = middle is not None and e.day > middle  # late in the window: text to the left
                    ax.annotate(e.text_zh if cjk else e.text_en, (e.day, rows[kind]), xytext=(-5 if left else 5, 0),
                                textcoords="offset points", fontsize=7, va="center", ha="right" if left else "left")
    ax.set_yticks(range(len(PROFILE_KINDS)), [_text(zh, k.replace("_", " "), cjk) for k, zh, _, _ in PROFILE_KINDS],
                  fontsize=6.5)
    ax.set_ylim(len(PROFILE_KINDS) - 0.5, -0.5)
    ax.set_title(_text("商户档案记录", "profile records (status, custody reports, registry changes)", cjk))


def _heat(fig: Any, ax: Any, timeline: Timeline, codes: list[str], cjk: bool) -> None:
    import matplotlib
    import matplotlib.dates as mdates
    import numpy as np

    ax.set_title(_text("各指标读数(0..1,灰色:不适用)", "indicator readings, 0..1 (grey: not applicable)", cjk))
    if not timeline.days or not codes:
        ax.set_yticks([])
        return
    first = timeline.days[0].day
    grid = np.full((len(codes), (timeline.days[-1].day - first).days + 1), np.nan)
    index = {code: i for i, code in enumerate(codes)}
    for d in timeline.days:
        for r in d.readings:
            grid[index[r.code], (d.day - first).days] = r.score
    start = mdates.date2num(first) - 0.5  # a day's cell is centred on it, as its bar is
    colours = matplotlib.colormaps["Reds"].with_extremes(bad="#e9e9e9")  # no reading: does not apply that day
    image = ax.imshow(grid, aspect="auto", cmap=colours, vmin=0.0, vmax=1.0, interpolation="nearest",
                      extent=(start, start + grid.shape[1], len(codes) - 0.5, -0.5))
    ax.set_yticks(range(len(codes)), codes, fontsize=6.5)
    # An inset colour bar leaves the strip as wide as the panels it shares the time axis with.
    colourbar = fig.colorbar(image, cax=ax.inset_axes((1.005, 0.0, 0.008, 1.0)))
    colourbar.ax.tick_params(labelsize=6)


def _score(ax: Any, timeline: Timeline, cjk: bool) -> None:
    import matplotlib.dates as mdates

    days = [d.day for d in timeline.days]
    ax.plot(days, [d.score for d in timeline.days], color="#222222", lw=1.0, label=_text("综合分", "fused score", cjk))
    for level, cut in timeline.cutoffs.items():
        ax.axhline(cut, color=LEVEL_COLOURS.get(level, "grey"), lw=0.7, ls="--")
        ax.text(1.002, cut, f"{LEVEL_ZH.get(level, '') if cjk else ''}{level}", transform=ax.get_yaxis_transform(),
                color=LEVEL_COLOURS.get(level, "grey"), fontsize=7, va="center")
    for start, end, level in _runs(timeline):
        ax.axvspan(mdates.date2num(start) - 0.5, mdates.date2num(end) + 0.5, ymin=0.0, ymax=0.06,
                   color=LEVEL_COLOURS[level], lw=0)
    for w in timeline.warnings:
        day = w.raised_at.astimezone(SHANGHAI).date()
        colour = "#888888" if w.transition == "cleared" else LEVEL_COLOURS.get(w.level, "grey")
        ax.scatter([day], [w.score], marker="v" if w.transition in ("de-escalated", "cleared") else "^",
                   color=colour, edgecolor="black", linewidth=0.4, s=36, zorder=4)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel(_text("分数", "score", cjk))
    ax.set_title(_text("综合分、等级线与等级带(▲升级 ▼降级/解除)",
                       "fused score, level cut-offs, level band at the bottom; ▲ raised/escalated ▼ de-escalated/cleared",
                       cjk))


def _runs(timeline: Timeline) -> list[tuple[date, date, str]]:
    """Contiguous days at one level: (first, last, level)."""
    runs: list[tuple[date, date, str]] = []
    for d in timeline.days:
        if d.level is None:
            continue
        if runs and runs[-1][2] == d.level and (d.day - runs[-1][1]).days == 1:
            runs[-1] = (runs[-1][0], d.day, d.level)
        else:
            runs.append((d.day, d.day, d.level))
    return runs


def _marks(ax: Any, timeline: Timeline) -> None:
    """Collapse date, first sign and look-alike episode (labels), and registry/status changes."""
    for e in timeline.profile_events:
        if e.kind in MARKED_KINDS:
            ax.axvline(e.day, color="#9467bd", lw=0.7, ls=":")
    label = timeline.label
    if not label:
        return
    if label.get("collapse_date"):
        ax.axvline(date.fromisoformat(label["collapse_date"]), color="black", lw=1.4)
    if label.get("signal_start"):
        ax.axvline(date.fromisoformat(label["signal_start"]), color="black", lw=0.8, ls="--")
    if label.get("episode"):
        first, last = (date.fromisoformat(x) for x in label["episode"])
        ax.axvspan(first, last, color="#999999", alpha=0.15, lw=0)
