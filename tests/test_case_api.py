"""The case desk's HTTP API against a real PostgreSQL: tokens, roles, and what each role may do."""

from __future__ import annotations

import warnings as python_warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from alerts.cases import ResponsePolicy
from alerts.policy import AlertPolicy
from cases import db, store
from cases.api import create_app
from cases.config import CaseSettings
from tests.case_factories import warning_record
from yujing.settings import Settings

with python_warnings.catch_warnings():
    python_warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.postgres
NOW = datetime(2026, 3, 4, 2, 0, tzinfo=UTC)


class Desk:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.client = TestClient(create_app(Settings(), CaseSettings(), engine, with_web=False))
        self.tokens: dict[str, str] = {}
        with engine.begin() as conn:
            for username, role in (("wang", "handler"), ("li", "handler"), ("chen", "supervisor"), ("zhao", "viewer")):
                self.tokens[username] = store.add_user(conn, username, role)
            self.cases = [
                store.ingest_warning(conn, w, policy=AlertPolicy(), response=ResponsePolicy(), now=NOW).case_id
                for w in (
                    warning_record("m1", "2026-03-01", "raised", None, "red"),
                    warning_record("m2", "2026-03-01", "raised", None, "orange"),
                )
            ]

    def call(self, who: str | None, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return self.client.request(method, path, headers=headers, **kwargs)


@pytest.fixture
def desk(database_url: str) -> Iterator[Desk]:
    db.migrate(database_url)
    engine = db.make_engine(database_url)
    yield Desk(engine)
    engine.dispose()


UNTIL = (NOW + timedelta(days=400)).isoformat()  # a silence from "now" (wall clock) for a week
READS = [("GET", "/api/cases"), ("GET", "/api/cases/{case}"), ("GET", "/api/merchants/m1/warnings"),
         ("GET", "/api/overdue"), ("GET", "/api/silences"), ("GET", "/api/routing-rules"), ("GET", "/api/me")]


@pytest.mark.parametrize(("method", "path"), [*READS, ("POST", "/api/cases/{case}/take"),
                                              ("GET", "/api/deliveries"), ("POST", "/api/silences")])
def test_nothing_without_a_valid_token(desk: Desk, method: str, path: str) -> None:
    path = path.format(case=desk.cases[0])
    assert desk.call(None, method, path).status_code == 401
    bad = desk.client.request(method, path, headers={"Authorization": "Bearer yj_forged"})
    assert bad.status_code == 401 and bad.json() == {"detail": "a valid token is required"}


@pytest.mark.parametrize(("method", "path"), READS)
def test_every_role_reads(desk: Desk, method: str, path: str) -> None:
    for who in ("zhao", "wang", "chen"):
        assert desk.call(who, method, path.format(case=desk.cases[0])).status_code == 200


def test_the_queue_is_sorted_by_level(desk: Desk) -> None:
    queue = desk.call("zhao", "GET", "/api/cases").json()
    assert [c["level"] for c in queue] == ["red", "orange"]
    detail = desk.call("zhao", "GET", f"/api/cases/{desk.cases[0]}").json()
    assert detail["warnings"][0]["payload"]["indicators"][0]["explanation_zh"].startswith("已连续9天无核销")


def test_viewer_is_read_only(desk: Desk) -> None:
    case = desk.cases[0]
    for method, path, body in [
        ("POST", f"/api/cases/{case}/take", None),
        ("POST", f"/api/cases/{case}/notes", {"note": "x"}),
        ("POST", f"/api/cases/{case}/resolve", {"disposition": "false_alarm", "note": "x"}),
        ("POST", f"/api/cases/{case}/assign", {"assignee": "wang"}),
        ("POST", f"/api/cases/{case}/close", None),
        ("POST", f"/api/cases/{case}/reopen", {"note": "x"}),
        ("POST", "/api/silences", {"target_kind": "merchant", "target_id": "m1", "reason": "x", "ends_at": UNTIL}),
        ("POST", "/api/routing-rules", {"assignee": "wang"}),
        ("GET", "/api/deliveries", None),
    ]:
        response = desk.call("zhao", method, path, json=body)
        assert response.status_code == 403, (path, response.text)


def test_handler_works_only_their_own_cases(desk: Desk) -> None:
    red, orange = desk.cases
    assert desk.call("chen", "POST", f"/api/cases/{orange}/assign", json={"assignee": "li"}).status_code == 200
    # wang may take the unassigned red case, but not li's orange one, nor note or resolve it.
    assert desk.call("wang", "POST", f"/api/cases/{orange}/take").status_code == 403
    assert desk.call("wang", "POST", f"/api/cases/{orange}/notes", json={"note": "x"}).status_code == 403
    denied = desk.call("wang", "POST", f"/api/cases/{orange}/resolve", json={"disposition": "false_alarm", "note": "x"})
    assert denied.status_code == 403 and "li" in denied.json()["detail"]
    assert desk.call("wang", "POST", f"/api/cases/{red}/take").json()["status"] == "in_progress"
    assert desk.call("wang", "POST", f"/api/cases/{red}/notes", json={"note": "上门核查 visited"}).status_code == 200
    # Supervisor-only actions.
    assert desk.call("wang", "POST", f"/api/cases/{red}/assign", json={"assignee": "wang"}).status_code == 403
    body = {"target_kind": "merchant", "target_id": "m1", "reason": "x", "ends_at": UNTIL}
    assert desk.call("wang", "POST", "/api/silences", json=body).status_code == 403
    assert desk.call("wang", "POST", "/api/routing-rules", json={"assignee": "wang"}).status_code == 403
    assert desk.call("wang", "GET", "/api/deliveries").status_code == 403
    resolved = desk.call("wang", "POST", f"/api/cases/{red}/resolve",
                         json={"disposition": "confirmed_risk", "note": "已人去楼空 premises abandoned"})
    assert resolved.json()["status"] == "resolved"
    assert desk.call("wang", "POST", f"/api/cases/{red}/close").status_code == 403
    assert desk.call("wang", "POST", f"/api/cases/{red}/reopen", json={"note": "x"}).status_code == 403


def test_supervisor_assigns_closes_reopens_silences_routes(desk: Desk) -> None:
    red, _ = desk.cases
    assert desk.call("chen", "POST", f"/api/cases/{red}/assign", json={"assignee": "wang"}).json()["status"] == "assigned"
    assert desk.call("chen", "POST", f"/api/cases/{red}/resolve",
                     json={"disposition": "rectified", "note": "补足存管 custody topped up"}).status_code == 200
    assert desk.call("chen", "POST", f"/api/cases/{red}/close").json()["status"] == "closed"
    assert desk.call("chen", "POST", f"/api/cases/{red}/reopen", json={"note": "新投诉 new complaints"}).json()["status"] == "in_progress"
    until = (datetime.now(UTC) + timedelta(days=7)).isoformat()
    created = desk.call("chen", "POST", "/api/silences",
                        json={"target_kind": "chain", "target_id": "c1", "reason": "已立案 under investigation", "ends_at": until})
    assert created.status_code == 201
    assert [s["target_id"] for s in desk.call("zhao", "GET", "/api/silences").json()] == ["c1"]
    assert desk.call("chen", "DELETE", f"/api/silences/{created.json()['silence_id']}").status_code == 200
    assert desk.call("chen", "POST", "/api/routing-rules", json={"assignee": "li", "industry": "fitness"}).status_code == 201
    assert desk.call("chen", "GET", "/api/deliveries", params={"kind": "feedback"}).json()[0]["payload"]["disposition"] == "rectified"
    trail = desk.call("zhao", "GET", f"/api/cases/{red}").json()["events"]
    assert [(e["actor"], e["action"]) for e in trail] == [
        ("system", "opened"), ("chen", "assign"), ("chen", "resolve"), ("chen", "close"), ("chen", "reopen")]


def test_errors_are_one_clear_line(desk: Desk) -> None:
    missing = desk.call("chen", "GET", "/api/cases/YJ-nope")
    assert (missing.status_code, missing.json()) == (404, {"detail": "no case YJ-nope"})
    closed = desk.call("chen", "POST", f"/api/cases/{desk.cases[0]}/close")
    assert (closed.status_code, closed.json()) == (409, {"detail": "cannot close a case that is new"})
    bad = desk.call("chen", "POST", f"/api/cases/{desk.cases[0]}/resolve", json={"disposition": "meh", "note": "x"})
    assert bad.status_code == 422


def test_openapi_documents_the_routes(desk: Desk) -> None:
    spec = desk.client.get("/openapi.json").json()
    assert {"/api/cases", "/api/cases/{case_id}/resolve", "/api/silences", "/api/deliveries"} <= set(spec["paths"])
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["type"] == "http"
