"""Published threshold versions: the ``prepaid.thresholds`` topic and the schedule they make.

Operators publish a thresholds file (:mod:`alerts.thresholds`) with an author, a reason and the
event time from which it applies; each publication is one record on the compacted, single-
partition topic ``prepaid.thresholds`` (key: its publication id, so every publication is kept
and the topic is the history). Workers read every publication and score each event-time day
with the version in force on that day (:class:`ThresholdSchedule`), so a replay that is given
the same publications scores every day as live did.

Not part of the wire contract (the topic is yujing's own); same conventions: JSON, RFC 3339.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_serializer

from alerts.threshold_set import Change, ThresholdsError, ThresholdSet, builtin_thresholds, diff
from models.calendar import SHANGHAI, day_start, local_day


class Publication(BaseModel):
    """One published version, as it travels on ``prepaid.thresholds``."""

    model_config = ConfigDict(frozen=True)

    publication_id: str  # <version>@<published_at>: every publication is its own compacted key
    version: str
    thresholds: dict[str, Any]  # the file's content; validated again by every reader
    author: str = Field(min_length=1)
    reason: str = Field(min_length=1)
    published_at: AwareDatetime  # wall clock
    effective_from: AwareDatetime  # event time: days from this one on are scored with it

    @field_serializer("published_at", "effective_from")
    def _rfc3339(self, value: datetime) -> str:
        return value.isoformat()

    @property
    def effective_day(self) -> int:
        """The first event-time day (Shanghai, ordinal) scored with this version."""
        return local_day(self.effective_from)

    def threshold_set(self) -> ThresholdSet:
        """The published set, validated; :class:`ThresholdsError` if it is unusable, or if its
        content does not hash to the version it claims (a tampered or truncated record)."""
        thresholds = ThresholdSet.from_mapping(self.thresholds)
        if thresholds.version != self.version:
            raise ThresholdsError([f"(publication): content hashes to {thresholds.version}, not {self.version}"])
        return thresholds


def next_day_start(now: datetime) -> datetime:
    """Default ``effective_from``: the start of the next Shanghai day after ``now``, so that a
    version published today applies from tomorrow's events on, in live and in any replay.

    >>> from datetime import UTC
    >>> next_day_start(datetime(2026, 3, 1, 20, 0, tzinfo=UTC)).isoformat()
    '2026-03-03T00:00:00+08:00'
    """
    return day_start(local_day(now) + 1).astimezone(SHANGHAI)


def publication(
    thresholds: ThresholdSet, *, author: str, reason: str, published_at: datetime,
    effective_from: datetime | None = None,
) -> Publication:
    effective = effective_from or next_day_start(published_at)
    return Publication(
        publication_id=f"{thresholds.version}@{published_at.isoformat()}",
        version=thresholds.version,
        thresholds=thresholds.model_dump(mode="json"),
        author=author,
        reason=reason,
        published_at=published_at,
        effective_from=effective,
    )


class ThresholdSchedule:
    """Which thresholds score which event-time day: the built-in set until the first
    publication's effective day, then each publication from its own (a later publication for
    the same day wins). Scorers and policies are built once per version.

    >>> from datetime import UTC
    >>> schedule = ThresholdSchedule()
    >>> schedule.at(739311).version == builtin_thresholds().version
    True
    """

    def __init__(self, base: ThresholdSet | None = None) -> None:
        base = base or builtin_thresholds()
        self._days: list[int] = [-(10**9)]
        self._sets: list[ThresholdSet] = [base]
        self._built: dict[str, tuple[Any, Any]] = {}
        self.applied: list[Publication] = []

    def add(self, published: Publication) -> ThresholdSet:
        """Take a publication in (validated; :class:`ThresholdsError` leaves the schedule as it
        was). Publications are applied in the order they were published."""
        thresholds = published.threshold_set()
        day = published.effective_day
        at = bisect_right(self._days, day)
        # A later publication replaces what earlier ones scheduled from its day on.
        del self._days[at:], self._sets[at:]
        self._days.append(day)
        self._sets.append(thresholds)
        self.applied.append(published)
        return thresholds

    def judge(self, published: Publication) -> tuple[ThresholdSet | None, list[Change], ThresholdsError | None]:
        """Add ``published`` as a worker would: (the set now in force and what it changed, None)
        when applied, (None, [], why) when refused."""
        before = self.latest
        try:
            after = self.add(published)
        except ThresholdsError as error:
            return None, [], error
        return after, diff(before, after), None

    def extend(self, publications: Iterable[Publication]) -> list[tuple[Publication, ThresholdsError]]:
        """Add each; returns the refused ones with their reasons."""
        refused = []
        for published in publications:
            try:
                self.add(published)
            except ThresholdsError as error:
                refused.append((published, error))
        return refused

    def at(self, day: int) -> ThresholdSet:
        return self._sets[bisect_right(self._days, day) - 1]

    def built(self, day: int) -> tuple[Any, Any]:
        """(``RiskScorer``, ``LevelPolicy``) of the version in force on ``day``."""
        thresholds = self.at(day)
        if thresholds.version not in self._built:
            self._built[thresholds.version] = (thresholds.scorer(), thresholds.level_policy())
        return self._built[thresholds.version]

    @property
    def latest(self) -> ThresholdSet:
        return self._sets[-1]

