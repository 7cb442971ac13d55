"""What a system receiving the desk's pushes runs before believing one (docs/cases.md has a
receiver using it).

A push (:meth:`cases.service.CaseService._post`) carries ``X-Yujing-Timestamp`` (Unix seconds,
new at every attempt), ``X-Yujing-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">``
and ``X-Yujing-Delivery`` (one id per push, the same on every retry). :func:`verify_push`
refuses, in this order:

* a header missing (``missing``), a signature that does not match the body and timestamp with
  the shared secret (``signature``): tampered or forged;
* a timestamp more than ``tolerance_seconds`` away from the receiver's clock (``timestamp``): an
  old push replayed later;
* a push already accepted (``replay``): its delivery id, or its exact signature (the delivery id
  is not signed, so a replay with a made-up id is still caught by its signature, and beyond the
  tolerance by its timestamp).

``seen`` remembers what was accepted (a set; in production something shared and expiring, e.g.
a table or Redis with a TTL of a day). A ``replay`` of a delivery id is normally the desk
retrying a push whose answer it never got: answer it 2xx without handling it again.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, MutableSet
from dataclasses import dataclass

SIGNATURE = "x-yujing-signature"
TIMESTAMP = "x-yujing-timestamp"
DELIVERY = "x-yujing-delivery"


class PushRejected(ValueError):
    """A push not to be believed; ``reason``: missing, signature, timestamp or replay."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Push:
    delivery_id: str
    timestamp: int
    signature: str


def expected_signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=`` and the hex HMAC-SHA256 of ``<timestamp>.<body>`` (as :func:`cases.service.sign`).

    >>> expected_signature("s3cret", "1767225600", b'{"case_id":"YJ-1"}')[:15]
    'sha256=aa5350a8'
    """
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_push(
    secret: str, headers: Mapping[str, str], body: bytes, now: float, *,
    tolerance_seconds: float = 300, seen: MutableSet[str] | None = None,
) -> Push:
    """Check one received push; returns it, or raises :class:`PushRejected` saying why.

    ``headers`` in any letter case; ``body`` the raw bytes as received (not re-serialised JSON);
    ``now`` the receiver's Unix time. When ``seen`` is given, an accepted push's delivery id and
    signature are added to it (check and add in one step, so two copies arriving together are
    not both accepted): if handling the push then fails, discard its ``delivery_id`` from
    ``seen`` so that the desk's retry is accepted.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    missing = [h for h in (SIGNATURE, TIMESTAMP, DELIVERY) if not lower.get(h)]
    if missing:
        raise PushRejected("missing", f"header(s) missing: {', '.join(missing)}")
    signature, stamp, delivery = lower[SIGNATURE], lower[TIMESTAMP], lower[DELIVERY]
    # The signature first: nothing else in an unsigned request is worth reading.
    if not hmac.compare_digest(expected_signature(secret, stamp, body), signature):
        raise PushRejected("signature", "signature does not match the body and timestamp")
    try:
        sent = int(stamp)
    except ValueError:
        raise PushRejected("timestamp", f"timestamp {stamp!r} is not Unix seconds") from None
    if abs(now - sent) > tolerance_seconds:
        raise PushRejected("timestamp", f"timestamp is {now - sent:+.0f} s from now; "
                                        f"at most {tolerance_seconds:.0f} s accepted")
    if seen is not None:
        if delivery in seen:
            raise PushRejected("replay", f"delivery {delivery} was already accepted")
        if "sig:" + signature in seen:
            raise PushRejected("replay", "this exact push (same signature) was already accepted")
        seen.add(delivery)
        seen.add("sig:" + signature)
    return Push(delivery, sent, signature)
