"""Progress shown on the terminal (stderr) while long work runs: a rich progress bar."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class ProgressBar:
    """A sweep's progress: runs done of total, points done, failures, elapsed time and ETA."""

    def __init__(self) -> None:
        self._bar = None
        self._id = None

    def start(self, label: str, total: int, completed: int, points: str) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} runs"),
            TextColumn("{task.fields[points]}"),
            TextColumn("{task.fields[errors]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self._bar.start()
        self._id = self._bar.add_task(label, total=total, completed=completed, points=points, errors="")

    def update(self, completed: int, points: str, errors: int) -> None:
        text = f"[red]{errors} failed[/red]" if errors else ""
        self._bar.update(self._id, completed=completed, points=points, errors=text)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()


@contextmanager
def steps(label: str, unit: str) -> Iterator[Callable[[int, int], None]]:
    """A bar on stderr for work counted in steps — replications, variants — with elapsed time and an ETA
    from the steps done so far. Yields the `(done, total)` callback the analysis layer calls. Nothing is
    drawn when stderr is not a terminal (pipes, CI, tools reading --json), so output stays byte-identical."""
    if not sys.stderr.isatty():
        yield lambda done, total: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn(label),
        BarColumn(),
        TextColumn(f"{{task.completed}}/{{task.total}} {unit}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = bar.add_task(label, total=None)
    with bar:
        yield lambda done, total: bar.update(task, completed=done, total=total)
