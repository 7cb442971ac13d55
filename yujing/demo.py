"""``yujing demo``: a fresh local broker, a worker and the simulator, with warnings shown live.

The demo runs on its own broker (own ports and data under ``<home>/demo``), wiped at the
start, so it can be run again and again and never touches a broker you use otherwise.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from kafka import KafkaConsumer
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from yujing.broker import broker_from_settings, contract_topics
from yujing.kafka_io import group_progress, input_topics
from yujing.processes import start_worker, stop_worker
from yujing.settings import Settings
from yujing.simulator import SimulationConfig, simulate

LEVEL_STYLE = {"blue": "bold blue", "yellow": "bold yellow", "orange": "bold dark_orange", "red": "bold red"}
LEVEL_ZH = {"blue": "蓝", "yellow": "黄", "orange": "橙", "red": "红"}


@dataclass
class DemoState:
    warnings: list[dict] = field(default_factory=list)
    produced: int = 0
    producing: bool = True
    produce_error: str | None = None
    started: float = field(default_factory=time.monotonic)


def demo_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "home": settings.home / "demo",
            "broker_port": settings.broker_port + 100,
            "controller_port": settings.controller_port + 100,
            "bootstrap_servers": None,
            "app_id": "yujing-demo",
        }
    )


def _table(title: str, warnings: list[dict], labels: dict[str, dict]) -> Table:
    table = Table(title=title, title_justify="left", expand=True)
    for column in ("raised_at (event time)", "merchant", "town", "industry", "transition", "level", "score", "why (zh)", "scenario (label)"):
        table.add_column(column, overflow="fold")
    for w in warnings:
        label = labels.get(w["merchant_id"], {})
        reason = w["indicators"][0]["explanation_zh"] if w["indicators"] else ""
        table.add_row(
            w["raised_at"][:16].replace("T", " "),
            w["merchant_id"][-8:],
            w.get("district") or "",
            w.get("industry") or "",
            w["transition"],
            Text(f"{LEVEL_ZH[w['level']]} {w['level']}", style=LEVEL_STYLE[w["level"]]),
            f"{w['score']:.2f}",
            reason,
            label.get("scenario", ""),
        )
    return table


def _render(state: DemoState, labels: dict[str, dict]) -> Group:
    rising = [w for w in state.warnings if w["transition"] in ("raised", "escalated")]
    counts = Counter(w["level"] for w in rising)
    elapsed = time.monotonic() - state.started
    status = "simulating" if state.producing else "simulation published"
    header = Text.assemble(
        ("yujing 预警 demo  ", "bold"),
        f"{elapsed:5.0f} s  {status}: {state.produced:,} records  warnings raised/escalated: ",
        *[(f"{LEVEL_ZH[lv]}{lv} {counts.get(lv, 0)}  ", LEVEL_STYLE[lv]) for lv in LEVEL_STYLE],
    )
    urgent = [w for w in rising if w["level"] in ("orange", "red")]
    return Group(
        header,
        _table("橙/红 预警 orange and red (latest)", urgent[-10:], labels),
        _table("全部 all transitions (latest)", state.warnings[-8:], labels),
    )


FEED_RECORDS_PER_SECOND = 1500.0
SETTLED_SECONDS = 30.0


def run_demo(
    settings: Settings,
    *,
    merchants: int,
    days: int,
    seed: int,
    duration: float,
    keep_running: bool,
    log: object,
) -> DemoState:
    """Run the whole path; returns what was seen. ``log`` is a callable for progress lines."""
    demo = demo_settings(settings)
    broker = broker_from_settings(demo)
    broker.stop()
    shutil.rmtree(broker.data_dir, ignore_errors=True)  # every demo starts from empty topics
    log(f"starting a fresh Kafka {demo.kafka_version} broker on {broker.bootstrap} ...")  # type: ignore[operator]
    status = broker.start(timeout=120)
    broker.ensure_topics(contract_topics(demo))
    log(f"broker ready in {status.elapsed or 0:.1f} s; starting the worker")  # type: ignore[operator]
    worker_log = Path(demo.home) / "worker.log"
    worker_log.unlink(missing_ok=True)
    worker = start_worker(demo, worker_log)

    simulation = simulate(SimulationConfig(merchants=merchants, days=days, seed=seed))
    labels = {label["merchant_id"]: label for label in simulation.labels}
    state = DemoState()

    def produce() -> None:
        try:
            # A steady feed, as platforms send it, rather than a year dumped at once: the worker
            # keeps up and days close (and warnings appear) as the year unfolds.
            counts = simulation.produce(demo.bootstrap, input_topics(demo), progress=False,
                                        records_per_second=FEED_RECORDS_PER_SECOND)
            state.produced = sum(counts.values())
        except Exception as exc:  # shown on screen; the demo goes on with what was sent
            state.produce_error = str(exc)
        finally:
            state.producing = False

    producer = threading.Thread(target=produce, name="simulator", daemon=True)
    producer.start()
    consumer = KafkaConsumer(
        demo.topics.warnings,
        bootstrap_servers=demo.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    last_check, settled_total, settled_since = time.monotonic(), -1, time.monotonic()
    try:
        with Live(_render(state, labels), refresh_per_second=4) as live:
            while time.monotonic() - state.started < duration:
                batch = consumer.poll(timeout_ms=500)
                for records in batch.values():
                    state.warnings.extend(orjson.loads(r.value) for r in records)
                if worker.poll() is not None:
                    break
                live.update(_render(state, labels))
                # done: everything published, and the worker has read all of it (inputs and its
                # chain stage) with nothing new for half a minute (its producer may hold outputs
                # for a few seconds on a busy machine)
                if not state.producing and time.monotonic() - last_check > 5:
                    last_check = time.monotonic()
                    fraction, total = group_progress(demo)
                    if fraction < 1.0 or total != settled_total:
                        settled_total, settled_since = (total if fraction >= 1.0 else -1), last_check
                    elif last_check - settled_since >= SETTLED_SECONDS:
                        break
    finally:
        consumer.close()
        if worker.poll() is None:
            stop_worker(worker)
        if not keep_running:
            broker.stop()
    if state.produce_error:
        log(f"the simulator stopped early: {state.produce_error}")  # type: ignore[operator]
    if worker.returncode not in (0, None):
        log(f"the worker exited with code {worker.returncode}; see {worker_log}")  # type: ignore[operator]
    return state
