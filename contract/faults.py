"""Malformed records of each dead-letter class, made from a good one: the bad input a feed the
team did not write sends, for the tests that mix it into real traffic and for floods.

Each fault spoils a copy of a real transaction (a fresh ``event_id``, the rest of it intact), so
a decoder that let it through would change a merchant's figures, and the harm would show.

>>> sale = {"event_id": "e1", "type": "card_sale", "merchant_id": "m1", "store_id": "s1",
...         "card_id": "c1", "consumer_id": "u1", "amount": 1000.0,
...         "occurred_at": "2026-03-01T10:15:00+08:00"}
>>> from random import Random
>>> from contract.records import decode
>>> bad = spoil(sale, "wrong_type", Random(1), serial=7)
>>> bad.value
b'{"event_id":"bad-7","type":"card_sale","merchant_id":"m1","store_id":"s1","card_id":"c1","consumer_id":"u1","amount":"1000.0","occurred_at":"2026-03-01T10:15:00+08:00"}'
>>> decode("transactions", bad.value, key=bad.key).reason
'wrong_type'
>>> sorted(IN_FILES) == sorted(set(FAULT_CLASSES) - {"key_mismatch", "empty_value"})
True
"""

from __future__ import annotations

from collections.abc import Callable
from random import Random
from typing import Any, NamedTuple

import orjson


class BadRecord(NamedTuple):
    """A record of the transactions topic the decoder must refuse with ``reason``."""

    reason: str
    key: bytes | None  # the Kafka key it is sent with (None in a file: files carry no key)
    value: bytes | None


def _dumped(record: dict[str, Any], **changes: Any) -> bytes:
    return orjson.dumps({**record, **changes})


def _without(record: dict[str, Any], field: str) -> bytes:
    return orjson.dumps({k: v for k, v in record.items() if k != field})


# Each class: ways to spoil a good transaction (one is picked at random), as a feed gets it wrong.
_SPOILERS: dict[str, list[Callable[[dict[str, Any]], bytes]]] = {
    "not_utf8": [lambda r: b"\xff\xfe" + _dumped(r), lambda r: _dumped(r).replace(b'"s', b'"\xe9s', 1)],
    "invalid_json": [lambda r: _dumped(r)[:-7], lambda r: _dumped(r).replace(b":", b"=", 1),
                     lambda r: _dumped(r).replace(b'"amount":', b'"amount":NaN,"x":', 1)],
    "not_an_object": [lambda r: orjson.dumps([r]), lambda r: orjson.dumps(str(r["amount"]))],
    "missing_field": [lambda r: _without(r, "amount"), lambda r: _without(r, "occurred_at"),
                      lambda r: _without(r, "type")],
    "wrong_type": [lambda r: _dumped(r, amount=str(r["amount"])), lambda r: _dumped(r, amount=True),
                   lambda r: _dumped(r, event_id=12345)],
    "bad_timestamp": [lambda r: _dumped(r, occurred_at="1700000000"), lambda r: _dumped(r, occurred_at=1700000000),
                      lambda r: _dumped(r, occurred_at=r["occurred_at"][:19])],  # naive: offset dropped
    "unknown_value": [lambda r: _dumped(r, type="gift"), lambda r: _dumped(r, type="CARD_SALE")],
    "out_of_range": [lambda r: _dumped(r, amount=-abs(r["amount"]) - 1), lambda r: _dumped(r, event_id="x" * 65)],
}
IN_FILES = tuple(_SPOILERS)  # the classes a JSON Lines file can hold (a file has no keys, no nulls)
FAULT_CLASSES = (*IN_FILES, "key_mismatch", "empty_value")


def spoil(record: dict[str, Any], reason: str, rng: Random, *, serial: int) -> BadRecord:
    """A bad copy of the good transaction ``record`` that the decoder refuses with ``reason``;
    ``serial`` makes its ``event_id`` (``bad-<serial>``) unique."""
    fresh = {**record, "event_id": f"bad-{serial}"}
    merchant_key = str(record["merchant_id"]).encode()
    if reason == "key_mismatch":  # a good record sent under another merchant's key
        return BadRecord(reason, merchant_key + b"-elsewhere", orjson.dumps(fresh))
    if reason == "empty_value":  # a tombstone on an input topic
        return BadRecord(reason, merchant_key, None)
    return BadRecord(reason, None, rng.choice(_SPOILERS[reason])(fresh))


def bad_records(good: list[dict[str, Any]], per_class: int, rng: Random,
                classes: tuple[str, ...] = FAULT_CLASSES) -> list[BadRecord]:
    """``per_class`` bad records of each class in ``classes``, each spoiling a good transaction
    drawn from ``good``.

    >>> sale = {"event_id": "e1", "type": "refund", "merchant_id": "m1", "store_id": "s1",
    ...         "card_id": "c1", "consumer_id": "u1", "amount": 10, "occurred_at": "2026-03-01T10:15:00Z"}
    >>> [b.reason for b in bad_records([sale], 1, Random(0), ("wrong_type", "key_mismatch"))]
    ['wrong_type', 'key_mismatch']
    """
    made: list[BadRecord] = []
    for reason in classes:
        for _ in range(per_class):
            made.append(spoil(rng.choice(good), reason, rng, serial=len(made) + 1))
    return made
