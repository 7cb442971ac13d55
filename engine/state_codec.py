"""A merchant's state as compact, versioned bytes: what the worker's changelog carries.

The worker writes every merchant's :class:`~models.state.MerchantState` to its changelog once
per closed day, so the state's size is the changelog's size. Pickled, a merchant of a simulated
year weighs 40 kB on average; this codec lays the same state out field by field, in a fixed
order, and compresses it with zlib (``bench/state_size.py`` measures both; docs/pipeline.md has
the figures). Every field round-trips exactly: a decoded state scores, warns and learns as the
original would.

* The rolling history is kept as columns (the days, each money amount as whole fen with the
  rare inexact sum kept as a double, each count in the narrowest width), mostly zeros on quiet
  days, which zlib then squeezes.
* Event ids for deduplication are already 64-bit digests in the state (``models.state.id_digest``),
  grouped by the day they were folded.
* The detectors, the alert level and the case feedback write themselves (their ``pack`` and
  ``unpack``); the half-space trees' splits are grown again from their seed, not stored.

The codec lives in ``engine`` because a merchant's state holds objects of ``alerts`` (its level,
its case feedback), which ``models`` may not import.

Bytes begin with :data:`MAGIC` and a version byte; a version this code does not know is an
error, never a guess. Version 2 added each day's refunded stored value (``refunded_face``) and a
late profile version's own time (``reported_at``); version 1 bytes still load, their refunds'
stored value taken as the amount refunded (the closest the old bytes hold). Bytes that begin
with a pickle header (0x80) are read with pickle: states a worker changelogged before this codec
still load (their event ids become digests).

>>> from models.state import DayTotals
>>> state = MerchantState("m1", partition=0, first_day=739311)
>>> day = DayTotals(redeemed=25.5, redemptions=1, event_ids={"tx-1"})
>>> _ = state.fold(739311, day)
>>> data = encode_merchant(state)
>>> data[:4], len(data) < 120
(b'\\xa5YM\\x02', True)
>>> decode_merchant(data) == state
True
"""

from __future__ import annotations

import pickle
import zlib
from collections import deque
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import TypeVar
from zoneinfo import ZoneInfo

import numpy as np

from alerts.feedback import MerchantFeedback
from alerts.levels import AlertState
from models.calendar import SHANGHAI
from models.detectors.adaptive_baseline import AdaptiveBaseline
from models.detectors.half_space import ScaledHalfSpaceTrees
from models.packing import CodecError, Reader, Writer
from models.state import HISTORY_DAYS, DaySummary, MerchantState, ProfileVersion, id_digest

__all__ = ["MAGIC", "VERSION", "CodecError", "decode_merchant", "encode_merchant"]

MAGIC = b"\xa5YM"  # not a pickle (0x80) nor base64 (Faust's "pickle" codec): tells them apart
VERSION = 2
_READABLE = (1, 2)
_PICKLE = 0x80
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# DaySummary's fields by how they are stored; a field added to it needs a new layout (a new
# VERSION whose reader fills the field in for older bytes).
_AMOUNTS_V1 = ("sales_paid", "sales_face", "deep_bonus_paid", "redeemed", "refunded_paid")
_AMOUNTS = (*_AMOUNTS_V1, "refunded_face")
_COUNTS = ("card_sales", "over_cap_sales", "over_gym_cap_sales", "redemptions", "refunds", "complaints",
           "severe_complaints", "refund_refused_complaints", "closure_complaints")
if sorted(DaySummary._fields) != sorted(("day", *_AMOUNTS, *_COUNTS)):
    raise ImportError("DaySummary's fields changed: give engine/state_codec.py a new layout version")

# Tags of the objects MerchantState holds as opaque fields (0: None).
_NONE, _OBJECT = 0, 1


def encode_merchant(state: MerchantState) -> bytes:
    """The state as bytes for :func:`decode_merchant` (deterministic: the same state, the same
    bytes). A detector, level or feedback object of a type the codec does not know is a
    ``TypeError``."""
    out = Writer()
    _write_scalars(out, state)
    _write_history(out, state.history)
    _write_profiles(out, state.profiles)
    _write_recent_ids(out, state.recent_ids)
    _write_custody(out, state)
    _write_chain_levels(out, state.chain_levels)
    _write_object(out, state.detector, AdaptiveBaseline)
    _write_object(out, state.joint_detector, ScaledHalfSpaceTrees)
    out.text(state.linked_level)
    out.uint(len(state.late_profiles))
    for moment in sorted(state.late_profiles):
        out.double(moment)
    _write_object(out, state.alert, AlertState)
    _write_object(out, state.feedback, MerchantFeedback)
    out.flag(state.last_readings is not None)
    if state.last_readings is not None:
        out.uint(len(state.last_readings))
        for code, score in state.last_readings.items():
            out.text(code)
            out.double(score)
    return MAGIC + bytes([VERSION]) + zlib.compress(out.getvalue())


