"""The web inbox: server-rendered pages (Jinja2) for staff to read and work cases.

Chinese first, English second. No JavaScript, nothing fetched from elsewhere: every page is one
HTML document with its CSS inline. Every page needs a login (``/login``, a password set with
``yujing cases users add --password``); the login is kept in the signed session cookie that the
JSON API also accepts. Every form carries the session's CSRF token; actions go through
:func:`cases.store.act` (the same role and status rules and the same audit trail as the
API and the CLI) and come back to the page with a message (post/redirect/get).

Pages:

* ``/inbox``: a handler's own open cases and the unassigned ones to take; for supervisors every
  open case (with an assign form) and the resolved ones awaiting close; viewers read.
* ``/cases/{case_id}``: the case, its merchants and their recent figures, the warning history
  with the indicators' explanations, the audit trail, pushes (supervisors) and the actions the
  user may take now.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import Connection, Engine

from alerts.cases import (
    ACTIONS,
    DISPOSITIONS,
    OPEN_STATUSES,
    CaseActionDenied,
    CaseActionInvalid,
    check_action,
)
from cases import store
from cases.config import CaseSettings
from cases.service import utcnow
from models.calendar import SHANGHAI

if TYPE_CHECKING:
    from yujing.settings import Settings  # passed in by the shell, never imported at run time

TEMPLATES = Path(__file__).with_name("templates")

LEVEL_ZH = {"red": "红", "orange": "橙", "yellow": "黄", "blue": "蓝"}
STATUS_LABELS = {
    "new": ("待领取", "new"),
    "assigned": ("已分派", "assigned"),
    "in_progress": ("处理中", "in progress"),
    "resolved": ("已办结", "resolved"),
    "closed": ("已结案", "closed"),
}
INDUSTRY_ZH = {"beauty": "美容", "hairdressing": "美发", "fitness": "健身", "other": "其他"}
DISPOSITION_LABELS = {
    "confirmed_risk": ("确认风险", "confirmed risk"),
    "false_alarm": ("误报", "false alarm"),
    "rectified": ("已整改", "rectified"),
    "referred_to_enforcement": ("移送执法", "referred to enforcement"),
}
TRANSITION_LABELS = {
    "raised": ("新发", "raised"),
    "escalated": ("升级", "escalated"),
    "de-escalated": ("降级", "de-escalated"),
    "cleared": ("解除", "cleared"),
}
# What the alert policy did with a warning (warnings.action).
POLICY_LABELS = {
    "open": ("立案", "opened the case"),
    "append": ("并入案件", "joined the case"),
    "escalate": ("案件升级", "escalated the case"),
    "record": ("仅记录", "recorded only"),
    "duplicate": ("重复预警", "duplicate"),
    "silenced": ("已静音", "silenced"),
}
# Audit-trail actions (case_events.action).
EVENT_LABELS = {
    "opened": ("立案", "opened"),
    "assigned": ("分派", "assigned"),
    "escalated": ("案件升级", "escalated"),
    "warning": ("新预警", "new warning"),
    "take": ("领取", "taken"),
    "start": ("开始处理", "started"),
    "assign": ("分派", "assigned"),
    "note": ("备注", "note"),
    "resolve": ("办结", "resolved"),
    "close": ("结案", "closed"),
    "reopen": ("重新打开", "reopened"),
}
ROLE_LABELS = {"viewer": ("查看", "viewer"), "handler": ("承办人", "handler"), "supervisor": ("主管", "supervisor")}
DELIVERY_STATUS = {"pending": ("待发送", "pending"), "delivered": ("已送达", "delivered"), "failed": ("失败", "failed")}
DELIVERY_KIND = {"webhook": ("外部推送", "webhook"), "feedback": ("处置反馈", "feedback")}
# The merchant's recent figures carried by warnings (Warning.figures): key, zh, en, unit.
FIGURES = (
    ("prepaid_balance", "预收余额", "prepaid balance", "yuan"),
    ("sales_28d", "近28天售卡", "card sales, 28 d", "yuan"),
    ("redeemed_28d", "近28天核销", "redeemed, 28 d", "yuan"),
    ("refunds_28d", "近28天退款", "refunds, 28 d", "yuan"),
    ("complaints_28d", "近28天投诉", "complaints, 28 d", "count"),
    ("custody_balance", "存管余额", "custody balance", "yuan"),
    ("custody_required", "应存管", "custody required", "yuan"),
)
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
MAX_SILENCE_DAYS = 90


@dataclass(frozen=True)
class Section:
    """One table of the inbox."""

    key: str
    title_zh: str
    title_en: str
    rows: list[dict[str, Any]]
    empty_zh: str
    row_action: str | None = None  # "take" or "assign": a form in each row
    finished: bool = False  # resolved or closed cases: disposition instead of the deadline

    def overdue(self, now: datetime) -> int:
        return sum(1 for r in self.rows if is_overdue(r, now))


def is_overdue(case: Mapping[str, Any], now: datetime) -> bool:
    due = case.get("due_at")
    return bool(due and case.get("status") in OPEN_STATUSES and due < now)


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


# -- formatting (Jinja filters) -------------------------------------------------------------


def local_time(value: datetime | str | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A moment in Shanghai time (the staff's clock), whatever zone it came in.

    >>> from datetime import UTC
    >>> local_time(datetime(2026, 3, 4, 2, 0, tzinfo=UTC))
    '2026-03-04 10:00'
    >>> local_time("2026-03-01T23:59:59+08:00", "%m-%d"), local_time(None)
    ('03-01', '—')
    """
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(SHANGHAI).strftime(fmt)


