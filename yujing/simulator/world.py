"""The engine: runs one merchant day by day and emits contract records.

Per merchant and day, in this order: profile changes and the custody report, complaints, visits
(redemptions, refused visits), membership expiries, refund requests, then card sales (so a card is
never redeemed on the day it is sold). Every merchant has its own ``random.Random`` seeded from the
config seed and its index, so runs are deterministic and merchants independent of each other.

Pre-existing merchants start with an opening card book: cards sold during the history the world's
platform holds before the window (two years in the classic world, none in some) that still carry a balance, emitted as ``card_sale`` records at their real sale dates with
the balance still outstanding at the window's start (the platform's opening snapshot; the
consumption before the window is not replayed). Their custody reports during that year follow the
same snapshot, so every balance a reader derives from the stream is consistent with the reports.

Rates that differ between worlds (background complaints, custody cadence and habits, complaint
delays, promotion terms, big cards) are read from the world's assumptions (``cal.world``).

A record is queued as ``(day, second, merchant index, sequence, topic, record)``; sorting on the
first four fields gives the global event-time order.
"""

from __future__ import annotations

import math
import random
from typing import Any

from . import complaints as cp
from .calendar import (
    CLOCK,
    COMPLAINT_SAMPLER,
    SERVICE_HOURS,
    WEEKDAY_ACTIVITY,
    SimCalendar,
)
from .cards import Card, CardBook, poisson
from .custody import report_custody, report_stable
from .merchants import MerchantPlan
from .naming import pseudonym
from .products import big_card_product, draw_product

Queued = tuple[int, int, int, int, str, dict[str, Any]]

REFUND_RATE = {"beauty": 0.00012, "hairdressing": 0.0001, "fitness": 0.0002, "other": 0.0001}
COOLING_OFF_REFUND = 0.025  # gym contracts: full refund within 7 days
DORMANT_AT_SALE = 0.02  # cards bought and never used (gifts, moved away)
DORMANT_PER_VISIT = 0.005
DORMANT_RETURNS = 0.5
RETURNING_BUYER = 0.45


