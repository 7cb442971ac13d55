"""The bench's figures from what a run measured: one table (rich), JSON, and a PNG of every
must-show figure against its line.

Rates are events per second; a ratio compares two rates (or times) of the same run, so the machine
cancels out. The must-show lines are issue 17's.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from bench.measure import percentile, rate, ratio

if TYPE_CHECKING:
    from rich.table import Table

    from bench.run import Measured

KB = 1024


@dataclass(frozen=True)
class Figure:
    """One row: ``value`` in ``unit``; a must-show ``floor`` (value >= it) or ``ceiling`` (<=)."""

    section: str
    name: str
    value: float | None
    unit: str  # "x" (a ratio), "s", "B" or "/s"
    detail: str = ""
    floor: float | None = None
    ceiling: float | None = None

    @property
    def must(self) -> str:
        if self.floor is not None:
            return f">= {_show(self.floor, self.unit)}"
        if self.ceiling is not None:
            return f"<= {_show(self.ceiling, self.unit)}"
        return ""

    @property
    def met(self) -> bool | None:
        """Whether the must-show line is met (None: no line, or nothing measured).

        >>> Figure("s", "n", 0.8, "x", floor=0.7).met, Figure("s", "n", 1.2, "s", ceiling=1.0).met
        (True, False)
        """
        if self.value is None or (self.floor is None and self.ceiling is None):
            return None
        return self.value >= self.floor if self.floor is not None else self.value <= (self.ceiling or 0.0)


def _show(value: float | None, unit: str) -> str:
    """A figure as the table prints it.

    >>> _show(0.1234, "x"), _show(15234.0, "/s"), _show(41234.0, "B"), _show(0.4567, "s")
    ('0.12x', '15,234/s', '40.3 KB', '0.46 s')
    """
    if value is None or not math.isfinite(value):
        return "—"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "/s":
        return f"{value:,.0f}/s"
    if unit == "B":
        return f"{value / KB:,.1f} KB" if value >= KB else f"{value:,.0f} B"
    return f"{value:.2f} s"


def _best(watches: list[Any]) -> float | None:
    return max((w.rate for w in watches), default=None)


def _fastest(seconds: list[float]) -> float | None:
    return min(seconds, default=None)


def figures(m: Measured) -> list[Figure]:
    """The rows of the sections asked for, in the order of ``bench.run.SECTIONS``."""
    client, bare, naive = _best(m.client), _best(m.faust), _best(m.naive)
    worker = m.worker.rate if m.worker else None
    rows: dict[str, list[Figure]] = {
        "client": [Figure("client", "aiokafka getmany + orjson (the client limit)", client, "/s",
                          f"best of {len(m.client)}")],
        "faust": [Figure("faust", "bare Faust agent / client limit", ratio(bare, client), "x",
                         f"{_show(bare, '/s')}, best of {len(m.faust)}")],
        "naive": [Figure("naive", "naive Table pipeline / bare Faust agent", ratio(naive, bare), "x",
                         f"{_show(naive, '/s')}, best of {len(m.naive)}")],
        "worker": [
            Figure("worker", "live worker / bare Faust agent", ratio(worker, bare), "x",
                   f"{_show(worker, '/s')} vs {_show(bare, '/s')}", floor=0.7),
            Figure("worker", "live worker / naive Table pipeline", ratio(worker, naive), "x",
                   f"{_show(worker, '/s')} vs {_show(naive, '/s')}", floor=2.5),
        ],
        "replay": [_replay(m)],
        "scale": [_scale(m)],
        "latency": _latency(m),
        "state": _state(m),
        "catchup": [_catchup(m)],
    }
    return [row for section in m.options.only for row in rows[section]]


def _replay(m: Measured) -> Figure:
    decode, backtest = _fastest(m.raw_decode), _fastest(m.backtest)
    replay_rate = rate(m.history_events, backtest) if backtest else None
    decode_rate = rate(m.history_events, decode) if decode else None
    return Figure("replay", "replay (yujing backtest) / raw orjson decode", ratio(replay_rate, decode_rate), "x",
                  f"{_show(replay_rate, '/s')} ({_show(backtest, 's')}) vs {_show(decode_rate, '/s')}", floor=0.25)


def _scale(m: Measured) -> Figure:
    two, one = (m.scale.rate if m.scale else None), (m.worker.rate if m.worker else None)
    joined = m.scale.second_joined if m.scale else None
    when = f"second joined at {joined:.0f} s" if joined is not None else "second never joined"
    return Figure("scale", f"2 workers / 1 on {m.options.partitions} partitions", ratio(two, one), "x",
                  f"{_show(two, '/s')} vs {_show(one, '/s')}; {when}", floor=1.6)


def _latency(m: Measured) -> list[Figure]:
    run = m.latency
    if run is None:
        return [Figure("latency", "event -> warning p99 at half load", None, "s", "not measured", ceiling=1.0)]
    held = run.records / max(run.fed_seconds, 1e-6)
    load = f"{_show(run.rate, '/s')} asked, {_show(held, '/s')} fed"
    return [
        Figure("latency", "event -> warning p99 at half load", percentile(run.warnings, 99), "s",
               f"p50 {_show(percentile(run.warnings, 50), 's')}, {len(run.warnings)} warnings; {load}", ceiling=1.0),
        Figure("latency", "event -> scored merchant-day p99", percentile(run.scored_days, 99), "s",
               f"p50 {_show(percentile(run.scored_days, 50), 's')}, {len(run.scored_days):,} merchant-days"),
    ]


def _state(m: Measured) -> list[Figure]:
    state = m.state
    if state is None:
        return [Figure("state", "state per merchant (merchants table)", None, "B", "not measured", ceiling=8 * KB)]
    sizes = list(state.per_merchant.values())
    mean = sum(sizes) / len(sizes) if sizes else None
    logged = sum(state.changelog_bytes.values())
    by_table = ", ".join(f"{name.rsplit('-yujing-', 1)[-1].removesuffix('-changelog')} {_show(size, 'B')}"
                         for name, size in sorted(state.changelog_bytes.items(), key=lambda kv: -kv[1]))
    missing = f"; {state.missing} merchants not found" if state.missing else ""
    return [
        Figure("state", "state per merchant (merchants table)", mean, "B",
               f"max {_show(max(sizes, default=None), 'B')}, {len(sizes)} merchants{missing}", ceiling=8 * KB),
        Figure("state", "changelog bytes per merchant-day", logged / state.merchant_days if state.merchant_days else None,
               "B", f"{_show(logged, 'B')} over {state.merchant_days:,} merchant-days: {by_table}"),
    ]


def _catchup(m: Measured) -> Figure:
    backtest = _fastest(m.backtest)
    catch = m.worker.catch_up if m.worker else None
    return Figure("catchup", f"catch-up of a fresh worker / backtest ({m.options.merchants} merchants, "
                  f"{m.options.days} d)", ratio(catch, backtest), "x",
                  f"{_show(catch, 's')} vs {_show(backtest, 's')}", ceiling=2.0)


def table(rows: list[Figure], title: str) -> Table:
    from rich.table import Table

    out = Table(title=title, title_justify="left")
    for column, justify in (("section", "left"), ("figure", "left"), ("value", "right"), ("must show", "right"),
                            ("met", "center"), ("measured", "left")):
        out.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        met = {True: "[green]yes[/green]", False: "[red]no[/red]", None: ""}[row.met]
        out.add_row(row.section, row.name, _show(row.value, row.unit), row.must, met, row.detail)
    return out


def markdown(rows: list[Figure]) -> str:
    """The table as Markdown (for the README and docs/performance.md)."""
    lines = ["| figure | value | must show | met | measured |", "|---|---|---|---|---|"]
    for row in rows:
        met = {True: "yes", False: "**no**", None: ""}[row.met]
        lines.append(f"| {row.name} | {_show(row.value, row.unit)} | {row.must} | {met} | {row.detail} |")
    return "\n".join(lines)


def write_json(path: Path, m: Measured, rows: list[Figure]) -> None:
    raw = asdict(m)
    raw["options"]["keep"] = str(m.options.keep) if m.options.keep else None
    if m.latency is not None:  # the samples' quantiles, not thousands of numbers
        raw["latency"]["warnings"] = sorted(m.latency.warnings)
        raw["latency"]["scored_days"] = [percentile(m.latency.scored_days, q) for q in (50, 90, 99, 100)]
    doc = {"figures": [{**asdict(r), "must": r.must, "met": r.met} for r in rows], "measured": raw}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))


def write_png(path: Path, rows: list[Figure]) -> None:
    """A panel per must-show figure: its bar against its line (green when met, red when not)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    musts = [r for r in rows if r.floor is not None or r.ceiling is not None]
    if not musts:
        return
    fig, axes = plt.subplots(1, len(musts), figsize=(2.3 * len(musts), 3.6), squeeze=False)
    for ax, row in zip(axes[0], musts, strict=True):
        line = row.floor if row.floor is not None else row.ceiling
        scale = KB if row.unit == "B" else 1.0
        value = (row.value or 0.0) / scale
        ax.bar([0], [value], color={True: "#2e7d32", False: "#c62828", None: "#9e9e9e"}[row.met], width=0.6)
        ax.axhline((line or 0.0) / scale, color="black", linestyle="--", linewidth=1)
        ax.set_ylim(0, 1.15 * max(value, (line or 0.0) / scale))
        ax.set_xticks([])
        ax.set_xlim(-0.8, 0.8)
        ax.set_title(_wrap(row.name), fontsize=8)
        ax.set_ylabel({"x": "ratio", "s": "seconds", "B": "KB"}.get(row.unit, row.unit), fontsize=8)
        ax.text(0, value, _show(row.value, row.unit), ha="center", va="bottom", fontsize=8)
    fig.suptitle("yujing bench: must-show figures (dashed: the line)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _wrap(text: str, width: int = 22) -> str:
    """``text`` broken into lines of at most ``width`` characters, at spaces.

    >>> _wrap("live worker / bare Faust agent", 14)
    'live worker /\\nbare Faust\\nagent'
    """
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return "\n".join(lines)
