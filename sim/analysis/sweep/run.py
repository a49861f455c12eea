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
from typing import Callable, Protocol

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
    progress: "ProgressDisplay | None" = None,
    on_record: Callable[[dict], None] | None = None,
    store: ResultStore | None = None,
) -> SweepResult:
    """Run the sweep's unfinished tasks, appending each record to `out_dir` as it lands, then write the
    tables. `fresh` forgets earlier results first. `on_record` sees each new record; `progress` (e.g.
    sim/present/progress.py's bar) is told the counts as they change. `store`: a store the caller holds
    (locked) for longer, e.g. while it draws the plots; else one is held for the run."""
    started = time.perf_counter()
    store = store if store is not None else ResultStore(out_dir)
    if fresh:
        store.clear()
    points = sweep.points()
    tasks = plan_tasks(sweep, points)
    done = ok_keys(store.load())
    todo = [task for task in tasks if task.key not in done]
    if not isinstance(executor, str):
        runner = executor
    else:
        runner = make_executor(
            executor, workers=workers, scheduler=scheduler, dask_local=dask_local, task_count=len(todo)
        )
    store.write_manifest(sweep, points)

    tracker = _Progress(sweep, points, tasks, done, display=progress, executor=runner.name)

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


class ProgressDisplay(Protocol):
    """What shows a sweep's progress: started with the totals, updated after each record, stopped."""

    def start(self, label: str, total: int, completed: int, points: str) -> None: ...

    def update(self, completed: int, points: str, errors: int) -> None: ...

    def stop(self) -> None: ...


class _Progress:
    """Counts of a sweep in flight: replications and points done of total, errors."""

    def __init__(
        self,
        sweep: Sweep,
        points: list[SweepPoint],
        tasks: list[Task],
        done: set[str],
        *,
        display: ProgressDisplay | None,
        executor: str,
    ):
        self.ran = 0
        self.errors = 0
        self._display = display
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

    def __enter__(self) -> "_Progress":
        if self._display is not None:
            self._display.start(self._label, self._tasks_total, self._tasks_done, self._points_text())
        return self

    def __exit__(self, *exc) -> None:
        if self._display is not None:
            self._display.stop()

    def advance(self, record: dict) -> None:
        self.ran += 1
        self._tasks_done += 1
        if record.get("status") != "ok":
            self.errors += 1
        left = self._left_by_point.get(record["point_id"], 0) - 1
        self._left_by_point[record["point_id"]] = left
        if left == 0:
            self._points_done += 1
        if self._display is not None:
            self._display.update(self._tasks_done, self._points_text(), self.errors)

    def _points_text(self) -> str:
        return f"points {self._points_done}/{self._points_total}"
