"""Re-predict saved `make fidelity` runs offline, and say which part of a miss is wrong.

`python -m calibrate.fidelity --predict-only DIR [DIR ...]` reads each DIR/fidelity.json (the measured
percentiles and every calibration sample; per-request logs under DIR/requests/ where the run saved them)
and predicts every cell again with the current model, from the cell's calibration only:

- **isolated**: the kernel costs as calibrated just before the cell, alone (the model `make fidelity` uses);
- **in-situ mean** (a diagnostic, uses the cell's serving data): the same with the service times scaled so
  the simulated mean service equals the one the server logged under load (fifo1, shared2); for dynamic1
  without a per-batch log, the scale at which the simulated mean batch size equals the measured one;
- **in-situ replay** (a diagnostic): the logged service sequence replayed in order (needs per-request
  logs; for fifo1 the replay the live run itself computed, marked "saved", where the logs are absent);
- **co-load**: the isolated calibration slowed by the kernel's slowdown under the serving path's co-load
  (client, reply path, siblings): the factor the cell's own co-load calibration measured where the run has
  one, else learned *leave-one-cell-out*: the median in-situ slowdown (in-situ mean over the calibrated mean)
  of the other cells of the same configuration (the same things run beside the kernel), in every DIR
  given. No serving data of the predicted cell enters its co-load prediction;
- **drift band**: the co-load prediction made again with the kernel scaled by the host's drift (the next
  calibration of the same server over this one, calibrate/fidelity_drift.py), and the measurement judged
  against the band between the two (error 0 inside it); the point where the run has no later calibration.

Where the in-situ mean closes a miss, the service time was wrong (the calibration did not see the load);
where only the replay closes it, the queueing model was (correlated, drifting service times); where
neither does, something outside both (transport, the client) is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from calibrate.fidelity_drift import drift_ratios, judge_band
from calibrate.fidelity_scenarios import simulate_cell, under_load
from sim.errors import DataFileError
from sim.spec.datafiles import shown

MAX_RUN_BYTES = 64 * 1024 * 1024
MODELS = ("isolated", "in_situ_mean", "in_situ_replay", "co_load", "drift_band")


# --------------------------------------------------------------------------- the saved run, validated
class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=True)


class SavedRow(_Model):
    percentile: Literal["p50", "p95", "p99"]
    in_situ_replay_ms: float | None = Field(default=None, gt=0)


class SavedCell(_Model):
    config: Literal["fifo1", "shared2", "dynamic1"]
    utilisation: float = Field(gt=0, lt=1)
    rate_rps: float = Field(gt=0)
    measured: list[dict[Literal["p50", "p95", "p99"], float]] = Field(min_length=1)
    table: list[SavedRow] = Field(default_factory=list)
    service_ms_mean_in_situ: float | None = Field(default=None, gt=0)
    mean_batch_size_measured: list[float] | None = None
    co_load_factor: float | None = Field(default=None, gt=0)
    request_logs: list[str] | None = None

    @model_validator(mode="after")
    def _percentiles(self) -> "SavedCell":
        for run in self.measured:
            if set(run) != {"p50", "p95", "p99"} or min(run.values()) <= 0:
                raise ValueError("each run needs p50, p95 and p99 in ms (> 0)")
        return self


class SavedCalibration(_Model):
    transport_ms: list[float] = Field(min_length=1)
    service_ms: list[float] | None = Field(default=None, min_length=1)
    service_busy_ms: list[float] | None = Field(default=None, min_length=1)
    batch_ms: dict[int, list[float]] | None = None
    overshoot_ms: list[float] | None = Field(default=None, min_length=1)
    max_batch_size: int | None = Field(default=None, ge=1)
    max_queue_delay_ms: float | None = Field(default=None, ge=0)
    # the kernel's busy times (and batch sizes) in order, served at the cell's rate just before its runs
    co_load_busy_ms: list[float] | None = Field(default=None, min_length=1)
    co_load_batch_size: list[int] | None = Field(default=None, min_length=1)
    # the serving path around the server in that phase, per request that found a worker idle (ms)
    co_load_path_ms: list[Annotated[float, Field(ge=0)]] | None = Field(default=None, min_length=1)
    # taken after a configuration's last cell (the live harness since issue 25), for its drift band
    after: "SavedCalibration | None" = None

    @model_validator(mode="after")
    def _co_load_aligned(self) -> "SavedCalibration":
        if (self.co_load_busy_ms is None) != (self.co_load_batch_size is None) or (
            self.co_load_busy_ms is not None and len(self.co_load_busy_ms) != len(self.co_load_batch_size)
        ):
            raise ValueError("co_load_busy_ms and co_load_batch_size need one entry per batch each")
        return self


class SavedRun(_Model):
    requests_per_run: int = Field(ge=100)
    runs: int = Field(ge=1)
    machine: str = ""
    cells: list[SavedCell] = Field(min_length=1)
    calibration_samples: list[SavedCalibration]

    @model_validator(mode="after")
    def _aligned(self) -> "SavedRun":
        if len(self.calibration_samples) != len(self.cells):
            raise ValueError("calibration_samples needs one entry per cell")
        needed = {
            "fifo1": ("service_ms",),
            "shared2": ("service_ms", "service_busy_ms"),
            "dynamic1": ("batch_ms", "overshoot_ms", "max_batch_size", "max_queue_delay_ms"),
        }
        for k, (cell, calibration) in enumerate(zip(self.cells, self.calibration_samples)):
            missing = [f for f in needed[cell.config] if getattr(calibration, f) is None]
            if missing:
                raise ValueError(f"calibration_samples.{k}: a {cell.config} cell needs {', '.join(missing)}")
        return self


def load_saved_run(directory: str | Path) -> SavedRun:
    """DIR/fidelity.json, validated; a one-line DataFileError naming the file and the field otherwise."""
    path = Path(directory) / "fidelity.json"
    where = f"saved fidelity run {shown(path)}"
    if not path.is_file():
        raise DataFileError(f"{where}: not found (give the folder `make fidelity --out` wrote)")
    if path.stat().st_size > MAX_RUN_BYTES:
        raise DataFileError(f"{where}: larger than {MAX_RUN_BYTES // 2**20} MiB")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise DataFileError(f"{where}: not valid JSON") from None
    try:
        return SavedRun.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise DataFileError(f"{where}: {field}: {first['msg']}") from None


def calibration_arrays(calibration: SavedCalibration) -> dict[str, Any]:
    """A saved calibration as `scenario_for` takes it (arrays; batch sizes as ints)."""
    out: dict[str, Any] = {}
    for name in ("transport_ms", "service_ms", "service_busy_ms", "overshoot_ms", "co_load_busy_ms", "co_load_path_ms"):
        values = getattr(calibration, name)
        if values is not None:
            out[name] = np.asarray(values, dtype=float)
    if calibration.co_load_batch_size is not None:
        out["co_load_batch_size"] = np.asarray(calibration.co_load_batch_size, dtype=int)
    if calibration.batch_ms is not None:
        out["batch_ms"] = {int(b): np.asarray(v, dtype=float) for b, v in sorted(calibration.batch_ms.items())}
        out["max_batch_size"] = calibration.max_batch_size
        out["max_queue_delay_ms"] = calibration.max_queue_delay_ms
    return out


# --------------------------------------------------------------------------- per-request logs
def read_request_logs(directory: Path, cell: SavedCell):
    """The cell's per-request logs (DataFrames, one per run), or None where the run saved none."""
    import pandas as pd

    if not cell.request_logs:
        return None
    frames = []
    for name in cell.request_logs:
        relative = Path(name)
        if relative.is_absolute() or ".." in relative.parts:
            raise DataFileError(
                f"saved fidelity run {shown(directory / 'fidelity.json')}: request_logs: a path inside the run's folder"
            )
        path = directory / relative
        if not path.is_file():
            raise DataFileError(f"request log {shown(path)}: not found")
        frame = pd.read_csv(path)
        missing = [
            c for c in ("service_start_ms", "service_end_ms", "busy_ms", "batch_id", "batch_size") if c not in frame
        ]
        if missing:
            raise DataFileError(f"request log {shown(path)}: missing column(s) {', '.join(missing)}")
        frames.append(frame)
    return frames


