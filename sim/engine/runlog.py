"""The run log: everything a run records, as tidy pandas frames, and nothing computed from it.

`requests` holds one row per arrival of every replication (REQUEST_COLUMNS, then each stage's columns);
the other frames exist only where the scenario has what they record:
- `timeline`: the autoscaled model stage's change-points (TIMELINE_COLUMNS), from which replica-time,
  cost and utilisation are integrated;
- `llm_requests`, `llm_iterations`, `llm_token_gaps`, `llm_stages`: an LLM stage's own log — one row per
  request that reached it, per iteration, per inter-token gap, and per (replication, stage) sizing.
Every summary, plot and comparison is derived from these frames; `write` / `read` keep all of them in
parquet, so a saved run recomputes the same summary bit for bit. A `manifest.json` beside them
(sim/engine/runlog_manifest.py) lets `read` refuse a folder changed after it was written.

A run fresh from the engine keeps its LLM stages' logs as the engine left them (`llm_logs`) and makes the
llm frames from them the first time they are asked for: the summary reads the engine's arrays directly, so
a run that is only summarised never lays out millions of token-gap rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sim.engine.runlog_manifest import MANIFEST_FILE, FrameCounts, check_requests, shown, verify, write_manifest
from sim.errors import ServesimError

if TYPE_CHECKING:
    from sim.engine.llm.stage import LLMStageResult

# Columns every request row has; stages add `<stage>_ms`, `<stage>_queue_ms`, `<stage>_batch_size`, ...
REQUEST_COLUMNS = {
    "request": "index of the request in its replication (arrival order)",
    "replication": "independent replication it belongs to",
    "arrival_ms": "arrival time since the start of the replication",
    "rejected": "turned away (queue limit, LLM admission)",
    "warmup": "excluded from statistics (the run's warm-up)",
    "departure_ms": "when its response left (NaN if rejected)",
    "latency_ms": "end-to-end latency, departure - arrival",
}
TIMELINE_COLUMNS = ("replication", "stage", "time_ms", "warm", "starting", "draining", "queued", "ongoing", "busy")
LLM_KEYS = ("replication", "stage")
FORMAT_VERSION = 1
# The kind each request column must have in a log read back ("bool" or "number").
REQUEST_KINDS = {name: "bool" if name in ("rejected", "warmup") else "number" for name in REQUEST_COLUMNS}
LLM_FRAMES = ("llm_requests", "llm_iterations", "llm_token_gaps", "llm_stages")
FRAMES = ("requests", "timeline", *LLM_FRAMES)


@dataclass
class LLMStageLog:
    """One LLM stage's log in one replication as the engine left it, and the rows of the replication's
    request log that reached the stage (`index`)."""

    replication: int
    stage: str
    index: np.ndarray
    result: LLMStageResult


@dataclass
class RunLog:
    """The log of a run (one or several replications). Its llm frames are made from `llm_logs`, where
    the run has them, when first asked for (module docstring)."""

    requests: pd.DataFrame
    timeline: pd.DataFrame | None = None
    llm_requests: pd.DataFrame | None = None
    llm_iterations: pd.DataFrame | None = None
    llm_token_gaps: pd.DataFrame | None = None
    llm_stages: pd.DataFrame | None = None
    llm_logs: tuple[LLMStageLog, ...] = field(default=(), repr=False)

    @property
    def replications(self) -> np.ndarray:
        return np.unique(self.requests["replication"].to_numpy())

    @classmethod
    def concat(cls, parts: list["RunLog"]) -> "RunLog":
        """Replication logs, in replication order, as one log (the engine's LLM logs kept as they are
        where every part has them)."""
        lazy = all(part.llm_logs or not part._has_llm_frames() for part in parts)
        frames = {}
        for name in FRAMES:
            if lazy and name in LLM_FRAMES:
                continue
            present = [getattr(part, name) for part in parts if getattr(part, name) is not None]
            frames[name] = pd.concat(present, ignore_index=True) if present else None
        logs = tuple(log for part in parts for log in part.llm_logs) if lazy else ()
        return cls(**frames, llm_logs=logs)

    def _has_llm_frames(self) -> bool:
        return any(self.__dict__.get(name) is not None for name in LLM_FRAMES)

    def split(self) -> list["RunLog"]:
        """One run log per replication, in replication order (the inverse of `concat`)."""
        replication = self.requests["replication"].to_numpy()
        if len(replication) and np.all(replication[1:] >= replication[:-1]):  # concatenated in order: slices
            reps, starts = np.unique(replication, return_index=True)
            bounds = [*starts[1:], len(replication)]
            requests = [self.requests.iloc[a:b] for a, b in zip(starts, bounds)]
        else:
            reps = np.unique(replication)
            requests = [self.requests[replication == rep] for rep in reps]
        parts = []
        for rep, rows in zip(reps, requests):
            frames = {"requests": rows}
            for name in FRAMES[1:]:
                if self.llm_logs and name in LLM_FRAMES:
                    continue
                frame = getattr(self, name)
                if frame is not None:
                    frames[name] = frame[frame["replication"].to_numpy() == rep]
            logs = tuple(log for log in self.llm_logs if log.replication == rep)
            parts.append(type(self)(**frames, llm_logs=logs))
        return parts

    def frames(self, *, keep: bool = True) -> dict[str, pd.DataFrame]:
        """Every frame the log has; `keep` False: an llm frame made for the call is not kept (a writer's)."""
        out = {}
        for name in FRAMES:
            frame = getattr(self, name) if keep or name not in LLM_FRAMES else self._llm_frame(name)
            if frame is not None:
                out[name] = frame
        return out

    def _llm_frame(self, name: str) -> pd.DataFrame | None:
        """An llm frame as the log has it, or made from the engine's logs (not kept)."""
        frame = self.__dict__.get(name)
        if frame is not None or not self.llm_logs:
            return frame
        if name == "llm_stages":
            return pd.DataFrame([_sizing_row(log) for log in self.llm_logs])
        return pd.concat([_STAGE_FRAMES[name](log) for log in self.llm_logs], ignore_index=True)

    def write(self, folder: Path, *, scenario_yaml: str, run: dict) -> list[Path]:
        """Every frame as `<name>.parquet` in `folder`, the scenario as `scenario.yaml` and how it was run
        (seed, requests, replications, version) as `run.json`; returns the files written."""
        with RunLogWriter(folder) as writer:
            writer.append(self)
            return writer.finish(scenario_yaml=scenario_yaml, run=run)

    @classmethod
    def read(
        cls, folder: Path, replication: int | None = None, *, verified: bool = False
    ) -> tuple["RunLog", str, dict]:
        """A folder written by `write` -> (log, scenario YAML text, run settings); only the rows of
        `replication` when given (a writer's row groups hold one replication each: the others are skipped
        unread). The folder is checked against its manifest first (`verified`: the caller has, by
        `verify`), and the requests read are checked for what every log the engine writes meets."""
        folder = Path(folder)
        if not verified:
            cls.verify(folder)
        frames = {name: cls._read_frame(folder / f"{name}.parquet", replication) for name in FRAMES}
        check_requests(folder, frames["requests"], REQUEST_KINDS)
        try:
            run = json.loads((folder / "run.json").read_text(encoding="utf-8"))
            text = (folder / "scenario.yaml").read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:  # changed since `verify`
            raise ServesimError(
                f"run log {shown(folder)}: cannot read run.json / scenario.yaml ({type(exc).__name__})"
            ) from None
        if not isinstance(run, dict):
            raise ServesimError(f"run log {shown(folder)}: run.json is not an object")
        return cls(**{k: v for k, v in frames.items() if v is not None}), text, run

    @classmethod
    def verify(cls, folder: Path) -> dict:
        """The folder's manifest, once every file matches it (sim/engine/runlog_manifest.py); a folder
        that is not a run log, or does not match, is refused with one line naming the file."""
        folder = Path(folder)
        if not (folder / "requests.parquet").is_file() or not (folder / "run.json").is_file():
            raise ServesimError(
                f"{shown(folder)}: not a run log folder (no requests.parquet / run.json; write one with --log)"
            )
        return verify(folder, FRAMES)

    @classmethod
    def replications_in(cls, folder: Path) -> list[int]:
        """The replications a run log folder holds, in order (reads one column)."""
        frame = cls._read_frame(Path(folder) / "requests.parquet", columns=["replication"])
        if frame is None:
            raise ServesimError(f"{shown(folder)}: not a run log folder (no requests.parquet; write one with --log)")
        return [int(r) for r in np.unique(frame["replication"].to_numpy())]

    @staticmethod
    def _read_frame(path: Path, replication: int | None = None, columns: list[str] | None = None):
        """One frame (None if its file is absent): whole, or the rows of one replication, read from the row
        groups whose statistics admit it and converted without a second copy."""
        if not path.is_file():
            return None
        try:
            if replication is None:
                return pd.read_parquet(path, columns=columns)
            import pyarrow.compute as pc
            import pyarrow.parquet as pq

            source = pq.ParquetFile(path)
            column = source.schema_arrow.get_field_index("replication")
            stats = [source.metadata.row_group(i).column(column).statistics for i in range(source.num_row_groups)]
            admits = [s is None or not s.has_min_max or s.min <= replication <= s.max for s in stats]
            table = source.read_row_groups([i for i, ok in enumerate(admits) if ok], columns=columns)
            if not all(s is not None and s.has_min_max and s.min == s.max for s, ok in zip(stats, admits) if ok):
                table = table.filter(pc.equal(table["replication"], replication))
            return table.to_pandas(split_blocks=True, self_destruct=True)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a damaged file
            raise ServesimError(
                f"run log {shown(path.parent)}: {path.name}: cannot read as parquet ({type(exc).__name__})"
            ) from None


def _keys(log: LLMStageLog) -> dict:
    return {"replication": log.replication, "stage": log.stage}


# Each llm frame's rows of one stage in one replication (`request`: the row of the request in the
# replication's log).
_STAGE_FRAMES = {
    "llm_requests": lambda log: log.result.requests.assign(**_keys(log), request=log.index),
    "llm_iterations": lambda log: log.result.iterations.assign(**_keys(log)),
    "llm_token_gaps": lambda log: pd.DataFrame(
        {**_keys(log), "request": log.index[log.result.itl_request], "itl_ms": log.result.itl_ms}
    ),
}


def _sizing_row(log: LLMStageLog) -> dict:
    """The stage's row of llm_stages: its KV sizing and replicas."""
    result = log.result
    return {
        **_keys(log),
        "num_gpu_blocks": result.num_gpu_blocks,
        "block_size": result.block_size,
        "replicas": result.replicas,
        # a disaggregated stage's prefill pool (0 for a colocated stage)
        "prefill_replicas": result.prefill_replicas or 0,
        "prefill_gpu_blocks": result.prefill_gpu_blocks or 0,
    }


def _made_when_asked(name: str) -> property:
    """An llm frame of RunLog: the one given, else made from `llm_logs` on first access and kept."""

    def get(self: RunLog) -> pd.DataFrame | None:
        frame = self.__dict__.get(name)
        if frame is None and self.llm_logs:
            frame = self.__dict__[name] = self._llm_frame(name)
        return frame

    def put(self: RunLog, frame: pd.DataFrame | None) -> None:
        self.__dict__[name] = frame

    return property(get, put)


# Installed after the dataclass is made, so that its __init__ keeps None as the frames' default and assigns
# through the properties.
for _name in LLM_FRAMES:
    setattr(RunLog, _name, _made_when_asked(_name))


class RunLogWriter:
    """Writes a run log folder (as `RunLog.write`) replication by replication: each `append` adds a
    replication's frames to `<name>.parquet` as row groups, so a run can drop each log once written and
    hold one replication's at a time. `finish` adds `scenario.yaml`, `run.json` and last `manifest.json`
    (rows per replication and columns of each frame, a checksum of each file)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._writers: dict = {}
        self._paths: list[Path] = []
        self._counts: dict[str, FrameCounts] = {}

    def append(self, run: RunLog) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            self.folder.mkdir(parents=True, exist_ok=True)  # on the first write: a refused run leaves nothing
            if not self._paths:  # a log written over an older one is not valid until its own manifest
                (self.folder / MANIFEST_FILE).unlink(missing_ok=True)
            for name, frame in run.frames(keep=False).items():
                table = pa.Table.from_pandas(frame, preserve_index=False)
                writer = self._writers.get(name)
                if writer is None:
                    path = self.folder / f"{name}.parquet"
                    writer = self._writers[name] = pq.ParquetWriter(path, table.schema)
                    self._paths.append(path)
                    self._counts[name] = FrameCounts(table.schema)
                elif table.schema != writer.schema:  # e.g. an all-NaN column typed otherwise in one replication
                    try:
                        table = table.cast(writer.schema)
                    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
                        raise ServesimError(
                            f"--log: {name}: replication {run.replications[0]} has columns {table.schema.names} "
                            f"typed otherwise than the first ({writer.schema.names})"
                        ) from None
                writer.write_table(table)
                self._counts[name].add(frame)
        except OSError as exc:
            raise self._error(exc) from None

    def finish(self, *, scenario_yaml: str, run: dict) -> list[Path]:
        """Close the frames' files and write the scenario, the run's settings and the manifest of them all;
        the files written."""
        self.close()
        files = [*self._paths, self.folder / "scenario.yaml", self.folder / "run.json"]
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / MANIFEST_FILE).unlink(missing_ok=True)
            (self.folder / "scenario.yaml").write_text(scenario_yaml, encoding="utf-8")
            (self.folder / "run.json").write_text(
                json.dumps({"format": FORMAT_VERSION, **run}, indent=2) + "\n", encoding="utf-8"
            )
            for name in FRAMES:  # a frame an earlier log left in this folder is not this run's
                if name not in self._counts:
                    (self.folder / f"{name}.parquet").unlink(missing_ok=True)
            manifest = write_manifest(self.folder, self._counts, files, FORMAT_VERSION)
        except OSError as exc:
            raise self._error(exc) from None
        return [*files, manifest]

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    def __enter__(self) -> "RunLogWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _error(self, exc: OSError) -> ServesimError:
        return ServesimError(f"--log: cannot write the run log to {self.folder}: {exc.strerror or exc}")
