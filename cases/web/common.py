"""What every page of the web inbox shares: labels, Jinja filters, the templates, the session
(login, CSRF token, flash messages) and the headers every page is sent with.

Chinese first, English second. No JavaScript, nothing fetched from elsewhere: every page is one
HTML document with its CSS inline. The login is kept in the signed session cookie (the JSON API
ignores it); every form carries the session's CSRF token. Templates are autoescaped (Jinja's
default in Starlette), and every page forbids scripts through its Content-Security-Policy.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import Connection, Engine

from alerts.cases import DISPOSITIONS, OPEN_STATUSES
from cases import store
from cases.service import utcnow
from models.calendar import SHANGHAI

# The templates stay beside the package (cases/templates: package data), not in cases/web/.
TEMPLATES = Path(__file__).parent.parent / "templates"

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


def is_overdue(case: Mapping[str, Any], now: datetime) -> bool:
    due = case.get("due_at")
    return bool(due and case.get("status") in OPEN_STATUSES and due < now)



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
    # Every template escaped, whatever its file name ends with (Starlette's default only does .html):
    # merchant names, notes and display names come from people and other systems.
    env.autoescape = True
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


# Case pages hold personal and enforcement data: never cached, never framed.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}

CSRF_MESSAGE = (
    "表单已过期或来源无效(CSRF 校验未通过),操作未执行。请返回并刷新页面后重试。"
    "The form expired or did not come from this site (CSRF check failed); nothing was changed. "
    "Go back, reload the page and try again."
)


@dataclass(frozen=True)
class Pages:
    """What each page's routes are given: the templates (with the desk's filters) and the database."""

    templates: Jinja2Templates
    engine: Engine

    def render(self, request: Request, name: str, user: store.User | None, *, status_code: int = 200,
               **context: Any) -> HTMLResponse:
        """The template ``name`` with the user, the CSRF token, the flash messages and the time."""
        flashes = request.session.pop("flash", [])
        return self.templates.TemplateResponse(
            request, name,
            {"user": user, "csrf": csrf_token(request), "flashes": flashes, "now": utcnow(), **context},
            status_code=status_code, headers=PAGE_HEADERS,
        )

    def error_page(self, request: Request, user: store.User | None, status_code: int, title: str,
                   message: str, back: str | None = None) -> HTMLResponse:
        return self.render(request, "error.html", user, status_code=status_code, title=title, message=message,
                           back=back)

    def form_user(self, request: Request, conn: Connection, submitted_csrf: str) -> store.User | Response:
        """Who posts a state-changing form, or the answer instead: the login page for no session,
        a 403 page for a missing or foreign CSRF token (nothing is changed)."""
        user = session_user(request, conn)
        if user is None:
            return login_redirect(request)
        if not csrf_ok(request, submitted_csrf):
            return self.error_page(request, user, 403, "请求无效 Request refused", CSRF_MESSAGE)
        return user

    def refused(self, request: Request, user: store.User, message: str, back: str) -> HTMLResponse:
        """A role's refusal (403): said on a page of its own with the way back, never a redirect
        that would look like success to anything but a person reading the flash."""
        return self.error_page(request, user, 403, "无权执行此操作 Not allowed", message, back=back)
