"""Fit a median batch-cost curve to measurements, and choose the curve family by fit quality.

Families, simplest first (sim/spec/profile.py evaluates them):
  affine            base + per_item · n                              (2 parameters)
  roofline          flat-ish up to a knee, steeper and linear above  (4: base, slope below, slope above, knee)
  piecewise_linear  straight lines through the measured medians       (one point per batch size)
`auto` takes the simplest family whose fitted median is within tolerance of every measured median, the
tolerance being the larger of `tolerance_pct` and three standard errors of that median. Fits minimise
relative (not absolute) squared error, so small batches count as much as large ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import nnls

from sim.spec.datafiles import data_error, read_csv, shown
from sim.errors import DataFileError
from sim.spec.profile import curve_ms

FAMILIES = ("affine", "roofline", "piecewise_linear")
MIN_POINTS = {"affine": 3, "roofline": 5, "piecewise_linear": 2}
# Median standard error of a normal sample: sqrt(pi / 2) · sd / sqrt(n).
_MEDIAN_SE = float(np.sqrt(np.pi / 2))


# --------------------------------------------------------------------------- measurements
def check_measurements(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """Long-format measurements (batch_size, latency_ms, optional instances) → clean typed frame.

    Raises DataFileError naming the column and the first bad row (rows numbered as in the CSV file)."""
    if frame.empty:
        raise DataFileError(f"{where}: no measurement rows")
    missing = [c for c in ("batch_size", "latency_ms") if c not in frame.columns]
    if missing:
        raise DataFileError(
            f"{where}: missing column(s) {', '.join(missing)} (the file has {len(frame.columns)} columns);"
            " expected one row per repeat with batch_size, latency_ms and optionally instances"
        )
    for extra in ("tokens", "context_len"):
        if extra in frame.columns and pd.to_numeric(frame[extra], errors="coerce").nunique() > 1:
            raise DataFileError(
                f"{where}: column {extra!r} varies: token-dependent (LLM) measurements are not fitted by this"
                " batch-cost fit; fit one value of it at a time or use the LLM profile tools"
            )
    out = pd.DataFrame()
    for column in ("batch_size", "latency_ms", "instances"):
        if column not in frame.columns:
            continue
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna().to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataFileError(f"{where}: column {column!r} row {row + 2} is not a number")
        array = values.to_numpy(dtype=float)
        if not np.isfinite(array).all():
            row = int(np.flatnonzero(~np.isfinite(array))[0])
            raise DataFileError(f"{where}: column {column!r} row {row + 2} is not finite")
        if (array <= 0).any():
            row = int(np.flatnonzero(array <= 0)[0])
            raise DataFileError(f"{where}: column {column!r} row {row + 2} must be positive")
        if column != "latency_ms" and (array != np.round(array)).any():
            row = int(np.flatnonzero(array != np.round(array))[0])
            raise DataFileError(f"{where}: column {column!r} row {row + 2} must be a whole number")
        out[column] = array.astype(int) if column != "latency_ms" else array
    if "instances" not in out:
        out["instances"] = 1
    alone = out[out["instances"] == 1]
    if alone.empty:
        raise DataFileError(f"{where}: no rows with instances = 1 (the cost of one instance alone is needed)")
    if alone["batch_size"].nunique() < 2 and int(alone["batch_size"].iloc[0]) != 1:
        raise DataFileError(
            f"{where}: only one batch size measured: a batch-cost curve needs"
            " at least two batch sizes (batch size 1 alone makes a profile for unbatched serving)"
        )
    return out[["batch_size", "instances", "latency_ms"]]


def load_measurements(path: str | Path, latency_column: str = "latency_ms") -> pd.DataFrame:
    """Read and check a long-format measurements CSV (one row per repeat); `latency_column` holds the ms."""
    path = Path(path)
    frame = read_csv(path, "measurements")
    if latency_column != "latency_ms":
        if latency_column not in frame.columns:
            raise data_error("measurements", path, f"no column {latency_column!r} ({len(frame.columns)} columns)")
        frame = frame.drop(columns=[c for c in ("latency_ms",) if c in frame.columns])
        frame = frame.rename(columns={latency_column: "latency_ms"})
    return check_measurements(frame, f"measurements {shown(path)}")


def summarise(measurements: pd.DataFrame) -> pd.DataFrame:
    """Per (batch_size, instances): n, p50/p90/p95/p99/mean latency in ms and the standard error of the median."""
    rows = []
    for (batch, inst), group in measurements.groupby(["batch_size", "instances"], sort=True):
        x = group["latency_ms"].to_numpy()
        q25, p50, q75, p90, p95, p99 = np.percentile(x, [25, 50, 75, 90, 95, 99])
        robust_sd = (q75 - q25) / 1.349
        rows.append(
            dict(
                batch_size=int(batch),
                instances=int(inst),
                n=len(x),
                p50_ms=p50,
                p90_ms=p90,
                p95_ms=p95,
                p99_ms=p99,
                mean_ms=float(x.mean()),
                se_p50_ms=_MEDIAN_SE * robust_sd / np.sqrt(len(x)) if len(x) >= 5 else 0.0,
            )
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- curve families
def _relative_nnls(columns: list[np.ndarray], y: np.ndarray) -> tuple[np.ndarray, float]:
    """Non-negative coefficients minimising Σ((y − A·c) / y)²; returns (c, that sum)."""
    a = np.column_stack(columns) / y[:, None]
    coef, residual = nnls(a, np.ones_like(y))
    return coef, float(residual**2)


def fit_family(family: str, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Parameters of one family fitted to medians y at batch sizes x (sorted, distinct)."""
    if family == "affine":
        (base, slope), _ = _relative_nnls([np.ones_like(x), x], y)
        return {"base_ms": float(base), "per_item_ms": float(slope)}
    if family == "roofline":
        # Knee strictly inside the measured range, so both segments rest on at least two points.
        knees = np.geomspace(x[1], x[-2], 200)
        best: tuple[float, np.ndarray, float] | None = None
        for knee in knees:
            coef, sse = _relative_nnls([np.ones_like(x), x, np.maximum(x - knee, 0.0)], y)
            if best is None or sse < best[0]:
                best = (sse, coef, float(knee))
        _, (base, below, extra), knee = best
        return {
            "base_ms": float(base),
            "knee_batch": knee,
            "per_item_below_ms": float(below),
            "per_item_above_ms": float(below + extra),
        }
    if family == "piecewise_linear":
        # Through the medians made non-decreasing: a larger batch never costs less than a smaller one
        # (it could be padded), so a dip is measurement noise, pooled with its neighbours.
        return {"points": [[int(a), float(b)] for a, b in zip(x, non_decreasing(y))]}
    raise DataFileError(f"unknown curve family {family!r} (choose from auto, {', '.join(FAMILIES)})")


