"""The compliance findings register (cases/findings.py): the pure transitions without a
database, then the register fed by the merchant-day history on a real PostgreSQL, and the
compliance desk's API, web page, CLI and gauge."""

from __future__ import annotations

import random
import re
import warnings as python_warnings
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, select

from alerts.cases import CaseActionDenied, CaseActionInvalid
from cases import findings_desk, store
from cases.findings import CODES, Finding, Observation, desk_status, fold, step
from cases.history import record_days
from cases.schema import compliance_findings, merchant_indicator_days
from engine.merchant_days import IndicatorReading, MerchantDay
from models.scoring import COMPLIANCE

with python_warnings.catch_warnings():
    python_warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

NOW = datetime(2026, 3, 4, 2, 0, tzinfo=UTC)
D0 = date(2026, 3, 1)
CAP = "over_cap_cards"
PASSWORD = "pw-compliance"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def d(n: int) -> date:
    return D0 + timedelta(days=n)


# -- pure: transitions -------------------------------------------------------------------------


def test_codes_are_the_scorers_compliance_set() -> None:
    assert set(CODES) == COMPLIANCE and len(CODES) == 3


def test_open_update_clear_reopen() -> None:
    f, what = step(None, CAP, Observation(d(0), 0.5, 3.0, 1.0))
    assert what == "opened" and f is not None and f.is_open
    f, what = step(f, CAP, Observation(d(1), 0.0, 0.0, 1.0))
    assert what == "cleared" and f is not None and f.cleared_day == d(1) and f.value == 3.0
    f, what = step(f, CAP, Observation(d(2), 0.0))
    assert what == "none" and f is not None and f.cleared_day == d(1)
    f, what = step(f, CAP, Observation(d(5), 1.0, 6.0, 1.0))
    assert what == "reopened" and f is not None
    assert (f.first_day, f.opened_day, f.last_day, f.cleared_day, f.days_seen, f.episodes) == (
        d(0), d(5), d(5), None, 2, 2)
    with pytest.raises(ValueError, match="replay the history"):
        step(f, CAP, Observation(d(5), 0.0))


def test_a_fold_decides_by_day_not_by_arrival() -> None:
    rng = random.Random(14)
    for _ in range(200):
        days = [Observation(d(i), rng.choice((0.0, 0.0, 0.3, 1.0)), float(i), 1.0) for i in range(30)]
        whole = fold(CAP, days)
        shuffled = days[:]
        rng.shuffle(shuffled)
        assert fold(CAP, shuffled) == whole
        cut = rng.randrange(1, 30)
        assert fold(CAP, days[cut:], fold(CAP, days[:cut])) == whole
    assert fold(CAP, [Observation(d(0), 0.0)]) is None


def test_handling_holds_for_its_episode_only() -> None:
    f = Finding(CAP, d(0), d(10), d(20), None, 3.0, 1.0, 0.5, 15, 2)
    assert desk_status(f, "acknowledged", d(12)) == "acknowledged"
    assert desk_status(f, "resolved", d(9)) == "open"  # given in the earlier episode
    assert desk_status(f, None, None) == "open"


def test_who_may_handle_what() -> None:
    findings_desk.check_handling("handler", "acknowledged", "open", "seen it")
    findings_desk.check_handling("supervisor", "resolved", "acknowledged", "rectified on site")
    with pytest.raises(CaseActionDenied):
        findings_desk.check_handling("viewer", "resolved", "open", "x")
    for status in ("resolved", "cleared"):
        with pytest.raises(CaseActionInvalid):
            findings_desk.check_handling("handler", "resolved", status, "x")
    with pytest.raises(CaseActionInvalid, match="note is required"):
        findings_desk.check_handling("handler", "acknowledged", "open", "  ")


# -- the register on PostgreSQL ------------------------------------------------------------------


def record(merchant_id: str, n: int, readings: dict[str, float] | None = None, *, district: str = "南桥镇",
           industry: str = "beauty", omit: tuple[str, ...] = ()) -> MerchantDay:
    """Merchant-day ``d(n)``: every compliance code at the given reading (default 0), plus silence."""
    readings = readings or {}
    indicators = [IndicatorReading(code="silence", value=1.0, threshold=5.0, reading=0.0, contribution=0.0)]
    for code in CODES:
        if code in omit:
            continue
        r = readings.get(code, 0.0)
        indicators.append(IndicatorReading(code=code, value=1.0 + 10 * r + n / 100, threshold=1.0, reading=r,
                                           contribution=0.1 * r))
    return MerchantDay(merchant_id=merchant_id, day=d(n), score=0.1, level=None, merchant_name=f"店{merchant_id}",
                       district=district, industry=industry, thresholds_version="test-1", indicators=indicators)


