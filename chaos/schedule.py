"""Where the faults fall: at shares of the input the worker group has committed, drawn from a seed
so a failing run can be repeated exactly.

The worker kills are spread by drawing one point in each of ``kills`` equal slices of the run
(stratified): ten uniform draws could bunch up and leave most of the year without a crash.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

KILL_WORKER = "kill -9 worker"
RESTART_BROKER = "restart broker"
RESTART_POSTGRES = "restart PostgreSQL"
KILL_CASES_IN_DELIVERY = "kill -9 case service in webhook delivery"
HOLD_WEBHOOK = "hold the next webhook"  # arms the receiver; the kill follows when a push is held


@dataclass(frozen=True)
class Fault:
    at: float  # share of the input committed by the worker group when it is injected
    kind: str


def fault_schedule(
    seed: int, *, kills: int = 10, broker_restarts: int = 1, postgres_restarts: int = 1,
    first: float = 0.04, last: float = 0.92,
) -> list[Fault]:
    """The run's faults in the order they are injected.

    >>> sorted(f.kind for f in fault_schedule(1, kills=2, broker_restarts=0, postgres_restarts=0))
    ['hold the next webhook', 'kill -9 worker', 'kill -9 worker']
    >>> points = [f.at for f in fault_schedule(1) if f.kind == KILL_WORKER]
    >>> len(points), all(0.04 <= p <= 0.92 for p in points), points == sorted(points)
    (10, True, True)
    """
    rng = random.Random(seed)
    width = (last - first) / max(kills, 1)
    faults = [Fault(first + width * (i + rng.random()), KILL_WORKER) for i in range(kills)]
    # The broker mid-run; PostgreSQL and the webhook hold early enough that warnings and pushes
    # still flow after them (the desk must catch up across the fault, not merely be restarted).
    faults += [Fault(rng.uniform(0.4, 0.6), RESTART_BROKER) for _ in range(broker_restarts)]
    faults += [Fault(rng.uniform(0.2, 0.4), RESTART_POSTGRES) for _ in range(postgres_restarts)]
    faults.append(Fault(rng.uniform(0.0, 0.2), HOLD_WEBHOOK))
    return sorted(faults, key=lambda f: f.at)