def in_situ_sequence(frames) -> tuple[np.ndarray, np.ndarray]:
    """(busy ms per batch, batch size) in the order batches started, over the runs of a cell."""
    busy, size = [], []
    for frame in frames:
        batches = frame.drop_duplicates("batch_id").sort_values("service_start_ms")
        busy.append(batches["busy_ms"].to_numpy(dtype=float))
        size.append(batches["batch_size"].to_numpy(dtype=int))
    return np.concatenate(busy), np.concatenate(size)


def cycle_beyond_busy(frames) -> dict | None:
    """How much longer a worker took per request than its logged busy time when it served back to back
    (the next request sent before it finished): its end-to-end interval minus the next busy time, i.e.
    time the worker lost outside what it logs (taking the request off its queue, waiting for a CPU the
    client holds). A queue sees this as service time; the in-situ mean does not. None without such pairs."""
    loss, busy = [], []
    for frame in frames:
        first_sent = frame.groupby("batch_id")["sent_ms"].min()
        batches = frame.drop_duplicates("batch_id").set_index("batch_id")
        batches = batches.assign(first_sent_ms=first_sent).sort_values(["worker", "service_start_ms"])
        for _, worker in batches.groupby("worker"):
            end = worker["service_end_ms"].to_numpy(dtype=float)
            nxt_busy = worker["busy_ms"].to_numpy(dtype=float)[1:]
            waiting = worker["first_sent_ms"].to_numpy(dtype=float)[1:] < end[:-1]
            loss.append((np.diff(end) - nxt_busy)[waiting])
            busy.append(nxt_busy[waiting])
    if not loss or not sum(len(x) for x in loss):
        return None
    loss_ms, busy_ms = np.concatenate(loss), np.concatenate(busy)
    return {"mean_ms": float(loss_ms.mean()), "pairs": len(loss_ms), "busy_mean_ms": float(busy_ms.mean())}


