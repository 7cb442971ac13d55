"""A case's page (``/cases/{case_id}``): the case, its merchants and their recent figures, the
warning history with the indicators' explanations, the audit trail, pushes (supervisors) and the
actions the user may take now. Its forms post to :mod:`cases.web.case_forms`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import Connection

from alerts.cases import ACTIONS, CaseActionDenied, CaseActionInvalid, check_action
from cases import store
from cases.service import utcnow
from cases.web.common import Pages, is_overdue, login_redirect, session_user
from models.calendar import SHANGHAI

MAX_SILENCE_DAYS = 90


def allowed_actions(user: store.User, case: Mapping[str, Any]) -> set[str]:
    """The actions ``user`` may do on ``case`` now (:func:`alerts.cases.check_action` decides)."""
    allowed = set()
    for action in ACTIONS:
        try:
            check_action(user.role, action, assignee=case.get("assignee"), actor=user.username,
                         status=case["status"])
        except (CaseActionDenied, CaseActionInvalid):
            continue
        allowed.add(action)
    return allowed


def silence_targets(case: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """What a silence on this case can mute: (value, kind, label) for the chain and each merchant."""
    targets: list[tuple[str, str, str]] = []
    group = str(case.get("group_key") or "")
    if group.startswith("chain:"):
        chain_id = group.split(":", 1)[1]
        targets.append((f"chain:{chain_id}", "chain", f"整个连锁 whole chain {chain_id}"))
    for m in case.get("merchants", []):
        name = m.get("merchant_name") or m["merchant_id"]
        targets.append((f"merchant:{m['merchant_id']}", "merchant", f"商户 merchant {name} ({m['merchant_id']})"))
    return targets


def _latest_figures(case: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per merchant of the case, the figures of its newest warning that carries them."""
    newest: dict[str, dict[str, Any]] = {}
    for w in case.get("warnings", []):  # newest first
        payload = w.get("payload") or {}
        figures = payload.get("figures")
        if w["merchant_id"] not in newest and figures:
            newest[w["merchant_id"]] = {"figures": figures, "as_of": w["raised_at"]}
    rows = []
    for m in case.get("merchants", []):
        found = newest.get(m["merchant_id"], {})
        rows.append({
            "merchant_id": m["merchant_id"],
            "merchant_name": m.get("merchant_name"),
            "figures": found.get("figures") or {},
            "as_of": found.get("as_of"),
        })
    return rows


def _indicators(payload: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """A warning's indicator readings, the strongest contribution first."""
    readings = list((payload or {}).get("indicators") or [])

    def strength(r: Mapping[str, Any]) -> float:
        value = r.get("contribution")
        return float(value if value is not None else r.get("score") or 0.0)

    return sorted(readings, key=strength, reverse=True)


def _silences_for(silences: Iterable[Mapping[str, Any]], targets: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    wanted = {value for value, _, _ in targets}
    return [dict(s) for s in silences if f"{s['target_kind']}:{s['target_id']}" in wanted]


def _other_warnings(conn: Connection, case: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The case's merchants' warnings that belong to other cases (or none), newest first."""
    others: list[dict[str, Any]] = []
    for m in case["merchants"]:
        for w in store.merchant_history(conn, m["merchant_id"], limit=50):
            if w["case_id"] != case["case_id"]:
                others.append({**w, "merchant_name": m.get("merchant_name")})
    others.sort(key=lambda w: w["raised_at"], reverse=True)
    return others


def add_routes(router: APIRouter, pages: Pages) -> None:
    """``/cases/{case_id}``."""
    engine = pages.engine

    @router.get("/cases/{case_id}")
    def case_page(case_id: str, request: Request) -> Response:
        now = utcnow()
        with engine.begin() as conn:
            user = session_user(request, conn)
            if user is None:
                return login_redirect(request)
            try:
                case = store.get_case(conn, case_id)
            except store.NotFound:
                return pages.error_page(request, user, 404, "案件不存在 Case not found",
                                        f"没有编号为 {case_id} 的案件。There is no case {case_id}.")
            staff = store.list_users(conn)
            silences = store.list_silences(conn, now=now)
            others = _other_warnings(conn, case)
        targets = silence_targets(case)
        names = {u["username"]: u["display_name"] for u in staff}
        merchant_names = {m["merchant_id"]: m.get("merchant_name") for m in case["merchants"]}
        today = now.astimezone(SHANGHAI).date()
        return pages.render(
            request, "case.html", user, nav="case", case=case, allowed=allowed_actions(user, case),
            names=names, merchant_names=merchant_names,
            assignable=[u for u in staff if u["active"] and u["role"] in ("handler", "supervisor")],
            figures_rows=_latest_figures(case), indicators=_indicators, other_warnings=others,
            targets=targets, silences=_silences_for(silences, targets),
            overdue=is_overdue(case, now),
            silence_default=(today + timedelta(days=30)).isoformat(),
            silence_max=(today + timedelta(days=MAX_SILENCE_DAYS - 1)).isoformat(),
            silence_min=today.isoformat(),
        )
