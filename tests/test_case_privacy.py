"""What leaves the case desk: pushes a receiver can verify (tampered, old and replayed ones
refused; the documented receiver runs), and no consumer id or phone number in anything a run puts
out — warnings, cases, pages, API answers, pushes, logs, metrics."""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import Engine

from alerts.threshold_history import ThresholdSchedule
from cases.api import create_app
from cases.config import CaseSettings
from cases.metrics import CaseMetrics
from cases.service import CaseService, sign
from cases.webhook_verify import PushRejected, verify_push
from engine.replay import run_backtest
from tests.case_factories import add_staff, login
from yujing.settings import Settings, TopicNames

ROOT = Path(__file__).resolve().parent.parent
SECRET = "hotline-shared-secret"
BODY = b'{"event":"case.opened","case_id":"YJ-20260303-2766EB","level":"red"}'
NOW = 1_767_225_600


def signed(body: bytes = BODY, at: int = NOW, delivery: str = "d-1", secret: str = SECRET) -> dict[str, str]:
    """Headers as the desk sends them (its own ``sign``)."""
    return {"X-Yujing-Timestamp": str(at), "X-Yujing-Signature": sign(secret, str(at), body),
            "X-Yujing-Delivery": delivery}


def reason(headers: dict[str, str], body: bytes = BODY, now: float = NOW, seen: set[str] | None = None) -> str:
    with pytest.raises(PushRejected) as refused:
        verify_push(SECRET, headers, body, now, seen=seen)
    return refused.value.reason


# -- webhook receivers ---------------------------------------------------------------------------


def test_a_receiver_accepts_a_genuine_push_and_refuses_tampered_or_forged_ones() -> None:
    lowercase = {k.lower(): v for k, v in signed().items()}  # as most servers hand headers over
    assert verify_push(SECRET, lowercase, BODY, NOW + 10).delivery_id == "d-1"
    assert reason(signed(), BODY.replace(b"red", b"blue")) == "signature"  # body changed in transit
    assert reason({**signed(), "X-Yujing-Timestamp": str(NOW + 1)}) == "signature"  # timestamp moved
    assert reason(signed(secret="guessed")) == "signature"
    assert reason({k: v for k, v in signed().items() if k != "X-Yujing-Signature"}) == "missing"


def test_a_receiver_refuses_old_and_replayed_pushes() -> None:
    assert reason(signed(at=NOW - 301)) == "timestamp"  # captured and sent again later
    assert reason(signed(at=NOW + 301)) == "timestamp"
    assert verify_push(SECRET, signed(at=NOW - 299), BODY, NOW).timestamp == NOW - 299
    seen: set[str] = set()
    verify_push(SECRET, signed(), BODY, NOW, seen=seen)
    assert reason(signed(), seen=seen) == "replay"  # the same request twice
    # The delivery id is not signed: replayed under a made-up one, its signature still gives it away.
    assert reason({**signed(), "X-Yujing-Delivery": "d-forged"}, seen=seen) == "replay"
    # The desk's own retry (new timestamp, same delivery id): already handled, answer 2xx.
    assert reason(signed(at=NOW + 30), now=NOW + 30, seen=seen) == "replay"
    assert verify_push(SECRET, signed(delivery="d-2", at=NOW + 30), BODY, NOW + 30, seen=seen).delivery_id == "d-2"


def documented_receiver() -> str:
    text = (ROOT / "docs" / "cases.md").read_text(encoding="utf-8")
    return text.split("<!-- receiver-example -->\n```python\n", 1)[1].split("```", 1)[0]


def test_the_documented_receiver_runs_against_what_the_desk_sends(engine: Engine) -> None:
    """The example in docs/cases.md, fed by the desk's own delivery code (its headers)."""
    namespace: dict[str, Any] = {}
    exec(compile(documented_receiver(), "docs/cases.md", "exec"), namespace)  # noqa: S102
    receive = namespace["receive"]
    answers: list[tuple[int, bytes]] = []

    def hotline(request: httpx.Request) -> httpx.Response:
        status, answer = receive(dict(request.headers), request.content)
        answers.append((status, request.content))
        return httpx.Response(status, content=answer)

    cases = CaseSettings(webhooks=[{"name": "hotline", "url": "https://hotline.example/push", "secret": "s3cret"}])
    service = CaseService(Settings(), cases, engine)
    message = SimpleNamespace(target="hotline", payload={"case_id": "YJ-1", "level": "red"}, dedup_key="w-1:hotline")
    with httpx.Client(transport=httpx.MockTransport(hotline)) as client:
        assert service._post(client, message) is None  # accepted
        assert service._post(client, message) is None  # the retry: a duplicate, answered 2xx
        tampered = SimpleNamespace(target="hotline", payload={"case_id": "YJ-1"}, dedup_key="w-2:hotline")
        service.secrets["hotline"] = "not-the-shared-secret"
        assert "HTTP 401" in (service._post(client, tampered) or "")
    assert [status for status, _ in answers] == [200, 200, 401]
    assert namespace["handled"] == [orjson.loads(answers[0][1])]  # handled once


