"""The inbox (``/inbox``; ``/`` leads there): a handler's own open cases and the unassigned ones
to take; for supervisors every open case (with an assign form) and the resolved ones awaiting
close; viewers read. ``?show=done`` lists the latest resolved and closed cases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import Connection

from alerts.cases import OPEN_STATUSES
from cases import store
from cases.service import utcnow
from cases.web.common import LEVEL_ZH, Pages, is_overdue, login_redirect, session_user


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


def inbox_sections(conn: Connection, user: store.User, show: str) -> list[Section]:
    """The tables ``user`` sees: their queue by role, or the finished cases (``show == "done"``)."""
    open_statuses = sorted(OPEN_STATUSES)
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
    return sections


def add_routes(router: APIRouter, pages: Pages) -> None:
    """``/`` and ``/inbox``."""
    engine = pages.engine

    @router.get("/")
    def root(request: Request) -> Response:
        if not request.session.get("username"):
            return RedirectResponse("/login", status_code=303)
        return RedirectResponse("/inbox", status_code=303)

    @router.get("/inbox")
    def inbox(request: Request, show: str = "") -> Response:
        now = utcnow()
        with engine.begin() as conn:
            user = session_user(request, conn)
            if user is None:
                return login_redirect(request)
            sections = inbox_sections(conn, user, show)
            all_open = store.list_cases(conn, status=sorted(OPEN_STATUSES), limit=10_000)
            overdue_total = len(store.overdue_cases(conn, now=now))
            staff = store.list_users(conn)
        by_level = {level: sum(1 for c in all_open if c["level"] == level) for level in LEVEL_ZH}
        return pages.render(
            request, "inbox.html", user, sections=sections, show=show,
            nav="done" if show == "done" else "inbox",
            open_total=len(all_open), by_level=by_level, overdue_total=overdue_total,
            names={u["username"]: u["display_name"] for u in staff},
            assignable=[u for u in staff if u["active"] and u["role"] in ("handler", "supervisor")],
        )