# --------------------------------------------------------------------------- predictions
def _simulate(config: str, calibration: dict, cell: SavedCell, requests: int, factor: float = 1.0, replay=None):
    return simulate_cell(config, calibration, cell.rate_rps, requests, factor, replay)


def _median_at(calibration: dict, sizes: np.ndarray) -> np.ndarray:
    medians = {b: float(np.median(v)) for b, v in calibration["batch_ms"].items()}
    return np.array([medians[int(s)] for s in sizes])


def replay_values(config: str, calibration: dict, busy: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, float]:
    """(the sequence to replay, the factor to scale the calibration by): the busy times themselves for one
    request per batch; for dynamic1 each batch's busy time over the calibrated median at its size, the
    calibration scaled by their median (the replay is relative to its sequence's median)."""
    if config != "dynamic1":
        return busy, 1.0
    relative = busy / _median_at(calibration, sizes)
    return relative, float(np.median(relative))


def slowdown(config: str, calibration: dict, busy: np.ndarray, sizes: np.ndarray, base: dict) -> float:
    """How much slower the kernel ran in a logged busy sequence than calibrated: its mean over the mean the
    isolated prediction `base` simulated (one request per batch), or (dynamic1) over the calibrated means
    at the sizes the batches had."""
    if config == "dynamic1":
        means = {b: float(np.mean(v)) for b, v in calibration["batch_ms"].items()}
        return float(np.sum(busy) / sum(means[int(s)] for s in sizes))
    return float(np.mean(busy)) / base["mean_service_ms"]


def in_situ_factor(
    config: str, calibration: dict, cell: SavedCell, requests: int, base: dict, logs
) -> tuple[float | None, str]:
    """The kernel's slowdown in situ against its calibration (the in-situ mean over the simulated one),
    and where it comes from; None where the run carries no in-situ data for it."""
    if logs is not None:
        busy, sizes = in_situ_sequence(logs)
        return slowdown(config, calibration, busy, sizes, base), "per-request log"
    if config in ("fifo1", "shared2") and cell.service_ms_mean_in_situ is not None:
        return cell.service_ms_mean_in_situ / base["mean_service_ms"], "in-situ service mean"
    if config == "dynamic1" and cell.mean_batch_size_measured:
        return _factor_for_batch_size(calibration, cell, requests, base), "measured mean batch size"
    return None, "no in-situ data"


