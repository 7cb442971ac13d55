"""Merchant-day history: what the worker saw of each merchant on each closed event-time day.

The worker sends one :class:`MerchantDay` per scored merchant-day to the ``merchant_days``
topic (key ``<merchant_id>/<day>``, compacted); the case service keeps them in PostgreSQL, where
Grafana's merchant drill-down charts the indicators, score and level that led to a warning.

Not part of the wire contract (the topic is yujing's own), same conventions: JSON, dates ISO.
No consumer data: figures are the merchant's totals.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date

from pydantic import BaseModel, ConfigDict

from engine.day_closing import DayResult
from models.calendar import day_date


class IndicatorReading(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str
    value: float | None  # None: not finite (a ratio over an empty baseline)
    threshold: float | None
    reading: float  # 0 (fine) .. 1 (fully alarming)
    contribution: float  # weight x reading: what it added before the scores are fused


class MerchantDay(BaseModel):
    model_config = ConfigDict(frozen=True)

    merchant_id: str
    day: date
    score: float
    level: str | None  # the level held after this day
    merchant_name: str | None = None
    chain_id: str | None = None
    district: str | None = None
    industry: str | None = None
    sales: float = 0.0  # that day's card sales (paid, yuan)
    complaints: int = 0  # that day's complaints
    prepaid_balance: float | None = None
    sales_28d: float | None = None
    redeemed_28d: float | None = None
    refunds_28d: float | None = None
    complaints_28d: float | None = None
    custody_balance: float | None = None
    custody_required: float | None = None
    thresholds_version: str
    indicators: list[IndicatorReading] = []

    @property
    def key(self) -> bytes:
        """The compaction key: one record per merchant and day survives."""
        return f"{self.merchant_id}/{self.day.isoformat()}".encode()


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


FIGURES = ("prepaid_balance", "sales_28d", "redeemed_28d", "refunds_28d", "complaints_28d",
           "custody_balance", "custody_required")


def merchant_day_record(result: DayResult) -> dict[str, object]:
    """The history record of one scored merchant-day, as the worker sends it (JSON-ready; a
    :class:`MerchantDay` when validated). Built as a plain dict: the worker builds one per
    merchant and day, and pydantic objects cost five times as much (bench/worker_observability.py).

    >>> from models.scoring import Contribution, MerchantScore
    >>> from models.indicators.base import Reading
    >>> gap = Reading("custody_gap", 0.4, 0.1, 0.75, "存管缺口", "custody gap")
    >>> score = MerchantScore(0.3, (Contribution(gap, 0.4),), {})
    >>> record = MerchantDay.model_validate(merchant_day_record(DayResult("m1", 739311, score, "yellow")))
    >>> record.day.isoformat(), record.level, record.indicators[0].contribution, record.key
    ('2025-03-01', 'yellow', 0.3, b'm1/2025-03-01')
    """
    profile, totals, figures = result.profile, result.totals, result.figures
    return {
        "merchant_id": result.merchant_id,
        "day": day_date(result.day).isoformat(),
        "score": result.score.score,
        "level": result.level,
        "merchant_name": profile.name if profile else None,
        "chain_id": profile.chain_id if profile else None,
        "district": profile.district if profile else None,
        "industry": profile.industry if profile else None,
        "sales": totals.sales_paid if totals else 0.0,
        "complaints": sum(totals.complaints.values()) if totals else 0,
        **{name: _finite(figures.get(name)) for name in FIGURES},
        "thresholds_version": result.thresholds_version,
        "indicators": [
            {"code": c.reading.code, "value": _finite(c.reading.value), "threshold": _finite(c.reading.threshold),
             "reading": c.reading.score, "contribution": c.amount}
            for c in result.score.contributions
        ],
    }


def record_key(record: Mapping[str, object]) -> bytes:
    """The compaction key of a :func:`merchant_day_record` (as :attr:`MerchantDay.key`)."""
    return f"{record['merchant_id']}/{record['day']}".encode()
