"""Personal data stays out of the case desk: a warning's fields that name a consumer are dropped
before it is stored, shown, pushed or logged.

The scoring side never puts them in a warning (``contract.records.PERSONAL_FIELDS`` are kept out
of reprs and features), but the desk keeps a warning's extra fields as received for the case
page, so a producer that one day added a consumer's id or phone to a warning would otherwise
reach every handler's screen and the webhook receivers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from contract.records import PERSONAL_FIELDS

# Field names that carry a person's contact or identity, whatever a producer calls them.
_PERSONAL_PARTS = ("phone", "mobile", "id_card", "id_number", "consumer")


def is_personal(key: str) -> bool:
    """
    >>> [is_personal(k) for k in ("consumer_id", "consumer_phone", "mobile", "merchant_id", "phone")]
    [True, True, True, False, True]
    """
    lowered = key.lower()
    return key in PERSONAL_FIELDS or any(part in lowered for part in _PERSONAL_PARTS)


def scrub(value: Any) -> Any:
    """``value`` without personal fields, at any depth.

    >>> scrub({"merchant_id": "m1", "consumer_id": "u1", "extra": [{"phone": "13800138000", "n": 1}]})
    {'merchant_id': 'm1', 'extra': [{'n': 1}]}
    """
    if isinstance(value, Mapping):
        return {k: scrub(v) for k, v in value.items() if not is_personal(str(k))}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value
