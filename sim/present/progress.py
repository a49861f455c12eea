"""Progress shown on the terminal (stderr) while long work runs: a rich progress bar."""

from __future__ import annotations


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
