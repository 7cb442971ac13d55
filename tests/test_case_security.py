"""The case desk's security, route by route: every route of the app (``app.routes``, every
method) called as each role and without a session, against the one declared table
(:mod:`cases.access`); CSRF on every form; the session cookie's flags; the login lockout;
escaping of everything people and other systems type. Against a real PostgreSQL.

Webhook verification and the personal-data scan: ``tests/test_case_privacy.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, create_engine, insert, text

from cases import db, store
from cases.access import ACCESS, markdown, rule_for, unlisted, walk_routes
from cases.api import create_app
from cases.config import CaseSettings
from cases.schema import compliance_findings, metadata
from cases.service import utcnow
from tests.case_factories import CSRF, PASSWORD, add_staff, ingest, login, warning_record
from yujing.services.database import scratch_database
from yujing.settings import Settings, TopicNames

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).resolve().parent.parent
ROLES = ("viewer", "handler", "supervisor")
AS = {"viewer": "zhao", "handler": "wang", "supervisor": "chen"}  # who plays each role
SECRET = "security-test-secret"


def make_app(engine: Engine, **settings: Any) -> Any:
    cases = CaseSettings(**{"session_secret": SECRET, **settings})
    return create_app(Settings(topics=TopicNames(feedback="test.feedback")), cases, engine,
                      registry=CollectorRegistry())


# The routes, listed from an app that never connects: the test below is generated from them.
ROUTES = list(walk_routes(make_app(create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none"))))


@dataclass
class World:
    """One database for the module; every call gets fresh cases, findings, silences of its own,
    so no call depends on what an earlier one did."""

    engine: Engine
    app: Any
    tokens: dict[str, str]
    clients: dict[str, TestClient] = field(default_factory=dict)
    serial: Iterator[int] = field(default_factory=count)

    def user(self, username: str) -> store.User:
        with self.engine.begin() as conn:
            found = store.get_user(conn, username)
        assert found is not None
        return found

    def case(self, status: str = "new") -> str:
        """A fresh orange case (pushed to the hotline): new, assigned to wang, or resolved by him."""
        merchant = f"m-sec-{next(self.serial)}"
        day = (utcnow() - timedelta(days=1)).date().isoformat()
        case_id = ingest(self.engine, warning_record(merchant, day, "raised", None, "orange"), now=utcnow()).case_id
        assert case_id
        with self.engine.begin() as conn:
            if status in ("assigned", "resolved"):
                store.act(conn, case_id, self.user("chen"), "assign", assignee="wang", now=utcnow())
            if status == "resolved":
                store.act(conn, case_id, self.user("wang"), "resolve", disposition="rectified", note="ok",
                          now=utcnow(), feedback_topic="test.feedback")
        return case_id

    def finding(self) -> str:
        """A fresh open compliance finding: ``<merchant_id>/<code>``."""
        merchant, today = f"m-find-{next(self.serial)}", utcnow().date()
        with self.engine.begin() as conn:
            conn.execute(insert(compliance_findings).values(
                merchant_id=merchant, code="custody_report_missing", status="open", first_day=today,
                opened_day=today, last_day=today, reading=1.0, days_seen=1, episodes=1,
                recorded_at=utcnow(), updated_at=utcnow()))
        return f"{merchant}/custody_report_missing"

    def silence(self) -> int:
        with self.engine.begin() as conn:
            return store.add_silence(conn, self.user("chen"), "merchant", f"m-quiet-{next(self.serial)}",
                                     reason="test", ends_at=utcnow() + timedelta(days=3), now=utcnow())

    def rule(self) -> int:
        with self.engine.begin() as conn:
            return store.add_routing_rule(conn, self.user("chen"), "li", district=f"镇{next(self.serial)}",
                                          industry=None, now=utcnow())

    def message(self) -> int:
        case_id = self.case()
        with self.engine.begin() as conn:
            return next(d["message_id"] for d in store.list_deliveries(conn) if d["case_id"] == case_id)

    def client(self, role: str | None) -> TestClient:
        """A browser: logged in as the role's user (once per module), or without a session."""
        if role is None:
            return TestClient(self.app, follow_redirects=False)
        if role not in self.clients:
            c = TestClient(self.app, follow_redirects=False)
            assert login(c, AS[role]).status_code == 303
            self.clients[role] = c
        return self.clients[role]


@pytest.fixture(scope="module")
def world(postgres_url: str) -> Iterator[World]:
    with scratch_database(postgres_url, prefix="security") as url:
        db.migrate(url)
        engine = db.make_engine(url)
        tokens = add_staff(engine)
        # Lockout limits out of the way: this module logs in many times on purpose.
        yield World(engine, make_app(engine, login_max_failures=1000, login_address_max_failures=1000), tokens)
        engine.dispose()


