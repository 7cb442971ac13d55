"""Warnings as the case desk receives them (contract records with yujing's extra fields), and
the staff, ingestion and login the web tests share."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from alerts.policy import AlertPolicy
from alerts.warnings import warning_id
from cases import store
from cases.config import CaseSettings

PASSWORD = "correct horse battery"
STAFF = (
    ("wang", "handler", "王芳"),
    ("li", "handler", "李强"),
    ("chen", "supervisor", "陈静"),
    ("zhao", "viewer", "赵敏"),
)
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')

REASONS = {
    "silence": ("已连续{v:.0f}天无核销且仍有预收余额,超过5天阈值", "No redemptions for {v:.0f} days with prepaid balance outstanding (threshold 5)"),
    "custody_coverage": ("存管资金仅为应存管金额的{v:.0%},低于90%阈值", "Custody covers {v:.0%} of the required amount (threshold 90%)"),
    "sales_surge": ("近7天售卡额为自身基线的{v:.1f}倍,超过2倍阈值", "Card sales in 7 days are {v:.1f}x the own baseline (threshold 2x)"),
    "complaint_surge": ("近28天投诉{v:.0f}件,超过3件阈值", "{v:.0f} complaints in 28 days (threshold 3)"),
}


def reading(code: str, value: float, threshold: float, score: float) -> dict[str, Any]:
    zh, en = REASONS[code]
    return {"code": code, "value": value, "threshold": threshold, "score": score,
            "explanation_zh": zh.format(v=value), "explanation_en": en.format(v=value),
            "weight": 1.0, "contribution": score}


def warning_record(
    merchant_id: str, day: str, transition: str, previous: str | None, level: str, *,
    score: float = 0.7, chain_id: str | None = None, name: str | None = None,
    district: str = "南桥镇", industry: str = "fitness", indicators: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A warning for ``merchant_id`` raised at the end of event-time ``day`` (YYYY-MM-DD)."""
    return {
        "warning_id": warning_id(merchant_id, day, transition, previous, level),
        "merchant_id": merchant_id,
        "level": level,
        "previous_level": previous,
        "transition": transition,
        "score": score,
        "raised_at": f"{day}T23:59:59+08:00",
        "emitted_at": datetime.now(UTC).isoformat(),
        "indicators": indicators if indicators is not None else [
            reading("silence", 9, 5, 0.8), reading("custody_coverage", 0.2, 0.9, 0.7)],
        "industry": industry,
        "district": district,
        "thresholds_version": "builtin-1",
        "merchant_name": name or f"力健身{merchant_id}",
        "chain_id": chain_id,
        "figures": {"prepaid_balance": 182000.0, "sales_28d": 96000.0, "redeemed_28d": 4100.0,
                    "refunds_28d": 0.0, "complaints_28d": 4, "custody_balance": 20000.0,
                    "custody_required": 72800.0},
    }


def ingest(engine: Engine, record: dict[str, Any], *, now: datetime) -> store.Ingested:
    cases = CaseSettings(session_secret="test-session-secret")
    with engine.begin() as conn:
        return store.ingest_warning(conn, record, policy=AlertPolicy(), response=cases.response_policy(),
                                    webhook_targets=[("hotline", ["orange", "red"])], now=now)


def add_staff(engine: Engine) -> dict[str, str]:
    with engine.begin() as conn:
        return {u: store.add_user(conn, u, role, display_name=name, password=PASSWORD) for u, role, name in STAFF}


def login(c: TestClient, username: str, password: str = PASSWORD, next: str = "/inbox") -> Any:
    page = c.get("/login", params={"next": next})
    assert page.status_code == 200
    token = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
    return c.post("/login", data={"username": username, "password": password, "csrf_token": token, "next": next})
