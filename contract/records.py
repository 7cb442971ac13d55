"""The wire contract (``shared/CONTRACT.md``) as pydantic models, and the decoder.

The decoder turns the raw bytes of one Kafka record (or one JSON Lines line) into either a
validated event or a :class:`DeadLetter` whose ``error`` says, in one line, what was wrong.

>>> decode("transactions", b'{"event_id": "e1", "type": "refund", "merchant_id": "m1",'
...        b' "store_id": "s1", "card_id": "c1", "consumer_id": "u1", "amount": 10,'
...        b' "occurred_at": "2026-03-01T10:15:00+08:00"}').merchant_id
'm1'
>>> decode("transactions", b'{"event_id": "e1"}').error
"missing required field 'type'; missing required field 'merchant_id'; ..."
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Annotated, Any, Literal, get_args

import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    field_serializer,
)
from pydantic_core import PydanticCustomError

Level = Literal["blue", "yellow", "orange", "red"]
Transition = Literal["raised", "escalated", "de-escalated", "cleared"]
TransactionType = Literal["card_sale", "redemption", "refund"]
ComplaintCategory = Literal[
    "refund_refused",
    "store_closed",
    "service_unavailable",
    "false_advertising",
    "service_quality",
    "contract_dispute",
    "other",
]
Industry = Literal["beauty", "hairdressing", "fitness", "other"]
MerchantStatus = Literal["open", "suspended", "closed"]
EventId = Annotated[str, Field(min_length=1, max_length=64)]
NonEmpty = Annotated[str, Field(min_length=1)]

# The contract's timestamps are RFC 3339 strings with an offset, its dates YYYY-MM-DD: checked
# before pydantic parses them, because pydantic alone also takes "1700000000" as a timestamp.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _rfc3339(value: object) -> object:
    """Let only an RFC 3339 string with an offset through (or a datetime, built in code).

    >>> _rfc3339("2026-03-01T10:15:00+08:00")
    '2026-03-01T10:15:00+08:00'
    >>> _rfc3339("1700000000")
    Traceback (most recent call last):
    pydantic_core._pydantic_core.PydanticCustomError: not an RFC 3339 timestamp with an offset
    """
    if isinstance(value, datetime) or (isinstance(value, str) and _RFC3339.fullmatch(value)):
        return value
    raise PydanticCustomError("bad_timestamp", "not an RFC 3339 timestamp with an offset")


def _iso_date(value: object) -> object:
    if isinstance(value, date) or (isinstance(value, str) and _ISO_DATE.fullmatch(value)):
        return value
    raise PydanticCustomError("bad_timestamp", "not a date YYYY-MM-DD")


Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]
CalendarDate = Annotated[date, BeforeValidator(_iso_date)]
# Money is a JSON number: "1000" or true are refused (strict), as are negative and non-finite values.
Money = Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False)]


class _Input(BaseModel):
    # Unknown extra fields are accepted and ignored (contract); inputs never change after decoding.
    # Strings are never coerced from numbers (pydantic's default); numbers and timestamps are
    # strict through their types above.
    model_config = ConfigDict(extra="ignore", frozen=True)


class Transaction(_Input):
    event_id: EventId
    type: TransactionType
    merchant_id: NonEmpty
    store_id: str
    card_id: str
    consumer_id: str = Field(repr=False)  # personal data: kept out of reprs, hence out of logs
    amount: Money
    face_value: Money | None = None
    occurred_at: Timestamp

    @property
    def stored_value(self) -> float:
        """Stored value credited (sale) or cancelled (refund); absent means equal to amount."""
        return self.amount if self.face_value is None else self.face_value

    @property
    def dedup_id(self) -> str:
        return self.event_id


class Complaint(_Input):
    complaint_id: EventId
    merchant_id: NonEmpty
    store_id: str | None = None
    category: ComplaintCategory
    amount_involved: Money | None = None
    channel: str
    occurred_at: Timestamp

    @property
    def dedup_id(self) -> str:
        return self.complaint_id


class MerchantProfile(_Input):
    merchant_id: NonEmpty
    name: str
    industry: Industry
    district: str
    chain_id: str | None = None
    opened_on: CalendarDate
    status: MerchantStatus
    custody_balance: Money | None = None
    legal_representative: str | None = None
    registered_capital: Money | None = None
    updated_at: Timestamp

    @property
    def occurred_at(self) -> datetime:
        return self.updated_at


InputEvent = Transaction | Complaint | MerchantProfile

INPUT_MODELS: dict[str, type[InputEvent]] = {
    "transactions": Transaction,
    "complaints": Complaint,
    "merchants": MerchantProfile,
}


class IndicatorReading(BaseModel):
    """One indicator that drove a warning."""

    model_config = ConfigDict(frozen=True)

    code: str
    value: float
    threshold: float
    score: float = Field(ge=0, le=1)
    explanation_zh: str
    explanation_en: str
    # Beyond the contract's fields (readers ignore unknown ones): the indicator's weight in the
    # fusion and its contribution (weight x score) to the composite score.
    weight: float | None = None
    contribution: float | None = None


class Warning(BaseModel):
    """A record of the disposal queue, ``prepaid.warnings``."""

    model_config = ConfigDict(frozen=True)

    warning_id: str
    merchant_id: str
    level: Level
    previous_level: Level | None
    transition: Transition
    score: float = Field(ge=0, le=1)
    raised_at: AwareDatetime
    emitted_at: AwareDatetime
    indicators: list[IndicatorReading]
    industry: str | None
    district: str | None
    thresholds_version: str
    # Beyond the contract's fields (readers ignore unknown ones), for the case desk; all
    # point-in-time at the warning's event-time day, so a replay gives the same values.
    merchant_name: str | None = None  # from the profile in force that day
    chain_id: str | None = None  # from the profile in force that day
    # The merchant's recent figures at the close of that day (see models.features.case_figures):
    # prepaid_balance, sales_28d, redeemed_28d, refunds_28d (yuan), complaints_28d (count),
    # custody_balance (last reported), custody_required (by the custody tier); None: unknown.
    figures: dict[str, float | None] | None = None

    @field_serializer("raised_at", "emitted_at")
    def _rfc3339(self, value: datetime) -> str:
        return value.isoformat()


Disposition = Literal["confirmed_risk", "false_alarm", "rectified", "referred_to_enforcement"]


class Feedback(BaseModel):
    """A case disposition, published to ``prepaid.feedback`` (key ``merchant_id``) when staff resolve
    a case; the scoring side reads it back. One record per merchant of the resolved case.

    Not part of the wire contract (the topic is yujing's own); same conventions: JSON, RFC 3339.
    ``effective_from`` is the *event time* of the newest warning the staff saw for this merchant,
    so the feedback sits in the data's own timeline (a replay applies it at the same point).
    """

    model_config = ConfigDict(frozen=True)

    feedback_id: str  # deterministic: case, merchant and resolution number
    merchant_id: NonEmpty
    case_id: str
    disposition: Disposition
    level: Level | None  # the highest level the merchant reached in the case (what staff judged)
    score: float | None = Field(default=None, ge=0, le=1)  # its newest warning's score
    indicator_codes: list[str] = []  # indicators that drove its newest warning
    warning_ids: list[str] = []
    effective_from: Timestamp
    decided_at: Timestamp  # wall clock of the decision
    decided_by_role: str | None = None  # role only; staff names stay in the case service

    @field_serializer("effective_from", "decided_at")
    def _rfc3339(self, value: datetime) -> str:
        return value.isoformat()

    @property
    def occurred_at(self) -> datetime:
        """Its place in event time (files and replays are ordered by it): ``effective_from``."""
        return self.effective_from


# Records the decoder reads: the inputs, and the case feedback the scoring side reads back.
DECODABLE_MODELS: dict[str, type[InputEvent | Feedback]] = {**INPUT_MODELS, "feedback": Feedback}


# The class of fault, from a small fixed set (a metric label, a filter in the dead-letter topic).
DeadLetterReason = Literal[
    "empty_value", "not_utf8", "invalid_json", "not_an_object", "key_mismatch",
    "missing_field", "wrong_type", "bad_timestamp", "unknown_value", "out_of_range", "invalid_fields",
]
DEADLETTER_REASONS: tuple[str, ...] = get_args(DeadLetterReason)


class _Unusable(ValueError):
    def __init__(self, message: str, reason: DeadLetterReason) -> None:
        super().__init__(message)
        self.reason = reason


class DeadLetter(BaseModel):
    """An input record that could not be processed, with a readable reason."""

    source_topic: str
    partition: int | None
    offset: int | None
    key: str | None
    value: str
    value_encoding: Literal["utf-8", "base64"] = "utf-8"
    error: str
    # Beyond the contract: the kind of fault, from a small fixed set (a metric label, a filter).
    reason: DeadLetterReason = "invalid_fields"
    received_at: AwareDatetime

    @field_serializer("received_at")
    def _rfc3339(self, value: datetime) -> str:
        return value.isoformat()


PERSONAL_FIELDS = frozenset({"consumer_id"})


def _fault(item: Mapping[str, Any]) -> DeadLetterReason:
    """The class of one pydantic error (the first error names a record's class)."""
    kind = str(item["type"])
    if kind == "missing":
        return "missing_field"
    if kind == "bad_timestamp" or kind.startswith(("datetime", "date_", "timezone")):
        return "bad_timestamp"
    if kind in ("literal_error", "enum"):
        return "unknown_value"
    if kind in ("greater_than_equal", "less_than_equal", "finite_number", "string_too_short", "string_too_long"):
        return "out_of_range"
    if kind.endswith("_type"):
        return "wrong_type"
    return "invalid_fields"


def _describe(error: ValidationError) -> tuple[str, DeadLetterReason]:
    """Flatten pydantic's errors into one line a person can act on, and the record's fault class."""
    parts: list[str] = []
    items = error.errors(include_url=False)
    for item in items:
        field = ".".join(str(p) for p in item["loc"]) or "record"
        if item["type"] == "missing":
            parts.append(f"missing required field '{field}'")
        elif item["type"] == "literal_error":
            parts.append(f"field '{field}' has {item['input']!r}: {item['msg'].lower()}")
        elif item["type"] == "model_type":
            parts.append("record is not a JSON object")
        elif field in PERSONAL_FIELDS:  # never echo personal data into reasons and logs
            parts.append(f"field '{field}' is invalid: {item['msg'].lower()}")
        else:
            parts.append(f"field '{field}' is {item['input']!r}: {item['msg'].lower()}")
    return "; ".join(parts), _fault(items[0]) if items else "invalid_fields"


def _text(raw: bytes | None) -> tuple[str, Literal["utf-8", "base64"]]:
    if raw is None:
        return "", "utf-8"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"


def decode(
    kind: str,
    raw: bytes | None,
    *,
    source_topic: str | None = None,
    key: bytes | None = None,
    partition: int | None = None,
    offset: int | None = None,
    received_at: datetime | None = None,
) -> InputEvent | Feedback | DeadLetter:
    """Validate one raw record of topic kind ``kind`` (an input, or ``feedback``); never raises
    on bad input."""
    model = DECODABLE_MODELS[kind]
    error: str
    reason: DeadLetterReason
    try:
        if raw is None:
            raise _Unusable("record has no value (tombstone or null)", "empty_value")
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Unusable(f"value is not UTF-8 text ({exc.reason} at byte {exc.start})", "not_utf8") from None
        payload = orjson.loads(raw)
        if not isinstance(payload, dict):
            raise _Unusable(f"record is not a JSON object but {type(payload).__name__}", "not_an_object")
        record = model.model_validate(payload)
        if key is not None and key != record.merchant_id.encode("utf-8"):
            raise _Unusable("record key differs from its merchant_id (records are keyed by merchant)",
                            "key_mismatch")
        return record
    except orjson.JSONDecodeError as exc:
        error, reason = f"not valid JSON: {exc}", "invalid_json"
    except ValidationError as exc:
        error, reason = _describe(exc)
    except _Unusable as exc:
        error, reason = str(exc), exc.reason
    value, encoding = _text(raw)
    key_text = _text(key)[0] if key is not None else None
    return DeadLetter(
        source_topic=source_topic or kind,
        partition=partition,
        offset=offset,
        key=key_text,
        value=value,
        value_encoding=encoding,
        error=error,
        reason=reason,
        received_at=received_at or datetime.now().astimezone(),
    )


def dumps(record: BaseModel) -> bytes:
    """Serialize an output record to contract JSON."""
    return orjson.dumps(record.model_dump(mode="json"))