# -- what each route is called with --------------------------------------------------------


@dataclass(frozen=True)
class Call:
    path: str
    json: dict[str, Any] | None = None
    form: dict[str, str] | None = None
    own_session: bool = False  # login/logout: a throwaway browser of the role, not the shared one


def case_call(prefix: str, case_id: str, action: str, body: dict[str, Any]) -> Call:
    if prefix == "/api":
        return Call(f"/api/cases/{case_id}/{'notes' if action == 'note' else action}", json=body or None)
    return Call(f"/cases/{case_id}/{action}", form={k: str(v) for k, v in body.items()})


def _case_call(action: str, prefix: str, body: dict[str, Any]) -> Callable[[World], Call]:
    # The state in which the action is possible, so that only the role can stand in the way.
    status = {"take": "new", "assign": "new", "close": "resolved", "reopen": "resolved"}.get(action, "assigned")
    return lambda w: case_call(prefix, w.case(status), action, body)


ACTION_BODIES: dict[str, dict[str, Any]] = {
    "take": {}, "start": {}, "close": {}, "assign": {"assignee": "li"}, "note": {"note": "看过 seen"},
    "resolve": {"disposition": "rectified", "note": "已整改 rectified"}, "reopen": {"note": "新投诉 new complaints"},
}
UNTIL = (utcnow() + timedelta(days=5)).date().isoformat()

SAMPLES: dict[tuple[str, str], Callable[[World], Call]] = {
    ("GET", "/healthz"): lambda w: Call("/healthz"),
    ("GET", "/metrics"): lambda w: Call("/metrics"),
    ("GET", "/openapi.json"): lambda w: Call("/openapi.json"),
    ("GET", "/docs"): lambda w: Call("/docs"),
    ("GET", "/docs/oauth2-redirect"): lambda w: Call("/docs/oauth2-redirect"),
    ("GET", "/redoc"): lambda w: Call("/redoc"),
    ("GET", "/api/me"): lambda w: Call("/api/me"),
    ("GET", "/api/cases"): lambda w: Call("/api/cases"),
    ("GET", "/api/cases/{case_id}"): lambda w: Call(f"/api/cases/{w.case()}"),
    **{("POST", f"/api/cases/{{case_id}}/{'notes' if a == 'note' else a}"): _case_call(a, "/api", b)
       for a, b in ACTION_BODIES.items()},
    ("GET", "/api/merchants/{merchant_id}/warnings"): lambda w: Call("/api/merchants/m-sec-0/warnings"),
    ("GET", "/api/overdue"): lambda w: Call("/api/overdue"),
    ("GET", "/api/silences"): lambda w: Call("/api/silences"),
    ("POST", "/api/silences"): lambda w: Call("/api/silences", json={
        "target_kind": "merchant", "target_id": f"m-api-{next(w.serial)}", "reason": "查处中",
        "ends_at": (utcnow() + timedelta(days=3)).isoformat()}),
    ("DELETE", "/api/silences/{silence_id}"): lambda w: Call(f"/api/silences/{w.silence()}"),
    ("GET", "/api/routing-rules"): lambda w: Call("/api/routing-rules"),
    ("POST", "/api/routing-rules"): lambda w: Call("/api/routing-rules", json={"assignee": "li",
                                                                                "district": f"镇{next(w.serial)}"}),
    ("DELETE", "/api/routing-rules/{rule_id}"): lambda w: Call(f"/api/routing-rules/{w.rule()}"),
    ("GET", "/api/deliveries"): lambda w: Call("/api/deliveries"),
    ("POST", "/api/deliveries/{message_id}/retry"): lambda w: Call(f"/api/deliveries/{w.message()}/retry"),
    ("GET", "/api/findings"): lambda w: Call("/api/findings"),
    ("GET", "/api/findings/{merchant_id}/{code}"): lambda w: Call(f"/api/findings/{w.finding()}"),
    ("POST", "/api/findings/{merchant_id}/{code}/{action}"): lambda w: Call(
        f"/api/findings/{w.finding()}/acknowledge", json={"note": "已知悉 seen"}),
    ("GET", "/login"): lambda w: Call("/login"),
    ("POST", "/login"): lambda w: Call("/login", form={"username": "li", "password": PASSWORD}, own_session=True),
    ("POST", "/logout"): lambda w: Call("/logout", form={}, own_session=True),
    ("GET", "/"): lambda w: Call("/"),
    ("GET", "/inbox"): lambda w: Call("/inbox"),
    ("GET", "/cases/{case_id}"): lambda w: Call(f"/cases/{w.case()}"),
    ("POST", "/cases/{case_id}/silences"): lambda w: (lambda c: Call(
        f"/cases/{c}/silences", form={"target": f"merchant:{store_merchant(w, c)}", "until": UNTIL,
                                      "reason": "查处中"}))(w.case()),
    ("POST", "/silences/{silence_id}/cancel"): lambda w: Call(f"/silences/{w.silence()}/cancel", form={}),
    **{("POST", f"/cases/{{case_id}}/{a}"): _case_call(a, "", b) for a, b in ACTION_BODIES.items()},
    ("GET", "/compliance"): lambda w: Call("/compliance"),
    ("POST", "/compliance/{merchant_id}/{code}/{action}"): lambda w: Call(
        f"/compliance/{w.finding()}/acknowledge", form={"note": "已知悉 seen"}),
}