def decode_merchant(data: bytes) -> MerchantState:
    """The state :func:`encode_merchant` wrote, or a pickled one (an older changelog).

    >>> decode_merchant(MAGIC + bytes([9]) + b"...")
    Traceback (most recent call last):
    ...
    models.packing.CodecError: merchant state format version 9: this code reads versions 1 and 2 only (written by a newer yujing?)
    """
    if data[:1] == bytes([_PICKLE]):
        return _from_pickle(data)
    if data[:len(MAGIC)] != MAGIC or len(data) <= len(MAGIC):
        raise CodecError(f"not an encoded merchant state (it begins with {bytes(data[:4])!r})")
    version = data[len(MAGIC)]
    if version not in _READABLE:
        readable = " and ".join(map(str, _READABLE))
        raise CodecError(f"merchant state format version {version}: this code reads versions {readable} "
                         "only (written by a newer yujing?)")
    try:
        body = zlib.decompress(data[len(MAGIC) + 1:])
    except zlib.error as exc:
        raise CodecError(f"a merchant state whose compressed body is corrupt ({exc})") from None
    src = Reader(body)
    state = _read_scalars(src)
    state.history = _read_history(src, version)
    state.profiles = _read_profiles(src, version)
    state.recent_ids = _read_recent_ids(src)
    _read_custody(src, state)
    state.chain_levels = _read_chain_levels(src)
    state.detector = _read_object(src, AdaptiveBaseline)
    state.joint_detector = _read_object(src, ScaledHalfSpaceTrees)
    state.linked_level = src.text()
    state.late_profiles = {src.double() for _ in range(src.uint())}
    state.alert = _read_object(src, AlertState)
    state.feedback = _read_object(src, MerchantFeedback)
    if src.flag():
        state.last_readings = {src.text(): src.double() for _ in range(src.uint())}
    src.end()
    return state


def _from_pickle(data: bytes) -> MerchantState:
    # Our own changelog topics only: the same trust as the pickle codec this replaces.
    state = pickle.loads(data)
    if not isinstance(state, MerchantState):
        raise CodecError(f"a pickled {type(state).__name__}, not a merchant state")
    # Before the codec the ids were kept whole.
    state.recent_ids = {id_digest(k) if isinstance(k, str) else k: day for k, day in state.recent_ids.items()}
    return state


# -- fields -----------------------------------------------------------------------------------


def _write_scalars(out: Writer, state: MerchantState) -> None:
    out.text(state.merchant_id)
    out.uint(state.partition)
    out.signed(state.first_day)
    out.optional_int(state.last_closed_day)
    out.double(state.prepaid_balance)
    out.optional_int(state.last_redemption_day)
    out.optional_int(state.first_redemption_day)


def _read_scalars(src: Reader) -> MerchantState:
    state = MerchantState(src.text(), partition=src.uint(), first_day=src.signed())
    state.last_closed_day = src.optional_int()
    state.prepaid_balance = src.double()
    state.last_redemption_day = src.optional_int()
    state.first_redemption_day = src.optional_int()
    return state


def _write_history(out: Writer, history: deque[DaySummary]) -> None:
    """Columns: the first day and the steps between days (1 when every day was folded), then
    each amount and each count over all days."""
    out.optional_int(history.maxlen)
    out.uint(len(history))
    if not history:
        return
    columns = dict(zip(DaySummary._fields, zip(*history, strict=True), strict=True))
    days = columns["day"]
    out.signed(days[0])
    out.counts([b - a for a, b in zip(days, days[1:], strict=False)])
    for name in _AMOUNTS:
        out.amounts(columns[name])
    for name in _COUNTS:
        out.counts(columns[name])


def _read_history(src: Reader, version: int) -> deque[DaySummary]:
    maxlen = src.optional_int()
    if not src.uint(HISTORY_DAYS * 1000):
        return deque(maxlen=maxlen)
    days: list[int] = np.cumsum([src.signed(), *src.counts()]).tolist()
    columns: dict[str, list[int] | list[float]] = {"day": days}
    columns.update((name, src.amounts()) for name in (_AMOUNTS if version >= 2 else _AMOUNTS_V1))
    columns.update((name, src.counts()) for name in _COUNTS)
    if version < 2:
        columns["refunded_face"] = columns["refunded_paid"]
    if any(len(column) != len(days) for column in columns.values()):
        raise CodecError("history columns of different lengths (corrupt data)")
    rows = zip(*(columns[name] for name in DaySummary._fields), strict=True)
    return deque((DaySummary(*row) for row in rows), maxlen=maxlen)


