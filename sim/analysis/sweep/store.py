"""Where a sweep's results live, and how they survive an interruption.

Every finished task is appended to `tasks.jsonl` (one JSON record a line, flushed as it lands) by the one
process that drives the sweep; a re-run reads it back and skips tasks already done. A line cut short by a
kill is ignored (its task simply runs again); a task recorded twice counts once. At the end the records
are compacted into the tidy tables: `replications.{parquet,csv}` (one row per point × replication) and
`points.{parquet,csv}` (one row per point, each metric's mean over replications with its 95% CI).

A store is written by one sweep at a time: `ResultStore` takes an exclusive lock (`flock` on LOCK_FILE in
the folder) for as long as it lives, so a second sweep on the same folder is refused by name at once,
before it reads or writes anything, rather than interleaving its records and tables with the first's.
The kernel drops the lock when its holder ends, however it ends (a kill included), so a resumed sweep
is never locked out by a dead one.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.analysis.sweep.spec import Sweep, SweepPoint
from sim.analysis.sweep.task import task_key
from sim.errors import ServesimError

TASKS_FILE = "tasks.jsonl"
LOCK_FILE = ".sweep.lock"
OUTPUT_FILES = (
    TASKS_FILE, "sweep.json", "replications.parquet", "replications.csv", "points.parquet", "points.csv",
)  # fmt: skip


class ResultStore:
    """The append-only record of finished tasks in `out_dir`, plus the compacted tables beside it; held
    exclusively from construction to `release` (or the end of the object, or of the process)."""

    def __init__(self, out_dir: str | Path):
        self.out_dir = Path(out_dir)
        self.tasks_path = self.out_dir / TASKS_FILE
        self._handle = None
        self._lock_fd: int | None = None
        self._lock()

    def _lock(self) -> None:
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.out_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ServesimError(
                f"--out {self.out_dir}: cannot create the sweep store ({exc.strerror or exc})"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ServesimError(
                f"--out {self.out_dir}: another sweep is writing to this store now (it holds {LOCK_FILE}); "
                "wait for it to finish, or give this one another --out"
            ) from None
        self._lock_fd = fd

    def release(self) -> None:
        """Let another sweep write to the store."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the only descriptor of the open file drops its flock
            self._lock_fd = None

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
        self.release()

    def __del__(self) -> None:
        self.release()

    def clear(self) -> None:
        """Forget earlier results (the files this store writes; nothing else in the folder)."""
        for name in OUTPUT_FILES:
            (self.out_dir / name).unlink(missing_ok=True)
        plots = self.out_dir / "plots"
        if plots.is_dir():
            for png in plots.glob("*.png"):
                png.unlink()

    def load(self) -> dict[str, dict]:
        """Task key -> its latest record; a successful record is never replaced by a later failure."""
        records: dict[str, dict] = {}
        if not self.tasks_path.is_file():
            return records
        with self.tasks_path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a kill: that task runs again
                if not isinstance(record, dict) or "key" not in record:
                    continue
                previous = records.get(record["key"])
                if previous is None or previous.get("status") != "ok":
                    records[record["key"]] = record
        return records

    def append(self, record: dict) -> None:
        if self._handle is None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            cut_short = False
            if self.tasks_path.is_file() and self.tasks_path.stat().st_size > 0:
                with self.tasks_path.open("rb") as existing:
                    existing.seek(-1, os.SEEK_END)
                    cut_short = existing.read(1) != b"\n"
            self._handle = self.tasks_path.open("a", encoding="utf-8")
            if cut_short:
                self._handle.write("\n")  # end the line a kill cut short, so the next record stands alone
        self._handle.write(json.dumps(record) + "\n")
        self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None

    def write_manifest(self, sweep: Sweep, points: list[SweepPoint]) -> None:
        manifest = {
            "sweep": sweep.spec.model_dump(mode="json", by_alias=True),
            "source": sweep.source,
            "base_scenario": sweep.base.raw,
            "replications": sweep.replications,
            "seed": sweep.seed,
            "points": [{"point": p.index, "point_id": p.point_id, "values": p.values, "seed": p.seed} for p in points],
        }
        self.out_dir.mkdir(parents=True, exist_ok=True)
        _atomic_write_text(self.out_dir / "sweep.json", json.dumps(manifest, indent=1, default=str))

    def write_tables(self, replications: pd.DataFrame, points: pd.DataFrame) -> dict[str, Path]:
        paths = {}
        for name, table in (("replications", replications), ("points", points)):
            for suffix in ("parquet", "csv"):
                path = self.out_dir / f"{name}.{suffix}"
                tmp = path.with_name(path.name + ".tmp")
                if suffix == "parquet":
                    table.to_parquet(tmp, index=False)
                else:
                    table.to_csv(tmp, index=False)
                os.replace(tmp, path)
                paths[f"{name}.{suffix}"] = path
        return paths


