"""Property-based tests of the strict decoder (hypothesis): it never raises, whatever the bytes;
whatever it accepts satisfies the contract; and what the contract allows, it accepts.

``YUJING_FUZZ_EXAMPLES`` raises the number of examples for a fuzz run at volume (docs/testing.md).
"""

from __future__ import annotations

import math
import os
from datetime import UTC, datetime, timedelta, timezone

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract.records import DEADLETTER_REASONS, DeadLetter, Transaction, decode

EXAMPLES = int(os.environ.get("YUJING_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=offsets)
money = st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False) | st.integers(0, 10**9)
ids = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=64)


def transaction(merchant_id: str, amount: float, moment: datetime, **extra: object) -> dict[str, object]:
    return {"event_id": "e-1", "type": "redemption", "merchant_id": merchant_id, "store_id": "s",
            "card_id": "c", "consumer_id": "u", "amount": amount, "occurred_at": moment.isoformat(), **extra}


@FUZZ
@given(st.binary(max_size=300), st.sampled_from(["transactions", "complaints", "merchants", "feedback"]))
def test_any_bytes_decode_or_dead_letter_without_raising(data: bytes, kind: str) -> None:
    result = decode(kind, data, key=b"m-1")
    if isinstance(result, DeadLetter):
        assert result.reason in DEADLETTER_REASONS and result.error and "\n" not in result.error


@FUZZ
@given(st.dictionaries(st.sampled_from(list(transaction("m", 1, datetime.now(UTC)))), json_values, max_size=9))
def test_whatever_is_accepted_satisfies_the_contract(fields: dict[str, object]) -> None:
    result = decode("transactions", orjson.dumps(fields))
    if isinstance(result, Transaction):
        assert isinstance(fields["amount"], int | float) and not isinstance(fields["amount"], bool)
        assert math.isfinite(result.amount) and result.amount >= 0
        assert isinstance(fields["occurred_at"], str) and result.occurred_at.tzinfo is not None
        assert isinstance(fields["merchant_id"], str) and 1 <= len(str(fields["event_id"])) <= 64


@FUZZ
@given(ids, money, moments, st.dictionaries(st.text(max_size=10).filter(lambda k: k not in transaction("m", 1, datetime.now(UTC))), json_values, max_size=3))
def test_what_the_contract_allows_is_accepted(merchant_id: str, amount: float, moment: datetime, extra: dict[str, object]) -> None:
    record = transaction(merchant_id, amount, moment, **extra)
    result = decode("transactions", orjson.dumps(record), key=merchant_id.encode())
    assert isinstance(result, Transaction), getattr(result, "error", result)
    assert result.occurred_at == moment and result.amount == amount


@FUZZ
@given(st.one_of(st.integers(0, 4_000_000_000).map(str), st.integers(0, 4_000_000_000), st.floats(0, 4e9)))
def test_epoch_seconds_are_never_a_timestamp(epoch: object) -> None:
    result = decode("transactions", orjson.dumps(transaction("m-1", 1, datetime.now(UTC)) | {"occurred_at": epoch}))
    assert isinstance(result, DeadLetter) and result.reason == "bad_timestamp"