class MerchantRun:
    """Mutable state of one merchant while the simulation runs."""

    def __init__(self, plan: MerchantPlan, cal: SimCalendar, seed: int) -> None:
        self.plan = plan
        self.tl = plan.timeline
        self.cal = cal
        self.index = plan.index
        self.merchant_id = plan.merchant_id
        self.event_prefix = f"tx-{plan.merchant_id}-"
        self.day_prefix = cal.day_prefix
        self.offset = cal.offset
        self.rng = random.Random(f"yujing-run:{seed}:{plan.index}")
        self.world = cal.world
        self.promos = cal.world.promotions
        self.complaint_delay = cal.world.complaints.delay_mean_days
        self.stores = list(plan.stores)  # a consolidation closes one of them
        self.late_reports: dict[int, list[str]] = {}
        self.sampler = SERVICE_HOURS[plan.industry]
        self.activity = self.tl.season or cal.activity[plan.industry]
        weekday = WEEKDAY_ACTIVITY[plan.industry]
        mean = sum(weekday) / 7
        self.weekday_sales = [w / mean for w in weekday]
        self.weekday_accept = [w / max(weekday) for w in weekday]
        self.book = CardBook()
        self.out: list[Queued] = []
        self.seq = self.tx_count = self.cp_count = self.card_count = 0
        self.returning: list[str] = []
        self.custody: float | None = None
        self.custody_level: float | None = None  # a stable deposit's level, once set
        self.status = "open"
        self.representative = plan.legal_representative
        self.capital = plan.registered_capital
        self.pending: dict[int, list[tuple[str, str | None, int | None]]] = {}
        self.cooling: dict[int, list[Card]] = {}
        self.promo_terms: dict[int, float | None] = {}
        self.last_promo_end = -10_000
        self.changes: dict[int, list[tuple[int, dict[str, Any]]]] = {}
        for day, sec, change in self.tl.profile_changes:
            self.changes.setdefault(day, []).append((sec, change))
        self.next_serving = self._next_serving()
        self.refund_rate = REFUND_RATE[plan.industry]
        complaints = cal.world.complaints
        self.base_complaints = complaints.background_per_store
        self.stranded_scale = (complaints.stranded_share_scale, complaints.stranded_delay_scale)
        self.complaint_scale = self.tl.complaint_scale  # the world's pre-collapse complaints

    # -- plumbing -------------------------------------------------------------------------------
    def _next_serving(self) -> list[int] | None:
        serving = self.tl.serving
        if serving is None:
            return None
        following = [self.cal.days] * (len(serving) + 1)
        for d in range(len(serving) - 1, -1, -1):
            following[d] = d if serving[d] else following[d + 1]
        return following

    def _queue(self, day: int, sec: int, topic: str, record: dict[str, Any]) -> None:
        self.out.append((day, sec, self.plan.index, self.seq, topic, record))
        self.seq += 1

    def _transaction(self, day: int, sec: int, kind: str, card: Card, amount: int,
                     face: int | None = None) -> None:
        # The hottest path of the simulator: kept flat on purpose.
        self.tx_count += 1
        record: dict[str, Any] = {
            "event_id": f"{self.event_prefix}{self.tx_count:07d}",
            "type": kind,
            "merchant_id": self.merchant_id,
            "store_id": card.store_id,
            "card_id": card.card_id,
            "consumer_id": card.consumer_id,
            "amount": amount / 100,
        }
        if face is not None:
            record["face_value"] = face / 100
        record["occurred_at"] = self.day_prefix[day + self.offset] + CLOCK[sec]
        card.last_day = day
        card.last_sec = sec
        self.out.append((day, sec, self.index, self.seq, "transactions", record))
        self.seq += 1

    def _complaint(self, day: int, category: str, store_id: str | None, money: int | None,
                   channels: dict[str, float] | None = None) -> None:
        rng = self.rng
        self.cp_count += 1
        sec = COMPLAINT_SAMPLER.second(rng)
        self._queue(day, sec, "complaints", {
            "complaint_id": f"cp-{self.plan.merchant_id}-{self.cp_count:05d}",
            "merchant_id": self.plan.merchant_id,
            "store_id": store_id,
            "category": category,
            "amount_involved": cp.amount_involved(rng, category, money),
            "channel": cp.pick(rng, channels or cp.BASE_CHANNELS),
            "occurred_at": self.cal.timestamp(day, sec),
        })

    def _profile(self, day: int, sec: int) -> None:
        p = self.plan
        if not p.has_profile:  # the platform never received this merchant's registration
            return
        self._queue(day, sec, "merchants", {
            "merchant_id": p.merchant_id,
            "name": p.name,
            "industry": p.industry,
            "district": p.district,
            "chain_id": p.chain_id,
            "opened_on": p.opened_on.isoformat(),
            "status": self.status,
            "custody_balance": self.custody,
            "legal_representative": self.representative,
            "registered_capital": self.capital,
            "updated_at": self.cal.timestamp(day, sec),
        })

    def _age_days(self, day: int) -> int:
        return (self.cal.date_of(day) - self.plan.opened_on).days

    def custody_step(self, day: int, mode: str) -> None:
        """Late reports that arrive today, then today's report if one is due."""
        for late_mode in self.late_reports.pop(day, ()):
            self._file_custody(day, late_mode)
        if self._custody_due(day):
            self._custody_report(day, mode)

    def _custody_due(self, day: int) -> bool:
        when = self.cal.date_of(day)
        if when.day != self.plan.report_day:
            return False
        cadence = self.world.custody.cadence
        if cadence == "quarterly":  # Shanghai's platform: the quarter's report in its first month
            return when.month in (1, 4, 7, 10)
        if cadence == "irregular":
            return self.rng.random() < self.world.custody.irregular_rate
        return True

    def _custody_report(self, day: int, mode: str) -> None:
        p = self.plan
        if not (p.custody_enrolled and p.custody_reports):
            return
        if mode in ("compliant", "diligent") and self.rng.random() < self.world.custody.miss_rate:
            return
        if p.custody_late_days is not None and mode in ("compliant", "diligent"):
            when = day + self.rng.randint(*p.custody_late_days)
            self.late_reports.setdefault(when, []).append(mode)
            return
        self._file_custody(day, mode)

    def _file_custody(self, day: int, mode: str) -> None:
        balance = self.book.stored_value() / 100
        reported, custody = False, None
        if self.plan.custody_keeping == "stable" and mode in ("compliant", "diligent"):
            c = self.world.custody
            self.custody_level, custody = report_stable(
                self.rng, self.custody_level, balance, self._age_days(day), c.stable_headroom,
                c.stable_noise, diligent=mode == "diligent", voluntary=self.plan.custody_habit == "voluntary",
            )
            reported = custody is not None
        if not reported:
            reported, custody = report_custody(
                self.rng, mode, self.plan.custody_habit, self.custody, balance, self._age_days(day)
            )
        if reported:  # the custodian bank's overnight statement: the balance at the last close
            self.custody = custody
            self._profile(day, self.rng.randrange(1800, 5 * 3600))

    # -- cards ----------------------------------------------------------------------------------
    def _new_card(self, day: int, bonus: float | None, long_card: bool, over_cap: bool,
                  within_caps: bool = True) -> tuple[Card, int]:
        rng, p = self.rng, self.plan
        if (p.big_card_share > 0.0 and not (long_card or over_cap)
                and rng.random() < p.big_card_share):  # a world where big cards are ordinary
            product = big_card_product(rng, p.industry, p.price_tier, bonus, p.big_card_max)
        else:
            product = draw_product(rng, p.industry, p.price_tier, bonus=bonus,
                                   long_card=long_card, over_cap=over_cap, within_caps=within_caps)
        if self.returning and rng.random() < RETURNING_BUYER:
            consumer = self.returning.pop(rng.randrange(len(self.returning)))
        else:
            consumer = pseudonym(rng, "u")
        self.card_count += 1
        start = max(day, self.tl.opened_day or day)
        card = Card(
            card_id=f"{p.merchant_id}-C{self.card_count:06d}",
            consumer_id=consumer,
            store_id=rng.choice(self.stores),
            kind=product.kind,
            face=product.face,
            paid_ratio=product.amount / product.face,
            unit=product.unit,
            interval=product.interval,
            expiry=None if product.duration is None else start + product.duration,
        )
        return card, product.amount

    def _schedule(self, card: Card, day: int, gap_mean: float) -> None:
        """Book the holder's next visit around ``gap_mean`` days, slowed in quiet seasons."""
        rng, cal = self.rng, self.cal
        position = day + int(gap_mean) + cal.offset
        activity = self.activity[position] if position < len(self.activity) else 1.0
        visit_mult = self.tl.visit_mult
        if visit_mult is not None and 0 <= day < len(visit_mult):
            activity *= visit_mult[day]
        if activity < 0.12:
            activity = 0.12
        target = day + 1 + int(gap_mean * (0.5 + rng.random()) / activity - 0.5)
        if rng.random() > self.weekday_accept[cal.weekday[target + cal.offset]]:
            target += 1
        if target >= self.cal.days or (card.expiry is not None and target >= card.expiry):
            return
        self.book.schedule(card, target)

    # -- one day ------------------------------------------------------------------------------
    def step(self, day: int) -> None:
        """Simulate one day of the window, queueing its records in ``self.out``."""
        tl = self.tl
        if day < tl.active_from:
            return
        if day == tl.active_from:
            self._profile(day, self.rng.randrange(3600))
        collapsed = tl.collapse_day is not None and day >= tl.collapse_day
        self._profile_changes(day)
        if tl.store_moves:
            self._move_stores(day)
        if not collapsed:
            self.custody_step(day, tl.custody_mode(day))
        if day == tl.collapse_day:
            self._strand(day)
        self._complaints(day, collapsed)
        if collapsed:
            return
        serving = tl.serving is None or tl.serving[day]
        self._visits(day, serving)
        self._expiries(day, serving)
        self._refunds(day)
        if tl.selling is None or tl.selling[day]:
            self._sales(day, serving)

    def _move_stores(self, day: int) -> None:
        """A store closes for good; its holders are served by the sister store from now on."""
        for when, closed, sister in self.tl.store_moves:
            if when != day or closed not in self.stores:
                continue
            self.stores.remove(closed)
            for card in self.book.cards:
                if card.store_id == closed:
                    card.store_id = sister

    def _complaint_later(self, day: int, category: str, store_id: str | None, money: int) -> None:
        """A complaint about an incident of today, lodged after the world's usual delay."""
        if self.complaint_delay > 0.0:
            when = day + int(self.rng.expovariate(1.0 / self.complaint_delay))
            if when > day:
                self.pending.setdefault(when, []).append((category, store_id, money))
                return
        self._complaint(day, category, store_id, money)

    def _profile_changes(self, day: int) -> None:
        for sec, change in self.changes.pop(day, ()):
            if change.get("_custody_report"):
                self._custody_report(day, "diligent")
                continue
            self.status = change.get("status", self.status)
            self.representative = change.get("legal_representative", self.representative)
            self.capital = change.get("registered_capital", self.capital)
            self._profile(day, sec)

    def _strand(self, day: int) -> None:
        """The store is gone: some holders with a balance complain over the next weeks."""
        stranded = self.tl.stranded
        if stranded is None:
            return
        rng = self.rng
        for card in self.book.cards:
            if card.remaining > 0 and rng.random() < stranded.share * self.stranded_scale[0]:
                when = day + int(rng.expovariate(1.0 / (stranded.mean_delay * self.stranded_scale[1])))
                category = cp.pick(rng, stranded.categories)
                self.pending.setdefault(when, []).append(
                    (category, card.store_id, card.paid_remaining)
                )

    def _complaints(self, day: int, collapsed: bool) -> None:
        rng = self.rng
        for category, store_id, money in self.pending.pop(day, ()):
            self._complaint(day, category, store_id, money)
        if not collapsed:
            lam = self.base_complaints * len(self.stores) * self.cal.complaint_season(day)
            for _ in range(poisson(rng, lam)):
                store = rng.choice(self.stores) if rng.random() < 0.85 else None
                card = self.book.cards[rng.randrange(len(self.book.cards))] if self.book.cards else None
                category = cp.pick(rng, cp.BASE_CATEGORIES)
                self._complaint(day, category, store, None if card is None else card.paid_remaining)
        for category, rates in self.tl.complaint_rates.items():
            for _ in range(poisson(rng, rates[day])):
                card = self.book.cards[rng.randrange(len(self.book.cards))] if self.book.cards else None
                self._complaint(day, category, rng.choice(self.stores),
                                None if card is None else card.paid_remaining,
                                self.tl.complaint_channels)

    def _refusal_complaint(self, day: int, chance: float) -> float:
        """How likely a refused visit or refund is complained about, as the world tells it."""
        scale = self.complaint_scale
        return chance if scale is None else chance * scale[day]

    def _visits(self, day: int, serving: bool) -> None:
        bucket = self.book.visits.pop(day, None)
        if not bucket:
            return
        rng, book = self.rng, self.book
        if not serving:  # paused (renovation, not yet open): holders come back after it
            assert self.next_serving is not None
            reopen = self.next_serving[day]
            for card in bucket:
                if card.active and card.next_visit == day and reopen < self.cal.days:
                    book.schedule(card, reopen + rng.randrange(4))
            return
        honour = 1.0 if self.tl.honour is None else self.tl.honour[day]
        for card in bucket:
            if not card.active or card.next_visit != day:
                continue
            if honour < 1.0 and rng.random() > honour:  # "fully booked", "the coach left"
                if rng.random() < self._refusal_complaint(day, cp.REFUSED_VISIT_COMPLAINT):
                    self._complaint_later(day, "service_unavailable", card.store_id, card.paid_remaining)
                book.schedule(card, day + rng.randint(2, 7))
                continue
            if rng.random() < DORMANT_PER_VISIT:  # the holder stops coming for months, or for good
                if rng.random() < DORMANT_RETURNS:
                    book.schedule(card, day + rng.randint(90, 360))
                continue
            if card.kind == "stored_value":
                price = max(1000, int(card.unit * math.exp(rng.gauss(-0.06, 0.35))) // 100 * 100)
            else:
                price = card.unit
            amount = min(price, card.remaining)
            if card.kind != "membership" and card.remaining - amount < card.unit // 4:
                amount = card.remaining  # the last bit is used up, the rest paid in cash
            card.remaining -= amount
            self._transaction(day, self.sampler.second(rng), "redemption", card, amount)
            if card.remaining <= 0:
                book.remove(card)
                if rng.random() < 0.5:
                    self.returning.append(card.consumer_id)
            else:
                self._schedule(card, day, card.interval)

    def _expiries(self, day: int, serving: bool) -> None:
        """Memberships end: the unused value is recognised as consumed at the day's close."""
        due = self.book.expiries.pop(day, None)
        if not due:
            return
        for card in due:
            if not card.active:
                continue
            if not serving:  # extended over a pause, as the renovation notice promises
                assert self.next_serving is not None
                card.expiry = self.next_serving[day] + 7
                self.book.expiries.setdefault(card.expiry, []).append(card)
                continue
            if card.remaining > 0:
                self._transaction(day, 86_100 + self.rng.randrange(299), "redemption", card,
                                  card.remaining)
                card.remaining = 0
            self.book.remove(card)

    def _refunds(self, day: int) -> None:
        rng, book, tl = self.rng, self.book, self.tl
        requests: list[tuple[Card, bool]] = [(c, True) for c in self.cooling.pop(day, ())]
        mult = 1.0 if tl.refund_mult is None else tl.refund_mult[day]
        for _ in range(poisson(rng, len(book.cards) * self.refund_rate * mult)):
            requests.append((book.cards[rng.randrange(len(book.cards))], False))
        honour = 0.93 if tl.refund_honour is None else tl.refund_honour[day]
        for card, cooling_off in requests:
            if not card.active or card.remaining <= 0:
                continue
            if not cooling_off and rng.random() > honour:
                if rng.random() < self._refusal_complaint(day, cp.REFUSED_REFUND_COMPLAINT):
                    self._complaint_later(day, "refund_refused", card.store_id, card.paid_remaining)
                continue
            fee = 0.0 if cooling_off else rng.choice((0.0, 0.0, 0.05, 0.1))
            amount = int(card.paid_remaining * (1.0 - fee))
            after = card.last_sec if card.last_day == day else -1
            self._transaction(day, self.sampler.second(rng, after), "refund", card, amount,
                              card.remaining)
            card.remaining = 0
            book.remove(card)

    def _sales(self, day: int, serving: bool) -> None:
        rng, p, tl, cal = self.rng, self.plan, self.tl, self.cal
        off = cal.offset
        lam = p.sales_per_day * self.activity[day + off] * self.weekday_sales[cal.weekday_of(day)]
        if tl.sales_mult is not None:
            lam *= tl.sales_mult[day]
        promo_bonus = None
        promo = cal.promotion(p.industry, day)
        if promo >= 0:
            promo_bonus = self._promo_bonus(promo)
            if promo_bonus is not None:
                window = cal.promotions[promo]
                progress = (day - window.first) / max(window.last - window.first, 1)
                lam *= 1.0 + (window.peak_boost - 1.0) * (0.4 + 0.6 * progress)
                self.last_promo_end = window.last
        elif day - self.last_promo_end <= self.promos.post_days:
            lam *= self.promos.post_dip  # demand pulled forward by the promotion
        deal_share = 0.0 if tl.deal_share is None else tl.deal_share[day]
        long_share = 0.0 if tl.long_share is None else tl.long_share[day]
        over_cap = 0.0 if tl.over_cap_share is None else tl.over_cap_share[day]
        for _ in range(poisson(rng, lam)):
            bonus: float | None = None
            pushed = False
            if deal_share > 0.0 and rng.random() < deal_share:
                bonus = tl.deal_bonus[day] if tl.deal_bonus is not None else None
                pushed = True
            elif promo_bonus is not None and rng.random() < self.promos.bonus_share:
                bonus = promo_bonus
            card, amount = self._new_card(
                day, bonus, long_share > 0.0 and rng.random() < long_share,
                over_cap > 0.0 and rng.random() < over_cap,
                within_caps=not (pushed and tl.deals_beyond_caps),
            )
            self._transaction(day, self.sampler.second(rng), "card_sale", card, amount, card.face)
            self.book.add(card)
            if p.industry == "fitness" and rng.random() < COOLING_OFF_REFUND:
                self.cooling.setdefault(day + rng.randint(1, 7), []).append(card)
            if rng.random() < DORMANT_AT_SALE:
                continue
            if serving:
                self._schedule(card, day, rng.uniform(1.0, card.interval))
            elif tl.opened_day is not None and tl.opened_day > day:  # pre-sale: from opening
                self.book.schedule(card, tl.opened_day + rng.randrange(10))

    def _promo_bonus(self, promo: int) -> float | None:
        """Whether this merchant joins a calendar promotion, and with which bonus depth."""
        if promo not in self.promo_terms:
            appetite = self.tl.promo_appetite or self.plan.promo_appetite
            joins = self.rng.random() < appetite
            self.promo_terms[promo] = self.rng.uniform(*self.promos.bonus) if joins else None
        return self.promo_terms[promo]
