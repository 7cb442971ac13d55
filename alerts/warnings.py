"""Building the disposal-queue records (contract ``prepaid.warnings``) with deterministic ids."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

from contract.records import IndicatorReading, Warning
from models.scoring import Contribution


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
    drivers: Sequence[Contribution],
    raised_at: datetime,
    industry: str | None,
    district: str | None,
    thresholds_version: str,
    emitted_at: datetime | None = None,
    merchant_name: str | None = None,
    chain_id: str | None = None,
    figures: dict[str, float | None] | None = None,
) -> Warning:
    """The disposal-queue record of one transition. ``merchant_name``, ``chain_id`` (from the
    profile in force on the warning's day) and ``figures`` (``models.features.case_figures``)
    are extra fields for the case desk; the contract lets readers ignore them."""
    kind, previous, level = transition
    # Every indicator that drove the level, strongest first, with its share of the score.
    readings = [
        IndicatorReading(
            code=c.reading.code,
            value=c.reading.value,
            threshold=c.reading.threshold,
            score=c.reading.score,
            explanation_zh=c.reading.explanation_zh,
            explanation_en=c.reading.explanation_en,
            weight=round(c.weight, 4),
            contribution=round(c.amount, 4),
        )
        for c in drivers
    ]
    return Warning(
        warning_id=warning_id(merchant_id, day, kind, previous, level),
        merchant_id=merchant_id,
        # The level policy speaks plain str; pydantic checks them against the contract's Literals.
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
        merchant_name=merchant_name,
        chain_id=chain_id,
        figures=dict(figures) if figures is not None else None,
    )