def register(engine: Engine) -> dict[tuple[str, str], dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(compliance_findings)).mappings()
        return {(r["merchant_id"], r["code"]): {k: v for k, v in r.items() if k not in ("recorded_at", "updated_at")}
                for r in rows}


def write(engine: Engine, days: list[MerchantDay]) -> None:
    with engine.begin() as conn:
        record_days(conn, days, now=NOW)


def test_history_opens_follows_clears_and_reopens_findings(engine: Engine) -> None:
    write(engine, [record("m1", 0, {CAP: 0.5}), record("m1", 1, {CAP: 0.75, "custody_coverage": 0.4})])
    found = register(engine)
    assert set(found) == {("m1", CAP), ("m1", "custody_coverage")}
    cap = found[("m1", CAP)]
    assert (cap["status"], cap["first_day"], cap["last_day"], cap["days_seen"]) == ("open", d(0), d(1), 2)
    assert cap["value"] == pytest.approx(1.0 + 7.5 + 0.01) and cap["threshold"] == 1.0
    assert (cap["district"], cap["industry"], cap["merchant_name"]) == ("南桥镇", "beauty", "店m1")
    write(engine, [record("m1", 2, {"custody_coverage": 0.4})])
    cap = register(engine)[("m1", CAP)]
    assert (cap["status"], cap["cleared_day"], cap["last_day"]) == ("cleared", d(2), d(1))
    # A day without the reading at all (the indicator did not apply) also reads as no breach.
    write(engine, [record("m1", 3, omit=("custody_coverage",))])
    assert register(engine)[("m1", "custody_coverage")]["cleared_day"] == d(3)
    write(engine, [record("m1", 6, {CAP: 1.0})])
    cap = register(engine)[("m1", CAP)]
    assert (cap["status"], cap["first_day"], cap["opened_day"], cap["episodes"], cap["days_seen"]) == (
        "open", d(0), d(6), 2, 3)


def test_redeliveries_and_replays_leave_the_register_as_it_was(engine: Engine) -> None:
    days = [record("m1", n, {CAP: 0.5 if n % 7 < 3 else 0.0}) for n in range(20)]
    write(engine, days)
    once = register(engine)
    later = NOW + timedelta(hours=1)
    with engine.begin() as conn:
        record_days(conn, days[5:12], now=later)  # redelivered
        record_days(conn, list(reversed(days)), now=later)  # the topic read again, in another order
    assert register(engine) == once
    with engine.connect() as conn:  # and nothing was rewritten: a re-read costs no replay
        assert set(conn.scalars(select(compliance_findings.c.updated_at))) == {NOW}


def test_out_of_order_batches_give_the_register_of_the_day_order(engine: Engine) -> None:
    """Random histories delivered in random batches, in random order within and across them,
    with redeliveries: the register is the fold of each merchant's days in day order."""
    rng = random.Random(7)
    history: dict[str, list[MerchantDay]] = {}
    for merchant_id in ("m1", "m2", "m3"):
        history[merchant_id] = [
            record(merchant_id, n, {code: rng.choice((0.0, 0.0, 0.0, 0.4, 1.0)) for code in CODES},
                   district=rng.choice(("南桥镇", "庄行镇")))
            for n in range(40)
        ]
    everything = [r for rs in history.values() for r in rs]
    # Mostly in day order, as the worker sends them, with some late and some repeated.
    stream = sorted(everything, key=lambda r: (r.day, r.merchant_id))
    late = rng.sample(range(len(stream)), 12)
    delivered = [r for i, r in enumerate(stream) if i not in late] + [stream[i] for i in late]
    delivered += rng.sample(everything, 20)
    cuts = sorted(rng.sample(range(1, len(delivered)), 9))
    for chunk in (delivered[a:b] for a, b in zip([0, *cuts], [*cuts, len(delivered)], strict=True)):
        rng.shuffle(chunk)
        write(engine, chunk)
    found = register(engine)
    for merchant_id, days in history.items():
        for code in CODES:
            expected = fold(code, [Observation(r.day, *next((i.reading, i.value, i.threshold)
                                                          for i in r.indicators if i.code == code)) for r in days])
            row = found.get((merchant_id, code))
            if expected is None:
                assert row is None
                continue
            assert row is not None
            assert Finding(code, *(row[f] for f in ("first_day", "opened_day", "last_day", "cleared_day", "value",
                                                     "threshold", "reading", "days_seen", "episodes"))) == expected
            assert row["status"] == ("open" if expected.is_open else "cleared")
            assert row["district"] == days[-1].district  # the profile of the newest day