# -- no personal data in anything a run puts out -------------------------------------------------

# A mainland mobile number standing alone, not the decimals of a float (a fresh-clone CI once
# found "18085840609", no planted number, in a run's outputs: most likely a duration's digits).
PHONE = re.compile(r"(?<![\d.])1[3-9]\d{9}(?!\d)")


def plant(events: Path) -> tuple[set[str], set[str]]:
    """Phone numbers and consumer ids into the inputs, where real feeds carry them: complaints
    with the complainant's number and id (extra fields the contract ignores), and consumer ids
    on every card transaction. Returns (consumer ids, phone numbers) planted."""
    consumers = {orjson.loads(line)["consumer_id"] for line in (events / "transactions.jsonl").read_bytes().splitlines()}
    phones: set[str] = set()
    rows = []
    for n, line in enumerate((events / "complaints.jsonl").read_bytes().splitlines()):
        phone = f"139{n:08d}"
        phones.add(phone)
        rows.append(orjson.dumps({**orjson.loads(line), "consumer_id": f"u-complainant-{n}",
                                  "phone": phone, "text": f"消费者来电 {phone} 投诉退卡难"}))
        consumers.add(f"u-complainant-{n}")
    (events / "complaints.jsonl").write_bytes(b"\n".join(rows) + b"\n")
    return consumers, phones


def test_no_consumer_id_or_phone_number_in_anything_a_run_puts_out(
        engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from yujing.simulator import SimulationConfig, simulate

    events = tmp_path / "events"
    simulate(SimulationConfig(merchants=12, days=120, seed=1)).write(events)
    consumers, phones = plant(events)
    inputs = b"".join(p.read_bytes() for p in events.glob("*.jsonl")).decode()
    assert len(consumers) > 100 and phones and all(p in inputs for p in phones)  # planted, so findable
    caplog.set_level(logging.DEBUG)

    result = run_backtest(events, partitions=4, allowed_lateness=timedelta(hours=48), schedule=ThresholdSchedule())
    warnings = [orjson.loads(w.model_dump_json()) for w in result.warnings]
    assert any(w["level"] in ("orange", "red") for w in warnings)
    # And one warning from a careless producer: a consumer's id and phone as extra fields.
    careless = {**warnings[-1], "warning_id": "w-careless", "consumer_id": sorted(consumers)[0],
                "consumer_phone": sorted(phones)[0], "complainant": {"mobile": sorted(phones)[-1]}}

    cases = CaseSettings(session_secret="s", webhooks=[
        {"name": "hotline", "url": "https://hotline.example/push", "secret": "s3cret", "levels": ["orange", "red"]}])
    registry = CollectorRegistry()
    service = CaseService(Settings(topics=TopicNames(feedback="t.feedback")), cases, engine, CaseMetrics(registry))
    for offset, w in enumerate([*warnings, careless]):
        service.ingest_record(SimpleNamespace(value=orjson.dumps(w), topic="prepaid.warnings", partition=0, offset=offset))
    pushed: list[httpx.Request] = []
    with httpx.Client(transport=httpx.MockTransport(lambda r: pushed.append(r) or httpx.Response(200))) as client:
        while service._deliver_one(client):
            pass
    assert pushed

    outputs = [orjson.dumps(warnings).decode(), *(r.content.decode() + str(r.headers) for r in pushed),
               generate_latest(registry).decode(), caplog.text, *desk_outputs(engine, cases)]
    everything = "\n".join(outputs)
    assert "w-careless" in everything  # the careless warning did arrive
    ids = re.compile("|".join(map(re.escape, sorted(consumers, key=len, reverse=True))))
    assert ids.findall(everything) == [], "consumer ids in the desk's outputs"
    assert PHONE.findall(everything) == [], "phone numbers in the desk's outputs"
    assert PHONE.findall(inputs) and ids.search(inputs)  # the same scans do find them in the inputs


def desk_outputs(engine: Engine, cases: CaseSettings) -> list[str]:
    """Every case as staff see it: API answers (cases, deliveries, feedback) and pages."""
    tokens = add_staff(engine)
    app = create_app(Settings(topics=TopicNames(feedback="t.feedback")), cases, engine, registry=CollectorRegistry())
    api = TestClient(app, headers={"Authorization": f"Bearer {tokens['chen']}"})
    listed = api.get("/api/cases", params={"all": True}).json()
    assert listed
    texts = [orjson.dumps(listed).decode(), api.get("/api/deliveries").text]
    browser = TestClient(app, follow_redirects=False)
    assert login(browser, "chen").status_code == 303
    texts += [browser.get("/inbox").text, browser.get("/compliance?show=all").text]
    for case in listed:
        texts += [api.get(f"/api/cases/{case['case_id']}").text, browser.get(f"/cases/{case['case_id']}").text]
    return texts
