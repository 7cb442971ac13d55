"""``yujing publish``: contract JSONL files onto the input topics, in event-time order."""

from __future__ import annotations

from pathlib import Path

import typer

from yujing.cli.output import console, err, fail
from yujing.settings import get_settings


def publish_command(
    events: Path = typer.Option(..., "--events", help="Directory with contract JSONL files."),
) -> None:
    """Publish contract JSONL files to the input topics in event-time order (a replay)."""
    from rich.progress import Progress

    from engine.replay import EventFilesError
    from streams.clients import KafkaUnavailable, publish_files

    settings = get_settings()
    try:
        with Progress(console=err, transient=True) as progress:
            task = progress.add_task("publishing", total=None)
            counts = publish_files(events, settings, on_record=lambda: progress.advance(task))
    except (EventFilesError, KafkaUnavailable) as exc:
        fail(str(exc))
    console.print(", ".join(f"{topic}: {n:,}" for topic, n in counts.items()))