def test_a_late_day_that_changes_the_past_is_replayed(engine: Engine) -> None:
    write(engine, [record("m1", n, {CAP: 0.5}) for n in (0, 1, 3, 4)])
    assert register(engine)[("m1", CAP)]["episodes"] == 1
    write(engine, [record("m1", 2)])  # late, and clean: the breach was two episodes
    cap = register(engine)[("m1", CAP)]
    assert (cap["opened_day"], cap["episodes"], cap["days_seen"], cap["status"]) == (d(3), 2, 4, "open")
    # The day sent again with the breach: one episode again.
    write(engine, [record("m1", 2, {CAP: 0.5})])
    cap = register(engine)[("m1", CAP)]
    assert (cap["opened_day"], cap["episodes"], cap["days_seen"]) == (d(0), 1, 5)


def test_a_day_sent_again_without_its_reading_loses_it(engine: Engine) -> None:
    write(engine, [record("m1", 0, {CAP: 0.5}), record("m1", 1)])
    write(engine, [record("m1", 0, omit=(CAP,))])
    assert ("m1", CAP) not in register(engine)
    with engine.connect() as conn:
        codes = set(conn.scalars(select(merchant_indicator_days.c.code).where(
            merchant_indicator_days.c.day == d(0))))
    assert CAP not in codes and "silence" in codes


def test_handling_is_kept_through_its_episode_and_a_recurrence_opens_again(engine: Engine) -> None:
    with engine.begin() as conn:
        store.add_user(conn, "wang", "handler")
        wang = store.get_user(conn, "wang")
    assert wang is not None
    write(engine, [record("m1", 0, {CAP: 0.5})])
    with engine.begin() as conn:
        assert findings_desk.handle(conn, "m1", CAP, wang, "resolved", " cards refunded ", now=NOW) == "resolved"
    write(engine, [record("m1", 1, {CAP: 0.5})])  # the same episode goes on
    assert register(engine)[("m1", CAP)]["status"] == "resolved"
    write(engine, [record("m1", 2), record("m1", 3, {CAP: 0.5})])
    cap = register(engine)[("m1", CAP)]
    assert (cap["status"], cap["handling"], cap["handled_by"], cap["handling_note"]) == (
        "open", "resolved", "wang", "cards refunded")
    # Replaying the whole history keeps the handling where it belongs.
    write(engine, [record("m1", 1, {CAP: 0.25})])
    assert register(engine)[("m1", CAP)]["status"] == "open"
    with engine.begin() as conn:
        notes = findings_desk.get_finding(conn, "m1", CAP)["notes"]
    assert [(n["actor"], n["action"], n["note"], n["opened_day"]) for n in notes] == [
        ("wang", "resolved", "cards refunded", d(0))]


# -- the desk: API, web page, CLI, gauge -------------------------------------------------------------


@pytest.fixture
def desk(engine: Engine) -> dict[str, Any]:
    from cases.api import create_app
    from cases.config import CaseSettings
    from yujing.settings import Settings

    with engine.begin() as conn:
        tokens = {u: store.add_user(conn, u, role, password=PASSWORD)
                  for u, role in (("wang", "handler"), ("chen", "supervisor"), ("zhao", "viewer"))}
    write(engine, [
        record("m-old", 0, {CAP: 0.5}, district="南桥镇", industry="beauty"),
        record("m-old", 5, {CAP: 0.5, "custody_coverage": 0.5}, district="南桥镇", industry="beauty"),
        record("m-new", 4, {"custody_report_missing": 0.7}, district="庄行镇", industry="fitness"),
        record("m-new", 5, {"custody_report_missing": 0.7}, district="庄行镇", industry="fitness"),
        record("m-gone", 1, {CAP: 0.2}), record("m-gone", 2),
    ])
    app = create_app(Settings(), CaseSettings(session_secret="test-session-secret"), engine)
    return {"engine": engine, "app": app, "tokens": tokens}


