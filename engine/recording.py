"""A replay's scored merchant-days as columns: the raw material of evidence tables and training.

:class:`DayRecorder` is handed to ``run_backtest(on_day_scored=...)``; it keeps, per scored
merchant-day, the point-in-time features, every indicator's and detector's reading score (0 when
the indicator did not apply) and the fused score. :meth:`DayRecorder.finish` turns them into
:class:`MerchantDays`, numpy columns that a whole world fits in (400 merchants x 300 days is
about 20 MB).

>>> from models.scoring import MerchantScore
>>> from engine.day_closing import DayResult
>>> recorder = DayRecorder(["silence", "sales_surge"])
>>> recorder(DayResult("m1", 739311, MerchantScore(0.2, (), {"silent_days": 3.0}), None))
>>> days = recorder.finish()
>>> days.rows, days.feature("silent_days").tolist(), days.readings[:, 0].tolist()
(1, [3.0], [0.0])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from engine.day_closing import DayResult
from models.indicators import ALL_INDICATORS
from models.scoring import DETECTOR_CODE, JOINT_DETECTOR_CODE

#: Every reading that can enter the fusion, in a fixed order.
READING_CODES: tuple[str, ...] = (*(c.code for c in ALL_INDICATORS), DETECTOR_CODE, JOINT_DETECTOR_CODE)


@dataclass
class MerchantDays:
    """Columns of scored merchant-days (one row each), in the order they were scored."""

    merchant_ids: np.ndarray  # object array of str
    days: np.ndarray  # int32 ordinal days (Asia/Shanghai)
    codes: tuple[str, ...]
    readings: np.ndarray  # float32 (rows, codes): reading scores 0..1, 0 when absent
    fused: np.ndarray  # float32: the fused score the replay gave
    feature_names: tuple[str, ...]
    features: np.ndarray  # float32 (rows, features): NaN where the feature was absent

    @property
    def rows(self) -> int:
        return len(self.days)

    def feature(self, name: str) -> np.ndarray:
        return self.features[:, self.feature_names.index(name)]

    def feature_dict(self, row: int) -> dict[str, float]:
        """The features of one row as the indicators read them (absent ones left out)."""
        values = self.features[row]
        return {name: float(v) for name, v in zip(self.feature_names, values, strict=True) if v == v}

    def select(self, mask: np.ndarray) -> MerchantDays:
        return MerchantDays(self.merchant_ids[mask], self.days[mask], self.codes, self.readings[mask],
                            self.fused[mask], self.feature_names, self.features[mask])

    @staticmethod
    def concat(parts: Sequence[MerchantDays]) -> MerchantDays:
        names = sorted({n for p in parts for n in p.feature_names})
        features = []
        for p in parts:
            block = np.full((p.rows, len(names)), np.nan, dtype=np.float32)
            for j, name in enumerate(p.feature_names):
                block[:, names.index(name)] = p.features[:, j]
            features.append(block)
        first = parts[0]
        return MerchantDays(
            np.concatenate([p.merchant_ids for p in parts]), np.concatenate([p.days for p in parts]), first.codes,
            np.concatenate([p.readings for p in parts]), np.concatenate([p.fused for p in parts]), tuple(names),
            np.concatenate(features),
        )


class DayRecorder:
    """Collects :class:`~engine.day_closing.DayResult` rows (an ``on_day_scored`` callback)."""

    def __init__(self, codes: Sequence[str] = READING_CODES) -> None:
        self.codes = tuple(codes)
        self._index = {code: i for i, code in enumerate(self.codes)}
        self._merchants: list[str] = []
        self._days: list[int] = []
        self._readings: list[list[float]] = []
        self._fused: list[float] = []
        self._features: list[dict[str, float]] = []
        self._names: dict[str, None] = {}

    def __call__(self, result: DayResult) -> None:
        row = [0.0] * len(self.codes)
        for contribution in result.score.contributions:
            i = self._index.get(contribution.reading.code)
            if i is not None:
                row[i] = contribution.reading.score
        self._merchants.append(result.merchant_id)
        self._days.append(result.day)
        self._readings.append(row)
        self._fused.append(result.score.score)
        self._features.append(result.score.features)
        for name in result.score.features:
            if name not in self._names:
                self._names[name] = None

    def finish(self) -> MerchantDays:
        names = tuple(self._names)
        index = {name: j for j, name in enumerate(names)}
        features = np.full((len(self._days), len(names)), np.nan, dtype=np.float32)
        for i, row in enumerate(self._features):
            for name, value in row.items():
                features[i, index[name]] = value
        return MerchantDays(
            np.array(self._merchants, dtype=object), np.array(self._days, dtype=np.int32), self.codes,
            np.array(self._readings, dtype=np.float32).reshape(len(self._days), len(self.codes)),
            np.array(self._fused, dtype=np.float32), names, features,
        )


def save_days(days: MerchantDays, path: object, made_by: str = "") -> None:
    """Keep a recording (``.npz``) to study or train on without replaying again; ``made_by``
    names the scoring code that made it (see :func:`recorded_by`)."""
    np.savez_compressed(
        str(path), merchant_ids=days.merchant_ids.astype(str), days=days.days, codes=np.array(days.codes),
        readings=days.readings, fused=days.fused, feature_names=np.array(days.feature_names),
        features=days.features, made_by=np.array(made_by),
    )


def recorded_by(path: object) -> str:
    """What :func:`save_days` was told made the recording at ``path`` ("" when not told)."""
    with np.load(str(path), allow_pickle=False) as data:
        return str(data["made_by"]) if "made_by" in data.files else ""


def load_days(path: object) -> MerchantDays:
    with np.load(str(path), allow_pickle=False) as data:
        return MerchantDays(
            data["merchant_ids"].astype(object), data["days"], tuple(str(c) for c in data["codes"]), data["readings"],
            data["fused"], tuple(str(n) for n in data["feature_names"]), data["features"],
        )


def record_replay(events_dir: object, *, partitions: int, allowed_lateness_hours: float,
                  on_event: Callable[[], None] | None = None) -> MerchantDays:
    """Replay ``events_dir`` with the live scoring core and keep every scored merchant-day."""
    from datetime import timedelta
    from pathlib import Path

    from engine.replay import run_backtest

    recorder = DayRecorder()
    run_backtest(Path(str(events_dir)), partitions=partitions, allowed_lateness=timedelta(hours=allowed_lateness_hours),
                 on_day_scored=recorder, on_event=on_event)
    return recorder.finish()
