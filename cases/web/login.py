"""Signing in and out: ``/login`` (a password set with ``yujing cases users add --password``) and
``/logout``. A new login starts a new session (new CSRF token); only paths of this site are
followed after it (:func:`cases.web.common.safe_next`)."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from cases import store
from cases.web.common import Pages, csrf_ok, flash, safe_next, session_user


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
