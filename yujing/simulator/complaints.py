"""Complaint categories, channels and the money involved.

Healthy merchants draw complaints at a low base rate, mostly about service quality and contract
terms; refund refusals, closures and unavailable services come from the scenarios (refused
refunds and visits, stranded card holders). Complaints peak around Spring Festival.
"""

from __future__ import annotations

import random

#: Category mix of the base complaints of any open merchant.
BASE_CATEGORIES: dict[str, float] = {
    "service_quality": 0.38,
    "contract_dispute": 0.22,
    "other": 0.15,
    "refund_refused": 0.13,
    "false_advertising": 0.07,
    "service_unavailable": 0.05,
}
#: 12345 citizen hotline, 12315 consumer-protection hotline, online platforms.
BASE_CHANNELS: dict[str, float] = {"12345": 0.45, "12315": 0.35, "online": 0.20}

#: Probability that a refused visit / a refused refund ends in a complaint.
REFUSED_VISIT_COMPLAINT = 0.12
REFUSED_REFUND_COMPLAINT = 0.45

_CARD_MONEY_CATEGORIES = frozenset({"refund_refused", "store_closed", "contract_dispute"})


def pick(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def amount_involved(rng: random.Random, category: str, card_money: int | None) -> float | None:
    """Yuan in dispute: the card's paid balance for money disputes, else often unknown.

    ``card_money`` is a card's remaining balance in paid fen, when the complaint is about a card.
    """
    if category in _CARD_MONEY_CATEGORIES or (category == "service_unavailable" and card_money):
        if card_money is not None and card_money > 0:
            return card_money / 100
        return float(rng.randrange(500, 5000, 10))
    if category == "service_quality":
        return None if rng.random() < 0.6 else float(rng.randrange(50, 800, 10))
    if category == "false_advertising":
        return None if rng.random() < 0.5 else float(rng.randrange(200, 3000, 10))
    return None if rng.random() < 0.7 else float(rng.randrange(50, 2000, 10))
