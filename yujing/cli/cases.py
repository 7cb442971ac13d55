"""``yujing cases ...``: run the case desk, manage its users, and work cases from a terminal.

``serve``, ``migrate``, ``users`` and ``rebuild-findings`` act on the database directly (operators). The case commands
(``list``, ``show``, ``take``, ``assign``, ``note``, ``resolve``, ``close``, ``reopen``,
``silence``, ``route``, ``deliveries``, and the compliance findings: ``findings``,
``finding-ack``, ``finding-resolve``) go through the HTTP API with the caller's own token
(``--token`` or ``YUJING_CASES_TOKEN``), so the same role checks and audit trail apply as in the
web inbox.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

cases_app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)
users_app = typer.Typer(no_args_is_help=True, help="Staff accounts and their API tokens.")
cases_app.add_typer(users_app, name="users")
console = Console()
err = Console(stderr=True)

LEVEL_ZH = {"red": "红", "orange": "橙", "yellow": "黄", "blue": "蓝"}
LEVEL_STYLE = {"red": "bold red", "orange": "dark_orange", "yellow": "yellow", "blue": "blue"}


def fail(message: str) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(1)


def _database_url() -> str:
    from yujing.settings import get_settings

    return get_settings().database


def _engine() -> Any:
    from cases.db import make_engine

    return make_engine(_database_url())


# -- operator commands (database) ---------------------------------------------------------


@cases_app.command()
def migrate() -> None:
    """Create or upgrade the case desk's schema (Alembic migrations)."""
    from cases.db import DatabaseUnavailable
    from cases.db import migrate as run

    try:
        revision = run(_database_url())
    except DatabaseUnavailable as exc:
        fail(str(exc))
    console.print(f"schema at revision {revision}")


