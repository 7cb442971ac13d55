"""The forms of a case's page: its actions (take, start, note, assign, resolve, close, reopen),
silencing its merchant or chain, and lifting a silence.

Actions go through :func:`cases.store.act` (the same role and status rules and the same audit
trail as the API and the CLI) and come back to the page with a message (post/redirect/get). An
action the status does not allow is undone whole (a savepoint) and said in the message; one the
user's role or ownership does not allow is refused with a 403 page saying why.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from alerts.cases import DISPOSITIONS, CaseActionDenied, CaseActionInvalid
from cases import store
from cases.service import utcnow
from cases.web.case_page import silence_targets
from cases.web.common import (
    DISPOSITION_LABELS,
    Pages,
    flash,
    safe_next,
)
from models.calendar import SHANGHAI

# Actions the web forms may post, with the message shown after each.
DONE = {
    "take": "已领取,案件由您承办。Case taken: it is yours now.",
    "start": "已开始处理。Work started.",
    "note": "备注已添加。Note added.",
    "assign": "已分派给 {assignee}。Assigned to {assignee}.",
    "resolve": "案件已办结({disposition}),处置结果将反馈至预警模型。Resolved; feedback queued.",
    "close": "已结案。Case closed.",
    "reopen": "案件已重新打开。Case reopened.",
}
NOTE_REQUIRED = frozenset({"note", "resolve", "reopen"})
MAX_NOTE = 4000


def _error_text(exc: Exception) -> str:
    if isinstance(exc, CaseActionDenied):
        return f"无权执行此操作。Not allowed: {exc}"
    if isinstance(exc, store.NotFound):
        return f"未找到。Not found: {exc}"
    return f"无法执行此操作。Cannot do this: {exc}"


def back_to(target: str) -> RedirectResponse:
    return RedirectResponse(target, status_code=303)


def add_silence_routes(router: APIRouter, pages: Pages) -> None:
    """Silencing a case's merchant or chain, and lifting a silence (supervisors)."""
    engine = pages.engine

    @router.post("/cases/{case_id}/silences")
    def silence(
        case_id: str,
        request: Request,
        csrf_token: str = Form(""),
        target: str = Form(""),
        until: str = Form(""),
        reason: str = Form(""),
    ) -> Response:
        page = f"/cases/{quote(case_id)}"
        with engine.begin() as conn:
            user = pages.form_user(request, conn, csrf_token)
            if isinstance(user, Response):
                return user
            try:
                case = store.get_case(conn, case_id)
                allowed = {value: kind for value, kind, _ in silence_targets(case)}
                if target not in allowed:
                    raise CaseActionInvalid("choose the merchant or the chain of this case to silence")
                try:
                    day = date.fromisoformat(until)
                except ValueError:
                    raise CaseActionInvalid("give the last day of the silence (YYYY-MM-DD)") from None
                # Muted through the given day, Shanghai time.
                ends_at = datetime.combine(day + timedelta(days=1), time(), SHANGHAI)
                kind, target_id = target.split(":", 1)
                with conn.begin_nested():
                    silence_id = store.add_silence(conn, user, kind, target_id, reason=reason.strip(),
                                                   ends_at=ends_at, now=utcnow())
            except CaseActionDenied as exc:
                return pages.refused(request, user, _error_text(exc), page)
            except (CaseActionInvalid, store.NotFound) as exc:
                flash(request, "error", _error_text(exc))
                return back_to(page)
        flash(request, "ok", f"已静音 #{silence_id}:{target_id} 至 {day.isoformat()}(含)。"
                             f"Silenced #{silence_id}: {kind} {target_id} through {day.isoformat()}.")
        return back_to(page)

    @router.post("/silences/{silence_id}/cancel")
    def lift_silence(
        silence_id: int, request: Request, csrf_token: str = Form(""), back: str = Form("/inbox"),
    ) -> Response:
        target = safe_next(back)
        with engine.begin() as conn:
            user = pages.form_user(request, conn, csrf_token)
            if isinstance(user, Response):
                return user
            try:
                with conn.begin_nested():
                    store.cancel_silence(conn, user, silence_id, now=utcnow())
            except CaseActionDenied as exc:
                return pages.refused(request, user, _error_text(exc), target)
            except (CaseActionInvalid, store.NotFound) as exc:
                flash(request, "error", _error_text(exc))
                return back_to(target)
        flash(request, "ok", f"静音 #{silence_id} 已解除。Silence #{silence_id} lifted.")
        return back_to(target)


def add_action_route(router: APIRouter, pages: Pages, *, feedback_topic: str) -> None:
    """``/cases/{case_id}/<action>``, one route per action of :data:`DONE` (so that the access
    table, :mod:`cases.access`, names each with the roles it allows). Added after every more
    specific ``/cases/{case_id}/...`` form."""
    for action in DONE:
        router.add_api_route(f"/cases/{{case_id}}/{action}", _action_endpoint(pages, action, feedback_topic),
                             methods=["POST"], name=f"case_{action}")


def _action_endpoint(pages: Pages, action: str, feedback_topic: str) -> Callable[..., Response]:
    engine = pages.engine

    def case_action(
        case_id: str,
        request: Request,
        csrf_token: str = Form(""),
        note: str = Form(""),
        disposition: str = Form(""),
        assignee: str = Form(""),
        back: str = Form(""),
    ) -> Response:
        page = f"/cases/{quote(case_id)}"
        target = safe_next(back, page)
        with engine.begin() as conn:
            user = pages.form_user(request, conn, csrf_token)
            if isinstance(user, Response):
                return user
            text = note.strip()
            try:
                if action in NOTE_REQUIRED and not text:
                    raise CaseActionInvalid("请填写说明 a note is required for this action")
                if len(text) > MAX_NOTE:
                    raise CaseActionInvalid(f"说明过长 the note is longer than {MAX_NOTE} characters")
                if action == "resolve" and disposition not in DISPOSITIONS:
                    raise CaseActionInvalid("请选择处置结果 choose a disposition")
                # A savepoint, so that a refused action leaves nothing half-done behind.
                with conn.begin_nested():
                    store.act(
                        conn, case_id, user, action, now=utcnow(), note=text or None,
                        assignee=assignee or None, disposition=disposition or None,
                        feedback_topic=feedback_topic,
                    )
                names = {u["username"]: u["display_name"] for u in store.list_users(conn)}
            except CaseActionDenied as exc:
                return pages.refused(request, user, _error_text(exc), page)
            except (CaseActionInvalid, store.NotFound) as exc:
                flash(request, "error", _error_text(exc))
                return back_to(target if not isinstance(exc, store.NotFound) else "/inbox")
        label = DISPOSITION_LABELS.get(disposition, (disposition, disposition))
        flash(request, "ok", f"{case_id}:" + DONE[action].format(
            assignee=names.get(assignee, assignee), disposition=f"{label[0]} {label[1]}"))
        return back_to(target)

    return case_action