def _factor_for_batch_size(calibration: dict, cell: SavedCell, requests: int, base: dict) -> float:
    """The kernel scale at which the simulated mean batch size is the measured one (secant steps from the
    calibration as it is; a slower kernel lets more requests queue behind each batch)."""
    target = float(np.mean(cell.mean_batch_size_measured))
    f0, b0 = 1.0, base["mean_batch_size"]
    f1 = float(np.clip(target / b0, 0.5, 2.0))
    for _ in range(4):
        if abs(f1 - f0) < 1e-3:
            break
        b1 = _simulate("dynamic1", calibration, cell, requests, f1)["mean_batch_size"]
        if abs(b1 - target) < 0.01 or b1 == b0:
            break
        f0, b0, f1 = f1, b1, float(np.clip(f1 + (target - b1) * (f1 - f0) / (b1 - b0), 0.5, 2.0))
    return f1


def drift_after(cells: list[dict]) -> list[float | None]:
    """Per cell, the next calibration of the same server (the next cell of its configuration, or the one
    taken after its last cell where the run saved it) over this one's: how far the host's speed moved
    while the cell was served (calibrate/fidelity_drift.py)."""
    return drift_ratios(
        [e["cell"].config for e in cells],
        [e["calibration"] for e in cells],
        [e.get("calibration_after") for e in cells],
    )


def band_rows(rows: list[dict], near: dict, far: dict | None) -> None:
    """Add to each row the co-load prediction's host-drift band: from `near` (the calibration as taken) to
    `far` (scaled by the next calibration's level; None where there is none: the band is the point)."""
    for row in rows:
        key = row["percentile"]
        ends = (near[key]["ms"], (far or near)[key]["ms"])
        row["drift_band"] = {**judge_band(row["measured_runs_ms"], *ends, key), "point": far is None}


def _rows(cell: SavedCell, predictions: dict[str, dict | None]) -> list[dict]:
    from calibrate.fidelity_report import chance, judge

    rows = []
    for key in ("p50", "p95", "p99"):
        runs_ms = [run[key] for run in cell.measured]
        row: dict[str, Any] = {"percentile": key, "measured_runs_ms": runs_ms}
        for model, predicted in predictions.items():
            if predicted is None:
                continue
            verdict = judge(runs_ms, predicted[key]["ms"], key)
            row.setdefault("measured_mean_ms", verdict["measured_mean_ms"])
            row.setdefault("noise_pct", verdict["noise_pct"])
            row[model] = {"ms": predicted[key]["ms"], "error_pct": verdict["error_pct"], "verdict": verdict["verdict"]}
            if model == "isolated":  # chance alone; the isolated verdict at the top level, as live rows have it
                row.update(chance(runs_ms, predicted[key]["run_sd_pct"]), verdict=verdict["verdict"])
        saved = next((r for r in cell.table if r.percentile == key), None)
        if "in_situ_replay" not in row and saved is not None and saved.in_situ_replay_ms is not None:
            mean = row["measured_mean_ms"]
            error = 100 * (saved.in_situ_replay_ms - mean) / mean
            row["in_situ_replay"] = {"ms": saved.in_situ_replay_ms, "error_pct": error, "saved": True}
        rows.append(row)
    return rows