def duration_zh(delta: timedelta) -> str:
    """A short, rounded duration in Chinese.

    >>> duration_zh(timedelta(minutes=50)), duration_zh(timedelta(hours=5, minutes=20))
    ('50分钟', '5小时20分')
    >>> duration_zh(timedelta(days=3, hours=2))
    '3天2小时'
    """
    minutes = max(0, int(delta.total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}天{hours}小时" if hours else f"{days}天"
    if hours:
        return f"{hours}小时{mins}分" if mins else f"{hours}小时"
    return f"{mins}分钟"


def number(value: Any) -> str:
    """An indicator's value or threshold, without noise.

    >>> number(9.0), number(0.2), number(0.866666), number(None), number(1234567.0)
    ('9', '0.2', '0.867', '—', '1,234,567')
    """
    if value is None:
        return "—"
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3f}".rstrip("0").rstrip(".") if x != int(x) else f"{int(x)}"


def figure(value: Any, unit: str = "yuan") -> str:
    """One of the merchant's figures; "—" when unknown.

    >>> figure(182000.0), figure(4, "count"), figure(None), figure(12.5)
    ('¥182,000', '4', '—', '¥12.50')
    """
    if value is None:
        return "—"
    try:
        x = float(value)
    except (TypeError, ValueError):
        return "—"
    if unit == "count":
        return f"{x:,.0f}"
    return f"¥{x:,.0f}" if x == int(x) else f"¥{x:,.2f}"


def coverage(figures: Mapping[str, Any] | None) -> float | None:
    """Custody balance as a share of the required custody (None when either is unknown).

    >>> coverage({"custody_balance": 20000, "custody_required": 80000}), coverage({}), coverage(None)
    (0.25, None, None)
    """
    if not figures:
        return None
    balance, required = figures.get("custody_balance"), figures.get("custody_required")
    if balance is None or not required:
        return None
    return float(balance) / float(required)


def _indicator_names() -> dict[str, tuple[str, str]]:
    try:
        from models.indicators import ALL_INDICATORS
    except ImportError:  # pragma: no cover - the indicators ship with the package
        return {}
    return {cls.code: (cls.name_zh, cls.name_en) for cls in ALL_INDICATORS}