def store_merchant(w: World, case_id: str) -> str:
    with w.engine.begin() as conn:
        return str(store.get_case(conn, case_id)["merchants"][0]["merchant_id"])


def send(w: World, role: str | None, method: str, call: Call) -> Any:
    """The call as the role would make it: the API with the role's token (no cookie), pages and
    forms from the role's browser with its session's CSRF token."""
    if call.path.startswith("/api"):
        headers = {"Authorization": f"Bearer {w.tokens[AS[role]]}"} if role else {}
        return TestClient(w.app).request(method, call.path, headers=headers, json=call.json)
    c = w.client(role)
    if call.own_session:
        c = TestClient(w.app, follow_redirects=False)
        if role is not None and call.path == "/logout":
            assert login(c, AS[role]).status_code == 303
    if call.form is None:
        return c.request(method, call.path)
    token = CSRF.search(c.get("/login").text if role is None or call.path == "/login" else c.get("/inbox").text)
    assert token, "no CSRF token on the page"
    return c.request(method, call.path, data={"csrf_token": token.group(1), **call.form})


def refused(response: Any, role: str | None, anonymous: str) -> bool:
    """The refusal the table promises: 403 for a role; 401 (API) or the login (pages) for no session."""
    if role is not None:
        return bool(response.status_code == 403)
    if anonymous == "401":
        return bool(response.status_code == 401)
    if anonymous == "login":
        return response.status_code == 303 and response.headers["location"].startswith("/login")
    return response.status_code in (401, 403)


# -- the table, and the routes held to it --------------------------------------------------


def test_every_route_of_the_app_is_in_the_access_table_and_every_row_is_a_route() -> None:
    app = make_app(create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none"))
    assert unlisted(app) == [], "add these routes to cases/access.py ACCESS"
    served = {(m, p) for m, p in walk_routes(app)}
    assert [key for key in ACCESS if key not in served] == [], "rows in ACCESS for routes that no longer exist"
    assert [key for key in served if (key[0] != "HEAD" and key not in SAMPLES)] == [], "add a call to SAMPLES"


def test_the_docs_carry_the_current_table() -> None:
    committed = (ROOT / "docs" / "cases.md").read_text(encoding="utf-8")
    section = committed.split("<!-- access-table -->\n", 1)[1].split("<!-- /access-table -->", 1)[0]
    assert section == markdown(), "docs/cases.md is stale: paste `python -m cases.access --markdown` into it"


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_each_role_and_no_session_get_what_the_table_says(world: World, method: str, path: str) -> None:
    rule = rule_for(method, path)
    assert rule is not None, f"{method} {path} is not in cases/access.py ACCESS"
    sample = SAMPLES[("GET" if method == "HEAD" else method, path)]
    for role in (None, *ROLES):
        response = send(world, role, method, sample(world))
        who = role or "no session"
        assert response.status_code < 500, (who, response.text[:300])
        if rule.allows(role):
            assert not refused(response, role, rule.anonymous), (who, response.status_code, response.text[:300])
            assert response.status_code not in (401, 403), (who, response.text[:300])
        else:
            assert refused(response, role, rule.anonymous), (who, response.status_code, response.text[:300])


def test_a_handler_is_refused_what_belongs_to_another_handler(world: World) -> None:
    """The table's "handlers: cases assigned to them", page and API alike."""
    for prefix in ("/api", ""):
        for action in ("take", "start", "note", "resolve"):
            lis = world.case("new")
            with world.engine.begin() as conn:
                store.act(conn, lis, world.user("chen"), "assign", assignee="li", now=utcnow())
            response = send(world, "handler", "POST", case_call(prefix, lis, action, ACTION_BODIES[action]))
            assert response.status_code == 403, (prefix, action, response.text[:200])
            assert "li" in response.text


def test_the_api_ignores_the_session_cookie(world: World) -> None:
    """A logged-in browser's cookie opens no /api route: cross-site requests cannot use the API."""
    browser = world.client("supervisor")
    assert browser.get("/inbox").status_code == 200
    for method, path in ROUTES:
        if not path.startswith("/api"):
            continue
        call = SAMPLES[(method, path)](world)
        response = browser.request(method, call.path, json=call.json)
        assert response.status_code == 401, (method, path, response.status_code)


# -- CSRF --------------------------------------------------------------------------------------


def fingerprint(engine: Engine) -> dict[str, str]:
    """Every table's whole content, hashed: equal before and after means nothing changed."""
    with engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT md5(coalesce(string_agg(x::text, ',' ORDER BY x::text), '')) "
                                     f"FROM {t} x")).scalar_one() for t in metadata.tables}


