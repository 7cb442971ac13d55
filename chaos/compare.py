"""What a fault-injection run produced against what a run without faults produces.

Pure: lists and dicts in, verdicts out, so the rules are unit-tested without any service
(tests/test_chaos.py). Each comparison gives :class:`Check` rows for the table; a row with an
``expected`` of ``"0"`` is an invariant, ``"-"`` a figure reported for what it is.

What counts as a duplicate. Processing is at-least-once and outputs are idempotent
(docs/pipeline.md, "State, restarts and duplicates"): a worker killed with SIGKILL may publish a
warning again, with the *same* ``warning_id`` and the same content, and consumers deduplicate on
the id (the case desk does, in its ``warnings`` table). Such re-publications are counted and
shown, not failed. A warning is *duplicated* when deduplication on the id cannot save the
consumer: the same id published with two contents, or a second id for a transition the
reference already has (same merchant, event time and transition).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

INVARIANT = "0"
FIGURE = "-"


@dataclass(frozen=True)
class Check:
    """One row of the table: what was counted, its value, and whether it holds."""

    name: str
    value: int
    expected: str = INVARIANT
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.expected == FIGURE or self.value == 0


def content(warning: Mapping[str, Any]) -> bytes:
    """A warning's content, without the wall clock (``emitted_at`` differs between any two runs)."""
    return orjson.dumps({k: v for k, v in warning.items() if k != "emitted_at"}, option=orjson.OPT_SORT_KEYS)


def _transition(warning: Mapping[str, Any]) -> tuple[str, str, str]:
    return warning["merchant_id"], str(warning["raised_at"]), warning["transition"]


def _sample(ids: Iterable[str], n: int = 3) -> str:
    ids = sorted(ids)
    return ", ".join(ids[:n]) + (f" (+{len(ids) - n})" if len(ids) > n else "")


@dataclass
class WarningComparison:
    reference: int
    records: int  # every record read from the warnings topic
    distinct: int  # distinct warning ids among them
    lost: list[str] = field(default_factory=list)  # reference ids never published
    extra: list[str] = field(default_factory=list)  # ids the reference does not have
    differing: list[str] = field(default_factory=list)  # ids whose content is not the reference's
    duplicated: list[str] = field(default_factory=list)  # what deduplication on the id cannot fix
    republished: int = 0  # copies of an id with the same content (records - distinct, when all agree)

    def checks(self) -> list[Check]:
        return [
            Check("warnings in the replay reference", self.reference, FIGURE),
            Check("warnings lost (reference ids never published)", len(self.lost), detail=_sample(self.lost)),
            Check("warnings extra (ids not in the reference)", len(self.extra), detail=_sample(self.extra)),
            Check("warnings duplicated (not removable by dedup on warning_id)", len(self.duplicated),
                  detail=_sample(self.duplicated)),
            Check("warnings differing from the reference in content", len(self.differing),
                  detail=_sample(self.differing)),
            Check("warning re-publications (same id and content; consumers dedup)", self.republished, FIGURE,
                  detail=f"{self.records} records, {self.distinct} distinct ids"),
        ]


def compare_warnings(reference: Iterable[Mapping[str, Any]], observed: Iterable[Mapping[str, Any]]) -> WarningComparison:
    """``reference``: the backtest's warnings (JSON-ready dicts); ``observed``: every record read
    from the warnings topic, re-publications included.

    >>> w = {"warning_id": "w1", "merchant_id": "m", "raised_at": "2026-01-02", "transition": "raised", "level": "blue"}
    >>> c = compare_warnings([w], [w, {**w, "emitted_at": "later"}])
    >>> (c.lost, c.extra, c.duplicated, c.republished)
    ([], [], [], 1)
    """
    expected = {w["warning_id"]: content(w) for w in reference}
    expected_transitions = {_transition(w) for w in reference}
    copies: dict[str, set[bytes]] = defaultdict(set)
    seen: dict[str, Mapping[str, Any]] = {}
    records = 0
    for w in observed:
        records += 1
        copies[w["warning_id"]].add(content(w))
        seen.setdefault(w["warning_id"], w)
    lost = sorted(set(expected) - set(copies))
    extra = sorted(set(copies) - set(expected))
    differing = sorted(i for i in copies if i in expected and copies[i] != {expected[i]})
    two_contents = [i for i, versions in copies.items() if len(versions) > 1]
    second_id = [i for i in extra if _transition(seen[i]) in expected_transitions]
    return WarningComparison(
        reference=len(expected), records=records, distinct=len(copies), lost=lost, extra=extra,
        differing=differing, duplicated=sorted({*two_contents, *second_id}), republished=records - len(copies),
    )


@dataclass(frozen=True)
class DeskState:
    """What the case desk holds after a run: its cases (id -> group), the warnings it read (id ->
    the case they were filed with, or None) and its webhook outbox (dedup key -> status)."""

    cases: Mapping[str, str]
    warnings: Mapping[str, str | None]
    webhooks: Mapping[str, str]


