"""The decoder: every bad-input class of the contract reaches the dead-letter path with a reason."""

from __future__ import annotations

import base64

import orjson
import pytest

from contract.records import Complaint, DeadLetter, MerchantProfile, Transaction, decode

SALE = {
    "event_id": "e-1",
    "type": "card_sale",
    "merchant_id": "m-1",
    "store_id": "s-1",
    "card_id": "c-1",
    "consumer_id": "u-secret",
    "amount": 5000,
    "face_value": 8000,
    "occurred_at": "2026-03-01T10:15:00+08:00",
}
COMPLAINT = {
    "complaint_id": "c-1",
    "merchant_id": "m-1",
    "store_id": None,
    "category": "refund_refused",
    "amount_involved": None,
    "channel": "12345",
    "occurred_at": "2026-03-01T10:15:00+08:00",
}
PROFILE = {
    "merchant_id": "m-1",
    "name": "悦动健身",
    "industry": "fitness",
    "district": "南桥镇",
    "chain_id": None,
    "opened_on": "2024-05-01",
    "status": "open",
    "custody_balance": None,
    "updated_at": "2026-03-01T10:15:00+08:00",
}


def raw(record: dict, **changes: object) -> bytes:
    return orjson.dumps({**record, **changes})


def test_valid_records_decode() -> None:
    sale = decode("transactions", raw(SALE))
    assert isinstance(sale, Transaction) and sale.stored_value == 8000
    assert isinstance(decode("complaints", raw(COMPLAINT)), Complaint)
    assert isinstance(decode("merchants", raw(PROFILE)), MerchantProfile)


def test_absent_face_value_means_amount() -> None:
    record = {k: v for k, v in SALE.items() if k != "face_value"}
    sale = decode("transactions", raw(record))
    assert isinstance(sale, Transaction) and sale.stored_value == 5000


def test_unknown_fields_are_ignored() -> None:
    assert isinstance(decode("transactions", raw(SALE, extra_field="x", nested={"a": 1})), Transaction)


def test_consumer_id_stays_out_of_repr() -> None:
    sale = decode("transactions", raw(SALE))
    assert "u-secret" not in repr(sale)


@pytest.mark.parametrize(
    ("kind", "payload", "reason"),
    [
        ("transactions", b"{not json", "not valid JSON"),
        ("transactions", b"[1, 2]", "not a JSON object"),
        ("transactions", raw(SALE, amount="lots"), "field 'amount'"),
        ("transactions", raw(SALE, type="gift"), "field 'type'"),
        ("complaints", raw(COMPLAINT, category="rude_staff"), "field 'category'"),
        ("merchants", raw(PROFILE, industry="bakery"), "field 'industry'"),
        ("merchants", raw(PROFILE, status="gone"), "field 'status'"),
        ("transactions", raw(SALE, amount=-1), "greater than or equal to 0"),
        ("transactions", raw(SALE, face_value=-5), "field 'face_value'"),
        ("complaints", raw(COMPLAINT, amount_involved=-3), "field 'amount_involved'"),
        ("merchants", raw(PROFILE, custody_balance=-1), "field 'custody_balance'"),
        ("transactions", orjson.dumps({k: v for k, v in SALE.items() if k != "merchant_id"}), "missing required field 'merchant_id'"),
        ("complaints", orjson.dumps({k: v for k, v in COMPLAINT.items() if k != "channel"}), "missing required field 'channel'"),
        ("transactions", raw(SALE, occurred_at="yesterday"), "field 'occurred_at'"),
        ("transactions", raw(SALE, occurred_at="2026-03-01T10:15:00"), "with an offset"),
        ("merchants", raw(PROFILE, opened_on="2024-13-45"), "field 'opened_on'"),
        ("transactions", raw(SALE, event_id=""), "field 'event_id'"),
        ("transactions", raw(SALE, event_id="x" * 65), "field 'event_id'"),
        ("transactions", None, "no value"),
    ],
)
def test_bad_input_is_dead_lettered_with_a_reason(kind: str, payload: bytes | None, reason: str) -> None:
    result = decode(kind, payload, source_topic=f"prepaid.{kind}", key=b"m-1", partition=2, offset=41)
    assert isinstance(result, DeadLetter)
    assert reason in result.error
    assert "\n" not in result.error
    assert (result.source_topic, result.partition, result.offset, result.key) == (f"prepaid.{kind}", 2, 41, "m-1")
    assert result.value == (payload or b"").decode()


def test_non_utf8_value_is_kept_as_base64() -> None:
    payload = b"\xff\xfe\x00garbage"
    result = decode("transactions", payload)
    assert isinstance(result, DeadLetter)
    assert result.value_encoding == "base64"
    assert base64.b64decode(result.value) == payload
    assert orjson.loads(orjson.dumps(result.model_dump(mode="json")))["value_encoding"] == "base64"