def call(desk: dict[str, Any], who: str, method: str, path: str, **kw: Any) -> Any:
    with TestClient(desk["app"]) as c:
        return c.request(method, path, headers={"Authorization": f"Bearer {desk['tokens'][who]}"}, **kw)


def test_api_lists_filters_orders_and_handles(desk: dict[str, Any]) -> None:
    listed = call(desk, "zhao", "GET", "/api/findings").json()
    assert [(f["merchant_id"], f["code"]) for f in listed] == [
        ("m-old", "custody_coverage"), ("m-new", "custody_report_missing"), ("m-old", CAP)]  # newest first
    longest = call(desk, "zhao", "GET", "/api/findings", params={"order": "longest"}).json()
    assert longest[0]["code"] == CAP and longest[0]["days_running"] == 6
    assert [f["merchant_id"] for f in call(desk, "zhao", "GET", "/api/findings",
                                           params={"district": "庄行镇"}).json()] == ["m-new"]
    assert {f["code"] for f in call(desk, "zhao", "GET", "/api/findings",
                                    params={"code": CAP, "all": True}).json()} == {CAP}
    assert len(call(desk, "zhao", "GET", "/api/findings", params={"code": CAP, "all": True}).json()) == 2
    assert [f["merchant_id"] for f in call(desk, "zhao", "GET", "/api/findings",
                                           params={"industry": "fitness"}).json()] == ["m-new"]
    assert call(desk, "zhao", "GET", "/api/findings", params={"code": "silence"}).status_code == 422

    denied = call(desk, "zhao", "POST", f"/api/findings/m-old/{CAP}/acknowledge", json={"note": "seen"})
    assert denied.status_code == 403 and "may only read" in denied.json()["detail"]
    ack = call(desk, "wang", "POST", f"/api/findings/m-old/{CAP}/acknowledge", json={"note": "visit booked"})
    assert ack.json()["status"] == "acknowledged"
    again = call(desk, "wang", "POST", f"/api/findings/m-old/{CAP}/acknowledge", json={"note": "again"})
    assert again.status_code == 409
    assert call(desk, "chen", "POST", f"/api/findings/m-gone/{CAP}/resolve", json={"note": "x"}).status_code == 409
    assert call(desk, "chen", "POST", "/api/findings/nobody/x/resolve", json={"note": "x"}).status_code == 404
    assert call(desk, "chen", "POST", f"/api/findings/m-old/{CAP}/resolve", json={"note": ""}).status_code == 422
    assert call(desk, "chen", "POST", f"/api/findings/m-old/{CAP}/resolve",
                json={"note": "cards refunded"}).json()["status"] == "resolved"
    detail = call(desk, "zhao", "GET", f"/api/findings/m-old/{CAP}").json()
    assert (detail["status"], detail["handled_by"]) == ("resolved", "chen")
    assert [(n["actor"], n["action"]) for n in detail["notes"]] == [("wang", "acknowledged"), ("chen", "resolved")]
    assert ("m-old", CAP) not in {(f["merchant_id"], f["code"]) for f in call(desk, "zhao", "GET", "/api/findings").json()}


def _login(c: TestClient, username: str) -> None:
    token = CSRF.search(c.get("/login").text).group(1)  # type: ignore[union-attr]
    response = c.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token,
                                      "next": "/compliance"})
    assert response.status_code == 303