FORMS = [(m, p) for m, p in ROUTES if m == "POST" and not p.startswith("/api")]


@pytest.mark.parametrize(("method", "path"), FORMS, ids=[p for _, p in FORMS])
def test_every_form_refuses_a_missing_or_wrong_csrf_token_and_changes_nothing(
        world: World, method: str, path: str) -> None:
    for token in (None, "forged-token", CSRF.search(TestClient(world.app).get("/login").text).group(1)):  # type: ignore[union-attr]
        browser = TestClient(world.app, follow_redirects=False)
        if path != "/login":
            assert login(browser, "chen").status_code == 303  # a supervisor: every form is theirs
        call = SAMPLES[(method, path)](world)
        before = fingerprint(world.engine)
        data = dict(call.form or {})
        if token is not None:
            data["csrf_token"] = token  # the last: a real token, of another session
        response = browser.post(call.path, data=data)
        assert fingerprint(world.engine) == before, (path, token)
        if response.status_code == 303 and path.startswith("/compliance"):
            # The compliance page says it on the page it returns to (its own tests pin the 303).
            assert "CSRF" in browser.get(response.headers["location"]).text
        else:
            assert response.status_code in (400, 403), (path, token, response.status_code)
        # A forged login logs nobody in; a forged logout ends nothing.
        assert browser.get("/inbox").status_code == (303 if path == "/login" else 200), (path, token)


# -- cookies -----------------------------------------------------------------------------------


def session_cookie(app: Any) -> str:
    # Over https: a client sends a Secure cookie (the login form's session) back only there.
    c = TestClient(app, follow_redirects=False, base_url="https://testserver")
    response = login(c, "wang")
    assert response.status_code == 303
    cookies = [v for k, v in response.headers.multi_items() if k == "set-cookie" and v.startswith("yujing_session=")]
    assert len(cookies) == 1
    return cookies[0].lower()


def test_the_session_cookie_is_httponly_samesite_and_secure_behind_tls(world: World) -> None:
    plain = session_cookie(world.app)
    assert "httponly" in plain and "samesite=lax" in plain and "path=/" in plain
    assert "secure" not in plain.replace("samesite", "")  # over plain HTTP a Secure cookie would never come back
    for settings in ({"secure_cookies": True}, {"public_url": "https://desk.example.gov.cn"}):
        tls = session_cookie(make_app(world.engine, **settings))
        assert "httponly" in tls and "samesite=lax" in tls and "; secure" in tls, settings
    forced_off = session_cookie(make_app(world.engine, public_url="https://desk.example.gov.cn", secure_cookies=False))
    assert "; secure" not in forced_off


# -- login lockout -----------------------------------------------------------------------------


def attempt(app: Any, username: str, password: str) -> Any:
    return login(TestClient(app, follow_redirects=False), username, password)


