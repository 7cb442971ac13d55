"""The compliance desk's page (``/compliance``, 合规): findings of the register
(:mod:`cases.findings`), filtered by code, town, industry and status, newest or
longest-running first, with acknowledge and resolve forms for handlers and supervisors.

Same look, login, CSRF and post/redirect/get as the case inbox (:mod:`cases.web.common`).
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import Engine

from alerts.cases import CaseActionDenied, CaseActionInvalid
from cases import findings_desk, store
from cases.findings import CODES, STATUSES
from cases.service import utcnow
from cases.web.common import (
    CSRF_MESSAGE,
    Pages,
    csrf_ok,
    flash,
    login_redirect,
    page_templates,
    safe_next,
    session_user,
)

FINDING_STATUS = {
    "open": ("待处理", "open"),
    "acknowledged": ("已知悉", "acknowledged"),
    "resolved": ("已处理", "resolved"),
    "cleared": ("已消除", "cleared"),
}
# The page's status filter: a name -> the statuses it shows.
SHOW = {
    "attention": findings_desk.ATTENTION,
    "open": ("open",),
    "acknowledged": ("acknowledged",),
    "resolved": ("resolved",),
    "cleared": ("cleared",),
    "all": STATUSES,
}
ACTIONS = {"acknowledge": "acknowledged", "resolve": "resolved"}
DONE = {"acknowledged": "已知悉 Acknowledged", "resolved": "已处理 Resolved"}


def add_routes(router: APIRouter, engine: Engine) -> None:
    """The compliance page and its forms (its own templates: the findings' labels added)."""
    templates = page_templates()
    templates.env.globals.update(FINDING_STATUS=FINDING_STATUS, ALLOWED=findings_desk.ALLOWED)
    pages = Pages(templates, engine)

    @router.get("/compliance")
    def compliance(request: Request, code: str = "", district: str = "", industry: str = "",
                   show: str = "attention", order: str = "newest") -> Response:
        show = show if show in SHOW else "attention"
        order = order if order in findings_desk.ORDERS else "newest"
        code = code if code in CODES else ""
        with engine.begin() as conn:
            user = session_user(request, conn)
            if user is None:
                return login_redirect(request)
            rows = findings_desk.list_findings(
                conn, statuses=SHOW[show], code=code or None, district=district or None,
                industry=industry or None, order=order,  # type: ignore[arg-type]
            )
            totals = findings_desk.counts(conn)
            choices = findings_desk.facets(conn)
            names = {u["username"]: u["display_name"] for u in store.list_users(conn)}
        by_code = {c: sum(totals[(c, s)] for s in findings_desk.ATTENTION) for c in CODES}
        here = "/compliance" + (f"?{request.url.query}" if request.url.query else "")
        return pages.render(
            request, "findings.html", user, nav="compliance",
            rows=rows, by_code=by_code, codes=CODES, choices=choices, names=names,
            filters={"code": code, "district": district, "industry": industry, "show": show, "order": order},
            shows=SHOW, here=here, may_handle=user.role in ("handler", "supervisor"),
            filter_link=lambda **kw: "/compliance?" + urlencode({"show": show, "order": order, **kw}),
        )

    @router.post("/compliance/{merchant_id}/{code}/{action}")
    def act(merchant_id: str, code: str, action: str, request: Request, csrf_token: str = Form(""),
            note: str = Form(""), back: str = Form("/compliance")) -> Response:
        target = safe_next(back, "/compliance")
        if not target.startswith("/compliance"):
            target = "/compliance"
        with engine.begin() as conn:
            user = session_user(request, conn)
            if user is None:
                return login_redirect(request)
            if not csrf_ok(request, csrf_token):
                flash(request, "error", CSRF_MESSAGE)
                return RedirectResponse(target, status_code=303)
            handling = ACTIONS.get(action)
            try:
                if handling is None:
                    raise CaseActionInvalid(f"unknown action {action}")
                with conn.begin_nested():
                    findings_desk.handle(conn, merchant_id, code, user, handling, note, now=utcnow())
            except CaseActionDenied as exc:
                return pages.refused(request, user, f"无权执行此操作 Not allowed: {exc}", target)
            except (CaseActionInvalid, store.NotFound) as exc:
                flash(request, "error", f"无法执行 Cannot do this: {exc}")
                return RedirectResponse(target, status_code=303)
        flash(request, "ok", f"{merchant_id} {code}: {DONE[handling]}")
        return RedirectResponse(target + f"#f-{quote(merchant_id)}-{code}", status_code=303)
