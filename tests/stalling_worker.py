"""``yujing worker``, except that once it stops fetching input partition 0 of the transactions
the way faust can after a rebalance: the partition is taken out of faust's fetch set, and the
records fetched past it are lost (the Kafka consumer's position jumps 300 records ahead, a hole
faust never delivers). Nothing else resumes it (one worker: no rebalance), so only the watchdog
(streams.watchdog) can get it read again. Run by tests/test_end_to_end.py as
``python -m tests.stalling_worker`` with the worker's ``YUJING_*`` environment.
"""

from __future__ import annotations

import logging
from typing import Any

import streams.agents

log = logging.getLogger("yujing.worker")
STALL_AFTER_RECORDS = 200
HOLE_RECORDS = 300


def build_stalling_app(settings: Any, *args: Any, **kwargs: Any) -> Any:
    app = build_worker_app(settings, *args, **kwargs)
    stalled: list[object] = []

    @app.timer(interval=0.2)
    async def stop_fetching_one_partition() -> None:
        if stalled or app.rebalancing:
            return
        consumer = app.consumer
        for tp in consumer.assignment():
            if tp.topic != settings.topics.transactions or tp.partition != 0:
                continue
            read = consumer._read_offset.get(tp)  # noqa: SLF001
            if read is None or read < STALL_AFTER_RECORDS:
                return
            consumer.pause_partitions({tp})
            await consumer._seek(tp, read + HOLE_RECORDS)  # noqa: SLF001  # the fetcher only, not faust's offsets
            stalled.append(tp)
            log.warning("test: stopped fetching %s[0] after offset %s, %s records skipped",
                        tp.topic, read, HOLE_RECORDS)

    return app


build_worker_app = streams.agents.build_worker_app
streams.agents.build_worker_app = build_stalling_app

if __name__ == "__main__":
    from yujing.cli import app as cli

    cli(["worker"], prog_name="yujing")