def test_web_page_lists_findings_and_handlers_acknowledge_with_a_note(desk: dict[str, Any]) -> None:
    c = TestClient(desk["app"], follow_redirects=False)
    assert c.get("/compliance").headers["location"] == "/login?next=/compliance"
    _login(c, "zhao")
    inbox = c.get("/inbox").text
    assert 'href="/compliance"' in inbox and "合规" in inbox
    page = c.get("/compliance").text
    assert page.count('data-testid="finding-row"') == 3 and "m-gone" not in page
    assert 'data-testid="acknowledge-' not in page  # viewers read only
    assert 'data-testid="open-custody_report_missing" data-count="1"' in page
    filtered = c.get("/compliance", params={"code": CAP, "show": "all"}).text
    assert filtered.count('data-testid="finding-row"') == 2 and 'data-status="cleared"' in filtered
    c.post("/logout", data={})

    c = TestClient(desk["app"], follow_redirects=False)
    _login(c, "wang")
    page = c.get("/compliance").text
    assert 'data-testid="acknowledge-m-new-custody_report_missing"' in page
    token = CSRF.search(page).group(1)  # type: ignore[union-attr]
    forged = c.post("/compliance/m-new/custody_report_missing/acknowledge", data={"csrf_token": "x", "note": "n"})
    assert forged.status_code == 303
    assert call(desk, "zhao", "GET", "/api/findings/m-new/custody_report_missing").json()["status"] == "open"
    no_note = c.post("/compliance/m-new/custody_report_missing/acknowledge", data={"csrf_token": token, "note": ""})
    assert "note is required" in c.get(no_note.headers["location"]).text
    done = c.post("/compliance/m-new/custody_report_missing/acknowledge",
                  data={"csrf_token": token, "note": "报告已催报 report chased", "back": "/compliance?show=all"})
    assert done.headers["location"].startswith("/compliance?show=all")
    shown = c.get("/compliance?show=all").text
    assert "已知悉" in shown and "报告已催报 report chased" in shown
    finding = call(desk, "zhao", "GET", "/api/findings/m-new/custody_report_missing").json()
    assert (finding["status"], finding["handled_by"]) == ("acknowledged", "wang")


def test_cli_lists_and_handles_findings(desk: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console
    from typer.testing import CliRunner

    from yujing.cli import cases as cli
    from yujing.cli.cases import cases_app

    client = TestClient(desk["app"])

    def through_the_app(method: str, url: str, timeout: float, **kw: Any) -> httpx.Response:
        return client.request(method, url, **kw)

    monkeypatch.setattr(httpx, "request", through_the_app)
    monkeypatch.setattr(cli, "console", Console(width=200))
    auth = ["--api", "http://testserver", "--token", desk["tokens"]["wang"]]
    runner = CliRunner()
    listed = runner.invoke(cases_app, ["findings", "--code", "custody_report_missing", *auth])
    assert listed.exit_code == 0, listed.output
    assert "m-new" in listed.output and "m-old" not in listed.output and "1 finding(s)" in listed.output
    done = runner.invoke(cases_app, ["finding-ack", "m-new", "custody_report_missing", "--note", "chased", *auth])
    assert done.exit_code == 0 and "acknowledged" in done.output
    refused = runner.invoke(cases_app, ["finding-ack", "m-new", "custody_report_missing", "--note", "x", *auth])
    assert refused.exit_code == 1 and "409" in refused.output and "Traceback" not in refused.output


def test_gauge_counts_findings_by_code_and_status(desk: dict[str, Any]) -> None:
    from cases.metrics import CaseMetrics

    registry = CollectorRegistry()
    CaseMetrics(registry).watch_database(desk["engine"], lambda: NOW)
    value = registry.get_sample_value
    assert value("yujing_compliance_findings", {"code": CAP, "status": "open"}) == 1
    assert value("yujing_compliance_findings", {"code": CAP, "status": "cleared"}) == 1
    assert value("yujing_compliance_findings", {"code": "custody_coverage", "status": "resolved"}) == 0
    labels = {tuple(sorted(s.labels)) for m in registry.collect() if m.name == "yujing_compliance_findings"
              for s in m.samples}
    assert labels == {("code", "status")}


def test_rebuild_reads_history_recorded_before_the_register(engine: Engine) -> None:
    from sqlalchemy import delete

    from cases.findings import rebuild
    from cases.schema import compliance_merchants

    write(engine, [record(m, n, {CAP: 0.5 if n != 2 else 0.0}) for m in ("m1", "m2") for n in range(5)])
    built = register(engine)
    with engine.begin() as conn:  # as if the history had been recorded before migration 0004
        conn.execute(delete(compliance_findings))
        conn.execute(delete(compliance_merchants))
    assert register(engine) == {}
    with engine.begin() as conn:
        assert rebuild(conn, now=NOW) == 2
    assert register(engine) == built and built[("m2", CAP)]["episodes"] == 2
