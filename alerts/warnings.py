"""Building the disposal-queue records (contract ``prepaid.warnings``) with deterministic ids."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

from yujing.contract import IndicatorReading, Warning

MAX_INDICATORS = 6


def warning_id(merchant_id: str, day: str, transition: str, previous: str | None, level: str) -> str:
    """Same merchant, event-time day and transition -> same id, however often it is replayed.

    >>> warning_id("m1", "2026-03-01", "raised", None, "orange")
    'w-...'
    >>> warning_id("m1", "2026-03-01", "raised", None, "orange") == warning_id(
    ...     "m1", "2026-03-01", "raised", None, "orange")
    True
    """
    digest = hashlib.sha256(f"{merchant_id}|{day}|{transition}|{previous}|{level}".encode())
    return "w-" + digest.hexdigest()[:24]


def build_warning(
    *,
    merchant_id: str,
    day: str,
    transition: tuple[str, str | None, str],
    score: float,
    drivers: Sequence[object],
    raised_at: datetime,
    industry: str | None,
    district: str | None,
    thresholds_version: str,
    emitted_at: datetime | None = None,
) -> Warning:
    kind, previous, level = transition
    readings = [
        IndicatorReading(
            code=r.code,  # type: ignore[attr-defined]
            value=r.value,  # type: ignore[attr-defined]
            threshold=r.threshold,  # type: ignore[attr-defined]
            score=r.score,  # type: ignore[attr-defined]
            explanation_zh=r.explanation_zh,  # type: ignore[attr-defined]
            explanation_en=r.explanation_en,  # type: ignore[attr-defined]
        )
        for r in list(drivers)[:MAX_INDICATORS]
    ]
    return Warning(
        warning_id=warning_id(merchant_id, day, kind, previous, level),
        merchant_id=merchant_id,
        level=level,  # type: ignore[arg-type]
        previous_level=previous,  # type: ignore[arg-type]
        transition=kind,  # type: ignore[arg-type]
        score=min(1.0, max(0.0, score)),
        raised_at=raised_at,
        emitted_at=emitted_at or datetime.now().astimezone(),
        indicators=readings,
        industry=industry,
        district=district,
        thresholds_version=thresholds_version,
    )