def repredict(directories: list[str | Path], requests: int | None = None) -> list[dict]:
    """Every cell of every saved run predicted again (see the module doc): one dict per run."""
    runs = []
    for directory in directories:
        directory = Path(directory)
        saved = load_saved_run(directory)
        cells = []
        for cell, samples in zip(saved.cells, saved.calibration_samples):
            calibration = calibration_arrays(samples)
            n = requests or saved.requests_per_run
            logs = read_request_logs(directory, cell)
            base = _simulate(cell.config, calibration, cell, n)
            factor, source = in_situ_factor(cell.config, calibration, cell, n, base, logs)
            entry = {"cell": cell, "calibration": calibration, "requests": n, "logs": logs, "isolated": base}
            if samples.after is not None:
                entry["calibration_after"] = calibration_arrays(samples.after)
            entry.update(in_situ_factor=factor, in_situ_source=source)
            cells.append(entry)
        runs.append({"directory": directory, "saved": saved, "cells": cells})
    _co_load_factors(runs)
    out = []
    for run in runs:
        cells = []
        for entry, drift in zip(run["cells"], drift_after(run["cells"])):
            cell, calibration, n = entry["cell"], entry["calibration"], entry["requests"]
            predictions: dict[str, dict | None] = {"isolated": entry["isolated"]}
            factor = entry["in_situ_factor"]
            predictions["in_situ_mean"] = (
                None if factor is None else _simulate(cell.config, calibration, cell, n, factor)
            )
            predictions["in_situ_replay"] = None
            if entry["logs"] is not None:
                busy, sizes = in_situ_sequence(entry["logs"])
                sequence, level = replay_values(cell.config, calibration, busy, sizes)
                predictions["in_situ_replay"] = _simulate(cell.config, calibration, cell, n, level, sequence)
            co_load = entry["co_load_factor"]
            loaded = under_load(calibration)  # the serving path as the co-load phase saw it, where it did
            predictions["co_load"] = _simulate(cell.config, loaded, cell, n, co_load)
            if "co_load_busy_ms" in calibration:  # the co-load phase's busy sequence, in order
                sequence, level = replay_values(
                    cell.config, calibration, calibration["co_load_busy_ms"], calibration["co_load_batch_size"]
                )
                predictions["co_load_replay"] = _simulate(cell.config, loaded, cell, n, level, sequence)
            far = None if drift is None else _simulate(cell.config, loaded, cell, n, co_load * drift)
            rows = _rows(cell, predictions)
            band_rows(rows, predictions["co_load"], far)
            cells.append(
                {
                    "config": cell.config,
                    "utilisation": cell.utilisation,
                    "rate_rps": cell.rate_rps,
                    "in_situ_factor": factor,
                    "in_situ_source": entry["in_situ_source"],
                    "cycle_beyond_busy": None
                    if entry["logs"] is None or cell.config == "dynamic1"  # a batcher waits by design
                    else cycle_beyond_busy(entry["logs"]),
                    "co_load_factor": co_load,
                    "co_load_source": entry["co_load_source"],
                    "co_load_path_samples": 0 if loaded is calibration else len(loaded["transport_ms"]),
                    "next_calibration_ratio": drift,
                    "mean_batch_size": {
                        "measured": cell.mean_batch_size_measured,
                        "isolated": predictions["isolated"].get("mean_batch_size"),
                        "co_load": predictions["co_load"].get("mean_batch_size"),
                    }
                    if cell.config == "dynamic1"
                    else None,
                    "table": rows,
                }
            )
        out.append(
            {
                "run": run["directory"].name,
                "machine": run["saved"].machine,
                "runs": run["saved"].runs,
                "request_logs": all(e["logs"] is not None for e in run["cells"]),
                "cells": cells,
            }
        )
    return out


def _co_load_factors(runs: list[dict]) -> None:
    """Each cell's co-load factor: its own co-load calibration's where it has one, else the median in-situ
    slowdown of the *other* cells of its configuration (leave one cell out; a median, so that one cell
    whose host drifted does not set the others' factor), else 1."""
    pool = [(r, k, e) for r, run in enumerate(runs) for k, e in enumerate(run["cells"])]
    for r, k, entry in pool:
        cell = entry["cell"]
        if cell.co_load_factor is not None:
            entry["co_load_factor"], entry["co_load_source"] = cell.co_load_factor, "co-load calibration"
            continue
        others = [
            e["in_situ_factor"]
            for r2, k2, e in pool
            if (r2, k2) != (r, k) and e["cell"].config == cell.config and e["in_situ_factor"] is not None
        ]
        if others:
            entry["co_load_factor"] = float(np.median(others))
            entry["co_load_source"] = f"leave-one-cell-out, median of {len(others)} other {cell.config} cells"
        else:
            entry["co_load_factor"], entry["co_load_source"] = 1.0, "no other cell: 1"