def replications_table(sweep: Sweep, points: list[SweepPoint], records: dict[str, dict]) -> pd.DataFrame:
    """One row per point × replication: axis values, status, error and the kept metrics."""
    metrics = list(sweep.spec.metrics)
    rows = []
    for point in points:
        for rep in range(sweep.replications):
            row: dict[str, Any] = {"point": point.index, "point_id": point.point_id, **_axis_cells(point)}
            row.update(replication=rep, seed=point.seed)
            record = records.get(task_key(point.point_id, rep)) if point.error is None else None
            if point.error is not None:
                row.update(status="error", error=point.error)
            elif record is None:
                row.update(status="missing", error="not run (interrupted?)")
            else:
                row.update(status=record["status"], error=record.get("error"))
            for metric in metrics:
                value = record.get(metric) if record is not None and record["status"] == "ok" else None
                row[metric] = math.nan if value is None else float(value)
            row["elapsed_s"] = float(record["elapsed_s"]) if record is not None and "elapsed_s" in record else math.nan
            rows.append(row)
    return _tidy(pd.DataFrame(rows), sweep)


def points_table(sweep: Sweep, points: list[SweepPoint], replications: pd.DataFrame) -> pd.DataFrame:
    """One row per point: each metric's mean over successful replications and its Student-t 95% CI, as
    `servesim run` reports them (a percentile's mean over replications, not a pooled percentile)."""
    from sim.metrics.summary import ci95

    metrics = list(sweep.spec.metrics)
    rows = []
    by_point = {pid: group for pid, group in replications.groupby("point", sort=True)}
    for point in points:
        group = by_point[point.index]
        ok = group[group["status"] == "ok"]
        errors = group.loc[group["status"] != "ok", "error"].dropna()
        status = "ok" if len(ok) == len(group) else ("error" if len(ok) == 0 else "partial")
        row: dict[str, Any] = {"point": point.index, "point_id": point.point_id, **_axis_cells(point)}
        row.update(
            seed=point.seed,
            offered_load=point.offered_load,
            replications=len(ok),
            status=status,
            error=errors.iloc[0] if len(errors) else None,
        )
        for metric in metrics:
            values = ok[metric].to_numpy(dtype=float)
            finite = values[np.isfinite(values)]
            row[metric] = float(finite.mean()) if len(finite) else math.nan
            row[f"{metric}.ci_low"], row[f"{metric}.ci_high"] = ci95(values)
        rows.append(row)
    return _tidy(pd.DataFrame(rows), sweep)


def _axis_cells(point: SweepPoint) -> dict[str, Any]:
    """Axis values as table cells: scalars stay, structured values (a whole batching block) become JSON."""
    return {
        path: value
        if value is None or isinstance(value, (bool, int, float, str))
        else json.dumps(value, sort_keys=True)
        for path, value in point.values.items()
    }


def _tidy(table: pd.DataFrame, sweep: Sweep) -> pd.DataFrame:
    """Parquet needs one type a column: an axis mixing numbers and words is written as words."""
    for path in sweep.axis_paths:
        if path in table and table[path].dtype == object:
            kinds = {type(v) for v in table[path] if v is not None}
            if len(kinds) > 1 and not kinds <= {int, float}:
                table[path] = table[path].map(lambda v: None if v is None else str(v))
    return table


def ok_keys(records: dict[str, dict]) -> set[str]:
    return {key for key, record in records.items() if record.get("status") == "ok"}


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
