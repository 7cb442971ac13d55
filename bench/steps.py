"""How the bench tells what it is doing: a line per step and a progress bar for long work (rich),
or nothing at all (tests, ``--json`` pipelines)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

    from rich.progress import Progress


class Steps:
    """``say`` a line; ``bar`` a task whose completion the caller updates."""

    def __init__(self, progress: Progress | None = None, say: Callable[[str], None] | None = None) -> None:
        self.progress = progress
        self._say = say

    def say(self, message: str) -> None:
        if self._say is not None:
            self._say(message)

    @contextmanager
    def bar(self, description: str, total: float | None = None) -> Iterator[Callable[[float], None]]:
        """A bar for the ``with`` block; the callable sets how much of ``total`` is done."""
        if self.progress is None:
            yield lambda _done: None
            return
        task = self.progress.add_task(description, total=total)
        try:
            yield lambda done: self.progress.update(task, completed=done) if self.progress else None
        finally:
            self.progress.remove_task(task)