def test_dead_letter_does_not_leak_consumer_id_into_error() -> None:
    result = decode("transactions", raw(SALE, amount=-1))
    assert isinstance(result, DeadLetter)
    assert "u-secret" not in result.error


def test_a_malformed_consumer_id_is_not_echoed_in_the_reason() -> None:
    result = decode("transactions", raw(SALE, consumer_id=["u-secret-list"]))
    assert isinstance(result, DeadLetter)
    assert "field 'consumer_id' is invalid" in result.error
    assert "u-secret-list" not in result.error


def test_partitioning_hashes_merchant_ids_as_kafka_does() -> None:
    """The engine's own murmur2 (no Kafka client in the pure packages) against kafka-python's, on
    random keys of every length mod 4, so a replay groups merchants as the broker does."""
    import random

    from kafka.partitioner.default import murmur2 as kafka_murmur2

    from contract.partitioning import murmur2, partition_for

    rng = random.Random(15)
    for _ in range(5_000):
        key = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 41)))
        assert murmur2(key) == kafka_murmur2(key), key
    for merchant_id in ("91310120MA1FL0001X", "m-0001", "美发-007"):
        expected = (kafka_murmur2(merchant_id.encode()) & 0x7FFFFFFF) % 12
        assert partition_for(merchant_id, 12) == expected


# One record per fault class the contract names; each is dead-lettered with its class (issue 16).
FAULTS = [
    ("transactions", raw(SALE, amount="1000"), b"m-1", "wrong_type"),  # money as a string
    ("transactions", raw(SALE, amount=True), b"m-1", "wrong_type"),
    ("transactions", raw(SALE, merchant_id=7), b"m-1", "wrong_type"),
    ("transactions", raw(SALE, occurred_at="1700000000"), b"m-1", "bad_timestamp"),  # epoch seconds as text
    ("transactions", raw(SALE, occurred_at=1700000000), b"m-1", "bad_timestamp"),
    ("transactions", raw(SALE, occurred_at="2026-03-01T10:15:00"), b"m-1", "bad_timestamp"),  # naive
    ("transactions", raw(SALE, occurred_at="01/03/2026 10:15"), b"m-1", "bad_timestamp"),
    ("merchants", raw(PROFILE, opened_on=20240501), b"m-1", "bad_timestamp"),
    ("merchants", raw(PROFILE, opened_on="2024-5-1"), b"m-1", "bad_timestamp"),
    ("transactions", raw(SALE, amount=-1), b"m-1", "out_of_range"),
    ("transactions", raw(SALE, event_id="x" * 65), b"m-1", "out_of_range"),
    ("transactions", b'{"amount": 1e400}', b"m-1", "invalid_json"),  # not finite
    ("transactions", b'{"amount": NaN}', b"m-1", "invalid_json"),
    ("transactions", raw(SALE, type="gift"), b"m-1", "unknown_value"),
    ("complaints", raw(COMPLAINT, category="rude_staff"), b"m-1", "unknown_value"),
    ("transactions", orjson.dumps({k: v for k, v in SALE.items() if k != "amount"}), b"m-1", "missing_field"),
    ("transactions", b"\xff\xfe{}", b"m-1", "not_utf8"),
    ("transactions", b"{not json", b"m-1", "invalid_json"),
    ("transactions", b'"a string"', b"m-1", "not_an_object"),
    ("transactions", None, b"m-1", "empty_value"),
    ("transactions", raw(SALE), b"m-2", "key_mismatch"),
]


@pytest.mark.parametrize(("kind", "payload", "key", "fault"), FAULTS, ids=[f"{f[3]}-{i}" for i, f in enumerate(FAULTS)])
def test_each_fault_is_dead_lettered_with_its_class(kind: str, payload: bytes | None, key: bytes, fault: str) -> None:
    result = decode(kind, payload, key=key)
    assert isinstance(result, DeadLetter), result
    assert result.reason == fault, result.error
    assert result.error and "\n" not in result.error


def test_a_record_without_a_key_is_not_judged_by_it() -> None:
    """Files (replays) carry no key: the same record decodes there as it does live with its key."""
    assert isinstance(decode("transactions", raw(SALE)), Transaction)
    assert isinstance(decode("transactions", raw(SALE), key=b"m-1"), Transaction)


def test_rfc3339_variants_the_contract_allows_decode() -> None:
    for stamp in ("2026-03-01T10:15:00Z", "2026-03-01T10:15:00.123456+08:00", "2026-03-01t02:15:00z"):
        assert isinstance(decode("transactions", raw(SALE, occurred_at=stamp)), Transaction), stamp
