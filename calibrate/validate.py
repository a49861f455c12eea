"""Validate a prediction: the simulator's p50 / p95 / p99 against the per-request latencies of a real load test.

Measured input is either a CSV of per-request latencies (a column `latency_ms`, or `latency_us` /
`latency_s`, or the only column) or perf_analyzer output (its percentiles at one concurrency level).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from calibrate.importers import PERCENTILE_COLUMNS, read_perf_analyzer
from sim.spec.datafiles import read_csv
from sim.errors import DataFileError

PERCENTILES = (50.0, 95.0, 99.0)
_UNITS = {"latency_ms": 1.0, "latency_us": 1e-3, "latency_s": 1e3}


def measured_percentiles(path: str | Path, level: float | None = None) -> tuple[dict[float, float], str]:
    """Measured p50 / p95 / p99 in ms from a latency CSV or a perf_analyzer CSV; and a line saying what was read."""
    path = Path(path)
    frame = read_csv(path, "measured latencies")
    columns = [str(c).strip() for c in frame.columns]
    if "p99 latency" in columns:
        runs = read_perf_analyzer(path)
        if level is None:
            if len(runs) > 1:
                raise DataFileError(
                    f"measured latencies {path}: perf_analyzer output with {len(runs)} levels"
                    f" ({', '.join(f'{v:g}' for v in runs['level'])}): choose one with --level"
                )
            row = runs.iloc[0]
        else:
            match = runs[np.isclose(runs["level"], level)]
            if match.empty:
                raise DataFileError(
                    f"measured latencies {path}: no {runs['level_kind'].iloc[0]} {level:g} (have"
                    f" {', '.join(f'{v:g}' for v in runs['level'])})"
                )
            row = match.iloc[0]
        found = {p: float(row[PERCENTILE_COLUMNS[f"p{int(p)} latency"]]) for p in PERCENTILES}
        return found, f"perf_analyzer percentiles at {row['level_kind']} {row['level']:g}"
    column = next((c for c in _UNITS if c in frame.columns), None)
    if column is None:
        if len(frame.columns) != 1:
            raise DataFileError(
                f"measured latencies {path}: no column latency_ms (or latency_us / latency_s); columns:"
                f" {', '.join(columns)}"
            )
        column = frame.columns[0]
    values = pd.to_numeric(frame[column], errors="coerce")
    if values.isna().any():
        row = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise DataFileError(f"measured latencies {path}: column {column!r} row {row + 2} is not a number: {frame[column].iloc[row]!r}")
    array = values.to_numpy(dtype=float) * _UNITS.get(str(column), 1.0)
    if (array <= 0).any():
        raise DataFileError(f"measured latencies {path}: column {column!r} has a non-positive latency")
    found = {p: float(np.percentile(array, p)) for p in PERCENTILES}
    return found, f"{len(array)} measured requests ({column})"


def predicted_percentiles(log: pd.DataFrame) -> dict[float, float]:
    """p50 / p95 / p99 in ms of served, post-warm-up requests of a request log."""
    served = log
    if "rejected" in log:
        served = served[~served["rejected"].astype(bool)]
    if "warmup" in log:
        served = served[~served["warmup"].astype(bool)]
    if served.empty:
        raise DataFileError("the simulation served no post-warm-up requests to compare with")
    latencies = served["latency_ms"].to_numpy(dtype=float)
    return {p: float(np.percentile(latencies, p)) for p in PERCENTILES}


def compare(predicted: dict[float, float], measured: dict[float, float]) -> pd.DataFrame:
    """Per percentile: predicted, measured, error in ms and in % of the measured value."""
    rows = []
    for p in PERCENTILES:
        pred, meas = predicted[p], measured[p]
        rows.append(
            dict(
                percentile=f"p{p:g}",
                predicted_ms=pred,
                measured_ms=meas,
                error_ms=pred - meas,
                error_pct=(pred - meas) / meas * 100 if meas > 0 else np.nan,
            )
        )
    return pd.DataFrame(rows)


def format_comparison(table: pd.DataFrame) -> str:
    lines = ["percentile  predicted ms  measured ms  error ms  error %"]
    for _, r in table.iterrows():
        lines.append(
            f"{r['percentile']:<10} {r['predicted_ms']:13.3f} {r['measured_ms']:12.3f} {r['error_ms']:+9.3f} {r['error_pct']:+8.2f}"
        )
    return "\n".join(lines)


def validate_scenario(
    scenario_path: str | Path,
    measured_path: str | Path,
    *,
    requests: int | None = None,
    seed: int | None = None,
    replications: int | None = None,
    level: float | None = None,
) -> tuple[pd.DataFrame, str, list[str]]:
    """Run the scenario and compare with the measurements: (comparison table, what was read, run warnings)."""
    from sim.analysis.simulate import simulate
    from sim.spec.scenario import load_scenario

    measured, what = measured_percentiles(measured_path, level)
    result = simulate(load_scenario(scenario_path), requests=requests, seed=seed, replications=replications)
    table = compare(predicted_percentiles(result.log), measured)
    return table, what, list(result.summary.get("warnings", []))
