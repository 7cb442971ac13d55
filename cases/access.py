"""Who may use each route of the case desk: one declared table, route by route and role by role.

The table is the contract the app's own checks are held to: ``tests/test_case_security.py``
walks every route of :func:`cases.api.create_app` (every method), fails on a route missing from
:data:`ACCESS`, and calls each one as every role and without a session, asserting the answer is
what the table says. The checks themselves stay where the decisions are made (the bearer token
and :func:`cases.api.supervisor` for the API, :func:`alerts.cases.check_action` for case actions,
:mod:`cases.findings_desk` for findings, the login for pages): the table states the outcome,
the test proves the code gives it.

``python -m cases.access --markdown`` prints the table as docs/cases.md carries it (a test keeps
the copy current).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from alerts.cases import ALLOWED, ROLES

EVERYONE = frozenset(ROLES)
WORKERS = frozenset({"handler", "supervisor"})
SUPERVISORS = frozenset({"supervisor"})
NOBODY: frozenset[str] = frozenset()

# What a request without a session or token gets: "open" answers it; "login" sends a page's
# visitor to /login (303); "401" is the API's refusal.
Anonymous = Literal["open", "login", "401"]


@dataclass(frozen=True)
class Rule:
    """Who may use one route: the roles allowed, what no session gets, and a word on scope."""

    roles: frozenset[str]
    anonymous: Anonymous
    note: str = ""

    def allows(self, role: str | None) -> bool:
        if role is None:
            return self.anonymous == "open"
        return self.anonymous == "open" or role in self.roles


def _service(note: str) -> Rule:
    return Rule(EVERYONE, "open", note)


def _api(roles: frozenset[str], note: str = "") -> Rule:
    return Rule(roles, "401", note)


def _page(roles: frozenset[str], note: str = "") -> Rule:
    return Rule(roles, "login", note)


OWN = "handlers: cases assigned to them"
TAKE = "handlers: unassigned cases (or their own)"

# Case actions: the roles are alerts.cases.ALLOWED's, so the table and the rule cannot drift.
_CASE_ACTIONS = {"take": TAKE, "start": OWN, "assign": "", "note": OWN, "resolve": OWN, "close": "",
                 "reopen": ""}
_API_ACTION = {"note": "notes"}  # the API's path segment where it differs from the action's name

# (method, path) -> rule. HEAD, where a route answers it, follows its GET.
ACCESS: dict[tuple[str, str], Rule] = {
    ("GET", "/healthz"): _service("readiness: no data"),
    ("GET", "/metrics"): _service("Prometheus: counts only, no case or personal data"),
    ("GET", "/openapi.json"): _service("the API's description, no data"),
    ("GET", "/docs"): _service("the API's description, no data"),
    ("GET", "/docs/oauth2-redirect"): _service("part of /docs"),
    ("GET", "/redoc"): _service("the API's description, no data"),
    # -- the JSON API: a bearer token, never the session cookie --
    ("GET", "/api/me"): _api(EVERYONE),
    ("GET", "/api/cases"): _api(EVERYONE),
    ("GET", "/api/cases/{case_id}"): _api(EVERYONE),
    **{("POST", f"/api/cases/{{case_id}}/{_API_ACTION.get(a, a)}"): _api(ALLOWED[a], note)
       for a, note in _CASE_ACTIONS.items()},
    ("GET", "/api/merchants/{merchant_id}/warnings"): _api(EVERYONE),
    ("GET", "/api/overdue"): _api(EVERYONE),
    ("GET", "/api/silences"): _api(EVERYONE),
    ("POST", "/api/silences"): _api(SUPERVISORS),
    ("DELETE", "/api/silences/{silence_id}"): _api(SUPERVISORS),
    ("GET", "/api/routing-rules"): _api(EVERYONE),
    ("POST", "/api/routing-rules"): _api(SUPERVISORS),
    ("DELETE", "/api/routing-rules/{rule_id}"): _api(SUPERVISORS),
    ("GET", "/api/deliveries"): _api(SUPERVISORS),
    ("POST", "/api/deliveries/{message_id}/retry"): _api(SUPERVISORS),
    ("GET", "/api/findings"): _api(EVERYONE),
    ("GET", "/api/findings/{merchant_id}/{code}"): _api(EVERYONE),
    ("POST", "/api/findings/{merchant_id}/{code}/{action}"): _api(WORKERS, "acknowledge or resolve"),
    # -- the web pages: the session cookie, every form with its CSRF token --
    ("GET", "/login"): Rule(EVERYONE, "open", "the login form"),
    ("POST", "/login"): Rule(EVERYONE, "open", "rate-limited per username and address"),
    ("POST", "/logout"): Rule(EVERYONE, "open", "ends the session it comes with"),
    ("GET", "/"): _page(EVERYONE, "leads to /inbox"),
    ("GET", "/inbox"): _page(EVERYONE, "what each role sees differs"),
    ("GET", "/cases/{case_id}"): _page(EVERYONE, "buttons follow role and status"),
    ("POST", "/cases/{case_id}/silences"): _page(SUPERVISORS),
    ("POST", "/silences/{silence_id}/cancel"): _page(SUPERVISORS),
    **{("POST", f"/cases/{{case_id}}/{a}"): _page(ALLOWED[a], note) for a, note in _CASE_ACTIONS.items()},
    ("GET", "/compliance"): _page(EVERYONE),
    ("POST", "/compliance/{merchant_id}/{code}/{action}"): _page(WORKERS, "acknowledge or resolve"),
}


def rule_for(method: str, path: str) -> Rule | None:
    """The table's rule for one route and method (HEAD answers as GET does)."""
    found = ACCESS.get((method, path))
    if found is None and method == "HEAD":
        found = ACCESS.get(("GET", path))
    return found


def walk_routes(app: Any) -> Iterator[tuple[str, str]]:
    """Every (method, path) the app answers, routers included and mounts as GET, in route order."""
    from fastapi.routing import iter_route_contexts

    for route in iter_route_contexts(app.routes):
        path = route.path
        if path is None:
            continue
        methods = route.methods or {"GET"}  # a mount (/metrics): a GET endpoint of its own app
        for method in sorted(methods):
            yield method, path


def unlisted(app: Any) -> list[tuple[str, str]]:
    """Routes of ``app`` the table does not cover (a new route must be added to it)."""
    return [(m, p) for m, p in walk_routes(app) if rule_for(m, p) is None]


def markdown() -> str:
    """The table as docs/cases.md carries it: one row per route, one column per role."""
    cell = {True: "✓", False: "—"}
    anonymous = {"open": "✓ open", "login": "→ /login (303)", "401": "401"}
    lines = ["| method | path | " + " | ".join(ROLES) + " | no session | note |",
             "|---|---|" + "---|" * len(ROLES) + "---|---|"]
    for (method, path), rule in ACCESS.items():
        roles = " | ".join(cell[rule.allows(role)] for role in ROLES)
        lines.append(f"| {method} | `{path}` | {roles} | {anonymous[rule.anonymous]} | {rule.note} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if argv != ["--markdown"]:
        sys.stderr.write("usage: python -m cases.access --markdown\n")
        return 2
    sys.stdout.write(markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
