"""Sweeps: a base scenario × axes over its fields × replications, run on any executor, resumable.

    sweep = load_sweep("sweeps/mm3-load.yaml")
    result = run_sweep(sweep, "out/mm3-load", executor="processes")
    result.points          # one row per point: metric means and 95% CIs
    result.replications    # one row per point × replication

Each replication of each point is one pure task keyed (point id, replication); its seeds come from the
point (the scenario seed by default), never from the worker, so every executor gives identical tables.
Finished tasks are appended to the output as they land; running the same sweep again skips them.

The local pool starts its workers from a fork server, so a script that calls `run_sweep` with it must
keep its top-level code under `if __name__ == "__main__":` (as for any multiprocessing program).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from sim.analysis.sweep.executors import Executor, make_executor
from sim.analysis.sweep.spec import Sweep, SweepError, SweepPoint, SweepSpec, load_sweep, parse_sweep
from sim.analysis.sweep.store import ResultStore, ok_keys, points_table, replications_table
from sim.analysis.sweep.task import Task, task_key

__all__ = [
    "Sweep", "SweepError", "SweepPoint", "SweepResult", "SweepSpec", "load_sweep", "parse_sweep",
    "plan_tasks", "run_sweep",
]  # fmt: skip


@dataclass
class SweepResult:
    """A finished (or resumed) sweep: its tables, where they were written, and what this run did."""

    sweep: Sweep
    out_dir: Path
    replications: pd.DataFrame
    points: pd.DataFrame
    ran: int  # tasks run by this call
    skipped: int  # tasks found finished by an earlier call
    elapsed_s: float
    executor: str
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def failed_points(self) -> pd.DataFrame:
        return self.points[self.points["status"] != "ok"]


def plan_tasks(sweep: Sweep, points: list[SweepPoint] | None = None) -> list[Task]:
    """Every (point, replication) task of the sweep, once each (identical points share their tasks)."""
    points = sweep.points() if points is None else points
    tasks: dict[str, Task] = {}
    for point in points:
        if point.error is not None:
            continue
        for rep in range(sweep.replications):
            key = task_key(point.point_id, rep)
            tasks.setdefault(
                key,
                Task(
                    key=key,
                    point_id=point.point_id,
                    replication=rep,
                    seed=point.seed,
                    requests=sweep.spec.requests,
                    raw=point.raw,
                    base_dir=str(sweep.base_dir),
                    metrics=tuple(sweep.spec.metrics),
                ),
            )
    return list(tasks.values())


def run_sweep(
    sweep: Sweep,
    out_dir: str | Path,
    *,
    executor: str | Executor = "auto",
    workers: int | None = None,
    scheduler: str | None = None,
    dask_local: int | None = None,
    fresh: bool = False,
    progress: bool = False,
    plots: bool = True,
    on_record: Callable[[dict], None] | None = None,
) -> SweepResult:
    """Run the sweep's unfinished tasks, appending each record to `out_dir` as it lands, then write the
    tables (and plots). `fresh` forgets earlier results first. `on_record` sees each new record."""
    started = time.perf_counter()
    store = ResultStore(out_dir)
    if fresh:
        store.clear()
    points = sweep.points()
    tasks = plan_tasks(sweep, points)
    done = ok_keys(store.load())
    todo = [task for task in tasks if task.key not in done]
    if not isinstance(executor, str):
        runner = executor
    else:
        runner = make_executor(executor, workers=workers, scheduler=scheduler, dask_local=dask_local, task_count=len(todo))
    store.write_manifest(sweep, points)

    tracker = _Progress(sweep, points, tasks, done, enabled=progress, executor=runner.name)

    def land(record: dict) -> None:
        store.append(record)
        tracker.advance(record)
        if on_record is not None:
            on_record(record)

    try:
        with tracker:
            runner.run(todo, land)
    finally:
        store.close()

    replications = replications_table(sweep, points, store.load())
    table = points_table(sweep, points, replications)
    files = store.write_tables(replications, table)
    if plots:
        from sim.present.sweep_plots import write_plots

        files.update(write_plots(sweep, table, Path(out_dir) / "plots"))
    return SweepResult(
        sweep=sweep,
        out_dir=Path(out_dir),
        replications=replications,
        points=table,
        ran=tracker.ran,
        skipped=len(tasks) - len(todo),
        elapsed_s=time.perf_counter() - started,
        executor=runner.name,
        files=files,
    )


class _Progress:
    """A rich progress bar on stderr: replications and points done of total, errors, ETA."""

    def __init__(self, sweep: Sweep, points: list[SweepPoint], tasks: list[Task], done: set[str], *, enabled: bool, executor: str):
        self.ran = 0
        self.errors = 0
        self._enabled = enabled
        self._left_by_point: dict[str, int] = {}
        for task in tasks:
            if task.key not in done:
                self._left_by_point[task.point_id] = self._left_by_point.get(task.point_id, 0) + 1
        valid = [p for p in points if p.error is None]
        self._points_total = len({p.point_id for p in valid})
        self._points_done = self._points_total - len(self._left_by_point)
        self._tasks_total = len(tasks)
        self._tasks_done = len(tasks) - sum(self._left_by_point.values())
        self._label = f"sweep {sweep.name} ({executor})"
        self._bar = None

    def __enter__(self) -> "_Progress":
        if self._enabled:
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
            self._id = self._bar.add_task(
                self._label, total=self._tasks_total, completed=self._tasks_done, points=self._points_text(), errors=""
            )
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()

    def advance(self, record: dict) -> None:
        self.ran += 1
        if record.get("status") != "ok":
            self.errors += 1
        left = self._left_by_point.get(record["point_id"], 0) - 1
        self._left_by_point[record["point_id"]] = left
        if left == 0:
            self._points_done += 1
        if self._bar is not None:
            errors = f"[red]{self.errors} failed[/red]" if self.errors else ""
            self._bar.update(self._id, advance=1, points=self._points_text(), errors=errors)

    def _points_text(self) -> str:
        return f"points {self._points_done}/{self._points_total}"
