"""Validate a prediction: the simulator's p50 / p95 / p99 against the per-request latencies of a real load test.

Measured input is either a CSV of per-request latencies (a column `latency_ms`, or `latency_us` /
`latency_s`, or the only column) or perf_analyzer output (its percentiles at one concurrency level).

A measurement is itself uncertain: from per-request latencies each measured percentile gets a 95%
moving-block bootstrap interval (blocks of ~n^(1/3) requests in the order logged, so that slow periods
on a shared host widen it as they should), and the prediction its replications' 95% CI; a percentile
agrees when the two intervals overlap. perf_analyzer reports percentiles only: no interval there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from calibrate.importers import PERCENTILE_COLUMNS, read_perf_analyzer
from sim.spec.datafiles import data_error, numeric_column, read_csv
from sim.errors import DataFileError

PERCENTILES = (50.0, 95.0, 99.0)
WHAT = "measured latencies"
_UNITS = {"latency_ms": 1.0, "latency_us": 1e-3, "latency_s": 1e3}


def measured_percentiles(path: str | Path, level: float | None = None) -> tuple[dict[float, float], str]:
    """Measured p50 / p95 / p99 in ms from a latency CSV or a perf_analyzer CSV; and a line saying what was read."""
    found, what, _ = read_measured(path, level)
    return found, what


def read_measured(path: str | Path, level: float | None = None) -> tuple[dict[float, float], str, np.ndarray | None]:
    """As `measured_percentiles`, plus the per-request latencies in ms in file order (None for perf_analyzer)."""
    path = Path(path)
    frame = read_csv(path, WHAT)
    columns = [str(c).strip() for c in frame.columns]
    if "p99 latency" in columns:
        runs = read_perf_analyzer(path)
        if level is None:
            if len(runs) > 1:
                raise data_error(WHAT, path, f"perf_analyzer output with {len(runs)} levels: choose one with --level")
            row = runs.iloc[0]
        else:
            match = runs[np.isclose(runs["level"], level)]
            if match.empty:
                raise data_error(WHAT, path, f"no {runs['level_kind'].iloc[0]} {level:g} among its {len(runs)} levels")
            row = match.iloc[0]
        found = {p: float(row[PERCENTILE_COLUMNS[f"p{int(p)} latency"]]) for p in PERCENTILES}
        return found, f"perf_analyzer percentiles at {row['level_kind']} {row['level']:g}", None
    column = next((c for c in _UNITS if c in frame.columns), None)
    if column is None:
        if len(frame.columns) != 1:
            raise data_error(
                WHAT, path, f"no column latency_ms (or latency_us / latency_s) among its {len(columns)} columns"
            )
    # The only column's name comes from the file: it is called `column 1`, never quoted.
    array = numeric_column(frame, column, path, WHAT) * _UNITS.get(str(column), 1.0)
    if (array <= 0).any():
        row = int(np.flatnonzero(array <= 0)[0]) + 2
        raise data_error(WHAT, path, "is not a positive latency", column=column, row=row)
    found = {p: float(np.percentile(array, p)) for p in PERCENTILES}
    return found, f"{len(array)} measured requests ({column or 'column 1'})", array


def bootstrap_intervals(
    values: np.ndarray,
    percentiles=PERCENTILES,
    resamples: int = 1000,
    seed: int = 0,
    chunk: int = 50,
    block: int | None = None,
) -> dict[float, tuple[float, float]]:
    """95% moving-block bootstrap interval of each percentile of `values` (in the order measured): blocks
    of `block` (default ceil(n^(1/3))) consecutive values keep short-range correlation; a fixed seed keeps
    it reproducible."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    block = block or max(1, int(np.ceil(n ** (1 / 3))))
    blocks = -(-n // block)
    rng = np.random.default_rng(seed)
    estimates = []
    for done in range(0, resamples, chunk):
        size = min(chunk, resamples - done)
        starts = rng.integers(0, n - block + 1, size=(size, blocks))
        index = (starts[:, :, None] + np.arange(block)).reshape(size, -1)[:, :n]
        estimates.append(np.percentile(x[index], list(percentiles), axis=1).T)
    table = np.vstack(estimates)
    low, high = np.percentile(table, [2.5, 97.5], axis=0)
    return {p: (float(lo), float(hi)) for p, lo, hi in zip(percentiles, low, high)}


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


def compare(
    predicted: dict[float, float],
    measured: dict[float, float],
    predicted_ci: dict[float, tuple[float, float]] | None = None,
    measured_ci: dict[float, tuple[float, float]] | None = None,
) -> pd.DataFrame:
    """Per percentile: predicted, measured, error in ms and in % of the measured value; with intervals,
    both 95% intervals and whether they overlap (`agrees`; NaN without a measured interval)."""
    rows = []
    nan_pair = (np.nan, np.nan)
    for p in PERCENTILES:
        pred, meas = predicted[p], measured[p]
        pred_lo, pred_hi = (predicted_ci or {}).get(p, (pred, pred))
        meas_lo, meas_hi = (measured_ci or {}).get(p, nan_pair)
        agrees = np.nan if np.isnan(meas_lo) else float(pred_lo <= meas_hi and meas_lo <= pred_hi)
        rows.append(
            dict(
                percentile=f"p{p:g}",
                predicted_ms=pred,
                measured_ms=meas,
                error_ms=pred - meas,
                error_pct=(pred - meas) / meas * 100 if meas > 0 else np.nan,
                predicted_low_ms=pred_lo,
                predicted_high_ms=pred_hi,
                measured_low_ms=meas_lo,
                measured_high_ms=meas_hi,
                agrees=agrees,
            )
        )
    return pd.DataFrame(rows)


def format_comparison(table: pd.DataFrame) -> str:
    lines = ["percentile  predicted ms [95% CI]          measured ms [95% bootstrap]     error %  agrees"]
    for _, r in table.iterrows():
        measured_ci = (
            "" if np.isnan(r["measured_low_ms"]) else f"[{r['measured_low_ms']:.3f}, {r['measured_high_ms']:.3f}]"
        )
        verdict = "n/a" if np.isnan(r["agrees"]) else ("yes" if r["agrees"] else "NO")
        lines.append(
            f"{r['percentile']:<10} {r['predicted_ms']:9.3f} [{r['predicted_low_ms']:.3f}, {r['predicted_high_ms']:.3f}]"
            f"{'':<3} {r['measured_ms']:9.3f} {measured_ci:<22} {r['error_pct']:+8.2f}  {verdict}"
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

    measured, what, values = read_measured(measured_path, level)
    measured_ci = bootstrap_intervals(values) if values is not None and len(values) >= 20 else None
    result = simulate(load_scenario(scenario_path), requests=requests, seed=seed, replications=replications)
    cis = result.summary.get("latency_ms_ci95") or {}
    predicted_ci = {p: tuple(cis[f"p{p:g}"]) for p in PERCENTILES if cis.get(f"p{p:g}") is not None}
    table = compare(predicted_percentiles(result.log), measured, predicted_ci, measured_ci)
    return table, what, list(result.summary.get("warnings", []))
