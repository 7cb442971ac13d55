"""The case desk's database operations against a real PostgreSQL (no Kafka)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, func, select

from alerts.cases import CaseActionDenied, CaseActionInvalid, ResponsePolicy
from alerts.policy import AlertPolicy
from cases import db, store
from cases.schema import cases, metadata, outbox, warnings
from tests.case_factories import warning_record

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 3, 4, 2, 0, tzinfo=UTC)  # Wednesday 10:00 in Shanghai
POLICY = AlertPolicy()
RESPONSE = ResponsePolicy()
HOTLINE = [("hotline", ["orange", "red"])]


@pytest.fixture
def staff(engine: Engine) -> dict[str, store.User]:
    with engine.begin() as conn:
        for username, role in (("wang", "handler"), ("li", "handler"), ("chen", "supervisor"), ("zhao", "viewer")):
            store.add_user(conn, username, role, password="pw")
        return {u: store.get_user(conn, u) for u in ("wang", "li", "chen", "zhao")}  # type: ignore[misc]


def ingest(engine: Engine, *records: dict, now: datetime = NOW) -> list[store.Ingested]:
    with engine.begin() as conn:
        return [
            store.ingest_warning(conn, r, policy=POLICY, response=RESPONSE, webhook_targets=HOTLINE, now=now)
            for r in records
        ]


def test_migrations_build_exactly_the_declared_schema(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    assert db.current_revision(engine) == db.head_revision()


def test_one_case_per_merchant_blue_is_watch_and_duplicates_change_nothing(engine: Engine) -> None:
    blue = warning_record("m1", "2026-03-01", "raised", None, "blue")
    orange = warning_record("m1", "2026-03-03", "escalated", "blue", "orange")
    red = warning_record("m1", "2026-03-05", "escalated", "orange", "red")
    results = ingest(engine, blue, orange, orange, red, red)
    assert [r.action for r in results] == ["record", "open", "replay", "escalate", "replay"]
    case_id = results[1].case_id
    assert results[3].case_id == case_id
    # The same level again under another id (e.g. another emitter): recorded, not a second warning.
    again = dict(red, warning_id="w-other")
    assert ingest(engine, again)[0].action == "duplicate"
    with engine.begin() as conn:
        assert conn.execute(select(func.count()).select_from(cases)).scalar() == 1
        case = store.get_case(conn, case_id)  # type: ignore[arg-type]
    assert case["level"] == case["max_level"] == "red"
    assert len(case["warnings"]) == 3  # orange, red, and the duplicate (the blue came before the case)
    assert [e["action"] for e in case["events"]] == ["opened", "escalated"]


def test_chain_stores_share_one_case(engine: Engine) -> None:
    results = ingest(
        engine,
        warning_record("s1", "2026-03-01", "raised", None, "orange", chain_id="c9"),
        warning_record("s2", "2026-03-02", "raised", None, "yellow", chain_id="c9"),
        warning_record("s3", "2026-03-03", "raised", None, "red", chain_id="c9"),
        warning_record("solo", "2026-03-03", "raised", None, "red"),
    )
    assert [r.action for r in results] == ["open", "append", "escalate", "open"]
    with engine.begin() as conn:
        case = store.get_case(conn, results[0].case_id)  # type: ignore[arg-type]
    assert case["group_key"] == "chain:c9" and case["level"] == "red"
    assert [m["merchant_id"] for m in case["merchants"]] == ["s1", "s2", "s3"]
    assert case["title"].startswith("连锁 c9")


def test_de_escalation_and_clearing_update_the_case_but_never_open_one(engine: Engine) -> None:
    opened = ingest(engine, warning_record("m1", "2026-03-01", "raised", None, "red"))[0]
    down = ingest(
        engine,
        warning_record("m1", "2026-03-09", "de-escalated", "red", "yellow"),
        warning_record("m1", "2026-03-20", "cleared", "yellow", "yellow"),
        warning_record("m2", "2026-03-20", "cleared", "blue", "blue"),
    )
    assert [r.action for r in down] == ["append", "append", "record"]
    with engine.begin() as conn:
        case = store.get_case(conn, opened.case_id)  # type: ignore[arg-type]
        assert case["status"] == "new" and case["level"] is None and case["max_level"] == "red"
        # Cleared: the same level may be raised again later (not a duplicate).
    again = ingest(engine, warning_record("m1", "2026-04-01", "raised", None, "red"))[0]
    assert (again.action, again.case_id, again.reason) == ("escalate", opened.case_id, "case rises from cleared to red")


def test_deadlines_by_level_and_an_escalation_shortens_them(engine: Engine) -> None:
    yellow = ingest(engine, warning_record("m1", "2026-03-01", "raised", None, "yellow"))[0]
    with engine.begin() as conn:
        due_yellow = store.get_case(conn, yellow.case_id)["due_at"]  # type: ignore[arg-type]
    assert due_yellow == RESPONSE.due_at("yellow", NOW)
    later = NOW + timedelta(hours=1)
    ingest(engine, warning_record("m1", "2026-03-02", "escalated", "yellow", "red"), now=later)
    with engine.begin() as conn:
        case = store.get_case(conn, yellow.case_id)  # type: ignore[arg-type]
    assert case["due_at"] == RESPONSE.due_at("red", later) < due_yellow
    assert case["due_at"].astimezone(UTC) == datetime(2026, 3, 4, 8, 30, tzinfo=UTC)  # 16:30 Shanghai


def test_routing_rules_assign_new_cases_by_town_and_industry(engine: Engine, staff: dict[str, store.User]) -> None:
    with engine.begin() as conn:
        store.add_routing_rule(conn, staff["chen"], "li", district=None, industry="fitness", now=NOW)
        store.add_routing_rule(conn, staff["chen"], "wang", district="南桥镇", industry="fitness", now=NOW)
        with pytest.raises(CaseActionDenied):
            store.add_routing_rule(conn, staff["wang"], "wang", district=None, industry=None, now=NOW)
    results = ingest(
        engine,
        warning_record("m1", "2026-03-01", "raised", None, "orange", district="南桥镇"),
        warning_record("m2", "2026-03-01", "raised", None, "orange", district="金汇镇"),
        warning_record("m3", "2026-03-01", "raised", None, "orange", district="金汇镇", industry="beauty"),
    )
    with engine.begin() as conn:
        got = [(store.get_case(conn, r.case_id)["assignee"], store.get_case(conn, r.case_id)["status"])  # type: ignore[arg-type]
               for r in results]
    assert got == [("wang", "assigned"), ("li", "assigned"), (None, "new")]


def test_roles_and_statuses_are_enforced(engine: Engine, staff: dict[str, store.User]) -> None:
    case_id = ingest(engine, warning_record("m1", "2026-03-01", "raised", None, "red"))[0].case_id
    assert case_id is not None
    with engine.begin() as conn:
        with pytest.raises(CaseActionDenied):
            store.act(conn, case_id, staff["zhao"], "take", now=NOW)
        with pytest.raises(CaseActionDenied):
            store.act(conn, case_id, staff["wang"], "assign", assignee="wang", now=NOW)
        assert store.act(conn, case_id, staff["chen"], "assign", assignee="li", now=NOW) == "assigned"
        with pytest.raises(CaseActionDenied):  # assigned to li: wang may neither take nor note it
            store.act(conn, case_id, staff["wang"], "take", now=NOW)
        with pytest.raises(CaseActionDenied):
            store.act(conn, case_id, staff["wang"], "note", note="x", now=NOW)
        assert store.act(conn, case_id, staff["li"], "start", now=NOW) == "in_progress"
        with pytest.raises(CaseActionInvalid):
            store.act(conn, case_id, staff["li"], "resolve", disposition="maybe", note="x", now=NOW)
        with pytest.raises(CaseActionInvalid):
            store.act(conn, case_id, staff["chen"], "assign", assignee="zhao", now=NOW)  # a viewer
        assert store.act(conn, case_id, staff["li"], "resolve", disposition="rectified", note="topped up", now=NOW) == "resolved"
        with pytest.raises(CaseActionDenied):
            store.act(conn, case_id, staff["li"], "close", now=NOW)
        assert store.act(conn, case_id, staff["chen"], "close", now=NOW) == "closed"
        with pytest.raises(CaseActionInvalid):
            store.act(conn, case_id, staff["chen"], "note", note="late", now=NOW)
        case = store.get_case(conn, case_id)
    assert case["due_at"] is None  # responded
    assert [(e["actor"], e["action"], e["to_status"]) for e in case["events"]] == [
        ("system", "opened", "new"), ("chen", "assign", "assigned"), ("li", "start", "in_progress"),
        ("li", "resolve", "resolved"), ("chen", "close", "closed"),
    ]


def test_resolving_queues_one_feedback_per_merchant(engine: Engine, staff: dict[str, store.User]) -> None:
    first = ingest(
        engine,
        warning_record("s1", "2026-03-01", "raised", None, "orange", chain_id="c1", score=0.66),
        warning_record("s2", "2026-03-02", "raised", None, "yellow", chain_id="c1", score=0.5),
        warning_record("s1", "2026-03-04", "escalated", "orange", "red", chain_id="c1", score=0.85),
    )[0]
    # The desk has seen event time up to 6 March (another merchant) when staff decide.
    ingest(engine, warning_record("other", "2026-03-06", "raised", None, "blue"))
    with engine.begin() as conn:
        store.act(conn, first.case_id, staff["wang"], "take", now=NOW)  # type: ignore[arg-type]
        store.act(conn, first.case_id, staff["wang"], "resolve", disposition="false_alarm", note="renovation", now=NOW)  # type: ignore[arg-type]
        feedback = {r.payload["merchant_id"]: r.payload for r in conn.execute(select(outbox).where(outbox.c.kind == "feedback"))}
    assert set(feedback) == {"s1", "s2"}
    s1 = feedback["s1"]
    assert (s1["disposition"], s1["level"], s1["score"]) == ("false_alarm", "red", 0.85)
    assert s1["indicator_codes"] == ["silence", "custody_coverage"]
    assert s1["effective_from"] == "2026-03-06T23:59:59+08:00"
    assert s1["warning_ids"] == [w["warning_id"] for w in (warning_record("s1", "2026-03-01", "raised", None, "orange"),
                                                           warning_record("s1", "2026-03-04", "escalated", "orange", "red"))]
    assert s1["decided_by_role"] == "handler" and "wang" not in str(s1)


def test_a_new_warning_after_resolution_opens_a_new_case_and_reopen_then_conflicts(
    engine: Engine, staff: dict[str, store.User]
) -> None:
    old = ingest(engine, warning_record("m1", "2026-03-01", "raised", None, "orange"))[0].case_id
    assert old is not None
    with engine.begin() as conn:
        store.act(conn, old, staff["chen"], "resolve", disposition="confirmed_risk", note="x", now=NOW)
    new = ingest(engine, warning_record("m1", "2026-03-08", "escalated", "orange", "red"))[0]
    assert new.action == "open" and new.case_id != old
    with engine.begin() as conn, pytest.raises(CaseActionInvalid, match="already open"):
        store.act(conn, old, staff["chen"], "reopen", note="more evidence", now=NOW)


def test_silence_mutes_and_its_end_opens_the_case(engine: Engine, staff: dict[str, store.User]) -> None:
    with engine.begin() as conn:
        with pytest.raises(CaseActionDenied):
            store.add_silence(conn, staff["wang"], "chain", "c1", reason="x", ends_at=NOW + timedelta(days=1), now=NOW)
        with pytest.raises(CaseActionInvalid, match="90 days"):
            store.add_silence(conn, staff["chen"], "chain", "c1", reason="x", ends_at=NOW + timedelta(days=200), now=NOW)
        sid = store.add_silence(conn, staff["chen"], "chain", "c1", reason="已立案调查 under investigation",
                                ends_at=NOW + timedelta(days=2), now=NOW)
    muted = ingest(engine, warning_record("s1", "2026-03-01", "raised", None, "red", chain_id="c1"))[0]
    assert muted.action == "silenced" and muted.case_id is None and f"#{sid}" in muted.reason
    with engine.begin() as conn:
        assert store.open_cases_after_silences(conn, policy=POLICY, response=RESPONSE, now=NOW + timedelta(days=1)) == []
        opened = store.open_cases_after_silences(conn, policy=POLICY, response=RESPONSE, webhook_targets=HOTLINE,
                                                 now=NOW + timedelta(days=2, seconds=1))
        assert len(opened) == 1
        case = store.get_case(conn, opened[0])
        assert case["level"] == "red" and case["warnings"][0]["warning_id"] == muted.warning_id
        assert [d["kind"] for d in case["deliveries"]] == ["webhook"]
        # Once handled, the expiry is not acted on twice.
        assert store.open_cases_after_silences(conn, policy=POLICY, response=RESPONSE, now=NOW + timedelta(days=3)) == []


def test_pushes_once_per_case_and_level_and_failed_ones_stay_visible(
    engine: Engine, staff: dict[str, store.User]
) -> None:
    ingest(
        engine,
        warning_record("m1", "2026-03-01", "raised", None, "yellow"),
        warning_record("m1", "2026-03-02", "escalated", "yellow", "orange"),
        warning_record("m1", "2026-03-03", "escalated", "orange", "red"),
        warning_record("m1", "2026-03-12", "de-escalated", "red", "orange"),
        warning_record("m1", "2026-03-20", "escalated", "orange", "red"),
    )
    with engine.begin() as conn:
        pushes = conn.execute(select(outbox.c.dedup_key, outbox.c.payload).where(outbox.c.kind == "webhook")
                              .order_by(outbox.c.message_id)).all()
        assert [p.payload["event"] for p in pushes] == ["case.opened", "case.escalated"]
        assert [p.payload["level"] for p in pushes] == ["orange", "red"]
        message = store.claim_due(conn, "webhook", now=NOW)
        statuses = [
            store.mark_attempt_failed(conn, message.message_id, "HTTP 503", now=NOW, max_attempts=3,
                                      backoff_seconds=5, backoff_max_seconds=60)
            for _ in range(3)
        ]
        assert statuses == ["pending", "pending", "failed"]
        failed = store.list_deliveries(conn, status="failed")
        assert [(d["attempts"], d["last_error"]) for d in failed] == [(3, "HTTP 503")]
        with pytest.raises(CaseActionDenied):
            store.retry_delivery(conn, staff["wang"], message.message_id, now=NOW)
        store.retry_delivery(conn, staff["chen"], message.message_id, now=NOW)
        assert store.list_deliveries(conn, status="failed") == []
        assert conn.execute(select(func.count()).select_from(warnings)).scalar() == 5


def test_tokens_and_passwords(engine: Engine) -> None:
    with engine.begin() as conn:
        token = store.add_user(conn, "wang", "handler", display_name="王芳", password="s3cret")
        assert store.user_by_token(conn, token) == store.User("wang", "王芳", "handler")
        assert store.user_by_token(conn, token + "x") is None
        assert store.user_by_password(conn, "wang", "s3cret") == store.User("wang", "王芳", "handler")
        assert store.user_by_password(conn, "wang", "wrong") is None
        with pytest.raises(CaseActionInvalid):
            store.add_user(conn, "wang", "handler")
        with pytest.raises(CaseActionInvalid):
            store.add_user(conn, "x", "admin")