@dataclass
class CaseComparison:
    reference: int
    live: int
    lost: list[str] = field(default_factory=list)  # reference cases the live desk does not have
    doubled: list[str] = field(default_factory=list)  # live cases beyond the reference's
    unread: list[str] = field(default_factory=list)  # published warnings the desk never stored
    misfiled: list[str] = field(default_factory=list)  # warnings filed with another case than in the reference

    def checks(self) -> list[Check]:
        return [
            Check("cases in the reference (same warnings, read once, no faults)", self.reference, FIGURE),
            Check("cases lost", len(self.lost), detail=_sample(self.lost)),
            Check("cases doubled", len(self.doubled), detail=_sample(self.doubled)),
            Check("warnings the case desk never stored", len(self.unread), detail=_sample(self.unread)),
            Check("warnings filed with another case than in the reference", len(self.misfiled),
                  detail=_sample(self.misfiled)),
        ]


def compare_cases(reference: DeskState, live: DeskState, published: Iterable[str]) -> CaseComparison:
    """``published``: the distinct warning ids on the topic (the desk must have stored each once;
    its ``warnings`` table has the id as primary key, so "once" is the schema's)."""
    return CaseComparison(
        reference=len(reference.cases), live=len(live.cases),
        lost=sorted(set(reference.cases) - set(live.cases)),
        # Case ids are deterministic (group and first warning): a second case for a group has an id
        # the reference does not have.
        doubled=sorted(set(live.cases) - set(reference.cases)),
        unread=sorted(set(published) - set(live.warnings)),
        misfiled=sorted(w for w, case in live.warnings.items() if w in reference.warnings and reference.warnings[w] != case),
    )


@dataclass(frozen=True)
class Push:
    """One webhook request as the receiver saw it."""

    key: str  # X-Yujing-Delivery: the idempotency key (the outbox's dedup_key)
    body: bytes
    signed: bool  # the HMAC signature verified


@dataclass
class WebhookComparison:
    expected: int
    requests: int
    keys: int
    lost: list[str] = field(default_factory=list)  # reference keys never received
    unexpected: list[str] = field(default_factory=list)  # keys the reference does not push
    undelivered: list[str] = field(default_factory=list)  # live outbox rows not marked delivered
    conflicting: list[str] = field(default_factory=list)  # one key, two bodies: dedup on it would hide a push
    unsigned: int = 0
    redelivered: dict[str, int] = field(default_factory=dict)  # key -> requests, where more than one

    def checks(self) -> list[Check]:
        once = self.keys - len(self.redelivered)
        return [
            Check("webhooks in the reference (one per case and level)", self.expected, FIGURE),
            Check("webhooks lost (never received)", len(self.lost), detail=_sample(self.lost)),
            Check("webhooks unexpected (key not in the reference)", len(self.unexpected), detail=_sample(self.unexpected)),
            Check("webhooks applied twice after receiver dedup on X-Yujing-Delivery", len(self.conflicting),
                  detail=_sample(self.conflicting)),
            Check("outbox pushes left undelivered", len(self.undelivered), detail=_sample(self.undelivered)),
            Check("webhook requests with a bad signature", self.unsigned),
            Check("webhook keys received exactly once", once, FIGURE,
                  detail=f"{self.requests} requests for {self.keys} keys"),
            Check("webhook keys received more than once (at-least-once; receiver dedups)", len(self.redelivered),
                  FIGURE, detail=", ".join(f"{k} x{n}" for k, n in sorted(self.redelivered.items())[:3])),
        ]


def compare_webhooks(reference_keys: Iterable[str], live_outbox: Mapping[str, str], pushes: Iterable[Push]) -> WebhookComparison:
    """``reference_keys``: the reference desk's webhook dedup keys; ``live_outbox``: the live
    desk's (key -> status); ``pushes``: every request the receiver got.

    >>> p = Push("webhook:h:YJ-1:red", b"{}", True)
    >>> c = compare_webhooks(["webhook:h:YJ-1:red"], {"webhook:h:YJ-1:red": "delivered"}, [p, p])
    >>> (c.lost, c.conflicting, c.redelivered)
    ([], [], {'webhook:h:YJ-1:red': 2})
    """
    expected = set(reference_keys)
    bodies: dict[str, set[bytes]] = defaultdict(set)
    requests: Counter[str] = Counter()
    unsigned = 0
    for push in pushes:
        requests[push.key] += 1
        bodies[push.key].add(push.body)
        unsigned += not push.signed
    return WebhookComparison(
        expected=len(expected), requests=sum(requests.values()), keys=len(requests),
        lost=sorted(expected - set(requests)), unexpected=sorted(set(requests) - expected),
        undelivered=sorted(k for k, status in live_outbox.items() if status != "delivered"),
        conflicting=sorted(k for k, b in bodies.items() if len(b) > 1), unsigned=unsigned,
        redelivered={k: n for k, n in requests.items() if n > 1},
    )
