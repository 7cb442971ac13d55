"""``yujing worker``, except that once it stops fetching input partition 0 of the transactions
the way faust can after a rebalance: the partition is taken out of faust's fetch set, and the
records fetched past it are lost (the Kafka consumer's position jumps 300 records ahead, a hole
faust never delivers). Nothing else resumes it (one worker: no rebalance), so only the watchdog
(streams.watchdog) can get it read again. Run by tests/test_end_to_end.py as
``python -m tests.stalling_worker`` with the worker's ``YUJING_*`` environment.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import streams.agents
import streams.watchdog

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


async def heal_that_does_not_help(self: Any, tp: Any, committed: int) -> None:
    """With ``YUJING_TEST_HEAL_FAILS=1``: the watchdog's first remedy is logged but changes
    nothing, as in a crawl CI once met, so its second one (rejoining the group) must do."""
    log.warning("partition %s[%s] stalled: committed offset %s; test: not resuming it", tp.topic, tp.partition,
                committed)
    self.on_stall(self.kind_by_topic[tp.topic])


build_worker_app = streams.agents.build_worker_app
streams.agents.build_worker_app = build_stalling_app
if os.environ.get("YUJING_TEST_HEAL_FAILS") == "1":
    streams.watchdog.PartitionWatchdog._heal = heal_that_does_not_help  # type: ignore[method-assign]

if __name__ == "__main__":
    from yujing.cli.app import app as cli

    cli(["worker"], prog_name="yujing")