@cases_app.command()
def serve(
    loglevel: str = typer.Option("info", help="Log level."),
) -> None:
    """Run the case service: read the disposal queue into cases, serve the API and web inbox,
    push webhooks and publish feedback. Ctrl-C stops it cleanly."""
    import logging

    import uvicorn

    from cases.api import create_app
    from cases.config import get_case_settings
    from cases.db import DatabaseUnavailable
    from cases.db import migrate as run_migrations
    from cases.metrics import CaseMetrics
    from cases.service import CaseService, utcnow
    from yujing.settings import get_settings

    logging.basicConfig(level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    try:
        cases = get_case_settings()
    except ValueError as exc:
        fail(f"invalid YUJING_CASES_* setting: {str(exc).splitlines()[0]}")
    try:
        run_migrations(settings.database)
    except DatabaseUnavailable as exc:
        fail(str(exc))
    engine = _engine()
    metrics = CaseMetrics()  # the default registry (with process_* metrics), served at /metrics
    metrics.watch_database(engine, utcnow)
    service = CaseService(settings, cases, engine, metrics)
    service.start()
    try:
        uvicorn.run(create_app(settings, cases, engine), host=cases.host, port=cases.port,
                    log_level=loglevel.lower(), access_log=False)
    finally:
        service.stop()
        engine.dispose()


@cases_app.command("rebuild-findings")
def rebuild_findings() -> None:
    """Rebuild the compliance findings from the stored merchant-day history (after an upgrade
    that added the register, or when the compliance codes changed); staff handling is kept."""
    from sqlalchemy.exc import OperationalError

    from cases.findings import rebuild
    from cases.service import utcnow

    try:
        with _engine().begin() as conn:
            merchants = rebuild(conn, now=utcnow())
    except OperationalError as exc:
        fail(f"cannot reach PostgreSQL: {str(exc.orig).splitlines()[0]}")
    console.print(f"compliance findings rebuilt from the history of {merchants} merchant(s)")


@users_app.command("add")
def users_add(
    username: str = typer.Argument(..., help="Login name."),
    role: str = typer.Option(..., help="viewer, handler or supervisor."),
    name: str | None = typer.Option(None, help="Display name (e.g. 王芳)."),
    password: str | None = typer.Option(None, help="Web inbox password; or YUJING_CASES_NEW_PASSWORD."),
) -> None:
    """Create a staff account; prints its API token once (only a hash is kept)."""
    from sqlalchemy.exc import OperationalError

    from alerts.cases import CaseActionInvalid
    from cases import store

    password = password or os.environ.get("YUJING_CASES_NEW_PASSWORD")
    try:
        with _engine().begin() as conn:
            token = store.add_user(conn, username, role, display_name=name, password=password)
    except CaseActionInvalid as exc:
        fail(str(exc))
    except OperationalError as exc:
        fail(f"cannot reach PostgreSQL: {str(exc.orig).splitlines()[0]}")
    console.print(f"user {username} ({role}) created; API token (shown once):")
    console.print(token, highlight=False)


@users_app.command("list")
def users_list() -> None:
    """Staff accounts and roles."""
    from cases import store

    with _engine().begin() as conn:
        rows = store.list_users(conn)
    table = Table("username", "name", "role", "active")
    for r in rows:
        table.add_row(r["username"], r["display_name"], r["role"], "yes" if r["active"] else "no")
    console.print(table)


# -- staff commands (HTTP API) ------------------------------------------------------------

API = typer.Option(None, "--api", help="Case service URL (default: YUJING_CASES_PUBLIC_URL).")
TOKEN = typer.Option(None, "--token", help="Your API token (default: YUJING_CASES_TOKEN).")


def _call(method: str, path: str, api: str | None, token: str | None, **kwargs: Any) -> Any:
    import httpx

    from cases.config import get_case_settings

    base = api or get_case_settings().public_url
    token = token or os.environ.get("YUJING_CASES_TOKEN")
    if not token:
        fail("no token: pass --token or set YUJING_CASES_TOKEN (from `yujing cases users add`)")
    try:
        response = httpx.request(method, base.rstrip("/") + path, headers={"Authorization": f"Bearer {token}"},
                                 timeout=30, **kwargs)
    except httpx.HTTPError as exc:
        fail(f"cannot reach the case service at {base}: {exc}")
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail")
        except ValueError:
            detail = response.text
        if isinstance(detail, list):  # FastAPI validation errors
            detail = "; ".join(f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg')}" for d in detail)
        fail(f"{response.status_code}: {detail}")
    return response.json()


def _local(ts: str | None) -> str:
    if not ts:
        return "—"
    from models.calendar import SHANGHAI

    return datetime.fromisoformat(ts).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def _level(level: str | None) -> str:
    if not level:
        return "—"
    return f"[{LEVEL_STYLE[level]}]{LEVEL_ZH[level]} {level}[/]"


@cases_app.command("list")
def list_cases(
    mine: bool = typer.Option(False, "--mine", help="Only cases assigned to me."),
    all_statuses: bool = typer.Option(False, "--all", help="Resolved and closed too."),
    level: str | None = typer.Option(None, help="Only this level."),
    api: str | None = API, token: str | None = TOKEN,
) -> None:
    """The queue: most severe first, then the nearest response deadline."""
    params: dict[str, Any] = {"mine": mine, "all": all_statuses}
    if level:
        params["level"] = level
    rows = _call("GET", "/api/cases", api, token, params=params)
    now = datetime.now(UTC)
    table = Table("level", "case", "title", "town", "industry", "merchants", "status", "assignee", "due")
    for r in rows:
        due = _local(r["due_at"])
        if r["due_at"] and datetime.fromisoformat(r["due_at"]) < now and r["status"] in ("new", "assigned", "in_progress"):
            due = f"[red]{due} overdue[/]"
        table.add_row(_level(r["level"]), r["case_id"], r["title"], r["district"] or "", r["industry"] or "",
                      str(r["merchants"]), r["status"], r["assignee"] or "", due)
    console.print(table)
    console.print(f"{len(rows)} case(s)")


@cases_app.command()
def show(case_id: str, api: str | None = API, token: str | None = TOKEN) -> None:
    """A case: merchants, warnings with their reasons, audit trail."""
    c = _call("GET", f"/api/cases/{case_id}", api, token)
    console.print(f"[bold]{c['case_id']}[/] {c['title']}  {_level(c['level'])}  status {c['status']}"
                  f"  assignee {c['assignee'] or '—'}  due {_local(c['due_at'])}"
                  + (f"  disposition {c['disposition']}" if c["disposition"] else ""))
    merchants = Table("merchant", "name", "town", "industry", "level", "last transition")
    for m in c["merchants"]:
        merchants.add_row(m["merchant_id"], m["merchant_name"] or "", m["district"] or "", m["industry"] or "",
                          _level(m["level"]), f"{m['last_transition']} {_local(m['last_raised_at'])}")
    console.print(merchants)
    for w in c["warnings"]:
        console.print(f"{_local(w['raised_at'])}  {w['merchant_id']}  {w['transition']} {_level(w['level'])}"
                      f"  score {w['score']:.2f}  ({w['action']})")
        for reading in w["payload"].get("indicators", [])[:6]:
            console.print(f"    · {reading['explanation_zh']}", highlight=False)
    console.print("[bold]audit trail[/]")
    for e in c["events"]:
        what = e["action"] + (f" → {e['to_status']}" if e["to_status"] and e["to_status"] != e["from_status"] else "")
        console.print(f"  {_local(e['at'])}  {e['actor']:<10} {what}" + (f": {e['note']}" if e["note"] else ""),
                      highlight=False)


@cases_app.command()
def take(case_id: str, api: str | None = API, token: str | None = TOKEN) -> None:
    """Take a case and start working on it."""
    r = _call("POST", f"/api/cases/{case_id}/take", api, token)
    console.print(f"{case_id}: {r['status']}")


@cases_app.command()
def assign(case_id: str, assignee: str, api: str | None = API, token: str | None = TOKEN) -> None:
    """Supervisors: give a case to a handler."""
    r = _call("POST", f"/api/cases/{case_id}/assign", api, token, json={"assignee": assignee})
    console.print(f"{case_id}: {r['status']} ({assignee})")


@cases_app.command()
def note(case_id: str, text: str, api: str | None = API, token: str | None = TOKEN) -> None:
    """Add a note to a case."""
    _call("POST", f"/api/cases/{case_id}/notes", api, token, json={"note": text})
    console.print(f"{case_id}: note added")


@cases_app.command()
def resolve(
    case_id: str,
    disposition: str = typer.Option(..., help="confirmed_risk, false_alarm, rectified or referred_to_enforcement."),
    note: str = typer.Option(..., "--note", help="What was found and done."),
    api: str | None = API, token: str | None = TOKEN,
) -> None:
    """Resolve a case; the disposition is fed back to the scoring side."""
    r = _call("POST", f"/api/cases/{case_id}/resolve", api, token,
              json={"disposition": disposition, "note": note})
    console.print(f"{case_id}: {r['status']} ({disposition})")


@cases_app.command()
def close(case_id: str, api: str | None = API, token: str | None = TOKEN) -> None:
    """Supervisors: confirm a resolution and close the case."""
    r = _call("POST", f"/api/cases/{case_id}/close", api, token)
    console.print(f"{case_id}: {r['status']}")


@cases_app.command()
def reopen(case_id: str, note: str = typer.Option(..., "--note", help="Why."),
           api: str | None = API, token: str | None = TOKEN) -> None:
    """Supervisors: reopen a resolved or closed case."""
    r = _call("POST", f"/api/cases/{case_id}/reopen", api, token, json={"note": note})
    console.print(f"{case_id}: {r['status']}")


@cases_app.command()
def silence(
    target: str = typer.Argument(..., help="merchant:<merchant_id> or chain:<chain_id>."),
    reason: str = typer.Option(..., help="Why it is muted (recorded)."),
    days: float = typer.Option(7, help="For how many days (at most 90)."),
    api: str | None = API, token: str | None = TOKEN,
) -> None:
    """Supervisors: mute a merchant or chain for a period; every silence expires."""
    kind, _, target_id = target.partition(":")
    if kind not in ("merchant", "chain") or not target_id:
        fail("target must be merchant:<merchant_id> or chain:<chain_id>")
    ends = (datetime.now(UTC) + timedelta(days=days)).isoformat()
    r = _call("POST", "/api/silences", api, token,
              json={"target_kind": kind, "target_id": target_id, "reason": reason, "ends_at": ends})
    console.print(f"silence #{r['silence_id']} on {target} until {_local(ends)}")


@cases_app.command()
def silences(api: str | None = API, token: str | None = TOKEN) -> None:
    """Silences in force."""
    table = Table("#", "target", "reason", "by", "until")
    for s in _call("GET", "/api/silences", api, token):
        table.add_row(str(s["silence_id"]), f"{s['target_kind']}:{s['target_id']}", s["reason"],
                      s["created_by"], _local(s["ends_at"]))
    console.print(table)


@cases_app.command()
def route(
    assignee: str = typer.Argument(..., help="Handler who gets the matching new cases."),
    town: str | None = typer.Option(None, help="Town (district field); omit for any."),
    industry: str | None = typer.Option(None, help="beauty, hairdressing, fitness, other; omit for any."),
    api: str | None = API, token: str | None = TOKEN,
) -> None:
    """Supervisors: route new cases by town and industry (the most specific rule wins)."""
    r = _call("POST", "/api/routing-rules", api, token,
              json={"assignee": assignee, "district": town, "industry": industry})
    console.print(f"routing rule #{r['rule_id']}: {town or 'any town'} / {industry or 'any industry'} -> {assignee}")


@cases_app.command()
def deliveries(
    failed: bool = typer.Option(False, "--failed", help="Only pushes that gave up."),
    retry: int | None = typer.Option(None, help="Queue this failed delivery again."),
    api: str | None = API, token: str | None = TOKEN,
) -> None:
    """Supervisors: webhook pushes and feedback records, with their attempts and errors."""
    if retry is not None:
        _call("POST", f"/api/deliveries/{retry}/retry", api, token)
        console.print(f"delivery #{retry} queued again")
        return
    rows = _call("GET", "/api/deliveries", api, token, params={"status": "failed"} if failed else {})
    table = Table("#", "kind", "target", "case", "status", "attempts", "last error")
    for d in rows:
        table.add_row(str(d["message_id"]), d["kind"], d["target"], d["case_id"] or "", d["status"],
                      str(d["attempts"]), (d["last_error"] or "")[:60])
    console.print(table)


# -- compliance findings (HTTP API) ---------------------------------------------------------

FINDING_ZH = {"open": "待处理", "acknowledged": "已知悉", "resolved": "已处理", "cleared": "已消除"}


@cases_app.command()
def findings(
    code: str | None = typer.Option(None, help="over_cap_cards, custody_report_missing or custody_coverage."),
    town: str | None = typer.Option(None, help="Only this town (district field)."),
    industry: str | None = typer.Option(None, help="Only this industry."),
    merchant: str | None = typer.Option(None, help="Only this merchant."),
    all_statuses: bool = typer.Option(False, "--all", help="Resolved and cleared too."),
    longest: bool = typer.Option(False, "--longest", help="Longest-running first (default: newest)."),
    api: str | None = API, token: str | None = TOKEN,
) -> None:
    """Compliance findings (cap breaches, custody reports missing, custody shortfalls), open and
    acknowledged ones unless --all; kept apart from the risk level."""
    params: dict[str, Any] = {"all": all_statuses, "order": "longest" if longest else "newest"}
    for key, value in (("code", code), ("district", town), ("industry", industry), ("merchant_id", merchant)):
        if value:
            params[key] = value
    rows = _call("GET", "/api/findings", api, token, params=params)
    table = Table("code", "merchant", "town", "industry", "status", "since", "last day", "days",
                  "value / thr.", "handled")
    for f in rows:
        handled = f"{f['handling']} by {f['handled_by']}" if f["handling"] else ""
        value = "—" if f["value"] is None else f"{f['value']:g}"
        threshold = "—" if f["threshold"] is None else f"{f['threshold']:g}"
        table.add_row(f["code"], f"{f['merchant_id']} {f['merchant_name'] or ''}".strip(), f["district"] or "",
                      f["industry"] or "", f"{FINDING_ZH.get(f['status'], '')} {f['status']}", f["opened_day"],
                      f["last_day"], str(f["days_running"]), f"{value} / {threshold}", handled)
    console.print(table)
    console.print(f"{len(rows)} finding(s)")


def _handle_finding(merchant_id: str, code: str, action: str, note: str, api: str | None,
                    token: str | None) -> None:
    r = _call("POST", f"/api/findings/{merchant_id}/{code}/{action}", api, token, json={"note": note})
    console.print(f"{merchant_id} {code}: {r['status']}")


@cases_app.command("finding-ack")
def finding_ack(merchant_id: str, code: str, note: str = typer.Option(..., "--note", help="What was seen."),
                api: str | None = API, token: str | None = TOKEN) -> None:
    """Acknowledge a compliance finding (seen, being looked into)."""
    _handle_finding(merchant_id, code, "acknowledge", note, api, token)


@cases_app.command("finding-resolve")
def finding_resolve(merchant_id: str, code: str, note: str = typer.Option(..., "--note", help="What was done."),
                    api: str | None = API, token: str | None = TOKEN) -> None:
    """Resolve a compliance finding (rectified, referred, or accepted); it opens again if the
    breach recurs after a clear."""
    _handle_finding(merchant_id, code, "resolve", note, api, token)
