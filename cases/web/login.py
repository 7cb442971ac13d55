"""Signing in and out: ``/login`` (a password set with ``yujing cases users add --password``) and
``/logout``. A new login starts a new session (new CSRF token); only paths of this site are
followed after it (:func:`cases.web.common.safe_next`). Too many failed logins for a username
or from an address lock further attempts out for a while (:mod:`cases.login_throttle`, 429)."""

from __future__ import annotations

import math
import secrets

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from cases import store
from cases.login_throttle import LoginThrottle, lockout_message
from cases.service import utcnow
from cases.web.common import (
    CSRF_MESSAGE,
    Pages,
    csrf_ok,
    flash,
    local_time,
    safe_next,
    session_user,
)


def add_routes(router: APIRouter, pages: Pages) -> None:
    """The login form, the login and the logout."""
    engine, render = pages.engine, pages.render

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
        target, name = safe_next(next), username.strip()
        if not csrf_ok(request, csrf_token):
            flash(request, "error", "登录页面已过期,请重新输入。The login page expired; please try again.")
            return render(request, "login.html", None, next=target, username=username, status_code=400)
        throttle = LoginThrottle.from_settings(request.app.state.cases)
        address = request.client.host if request.client else "unknown"
        now = utcnow()
        with engine.begin() as conn:
            # Refused before the password is checked: a guess during a lockout learns nothing.
            locked = throttle.locked_until(conn, name, address, now)
            user = None
            if locked is None:
                user = store.user_by_password(conn, name, password) if name and password else None
                if user is None and name:
                    locked = throttle.failed(conn, name, address, now)
                elif user is not None:
                    throttle.succeeded(conn, name)
        if locked is not None:
            flash(request, "error", lockout_message(locked, now, local_time(locked, "%H:%M")))
            page = render(request, "login.html", None, next=target, username=username, status_code=429)
            page.headers["Retry-After"] = str(max(1, math.ceil((locked - now).total_seconds())))
            return page
        if user is None:
            flash(request, "error", "用户名或密码错误。Wrong username or password.")
            return render(request, "login.html", None, next=target, username=username, status_code=401)
        request.session.clear()
        request.session["username"] = user.username
        request.session["csrf"] = secrets.token_urlsafe(32)
        return RedirectResponse(target, status_code=303)

    @router.post("/logout")
    def logout(request: Request, csrf_token: str = Form("")) -> Response:
        # Without a login there is nothing to end; with one, only our own form may end it.
        if request.session.get("username") and not csrf_ok(request, csrf_token):
            with engine.begin() as conn:
                user = session_user(request, conn)
            return pages.error_page(request, user, 403, "请求无效 Request refused", CSRF_MESSAGE)
        request.session.clear()
        flash(request, "info", "已退出登录。Signed out.")
        return RedirectResponse("/login", status_code=303)
