"""The web inbox against a real PostgreSQL, through FastAPI's TestClient: login, role-dependent
pages and buttons, CSRF, and form actions checked through the JSON API."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update

from cases import store
from cases.api import create_app
from cases.config import CaseSettings
from cases.schema import users
from cases.service import utcnow
from models.calendar import SHANGHAI
from tests.case_factories import (
    CSRF,
    PASSWORD,
    add_staff,
    ingest,
    login,
    reading,
    warning_record,
)
from yujing.settings import Settings, TopicNames

pytestmark = pytest.mark.postgres



@dataclass
class Desk:
    engine: Engine
    app: Any
    tokens: dict[str, str]
    cases: dict[str, str]  # label -> case_id
    settings: Settings


def build_app(engine: Engine, settings: Settings | None = None) -> Any:
    settings = settings or Settings(topics=TopicNames(feedback="test.feedback"))
    return create_app(settings, CaseSettings(session_secret="test-session-secret"), engine)


@pytest.fixture
def desk(engine: Engine) -> Desk:
    """Four staff, and cases: two unassigned (red, yellow), one of wang's, one of li's."""
    tokens = add_staff(engine)
    now = utcnow()
    day = (now - timedelta(days=1)).date().isoformat()
    red = ingest(engine, warning_record("m-red", day, "raised", None, "red", score=0.86, name="力健身南桥店"),
                 now=now - timedelta(days=14))  # long overdue
    no_figures = warning_record("m-yellow", day, "raised", None, "yellow", score=0.5, name="悦发造型",
                                industry="hairdressing", district="庄行镇",
                                indicators=[reading("complaint_surge", 5, 3, 0.5)])
    no_figures["figures"] = None
    yellow = ingest(engine, no_figures, now=now)
    wangs = ingest(engine, warning_record("m-wang", day, "raised", None, "orange", name="美丽人生奉城店",
                                          industry="beauty", district="奉城镇"), now=now)
    lis = ingest(engine, warning_record("m-li", day, "raised", None, "orange", name="青村健身会所",
                                        district="青村镇"), now=now)
    with engine.begin() as conn:
        boss = store.get_user(conn, "chen")
        assert boss is not None
        store.act(conn, wangs.case_id, boss, "assign", assignee="wang", now=now)  # type: ignore[arg-type]
        store.act(conn, lis.case_id, boss, "assign", assignee="li", now=now)  # type: ignore[arg-type]
    labels = {"red": red.case_id, "yellow": yellow.case_id, "wang": wangs.case_id, "li": lis.case_id}
    assert all(labels.values())
    settings = Settings(topics=TopicNames(feedback="test.feedback"))
    return Desk(engine, build_app(engine, settings), tokens, labels, settings)  # type: ignore[arg-type]


def client(desk: Desk) -> TestClient:
    return TestClient(desk.app, follow_redirects=False)


def logged_in(desk: Desk, username: str) -> TestClient:
    c = client(desk)
    assert login(c, username).status_code == 303
    return c


def csrf_of(c: TestClient, path: str) -> str:
    return CSRF.search(c.get(path).text).group(1)  # type: ignore[union-attr]


def api(desk: Desk, username: str, path: str) -> Any:
    with TestClient(desk.app) as c:
        response = c.get(path, headers={"Authorization": f"Bearer {desk.tokens[username]}"})
    assert response.status_code == 200, response.text
    return response.json()


def post_form(c: TestClient, path: str, page: str, **data: str) -> Any:
    return c.post(path, data={"csrf_token": csrf_of(c, page), **data})


# -- login ------------------------------------------------------------------------------------


def test_pages_need_a_login_and_show_no_case_content_without_one(desk: Desk) -> None:
    c = client(desk)
    assert c.get("/").headers["location"] == "/login"
    inbox = c.get("/inbox")
    assert inbox.status_code == 303 and inbox.headers["location"] == "/login?next=/inbox"
    case_id = desk.cases["red"]
    page = c.get(f"/cases/{case_id}")
    assert page.status_code == 303 and page.headers["location"] == f"/login?next=/cases/{case_id}"
    assert "力健身" not in page.text
    # Forms without a login change nothing and lead to the login too.
    assert c.post(f"/cases/{case_id}/take", data={"csrf_token": "x"}).headers["location"].startswith("/login")
    assert api(desk, "chen", f"/api/cases/{case_id}")["status"] == "new"
    # The API without a token or session is refused.
    assert c.get("/api/cases").status_code == 401


def test_login_then_back_to_the_page_asked_for_then_logout(desk: Desk) -> None:
    c = client(desk)
    case_id = desk.cases["wang"]
    wrong = login(c, "wang", "not the password", next=f"/cases/{case_id}")
    assert wrong.status_code == 401 and "用户名或密码错误" in wrong.text
    assert c.get("/inbox").status_code == 303
    ok = login(c, "wang", next=f"/cases/{case_id}")
    assert ok.status_code == 303 and ok.headers["location"] == f"/cases/{case_id}"
    page = c.get(f"/cases/{case_id}")
    assert page.status_code == 200 and "美丽人生奉城店" in page.text
    assert c.get("/").headers["location"] == "/inbox"
    # The JSON API ignores the session cookie (a token only): no cross-site request can use it.
    assert c.get("/api/me").status_code == 401
    out = c.post("/logout", data={"csrf_token": CSRF.search(page.text).group(1)})  # type: ignore[union-attr]
    assert out.headers["location"] == "/login"
    assert c.get("/inbox").status_code == 303
    assert c.get("/api/me").status_code == 401


def test_login_refuses_a_foreign_form_and_foreign_redirects(desk: Desk) -> None:
    c = client(desk)
    forged = c.post("/login", data={"username": "wang", "password": PASSWORD, "csrf_token": "forged"})
    assert forged.status_code == 400
    assert c.get("/inbox").status_code == 303  # not logged in
    away = login(c, "wang", next="//evil.example/phish")
    assert away.headers["location"] == "/inbox"


def test_a_deactivated_user_is_logged_out(desk: Desk) -> None:
    c = logged_in(desk, "wang")
    assert c.get("/inbox").status_code == 200
    with desk.engine.begin() as conn:
        conn.execute(update(users).where(users.c.username == "wang").values(active=False))
    assert c.get("/inbox").status_code == 303
    assert c.get("/api/me").status_code == 401
    assert login(client(desk), "wang").status_code == 401


# -- the inbox --------------------------------------------------------------------------------


def rows(html: str, section: str) -> list[str]:
    """Case ids of one inbox table, in order."""
    match = re.search(rf'data-testid="section-{section}"(.*?)</section>', html, re.S)
    assert match, f"no section {section}"
    return re.findall(r'data-testid="case-row" data-case-id="([^"]+)"', match.group(1))


def test_a_handler_sees_their_queue_and_the_unassigned_cases_to_take(desk: Desk) -> None:
    html = logged_in(desk, "wang").get("/inbox").text
    assert rows(html, "mine") == [desk.cases["wang"]]
    # Unassigned, most severe first: red before yellow.
    assert rows(html, "unassigned") == [desk.cases["red"], desk.cases["yellow"]]
    assert desk.cases["li"] not in html  # someone else's case is not in a handler's inbox
    assert f'data-testid="take-{desk.cases["red"]}"' in html
    assert 'data-testid="assign-' not in html
    assert "已超时" in html and 'data-testid="overdue-total" data-count="1"' in html
    assert "美发" in html and "健身" in html and "庄行镇" in html
    assert "红" in html and "橙" in html and "待领取" in html


def test_a_supervisor_sees_every_open_case_with_assign_forms_and_a_viewer_only_reads(desk: Desk) -> None:
    html = logged_in(desk, "chen").get("/inbox").text
    listed = rows(html, "open")
    assert set(listed) == set(desk.cases.values()) and listed[0] == desk.cases["red"]
    assert all(f'data-testid="assign-{case_id}"' in html for case_id in listed)
    assert 'data-testid="section-to-close"' in html
    viewer = logged_in(desk, "zhao").get("/inbox").text
    assert set(rows(viewer, "open")) == set(desk.cases.values())
    assert "<form" not in viewer.replace('<form method="post" action="/logout">', "")


# -- the case page ----------------------------------------------------------------------------


def forms(html: str) -> set[str]:
    return set(re.findall(r'data-testid="form-([a-z]+)"', html))


def test_the_case_page_shows_history_reasons_and_figures(desk: Desk) -> None:
    c = logged_in(desk, "wang")
    html = c.get(f"/cases/{desk.cases['red']}").text
    assert "力健身南桥店" in html
    assert "已连续9天无核销且仍有预收余额,超过5天阈值" in html  # the Chinese explanation
    assert "No redemptions for 9 days" in html  # English, secondary
    assert "核销停滞" in html  # the indicator's name
    assert "值 value 9 / 阈值 threshold 5" in html
    assert "预收余额" in html and "¥182,000" in html and "¥20,000" in html and "(27%)" in html
    assert "已超时" in html
    assert 'data-testid="deliveries"' not in html  # pushes: supervisors only
    # A warning without figures: dashes, not errors.
    other = c.get(f"/cases/{desk.cases['yellow']}").text
    assert "预收余额" in other and "暂无数据" in other and "¥" not in other.split('data-testid="figures"')[1].split("</section>")[0]
    assert "近28天投诉5件" in other
    boss = logged_in(desk, "chen").get(f"/cases/{desk.cases['red']}").text
    assert 'data-testid="deliveries"' in boss and "hotline" in boss and "外部推送" in boss


def test_buttons_follow_role_and_status(desk: Desk) -> None:
    wang, chen, zhao = (logged_in(desk, u) for u in ("wang", "chen", "zhao"))
    red, mine, lis = desk.cases["red"], desk.cases["wang"], desk.cases["li"]
    assert forms(wang.get(f"/cases/{red}").text) == {"take"}  # unassigned: take it first
    assert forms(wang.get(f"/cases/{mine}").text) == {"start", "note", "resolve"}
    theirs = wang.get(f"/cases/{lis}").text
    assert forms(theirs) == set() and 'data-testid="not-yours"' in theirs
    assert forms(zhao.get(f"/cases/{red}").text) == set()
    assert forms(chen.get(f"/cases/{lis}").text) == {"take", "note", "resolve", "assign", "silence"}
    # After resolving: only a supervisor closes or reopens; the handler may still add notes.
    post_form(wang, f"/cases/{mine}/resolve", f"/cases/{mine}", disposition="rectified", note="已整改到位")
    assert forms(wang.get(f"/cases/{mine}").text) == {"note"}
    assert forms(chen.get(f"/cases/{mine}").text) == {"note", "close", "reopen", "silence"}


def test_an_unknown_case_is_a_readable_404(desk: Desk) -> None:
    page = logged_in(desk, "wang").get("/cases/YJ-nope")
    assert page.status_code == 404 and "案件不存在" in page.text and "Traceback" not in page.text


# -- forms ------------------------------------------------------------------------------------


def test_a_form_without_the_sessions_csrf_token_changes_nothing(desk: Desk) -> None:
    c = logged_in(desk, "wang")
    case_id = desk.cases["wang"]
    for data in ({"note": "forged"}, {"note": "forged", "csrf_token": "not-the-token"}):
        refused = c.post(f"/cases/{case_id}/note", data=data)
        assert refused.status_code == 403 and "CSRF" in refused.text
    # A token from another session does not work either.
    other = logged_in(desk, "wang")
    stolen = csrf_of(other, "/inbox")
    assert c.post(f"/cases/{case_id}/note", data={"note": "forged", "csrf_token": stolen}).status_code == 403
    assert c.post(f"/cases/{desk.cases['red']}/take", data={}).status_code == 403
    events = api(desk, "chen", f"/api/cases/{case_id}")["events"]
    assert [e for e in events if e["action"] == "note"] == []
    assert api(desk, "chen", f"/api/cases/{desk.cases['red']}")["assignee"] is None


def test_a_handler_takes_notes_and_resolves_through_the_forms(desk: Desk) -> None:
    c = logged_in(desk, "wang")
    case_id = desk.cases["red"]
    page = f"/cases/{case_id}"
    taken = post_form(c, f"{page}/take", "/inbox")
    assert taken.status_code == 303 and taken.headers["location"] == page
    shown = c.get(page).text
    assert "已领取" in shown and 'data-testid="flash"' in shown
    assert "已领取" not in c.get(page).text  # a message is shown once
    post_form(c, f"{page}/note", page, note="已电话联系店长,称下周恢复营业")
    done = post_form(c, f"{page}/resolve", page, disposition="false_alarm", note="现场核查正常营业,误报")
    assert done.headers["location"] == page
    assert "误报" in c.get(page).text
    case = api(desk, "wang", f"/api/cases/{case_id}")
    assert case["status"] == "resolved" and case["disposition"] == "false_alarm"
    assert case["assignee"] == "wang" and case["resolution"] == "现场核查正常营业,误报"
    actions = [(e["actor"], e["action"], e["note"]) for e in case["events"] if e["actor"] != "system"]
    assert actions == [("wang", "take", None), ("wang", "note", "已电话联系店长,称下周恢复营业"),
                       ("wang", "resolve", "现场核查正常营业,误报")]
    feedback = [d for d in api(desk, "chen", "/api/deliveries?kind=feedback") if d["case_id"] == case_id]
    assert len(feedback) == 1 and feedback[0]["target"] == "test.feedback"
    assert feedback[0]["payload"]["disposition"] == "false_alarm"


def test_a_supervisor_assigns_closes_reopens_and_silences(desk: Desk) -> None:
    c = logged_in(desk, "chen")
    case_id = desk.cases["yellow"]
    page = f"/cases/{case_id}"
    assigned = post_form(c, f"{page}/assign", "/inbox", assignee="li", back="/inbox")
    assert assigned.headers["location"] == "/inbox"
    assert "已分派给 李强" in c.get("/inbox").text
    assert api(desk, "li", f"/api/cases/{case_id}")["assignee"] == "li"
    post_form(c, f"{page}/resolve", page, disposition="confirmed_risk", note="主管直接办结")
    post_form(c, f"{page}/close", page)
    assert api(desk, "chen", f"/api/cases/{case_id}")["status"] == "closed"
    post_form(c, f"{page}/reopen", page, note="商户再次被投诉")
    case = api(desk, "chen", f"/api/cases/{case_id}")
    assert case["status"] == "in_progress" and case["disposition"] is None
    until = (utcnow() + timedelta(days=10)).date()
    silenced = post_form(c, f"{page}/silences", page, target="merchant:m-yellow", until=until.isoformat(),
                         reason="已立案查处")
    assert silenced.headers["location"] == page
    shown = c.get(page).text
    assert "已静音" in shown and "已立案查处" in shown
    silences = api(desk, "chen", "/api/silences")
    assert [(s["target_kind"], s["target_id"], s["reason"]) for s in silences] == [
        ("merchant", "m-yellow", "已立案查处")]
    # Through the chosen day, Shanghai time.
    ends = datetime.fromisoformat(silences[0]["ends_at"])
    assert ends.astimezone(SHANGHAI).isoformat() == f"{until + timedelta(days=1)}T00:00:00+08:00"
    lift = re.search(r'action="/silences/(\d+)/cancel"', shown).group(1)  # type: ignore[union-attr]
    post_form(c, f"/silences/{lift}/cancel", page, back=page)
    assert api(desk, "chen", "/api/silences") == []


def test_refused_and_invalid_actions_come_back_as_readable_messages(desk: Desk) -> None:
    wang = logged_in(desk, "wang")
    lis = f"/cases/{desk.cases['li']}"
    refused = post_form(wang, f"{lis}/note", "/inbox", note="not mine")
    assert refused.status_code == 403 and f'href="{lis}"' in refused.text  # a way back to the case
    assert "无权执行此操作" in refused.text and "may only work cases assigned to them" in refused.text
    mine = f"/cases/{desk.cases['wang']}"
    post_form(wang, f"{mine}/resolve", mine, note="没有选处置结果")
    assert "请选择处置结果" in wang.get(mine).text
    post_form(wang, f"{mine}/note", mine, note="   ")
    assert "a note is required" in wang.get(mine).text
    closing = post_form(wang, f"{mine}/close", mine)
    assert closing.status_code == 403 and "role handler may not close cases" in closing.text
    post_form(wang, "/cases/YJ-nope/note", mine, note="x")
    assert "未找到" in wang.get("/inbox").text
    chen = logged_in(desk, "chen")
    post_form(chen, f"{mine}/silences", mine, target="merchant:m-other", until="2099-01-01", reason="x")
    assert "choose the merchant or the chain of this case" in chen.get(mine).text
    post_form(chen, f"{mine}/silences", mine, target="merchant:m-wang", until="2099-01-01", reason="太久")
    assert "at most 90 days" in chen.get(mine).text
    assert api(desk, "chen", "/api/silences") == []
    case = api(desk, "chen", f"/api/cases/{desk.cases['wang']}")
    assert case["status"] == "assigned" and [e for e in case["events"] if e["action"] == "note"] == []


def test_what_staff_type_is_shown_as_text_never_as_markup(desk: Desk) -> None:
    c = logged_in(desk, "wang")
    page = f"/cases/{desk.cases['wang']}"
    post_form(c, f"{page}/note", page, note='<script>alert("x")</script> 店长称<b>明天</b>退款')
    html = c.get(page).text
    assert "<script>alert" not in html and "<b>明天</b>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; 店长称&lt;b&gt;明天&lt;/b&gt;退款" in html
    assert "script-src" not in html  # no script anywhere; the CSP header forbids them
    assert "default-src 'none'" in c.get(page).headers["content-security-policy"]


def test_the_login_page_sends_a_logged_in_user_on(desk: Desk) -> None:
    c = logged_in(desk, "li")
    assert c.get("/login", params={"next": f"/cases/{desk.cases['li']}"}).headers["location"] == (
        f"/cases/{desk.cases['li']}")