def non_decreasing(y: np.ndarray) -> np.ndarray:
    """Least-squares non-decreasing fit to a sequence (pool-adjacent-violators)."""
    blocks: list[list[float]] = []  # [mean, count]
    for value in map(float, y):
        blocks.append([value, 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            (m2, c2), (m1, c1) = blocks.pop(), blocks.pop()
            blocks.append([(m1 * c1 + m2 * c2) / (c1 + c2), c1 + c2])
    return np.concatenate([np.full(int(c), m) for m, c in blocks])


def _quality(y: np.ndarray, fitted: np.ndarray) -> dict[str, float]:
    rel = (fitted - y) / y
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return {
        "mape_pct": float(np.abs(rel).mean() * 100),
        "max_abs_pct_err": float(np.abs(rel).max() * 100),
        "r2": float(1 - ((y - fitted) ** 2).sum() / ss_tot) if ss_tot > 0 else 1.0,
    }


def _leave_one_out_mape(family: str, x: np.ndarray, y: np.ndarray) -> float | None:
    """Mean |error| % predicting each interior measured median from a fit without it (None if too few points)."""
    errors = []
    for i in range(1, len(x) - 1):
        keep = np.arange(len(x)) != i
        if keep.sum() < MIN_POINTS[family]:
            return None
        params = fit_family(family, x[keep], y[keep])
        errors.append(abs(curve_ms(family, params, x[i : i + 1])[0] - y[i]) / y[i])
    return float(np.mean(errors) * 100) if errors else None


@dataclass
class CurveFit:
    """A fitted median curve with its quality on the measured medians (instances = 1)."""

    family: str
    params: dict[str, Any]
    batch_sizes: np.ndarray
    medians_ms: np.ndarray
    fitted_ms: np.ndarray
    quality: dict[str, Any]
    candidates: dict[str, dict[str, Any]] = field(default_factory=dict)

    def curve_yaml(self) -> dict[str, Any]:
        """The `curve:` mapping of a profile file."""
        return {"family": self.family, **self.params, "quality": self.quality}


def fit_curve(summary: pd.DataFrame, family: str = "auto", tolerance_pct: float = 2.0) -> CurveFit:
    """Fit the instances = 1 medians of `summary` (from `summarise`); `family` 'auto' chooses by fit quality."""
    alone = summary[summary["instances"] == 1].sort_values("batch_size")
    x = alone["batch_size"].to_numpy(dtype=float)
    y = alone["p50_ms"].to_numpy(dtype=float)
    se = alone["se_p50_ms"].to_numpy(dtype=float) if "se_p50_ms" in alone else np.zeros_like(y)
    if len(x) == 1 and x[0] == 1:
        # Unbatched serving only (e.g. a serving log with batching off): the profile allows batch 1 alone.
        params = {"base_ms": round(float(y[0]), 6), "per_item_ms": 0.0}
        quality = _rounded(
            {
                **_quality(y, y),
                "tolerance_pct": tolerance_pct,
                "note": "one batch size measured (1): the profile serves batches of 1 only",
                "per_batch": [
                    {"batch_size": 1, "measured_p50_ms": float(y[0]), "fitted_ms": float(y[0]), "error_pct": 0.0}
                ],
            }
        )
        return CurveFit("affine", params, x, y, y.copy(), quality, {})
    if len(x) < 2:
        raise DataFileError("a batch-cost curve needs at least two measured batch sizes (or batch size 1 alone)")
    allowed = np.maximum(tolerance_pct / 100.0, 3.0 * se / y)

    candidates: dict[str, dict[str, Any]] = {}
    chosen: str | None = None
    for fam in FAMILIES:
        if len(x) < MIN_POINTS[fam]:
            candidates[fam] = {"accepted": False, "reason": f"needs at least {MIN_POINTS[fam]} batch sizes"}
            continue
        params = fit_family(fam, x, y)
        fitted = curve_ms(fam, params, x)
        within = bool((np.abs(fitted - y) / y <= allowed + 1e-12).all())
        candidates[fam] = {"accepted": within, "params": params, **_quality(y, fitted)}
        if chosen is None and within and family == "auto":
            chosen = fam
    if family != "auto":
        if family not in FAMILIES:
            raise DataFileError(f"unknown curve family {family!r} (choose from auto, {', '.join(FAMILIES)})")
        if "params" not in candidates[family]:
            raise DataFileError(f"curve family {family}: {candidates[family]['reason']} (got {len(x)})")
        chosen = family
    chosen = chosen or "piecewise_linear"

    params = _rounded(candidates[chosen]["params"], 6)  # as written to the profile file
    fitted = curve_ms(chosen, params, x)
    quality: dict[str, Any] = {**_quality(y, fitted), "tolerance_pct": tolerance_pct}
    loo = _leave_one_out_mape(chosen, x, y)
    if loo is not None:
        quality["leave_one_out_mape_pct"] = loo
    quality["per_batch"] = [
        {
            "batch_size": int(b),
            "measured_p50_ms": float(m),
            "fitted_ms": float(f),
            "error_pct": float((f - m) / m * 100),
        }
        for b, m, f in zip(x, y, fitted)
    ]
    quality = _rounded(quality)
    return CurveFit(chosen, params, x, y, fitted, quality, candidates)


def _rounded(value: Any, digits: int = 4) -> Any:
    """Floats rounded for a readable YAML file (4 decimals: 0.1 µs on ms values)."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: _rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v, digits) for v in value]
    return value


def throughput_knee(summary: pd.DataFrame, gain_pct: float = 5.0) -> int | None:
    """Smallest measured batch size after which the next one improves per-item cost by less than `gain_pct` %."""
    alone = summary[summary["instances"] == 1].sort_values("batch_size")
    b = alone["batch_size"].to_numpy()
    per_item = alone["p50_ms"].to_numpy() / b
    for i in range(len(b) - 1):
        if per_item[i + 1] > per_item[i] * (1 - gain_pct / 100):
            return int(b[i])
    return None


def interference_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Per (batch_size, instances > 1): median slowdown over one instance alone at the same batch size."""
    alone = summary[summary["instances"] == 1].set_index("batch_size")["p50_ms"]
    rows = []
    for _, row in summary[summary["instances"] > 1].iterrows():
        if row["batch_size"] in alone.index:
            rows.append(
                dict(
                    batch_size=int(row["batch_size"]),
                    instances=int(row["instances"]),
                    p50_ms=row["p50_ms"],
                    p50_alone_ms=alone[row["batch_size"]],
                    slowdown=row["p50_ms"] / alone[row["batch_size"]],
                )
            )
    return pd.DataFrame(rows, columns=["batch_size", "instances", "p50_ms", "p50_alone_ms", "slowdown"])
