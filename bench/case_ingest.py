"""How fast the case desk takes in warnings, against a plain INSERT baseline in the same run.

    .venv/bin/python bench/case_ingest.py [--warnings 3000] [--database-url URL]

Without ``--database-url`` it starts a throwaway local PostgreSQL (``yujing.services.database``). Both
runs store the same warnings, one transaction per warning, as the service does:

* baseline: ``INSERT`` of the warning row alone (what any consumer writing to PostgreSQL pays);
* case desk: :func:`cases.store.ingest_warning` (advisory lock, dedup lookups, the alert
  policy, case/merchant rows, audit events, outbox rows).

Reports warnings per second for each and the ratio. Speed depends on the machine; the ratio is
the figure to compare.
"""

from __future__ import annotations

import argparse
import random
import shutil
import socket
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alerts.cases import ResponsePolicy  # noqa: E402
from alerts.policy import AlertPolicy  # noqa: E402
from cases import db, store  # noqa: E402
from cases.schema import warnings  # noqa: E402
from tests.case_factories import warning_record  # noqa: E402
from yujing.services.database import LocalPostgres, scratch_database  # noqa: E402

LEVELS = ("blue", "yellow", "orange", "red")


def history(n: int, seed: int = 7) -> list[dict]:
    """``n`` warnings over 400 merchants (a fifth in chains), each walking up and down the levels."""
    rng = random.Random(seed)
    held: dict[str, str | None] = {}
    out = []
    day = date(2026, 1, 1)
    for i in range(n):
        merchant = f"m{rng.randrange(400):03d}"
        chain = f"c{int(merchant[1:]) % 16}" if int(merchant[1:]) < 80 else None
        previous = held.get(merchant)
        if previous and rng.random() < 0.3:
            transition, level = "cleared", previous
            held[merchant] = None
        else:
            level = rng.choice(LEVELS)
            transition = "raised" if previous is None else "escalated"
            held[merchant] = level
        out.append(warning_record(merchant, (day + timedelta(days=i // 20)).isoformat(), transition, previous,
                                  level, chain_id=chain))
    return out


def run(url: str, records: list[dict], *, baseline: bool) -> float:
    db.migrate(url)
    engine = db.make_engine(url)
    policy, response = AlertPolicy(), ResponsePolicy()
    now = datetime.now(UTC)
    started = time.perf_counter()
    for r in records:
        with engine.begin() as conn:
            if baseline:
                conn.execute(insert(warnings).values(
                    warning_id=r["warning_id"], merchant_id=r["merchant_id"], level=r["level"],
                    previous_level=r["previous_level"], transition=r["transition"], score=r["score"],
                    raised_at=datetime.fromisoformat(r["raised_at"]), emitted_at=now, received_at=now,
                    thresholds_version=r["thresholds_version"], chain_id=r["chain_id"], action="record",
                    reason="baseline", payload=r,
                ))
            else:
                store.ingest_warning(conn, r, policy=policy, response=response,
                                     webhook_targets=[("hotline", ["orange", "red"])], now=now)
    elapsed = time.perf_counter() - started
    engine.dispose()
    return len(records) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warnings", type=int, default=3000)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    # Unique ids: the generator may repeat a transition on one day; the bench wants every row new.
    records = [dict(r, warning_id=f"{r['warning_id']}-{i}") for i, r in enumerate(history(args.warnings))]
    server = home = None
    url = args.database_url
    if url is None:
        home = Path(tempfile.mkdtemp(prefix="yujing-bench-pg-"))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = LocalPostgres(home=home, port=port)
        server.start(timeout=90)
        url = server.url
    try:
        results = {}
        for name, baseline in (("baseline INSERT", True), ("case desk ingest", False)):
            with scratch_database(url, prefix="bench") as scratch:
                results[name] = run(scratch, records, baseline=baseline)
        for name, rate in results.items():
            sys.stdout.write(f"{name:>18}: {rate:8.0f} warnings/s\n")
        ratio = results["case desk ingest"] / results["baseline INSERT"]
        sys.stdout.write(f"{'ratio':>18}: {ratio:8.2f} (case desk / baseline), {len(records)} warnings\n")
    finally:
        if server is not None:
            server.stop()
            shutil.rmtree(home, ignore_errors=True)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