def _write_moment(out: Writer, moment: datetime) -> None:
    """A datetime exactly: microseconds since the epoch and its time zone."""
    zone = moment.tzinfo
    if zone is None:
        out.uint(0)
        out.signed((moment - datetime(1970, 1, 1)) // timedelta(microseconds=1))
        return
    if zone is SHANGHAI:
        out.uint(1)
    elif isinstance(zone, ZoneInfo):
        out.uint(2)
        out.text(zone.key)
    else:  # datetime.timezone, pydantic's TzInfo...: a fixed offset
        offset = moment.utcoffset()
        assert offset is not None
        out.uint(3)
        out.signed(offset // timedelta(microseconds=1))
    out.signed((moment - _EPOCH) // timedelta(microseconds=1))


def _read_moment(src: Reader) -> datetime:
    kind = src.uint()
    zone: tzinfo
    if kind == 0:
        return datetime(1970, 1, 1) + timedelta(microseconds=src.signed())
    if kind == 1:
        zone = SHANGHAI
    elif kind == 2:
        zone = ZoneInfo(src.text())
    elif kind == 3:
        zone = timezone(timedelta(microseconds=src.signed()))
    else:
        raise CodecError(f"a time zone of kind {kind} (corrupt data)")
    return (_EPOCH + timedelta(microseconds=src.signed())).astimezone(zone)


def _write_profiles(out: Writer, profiles: list[ProfileVersion]) -> None:
    out.uint(len(profiles))
    for p in profiles:
        _write_moment(out, p.updated_at)
        for text in (p.name, p.industry, p.district):
            out.text(text)
        out.optional_text(p.chain_id)
        out.signed(p.opened_on)
        out.text(p.status)
        out.optional_float(p.custody_balance)
        out.optional_text(p.legal_representative)
        out.optional_float(p.registered_capital)
        out.flag(p.reported_at is not None)
        if p.reported_at is not None:
            _write_moment(out, p.reported_at)


def _read_profiles(src: Reader, version: int) -> list[ProfileVersion]:
    return [
        ProfileVersion(
            updated_at=_read_moment(src), name=src.text(), industry=src.text(), district=src.text(),
            chain_id=src.optional_text(), opened_on=src.signed(), status=src.text(),
            custody_balance=src.optional_float(), legal_representative=src.optional_text(),
            registered_capital=src.optional_float(),
            reported_at=_read_moment(src) if version >= 2 and src.flag() else None,
        )
        for _ in range(src.uint())
    ]


def _write_recent_ids(out: Writer, recent_ids: dict[int, int]) -> None:
    """By day folded (in day order): the day, how many, and their sorted 8-byte digests."""
    by_day: dict[int, list[int]] = {}
    for digest, day in recent_ids.items():
        by_day.setdefault(day, []).append(digest)
    out.uint(len(by_day))
    previous = 0
    for day in sorted(by_day):
        out.signed(day - previous)
        previous = day
        digests = sorted(by_day[day])
        out.uint(len(digests))
        out.raw(np.array(digests, dtype="<u8").tobytes())


def _read_recent_ids(src: Reader) -> dict[int, int]:
    recent: dict[int, int] = {}
    day = 0
    for _ in range(src.uint()):
        day += src.signed()
        size = src.uint()
        digests: list[int] = np.frombuffer(src.raw(8 * size), dtype="<u8").tolist()
        recent.update(dict.fromkeys(digests, day))
    return recent


def _write_report(out: Writer, report: tuple[int, float, float]) -> None:
    out.signed(report[0])
    out.double(report[1])
    out.double(report[2])


def _read_report(src: Reader) -> tuple[int, float, float]:
    return src.signed(), src.double(), src.double()


def _write_custody(out: Writer, state: MerchantState) -> None:
    out.flag(state.custody_report is not None)
    if state.custody_report is not None:
        _write_report(out, state.custody_report)
    out.flag(state.custody_seen_through is not None)
    if state.custody_seen_through is not None:
        _write_moment(out, state.custody_seen_through)
    out.flag(state.custody_reports is not None)
    if state.custody_reports is not None:
        out.uint(len(state.custody_reports))
        for report in state.custody_reports:
            _write_report(out, report)


def _read_custody(src: Reader, state: MerchantState) -> None:
    state.custody_report = _read_report(src) if src.flag() else None
    state.custody_seen_through = _read_moment(src) if src.flag() else None
    state.custody_reports = [_read_report(src) for _ in range(src.uint())] if src.flag() else None


def _write_chain_levels(out: Writer, chain_levels: dict[str, list[tuple[int, str]]]) -> None:
    out.uint(len(chain_levels))
    for source, levels in chain_levels.items():
        out.text(source)
        out.uint(len(levels))
        for day, level in levels:
            out.signed(day)
            out.text(level)


def _read_chain_levels(src: Reader) -> dict[str, list[tuple[int, str]]]:
    chain_levels = {}
    for _ in range(src.uint()):
        source = src.text()
        chain_levels[source] = [(src.signed(), src.text()) for _ in range(src.uint())]
    return chain_levels


# The types MerchantState's opaque fields hold, each with its own pack() and unpack().
_Packable = TypeVar("_Packable", AdaptiveBaseline, ScaledHalfSpaceTrees, AlertState, MerchantFeedback)


def _write_object(out: Writer, value: object, kind: type[_Packable]) -> None:
    if value is None:
        out.uint(_NONE)
        return
    if type(value) is not kind:  # a subclass would lose what it adds
        raise TypeError(f"the state codec cannot encode a {type(value).__name__} (it knows {kind.__name__})")
    out.uint(_OBJECT)
    value.pack(out)


def _read_object(src: Reader, kind: type[_Packable]) -> _Packable | None:
    tag = src.uint()
    if tag == _NONE:
        return None
    if tag != _OBJECT:
        raise CodecError(f"an object tag {tag} for a {kind.__name__} (corrupt data)")
    return kind.unpack(src)