def test_too_many_wrong_passwords_lock_the_username_out_for_a_while(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app(world.engine, login_max_failures=3, login_lockout_minutes=10)
    assert [attempt(app, "li", "wrong").status_code for _ in range(2)] == [401, 401]
    locked = attempt(app, "li", "wrong")
    assert locked.status_code == 429 and 0 < int(locked.headers["retry-after"]) <= 600
    assert "登录失败次数过多" in locked.text and "Too many failed logins" in locked.text
    # The right password during the lockout is refused too, and logs nobody in.
    right = attempt(app, "li", PASSWORD)
    assert right.status_code == 429
    # Another replica (same database and secret) sees the same lockout.
    assert attempt(make_app(world.engine, login_max_failures=3), "li", PASSWORD).status_code == 429
    assert attempt(app, "wang", PASSWORD).status_code == 303  # other users are not affected
    later = utcnow() + timedelta(minutes=11)
    monkeypatch.setattr("cases.web.login.utcnow", lambda: later)
    assert attempt(app, "li", PASSWORD).status_code == 303
    # A success starts the count again: two more wrong passwords are not yet a lockout.
    assert [attempt(app, "li", "wrong").status_code for _ in range(2)] == [401, 401]


def test_too_many_failures_from_one_address_lock_it_out_whatever_the_username(world: World) -> None:
    app = make_app(world.engine, session_secret="address-test", login_max_failures=100, login_address_max_failures=4)
    statuses = [attempt(app, f"guess-{n}", "wrong").status_code for n in range(4)]
    assert statuses == [401, 401, 401, 429]
    assert attempt(app, "zhao", PASSWORD).status_code == 429  # the address, not the name, is locked
    assert "Too many failed logins" in attempt(app, "zhao", PASSWORD).text


def test_the_lockout_keeps_no_username_or_address_readable(world: World) -> None:
    attempt(make_app(world.engine, session_secret="keys-test", login_max_failures=100), "my-password-typed-here", "x")
    with world.engine.connect() as conn:
        stored = " ".join(conn.execute(text("SELECT key FROM login_failures")).scalars())
    assert stored and "my-password-typed-here" not in stored and "testclient" not in stored


# -- escaping ------------------------------------------------------------------------------------

SCRIPT = "<script>alert({})</script>"
IMG = '"><img src=x onerror=alert({})>'


def escaped(payload: str) -> str:
    return payload.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&#34;")


def test_what_people_and_other_systems_type_is_shown_as_text(world: World) -> None:
    """Script payloads in a merchant's name, town, reasons, a note, a resolution, a silence's
    reason, a staff member's display name, a finding's note and the login form: every page shows
    each escaped and none raw."""
    planted = {f: (SCRIPT if n % 2 else IMG).format(n) for n, f in enumerate(
        ("name", "district", "reason", "note", "resolution", "silence", "display", "finding", "login"))}
    with world.engine.begin() as conn:
        store.add_user(conn, f"xss-{next(world.serial)}", "handler", display_name=planted["display"])
        xss_user = [u["username"] for u in store.list_users(conn) if u["display_name"] == planted["display"]][0]
    day = (utcnow() - timedelta(days=1)).date().isoformat()
    record = warning_record(f"m-xss-{next(world.serial)}", day, "raised", None, "red", name=planted["name"],
                            district=planted["district"])
    record["indicators"][0]["explanation_zh"] = planted["reason"]
    case_id = ingest(world.engine, record, now=utcnow()).case_id
    assert case_id
    finding = world.finding()
    with world.engine.begin() as conn:
        boss = world.user("chen")
        store.act(conn, case_id, boss, "assign", assignee=xss_user, now=utcnow())
        store.act(conn, case_id, boss, "note", note=planted["note"], now=utcnow())
        store.act(conn, case_id, boss, "resolve", disposition="rectified", note=planted["resolution"],
                  now=utcnow(), feedback_topic="t")
        store.add_silence(conn, boss, "merchant", record["merchant_id"], reason=planted["silence"],
                          ends_at=utcnow() + timedelta(days=2), now=utcnow())
    chen = world.client("supervisor")
    token = CSRF.search(chen.get("/compliance").text).group(1)  # type: ignore[union-attr]
    chen.post(f"/compliance/{finding}/acknowledge", data={"csrf_token": token, "note": planted["finding"]})
    pages = {path: chen.get(path) for path in ("/inbox", f"/cases/{case_id}", "/compliance?show=all", "/inbox?show=done")}
    pages["login"] = attempt(world.app, planted["login"], "wrong")
    shown: set[str] = set()
    for where, page in pages.items():
        assert "content-security-policy" in page.headers and "script-src" not in page.headers["content-security-policy"]
        assert "default-src 'none'" in page.headers["content-security-policy"], where
        for key, payload in planted.items():
            assert payload not in page.text, (where, key)
            shown |= {key} if escaped(payload) in page.text else set()
        assert "<script" not in page.text.lower() and "<img src=x" not in page.text, where
    assert shown == set(planted), f"never shown at all, so not proven escaped: {set(planted) - shown}"


def test_every_template_autoescapes_and_none_marks_text_safe() -> None:
    from cases.web.common import TEMPLATES, page_templates

    env = page_templates().env
    names = sorted(p.name for p in TEMPLATES.glob("*.html"))
    assert names and all(env.autoescape is True or env.autoescape(name) for name in names)  # type: ignore[operator]
    for name in names:
        source = (TEMPLATES / name).read_text(encoding="utf-8")
        assert "|safe" not in source.replace(" ", "") and "autoescape false" not in source, name
