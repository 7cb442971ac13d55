"""Grafana dashboards as code: 监管总览 (regulator overview), 商户画像 (merchant drill-down) and
管道健康 (pipeline health), built with grafana-foundation-sdk.

Each dashboard is built in its own module (``overview.py``, ``merchant.py``, ``pipeline.py``) from
what they share: ``targets.py`` (the datasources, PromQL and SQL targets) and ``panels.py`` (uids,
level names and colours, overrides, common variables and links). This module puts them together.

``python -m deploy.grafana.dashboards`` writes the dashboards' JSON to
``deploy/grafana/dashboards/`` (what Grafana's file provider loads) and the panel catalogue into
docs/observability.md between ``<!-- dashboards:start -->`` and ``<!-- dashboards:end -->``;
``--check`` writes nothing and exits 1 when any of them is stale.

Every query is data: :func:`all_queries` lists each panel target, template-variable query and
annotation query with its datasource kind, so a test can run every PromQL expression against a
real Prometheus and every SQL statement against the case service's PostgreSQL
(:func:`substitute` fills in Grafana's macros the way Grafana does for the default selection).

Queries use only these Grafana variables: PromQL ``$__rate_interval``, ``$__range``, ``$town``,
``$industry``, ``$level``; SQL ``$__timeFilter(column)``, ``'$merchant'`` and
``${town:regex}`` / ``${industry:regex}`` / ``${level:regex}`` inside ``~ '^(...)$'``. The
multi-value variables have the custom "All" value ``.*``; the ``:regex`` format is what makes
one, several or all selected values a valid PostgreSQL regular expression (Grafana's default SQL
formatting would quote them as ``'a','b'`` and leave "All" as a bare ``.*``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from deploy.grafana import merchant, overview, pipeline
from deploy.grafana.panels import DEFAULT_CASES_URL, MERCHANT_UID, OVERVIEW_UID, PIPELINE_UID
from deploy.grafana.targets import DATASOURCE_KINDS

ROOT = Path(__file__).resolve().parents[2]
OUT_DIR = ROOT / "deploy" / "grafana" / "dashboards"
CATALOGUE_DOC = ROOT / "docs" / "observability.md"
CATALOGUE_START = "<!-- dashboards:start -->"
CATALOGUE_END = "<!-- dashboards:end -->"

ENGLISH_TITLES = {OVERVIEW_UID: "Regulator overview", MERCHANT_UID: "Merchant drill-down",
                  PIPELINE_UID: "Pipeline health"}


# --- output -------------------------------------------------------------------------------------

BUILDERS: dict[str, Callable[[], dash.Dashboard]] = {
    OVERVIEW_UID: overview.dashboard, MERCHANT_UID: merchant.dashboard, PIPELINE_UID: pipeline.dashboard,
}


def dashboards() -> dict[str, dict[str, Any]]:
    """Every dashboard as Grafana JSON (plain dicts), by uid."""
    return {uid: json.loads(json.dumps(build().build(), cls=JSONEncoder)) for uid, build in BUILDERS.items()}


def render(board: dict[str, Any]) -> str:
    return json.dumps(board, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


Kind = Literal["prometheus", "postgres"]
Role = Literal["target", "variable", "annotation"]


@dataclass(frozen=True)
class Query:
    """One query a dashboard sends to a datasource."""

    dashboard: str  # dashboard uid
    panel: str  # panel title, or the variable's / annotation's name
    kind: Kind
    expr: str  # as stored in the dashboard
    role: Role = "target"
    ref_id: str = ""
    legend: str = ""

    @property
    def promql(self) -> str:
        """The PromQL to evaluate: Grafana's ``label_values(metric, label)`` (a variable query, not
        PromQL) becomes ``group by (label) (metric)``, which returns one series per value."""
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", self.expr.strip())
        return f"group by ({match[2]}) ({match[1]})" if match else self.expr


def _kind(datasource: Any) -> Kind:
    uid = datasource.get("uid") if isinstance(datasource, dict) else None
    if uid not in DATASOURCE_KINDS:
        raise ValueError(f"unknown datasource {datasource!r}")
    return DATASOURCE_KINDS[uid]  # type: ignore[return-value]


def queries_of(board: dict[str, Any]) -> list[Query]:
    uid = board["uid"]
    found = []
    for panel in board.get("panels", []):
        for target in panel.get("targets", []):
            kind = _kind(target.get("datasource") or panel.get("datasource"))
            expr = target.get("expr") if kind == "prometheus" else target.get("rawSql")
            found.append(Query(uid, panel["title"], kind, expr or "", "target", target.get("refId", ""),
                               target.get("legendFormat", "")))
    for variable in board.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable["query"]
            found.append(Query(uid, variable["name"], _kind(variable.get("datasource")),
                               query if isinstance(query, str) else str(query.get("query") or query.get("rawSql")),
                               "variable"))
    for annotation in board.get("annotations", {}).get("list", []):
        if annotation.get("builtIn"):
            continue
        target = annotation.get("target") or {}
        kind = _kind(annotation.get("datasource"))
        expr = (annotation.get("expr") or annotation.get("rawQuery") or target.get("expr")
                or target.get("rawSql") or "")
        found.append(Query(uid, annotation["name"], kind, expr, "annotation"))
    return found


def all_queries() -> list[Query]:
    """Every query of every dashboard: panel targets, template variables, annotations."""
    return [query for board in dashboards().values() for query in queries_of(board)]


# Grafana's macros and variables, filled in as Grafana does with every multi-value variable at
# "All" (its custom value .*). Only these may appear in a query (a test checks it).
PROMQL_MACROS = ("$__rate_interval", "$__range", "$__interval", "$town", "$industry", "$level")
SQL_MACROS = ("$__timeFilter(", "$__timeFrom()", "$__timeTo()", "$merchant",
              "${town:regex}", "${industry:regex}", "${level:regex}", "${cases_url}")


def substitute(query: Query, *, time_from: datetime, time_to: datetime, merchant: str = "",
               rate_interval: str = "1m", cases_url: str = DEFAULT_CASES_URL) -> str:
    """The query as Grafana would send it with town/industry/level at "All" (``.*``).

    PromQL gets ``promql`` (variables' ``label_values`` rewritten); the range
    ``[$__range]`` becomes the whole window in seconds. SQL gets Grafana's PostgreSQL macros:
    ``$__timeFilter(c)`` is ``c BETWEEN '<from>' AND '<to>'`` (RFC 3339, UTC).

    >>> q = Query("d", "p", "postgres", "SELECT 1 WHERE $__timeFilter(day) AND m = '$merchant'")
    >>> substitute(q, time_from=datetime(2025, 9, 1, tzinfo=UTC),
    ...            time_to=datetime(2025, 10, 1, tzinfo=UTC), merchant="M1")
    "SELECT 1 WHERE day BETWEEN '2025-09-01T00:00:00Z' AND '2025-10-01T00:00:00Z' AND m = 'M1'"
    """
    if query.kind == "prometheus":
        text = query.promql
        seconds = max(1, int((time_to - time_from).total_seconds()))
        for name, value in (("$__rate_interval", rate_interval), ("$__range", f"{seconds}s"),
                            ("$__interval", "15s"), ("$town", ".*"), ("$industry", ".*"), ("$level", ".*")):
            text = text.replace(name, value)
        return text

    def stamp(moment: datetime) -> str:
        aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    text = re.sub(r"\$__timeFilter\(([^)]*)\)",
                  lambda m: f"{m[1].strip()} BETWEEN '{stamp(time_from)}' AND '{stamp(time_to)}'", query.expr)
    text = text.replace("$__timeFrom()", f"'{stamp(time_from)}'").replace("$__timeTo()", f"'{stamp(time_to)}'")
    for name, value in (("${town:regex}", ".*"), ("${industry:regex}", ".*"), ("${level:regex}", ".*"),
                        ("${cases_url}", cases_url), ("$merchant", merchant)):
        text = text.replace(name, value)
    return text


# --- catalogue in docs/observability.md -----------------------------------------------------------

def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def catalogue(boards: dict[str, dict[str, Any]] | None = None) -> str:
    """The catalogue block: one table per dashboard, every panel with what it shows and its queries."""
    boards = boards if boards is not None else dashboards()
    lines = [
        CATALOGUE_START,
        "<!-- generated by `python -m deploy.grafana.dashboards` from deploy/grafana/dashboards.py; "
        "do not edit by hand (`--check` fails when this block or the JSON is stale) -->",
        "",
        "Three dashboards, generated as code with grafana-foundation-sdk into `deploy/grafana/dashboards/` "
        "and provisioned, with their Prometheus and PostgreSQL datasources, from "
        "`deploy/grafana/provisioning/` into the folder 预付卡预警. Multi-value variables (`town`, "
        "`industry`, `level`) have the \"All\" value `.*`; SQL uses their `:regex` form. Links in the "
        "tables open the case desk at `${cases_url}` (a text box, default " + DEFAULT_CASES_URL + ").",
        "",
    ]
    for board in boards.values():
        lines += [f"#### {board['title']} {ENGLISH_TITLES.get(board['uid'], '')} (`{board['uid']}`)",
                  "", board["description"], ""]
        variables = [v for v in board.get("templating", {}).get("list", [])]
        if variables:
            lines += ["Variables: " + "; ".join(
                f"`{v['name']}` = `{_cell(str(v.get('query', '')))}`" for v in variables) + ".", ""]
        queries = queries_of(board)
        lines += ["| panel | shows | query |", "|---|---|---|"]
        for panel in board.get("panels", []):
            exprs = [q for q in queries if q.role == "target" and q.panel == panel["title"]]
            cell = "<br>".join(f"`{_cell(q.expr)}`" for q in exprs)
            lines.append(f"| {panel['title']} | {_cell(panel.get('description', ''))} | {cell} |")
        lines.append("")
    lines.append(CATALOGUE_END)
    return "\n".join(lines)


def with_catalogue(doc: str, block: str) -> str:
    """``doc`` (docs/observability.md) with ``block`` in place of what is between the markers."""
    start, end = doc.find(CATALOGUE_START), doc.find(CATALOGUE_END)
    if start < 0 or end < start:
        raise SystemExit(f"{_name(CATALOGUE_DOC)} lacks the {CATALOGUE_START} ... {CATALOGUE_END} markers")
    return doc[:start] + block + doc[end + len(CATALOGUE_END):]


# --- command line -------------------------------------------------------------------------------

def outputs() -> dict[Path, str]:
    """Every generated file and its content."""
    boards = dashboards()
    files = {OUT_DIR / f"{uid}.json": render(board) for uid, board in boards.items()}
    files[CATALOGUE_DOC] = with_catalogue(CATALOGUE_DOC.read_text(encoding="utf-8"), catalogue(boards))
    return files


def stale(files: dict[Path, str]) -> list[Path]:
    return [path for path, text in files.items()
            if not path.exists() or path.read_text(encoding="utf-8") != text]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.grafana.dashboards", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a dashboard file or the catalogue is stale")
    args = parser.parse_args(argv)
    files = outputs()
    outdated = stale(files)
    if args.check:
        if outdated:
            names = ", ".join(_name(path) for path in outdated)
            sys.stderr.write(f"stale: {names} (run python -m deploy.grafana.dashboards)\n")
            return 1
        return 0
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for path in outdated:
        path.write_text(files[path], encoding="utf-8")
    _report(outdated)
    return 0


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _report(paths: Iterable[Path]) -> None:
    written = [_name(path) for path in paths]
    sys.stdout.write(("wrote " + ", ".join(written) if written else "up to date") + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