def page_templates() -> Jinja2Templates:
    """The desk's templates with its filters and labels (the compliance page uses them too)."""
    templates = Jinja2Templates(directory=str(TEMPLATES))
    env = templates.env
    env.filters.update(local=local_time, number=number, figure=figure, duration_zh=duration_zh,
                       percent=lambda v: "—" if v is None else f"{v:.0%}")
    env.globals.update(
        LEVEL_ZH=LEVEL_ZH, STATUS_LABELS=STATUS_LABELS, INDUSTRY_ZH=INDUSTRY_ZH,
        DISPOSITION_LABELS=DISPOSITION_LABELS, DISPOSITIONS=DISPOSITIONS,
        TRANSITION_LABELS=TRANSITION_LABELS, POLICY_LABELS=POLICY_LABELS, EVENT_LABELS=EVENT_LABELS,
        ROLE_LABELS=ROLE_LABELS, DELIVERY_STATUS=DELIVERY_STATUS, DELIVERY_KIND=DELIVERY_KIND,
        FIGURES=FIGURES, INDICATOR_NAMES=_indicator_names(), is_overdue=is_overdue,
        coverage=coverage,
    )
    return templates


# -- sessions: login, CSRF, flash messages ----------------------------------------------------


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created on first use."""
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return str(token)


def csrf_ok(request: Request, submitted: str) -> bool:
    expected = request.session.get("csrf")
    return bool(expected) and bool(submitted) and secrets.compare_digest(str(expected), submitted)


def flash(request: Request, kind: str, message: str) -> None:
    request.session["flash"] = [*request.session.get("flash", []), [kind, message]]


def safe_next(target: str | None, default: str = "/inbox") -> str:
    r"""Only paths of this site (no ``//host`` or ``https://...``) are followed after a form.

    >>> safe_next("/cases/YJ-1"), safe_next("//evil.example/"), safe_next("https://x"), safe_next("")
    ('/cases/YJ-1', '/inbox', '/inbox', '/inbox')
    >>> safe_next("/\\evil.example"), safe_next("/\t/evil.example")  # browsers read both as //evil
    ('/inbox', '/inbox')
    """
    if (
        target and target.startswith("/") and not target.startswith("//")
        and "\\" not in target and target.isprintable() and not any(c.isspace() for c in target)
    ):
        return target
    return default


def login_redirect(request: Request) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(here, safe='/')}", status_code=303)


def session_user(request: Request, conn: Connection) -> store.User | None:
    username = request.session.get("username")
    if not username:
        return None
    user = store.get_user(conn, str(username))
    if user is None:  # deleted or deactivated since the login
        request.session.pop("username", None)
    return user


def _error_text(exc: Exception) -> str:
    if isinstance(exc, CaseActionDenied):
        return f"无权执行此操作。Not allowed: {exc}"
    if isinstance(exc, store.NotFound):
        return f"未找到。Not found: {exc}"
    return f"无法执行此操作。Cannot do this: {exc}"


def _case_targets(case: Mapping[str, Any]) -> list[tuple[str, str, str]]:
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


# Case pages hold personal and enforcement data: never cached, never framed.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}


# -- the router -------------------------------------------------------------------------------


def web_router(settings: Settings, cases: CaseSettings, engine: Engine) -> APIRouter:
    """The inbox's pages and forms, for :func:`cases.api.create_app`."""
    router = APIRouter(include_in_schema=False)
    templates = page_templates()
    headers = PAGE_HEADERS

    def render(request: Request, name: str, user: store.User | None, *, status_code: int = 200,
               **context: Any) -> HTMLResponse:
        flashes = request.session.pop("flash", [])
        return templates.TemplateResponse(
            request, name,
            {"user": user, "csrf": csrf_token(request), "flashes": flashes, "now": utcnow(), **context},
            status_code=status_code, headers=headers,
        )

    def error_page(request: Request, user: store.User | None, status_code: int, title: str,
                   message: str) -> HTMLResponse:
        return render(request, "error.html", user, status_code=status_code, title=title, message=message)

    def back_to(request: Request, target: str) -> RedirectResponse:
        return RedirectResponse(target, status_code=303)

    # -- login --

    @router.get("/login")
    def login_form(request: Request, next: str = "/inbox") -> Response:
        if request.session.get("username"):
            with engine.begin() as conn:
                if session_user(request, conn) is not None:
                    return RedirectResponse(safe_next(next), status_code=303)
        return render(request, "login.html", None, next=safe_next(next), username="")

    @router.post("/login")
    def login(
        request: Request,
        username: str = Form(""),
        password: str = Form(""),
        csrf_token: str = Form(""),
        next: str = Form("/inbox"),
    ) -> Response:
        target = safe_next(next)
        if not csrf_ok(request, csrf_token):
            flash(request, "error", "登录页面已过期,请重新输入。The login page expired; please try again.")
            return render(request, "login.html", None, next=target, username=username, status_code=400)
        with engine.begin() as conn:
            user = store.user_by_password(conn, username.strip(), password) if username and password else None
        if user is None:
            flash(request, "error", "用户名或密码错误。Wrong username or password.")
            return render(request, "login.html", None, next=target, username=username, status_code=401)
        request.session.clear()
        request.session["username"] = user.username
        request.session["csrf"] = secrets.token_urlsafe(32)
        return RedirectResponse(target, status_code=303)

    @router.post("/logout")
    def logout(request: Request) -> Response:
        request.session.clear()
        flash(request, "info", "已退出登录。Signed out.")
        return RedirectResponse("/login", status_code=303)

    # -- pages --

    @router.get("/")
    def root(request: Request) -> Response:
        if not request.session.get("username"):
            return RedirectResponse("/login", status_code=303)
        return RedirectResponse("/inbox", status_code=303)

    @router.get("/inbox")
    def inbox(request: Request, show: str = "") -> Response:
        now = utcnow()
        open_statuses = sorted(OPEN_STATUSES)
        with engine.begin() as conn:
            user = session_user(request, conn)
            if user is None:
                return login_redirect(request)
            sections: list[Section] = []
            if show == "done":
                sections.append(Section(
                    "done", "已办结与已结案(最近100件)", "Resolved and closed (latest 100)",
                    store.list_cases(conn, status=["resolved", "closed"], limit=100),
                    "暂无。None yet.", finished=True,
                ))
            elif user.role == "handler":
                sections.append(Section(
                    "mine", "我的待办", "My queue",
                    store.list_cases(conn, status=open_statuses, assignee=user.username),
                    "暂无分派给您的在办案件。No open cases assigned to you.",
                ))
                sections.append(Section(
                    "unassigned", "待领取", "Unassigned, to take",
                    store.list_cases(conn, status=open_statuses, unassigned=True),
                    "没有待领取的案件。No unassigned cases.", row_action="take",
                ))
            else:
                sections.append(Section(
                    "open", "全部在办案件", "All open cases",
                    store.list_cases(conn, status=open_statuses),
                    "没有在办案件。No open cases.",
                    row_action="assign" if user.role == "supervisor" else None,
                ))
                if user.role == "supervisor":
                    sections.append(Section(
                        "to-close", "待结案(已办结,待主管确认)", "Resolved, awaiting a supervisor's close",
                        store.list_cases(conn, status=["resolved"]),
                        "没有待结案的案件。Nothing awaiting close.", finished=True,
                    ))
            all_open = store.list_cases(conn, status=open_statuses, limit=10_000)
            overdue_total = len(store.overdue_cases(conn, now=now))
            staff = store.list_users(conn)
        by_level = {level: sum(1 for c in all_open if c["level"] == level) for level in LEVEL_ZH}
        return render(
            request, "inbox.html", user, sections=sections, show=show,
            nav="done" if show == "done" else "inbox",
            open_total=len(all_open), by_level=by_level, overdue_total=overdue_total,
            names={u["username"]: u["display_name"] for u in staff},
            assignable=[u for u in staff if u["active"] and u["role"] in ("handler", "supervisor")],
        )

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
                return error_page(request, user, 404, "案件不存在 Case not found",
                                  f"没有编号为 {case_id} 的案件。There is no case {case_id}.")
            staff = store.list_users(conn)
            silences = store.list_silences(conn, now=now)
            others: list[dict[str, Any]] = []
            for m in case["merchants"]:
                for w in store.merchant_history(conn, m["merchant_id"], limit=50):
                    if w["case_id"] != case_id:
                        others.append({**w, "merchant_name": m.get("merchant_name")})
        others.sort(key=lambda w: w["raised_at"], reverse=True)
        targets = _case_targets(case)
        names = {u["username"]: u["display_name"] for u in staff}
        merchant_names = {m["merchant_id"]: m.get("merchant_name") for m in case["merchants"]}
        return render(
            request, "case.html", user, nav="case", case=case, allowed=allowed_actions(user, case),
            names=names, merchant_names=merchant_names,
            assignable=[u for u in staff if u["active"] and u["role"] in ("handler", "supervisor")],
            figures_rows=_latest_figures(case), indicators=_indicators, other_warnings=others,
            targets=targets, silences=_silences_for(silences, targets),
            overdue=is_overdue(case, now),
            silence_default=(now.astimezone(SHANGHAI).date() + timedelta(days=30)).isoformat(),
            silence_max=(now.astimezone(SHANGHAI).date() + timedelta(days=MAX_SILENCE_DAYS - 1)).isoformat(),
            silence_min=now.astimezone(SHANGHAI).date().isoformat(),
        )

    # -- forms --

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
            user = session_user(request, conn)
            if user is None:
                return login_redirect(request)
            if not csrf_ok(request, csrf_token):
                return error_page(request, user, 403, "请求无效 Request refused", CSRF_MESSAGE)
            try:
                case = store.get_case(conn, case_id)
                allowed = {value: kind for value, kind, _ in _case_targets(case)}
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
            except (CaseActionDenied, CaseActionInvalid, store.NotFound) as exc:
                flash(request, "error", _error_text(exc))
                return back_to(request, page)
        flash(request, "ok", f"已静音 #{silence_id}:{target_id} 至 {day.isoformat()}(含)。"
                             f"Silenced #{silence_id}: {kind} {target_id} through {day.isoformat()}.")
        return back_to(request, page)

    @router.post("/silences/{silence_id}/cancel")
    def lift_silence(
        silence_id: int, request: Request, csrf_token: str = Form(""), back: str = Form("/inbox"),
    ) -> Response:
        target = safe_next(back)
        with engine.begin() as conn:
            user = session_user(request, conn)
            if user is None:
                return login_redirect(request)
            if not csrf_ok(request, csrf_token):
                return error_page(request, user, 403, "请求无效 Request refused", CSRF_MESSAGE)
            try:
                with conn.begin_nested():
                    store.cancel_silence(conn, user, silence_id, now=utcnow())
            except (CaseActionDenied, CaseActionInvalid, store.NotFound) as exc:
                flash(request, "error", _error_text(exc))
                return back_to(request, target)
        flash(request, "ok", f"静音 #{silence_id} 已解除。Silence #{silence_id} lifted.")
        return back_to(request, target)

    @router.post("/cases/{case_id}/{action}")
    def case_action(
        case_id: str,
        action: str,
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
            user = session_user(request, conn)
            if user is None:
                return login_redirect(request)
            if not csrf_ok(request, csrf_token):
                return error_page(request, user, 403, "请求无效 Request refused", CSRF_MESSAGE)
            if action not in DONE:
                return error_page(request, user, 404, "没有这个操作 No such action",
                                  f"未知操作 unknown action: {action}")
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
                        feedback_topic=settings.topics.feedback,
                    )
                names = {u["username"]: u["display_name"] for u in store.list_users(conn)}
            except (CaseActionDenied, CaseActionInvalid, store.NotFound) as exc:
                flash(request, "error", _error_text(exc))
                return back_to(request, target if not isinstance(exc, store.NotFound) else "/inbox")
        label = DISPOSITION_LABELS.get(disposition, (disposition, disposition))
        flash(request, "ok", f"{case_id}:" + DONE[action].format(
            assignee=names.get(assignee, assignee), disposition=f"{label[0]} {label[1]}"))
        return back_to(request, target)

    return router


CSRF_MESSAGE = (
    "表单已过期或来源无效(CSRF 校验未通过),操作未执行。请返回并刷新页面后重试。"
    "The form expired or did not come from this site (CSRF check failed); nothing was changed. "
    "Go back, reload the page and try again."
)
