"""Small hand-made event histories for pure tests (no simulator, no Kafka)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from contract.records import Complaint, InputEvent, MerchantProfile, Transaction
from models.calendar import SHANGHAI

START = date(2026, 1, 1)


def at(day: int, hour: int = 12, minute: int = 0) -> datetime:
    return datetime.combine(START + timedelta(days=day), datetime.min.time(), SHANGHAI).replace(hour=hour, minute=minute)


def sale(mid: str, day: int, paid: float, face: float | None = None, n: int = 0, hour: int = 11) -> Transaction:
    return Transaction(event_id=f"{mid}-s-{day}-{n}", type="card_sale", merchant_id=mid, store_id="s1",
                       card_id=f"c-{day}-{n}", consumer_id=f"u-{n}", amount=paid, face_value=face, occurred_at=at(day, hour))


def redemption(mid: str, day: int, amount: float, n: int = 0, hour: int = 15) -> Transaction:
    return Transaction(event_id=f"{mid}-r-{day}-{n}", type="redemption", merchant_id=mid, store_id="s1",
                       card_id="c", consumer_id="u", amount=amount, occurred_at=at(day, hour))


def complaint(mid: str, day: int, category: str, n: int = 0) -> Complaint:
    return Complaint(complaint_id=f"{mid}-k-{day}-{n}", merchant_id=mid, category=category, channel="12345",
                     occurred_at=at(day, 10), amount_involved=2000)


def profile(mid: str, day: int, custody: float | None, status: str = "open", rep: str = "rep-1",
            industry: str = "fitness") -> MerchantProfile:
    return MerchantProfile(merchant_id=mid, name=f"{mid} 健身", industry=industry, district="南桥镇",
                           chain_id=None, opened_on=date(2023, 1, 1), status=status, custody_balance=custody,
                           legal_representative=rep, updated_at=at(day, 9))


def steady_merchant(mid: str, days: int, start: int = 0) -> list[InputEvent]:
    """A healthy gym: steady sales and redemptions, custody kept at the tier."""
    events: list[InputEvent] = [profile(mid, start, 0.0)]
    for day in range(start, start + days):
        events.append(sale(mid, day, 3000, 3300))
        events.append(redemption(mid, day, 1500, 0))
        events.append(redemption(mid, day, 1400, 1, hour=18))
        if day % 30 == 29:
            events.append(profile(mid, day, 200_000.0))
    return events


def runaway_merchant(mid: str, days: int, collapse_day: int) -> list[InputEvent]:
    """Steady for months, then a deep-bonus sales push, no custody, silence and complaints."""
    events: list[InputEvent] = [profile(mid, 0, 0.0)]
    for day in range(days):
        if day < collapse_day - 40:
            events.append(sale(mid, day, 3000, 3300))
        elif day < collapse_day:
            for n in range(4):
                events.append(sale(mid, day, 4000, 8000, n=n))
        if day < collapse_day - 10:
            events.append(redemption(mid, day, 2900))
        if day >= collapse_day - 3:
            events.append(complaint(mid, day, "refund_refused"))
        if day % 30 == 29 and day < collapse_day - 40:
            events.append(profile(mid, day, 150_000.0))
    return events


def time_ordered(*streams: list[InputEvent]) -> list[InputEvent]:
    merged = [e for s in streams for e in s]
    return sorted(merged, key=lambda e: e.occurred_at)
