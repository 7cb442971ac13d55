"""The opening card book of merchants that already trade when the window starts.

For each day of the history the platform holds before the window (two years in the classic world;
0-24 months in a drawn one, see ``WorldAssumptions.history_days``), or since opening, cards are drawn as the
merchant would have sold them; the part a holder would have used by the window's start is taken off, and
cards still carrying a balance are emitted as ``card_sale`` records at their real sale time with
``face_value`` = the balance outstanding at the start and ``amount`` = the money paid for it.
Expired memberships and used-up cards are left out. Monthly custody reports during those years
follow the same book. No complaints are simulated before the window.
"""

from __future__ import annotations

from .cards import poisson
from .world import MerchantRun

DORMANT_HISTORIC = 0.12  # share of outstanding historic cards whose holders no longer come
MAX_RETURNING = 300


def opening_book(run: MerchantRun) -> None:
    """Queue the history records of ``run`` (profile, custody reports, outstanding cards)."""
    plan, cal, rng, book = run.plan, run.cal, run.rng, run.book
    if run.tl.active_from >= 0:
        return  # opens inside the window: no history
    history = min(cal.history, run.world.history_days)
    first = max(-history, cal.index(plan.opened_on))
    # Data that start with the window: the profile arrives at its first instant, before any event.
    run._profile(first, 0 if first == 0 and history < cal.history else rng.randrange(3600))
    off = cal.offset
    for day in range(first, 0):
        if day > first:
            run.custody_step(day, "compliant")
        lam = plan.sales_per_day * run.activity[day + off] * run.weekday_sales[cal.weekday_of(day)]
        for _ in range(poisson(rng, lam)):
            card, _paid = run._new_card(day, None, False, False)
            age = -day
            if card.expiry is not None:
                if card.expiry <= 0:
                    _remember(run, card.consumer_id)
                    continue
                duration = card.expiry - day
                consumed = int(card.face * age / duration * rng.uniform(0.75, 1.1))
            else:
                consumed = int(age / card.interval * rng.uniform(0.4, 1.2)) * card.unit
            remaining = (card.face - consumed) // 100 * 100
            if remaining <= 0:
                _remember(run, card.consumer_id)
                continue
            card.face = card.remaining = remaining
            run._transaction(day, run.sampler.second(rng), "card_sale", card,
                             int(remaining * card.paid_ratio), remaining)
            book.add(card)
            if rng.random() >= DORMANT_HISTORIC:
                book.schedule(card, int(rng.uniform(0.0, card.interval)))


def _remember(run: MerchantRun, consumer_id: str) -> None:
    """Holders of used-up cards may buy again during the window."""
    if len(run.returning) < MAX_RETURNING and run.rng.random() < 0.3:
        run.returning.append(consumer_id)
