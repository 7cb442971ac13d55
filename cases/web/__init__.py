"""The web inbox: server-rendered pages (Jinja2) for staff to read and work cases.

Chinese first, English second. Every page needs a login (``/login``, a password set with
``yujing cases users add --password``); the login is kept in the signed session cookie (HttpOnly,
SameSite=Lax, Secure behind TLS), which only these pages accept: the JSON API wants a token.
Every form carries the session's CSRF token; who may use each route is :mod:`cases.access`'s
table. Actions go through
:func:`cases.store.act` (the same role and status rules and the same audit trail as the API and
the CLI) and come back to the page with a message (post/redirect/get).

One module a page, what they share in :mod:`cases.web.common`:

* :mod:`~cases.web.login`: ``/login`` and ``/logout``.
* :mod:`~cases.web.inbox`: ``/inbox``: a handler's own open cases and the unassigned ones to take;
  for supervisors every open case (with an assign form) and the resolved ones awaiting close;
  viewers read.
* :mod:`~cases.web.case_page`: ``/cases/{case_id}``: the case, its merchants and their recent
  figures, the warning history with the indicators' explanations, the audit trail, pushes
  (supervisors) and the actions the user may take now; :mod:`~cases.web.case_forms`: its forms.
* :mod:`~cases.web.compliance`: ``/compliance``: the compliance findings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter
from sqlalchemy import Engine

from cases.web import case_forms, case_page, compliance, inbox, login
from cases.web.common import Pages, page_templates

if TYPE_CHECKING:
    from streams.config import KafkaSettings


def web_router(settings: KafkaSettings, engine: Engine) -> APIRouter:
    """Every page and form, for :func:`cases.api.create_app`. Every route must have its row in
    :data:`cases.access.ACCESS` (a test walks them)."""
    router = APIRouter(include_in_schema=False)
    pages = Pages(page_templates(), engine)
    login.add_routes(router, pages)
    inbox.add_routes(router, pages)
    case_page.add_routes(router, pages)
    case_forms.add_silence_routes(router, pages)
    case_forms.add_action_route(router, pages, feedback_topic=settings.topics.feedback)
    compliance.add_routes(router, engine)
    return router
