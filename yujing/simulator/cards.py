"""Prepaid cards and a merchant's card book.

Every card keeps its remaining stored value in fen, so a redemption can never exceed what was
sold. Visits are scheduled per card (a bucket per day) rather than drawn in aggregate: each holder
comes back after a gap around the card's interval, so cards are used up over realistic periods
(weeks for a coaching package, months for a salon card, a year for a gym membership), holders go
dormant now and then, and a closure strands exactly the balances still on the cards.
"""

from __future__ import annotations

import math
import random


class Card:
    """One card in a merchant's book (money in fen)."""

    __slots__ = (
        "card_id", "consumer_id", "store_id", "kind", "face", "remaining", "paid_ratio", "unit",
        "interval", "expiry", "next_visit", "active", "last_day", "last_sec", "pos",
    )

    def __init__(
        self,
        card_id: str,
        consumer_id: str,
        store_id: str,
        kind: str,
        face: int,
        paid_ratio: float,
        unit: int,
        interval: float,
        expiry: int | None,
    ) -> None:
        self.card_id = card_id
        self.consumer_id = consumer_id
        self.store_id = store_id
        self.kind = kind
        self.face = face
        self.remaining = face
        self.paid_ratio = paid_ratio  # money paid per unit of stored value (< 1 with a bonus)
        self.unit = unit
        self.interval = interval
        self.expiry = expiry
        self.next_visit = -1
        self.active = True
        self.last_day = -10_000
        self.last_sec = -1
        self.pos = -1

    @property
    def paid_remaining(self) -> int:
        """The remaining balance in money paid (what a refund or a claim is about)."""
        return int(self.remaining * self.paid_ratio)


class CardBook:
    """The active cards of one merchant, with per-day visit and expiry buckets."""

    __slots__ = ("cards", "visits", "expiries")

    def __init__(self) -> None:
        self.cards: list[Card] = []
        self.visits: dict[int, list[Card]] = {}
        self.expiries: dict[int, list[Card]] = {}

    def add(self, card: Card) -> None:
        card.pos = len(self.cards)
        self.cards.append(card)
        if card.expiry is not None:
            self.expiries.setdefault(card.expiry, []).append(card)

    def remove(self, card: Card) -> None:
        """Drop a used-up, refunded or expired card (swap with the last, O(1))."""
        if not card.active:
            return
        card.active = False
        last = self.cards.pop()
        if last is not card:
            self.cards[card.pos] = last
            last.pos = card.pos

    def schedule(self, card: Card, day: int) -> None:
        card.next_visit = day
        bucket = self.visits.get(day)
        if bucket is None:
            self.visits[day] = [card]
        else:
            bucket.append(card)

    def stored_value(self) -> int:
        """Outstanding stored value (fen) on all active cards."""
        return sum(c.remaining for c in self.cards)


def poisson(rng: random.Random, lam: float) -> int:
    """A Poisson draw from a ``random.Random`` (Knuth for small means, normal above 30)."""
    if lam <= 0.0:
        return 0
    if lam > 30.0:
        return max(0, int(round(rng.gauss(lam, math.sqrt(lam)))))
    threshold = math.exp(-lam)
    count, product = 0, rng.random()
    while product > threshold:
        count += 1
        product *= rng.random()
    return count
