"""Fit a two-state slowdown regime (sim/spec/correlated.py) to a measured service-time sequence.

Slow and normal batches are told apart by the best two-group split of the service times (exact 1-D
2-means); the slow state's share π and slowdown factor (mean slow / mean normal) follow. The chain's
persistence comes from the log's lag-1 autocorrelation ρ₁: in a two-state chain with per-batch state
correlation λ, the service times' ρ₁ = λ · B / V, where B = π(1 − π)(μ_slow − μ_normal)² is the variance
the states explain and V the total variance; so λ = ρ₁ · V / B. A slow visit then lasts 1 / ((1 − λ)(1 − π))
batches, each as long as the mean gap between slow batches' starts (their service time when the server
ran back to back); the regime's share of *time* follows from the two visit lengths.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim.errors import DataFileError
from sim.spec.correlated import RegimeSpec
from sim.spec.datafiles import numeric_column, read_csv

MIN_LOG = 100


@dataclass(frozen=True)
class RegimeFit:
    """The fitted regime and what it was fitted from."""

    spec: RegimeSpec
    lag1_autocorrelation: float
    state_lag1_autocorrelation: float  # of the classified states, a cross-check of λ
    per_batch_persistence: float  # λ
    batch_interval_ms: float
    threshold_ms: float

    def report(self) -> str:
        s = self.spec
        return (
            f"service times: lag-1 autocorrelation {self.lag1_autocorrelation:.3f}; split at {self.threshold_ms:.4g} ms\n"
            f"slow regime: {100 * s.slow_share:.1f}% of batches, {s.slow_factor:.2f}x slower, visits of "
            f"{s.mean_slow_s:.3g} s on average (normal visits {s.mean_normal_s:.3g} s)\n"
            f"per-batch state persistence λ {self.per_batch_persistence:.3f} (classified states: "
            f"{self.state_lag1_autocorrelation:.3f}); batches every {self.batch_interval_ms:.4g} ms\n"
            f"scenario: slowdown: {{slow_factor: {s.slow_factor:.4g}, slow_share: {s.slow_share:.4g}, "
            f"mean_slow_s: {s.mean_slow_s:.4g}}}"
        )


def lag1(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=float) - np.mean(x)
    denominator = float((x * x).sum())
    return float((x[:-1] * x[1:]).sum() / denominator) if denominator > 0 else 0.0


def fit_regimes(service_ms: np.ndarray, start_ms: np.ndarray | None = None) -> RegimeFit:
    """The two-state regime of a service-time sequence in the order measured (see module doc)."""
    x = np.asarray(service_ms, dtype=float)
    if len(x) < MIN_LOG:
        raise DataFileError(f"regime fit: {len(x)} service times; at least {MIN_LOG} in order are needed")
    if (x <= 0).any():
        raise DataFileError("regime fit: service times must be > 0")
    ordered = np.sort(x)
    n = len(x)
    k = np.arange(1, n)
    csum, csq = np.cumsum(ordered), np.cumsum(ordered**2)
    within = (csq[:-1] - csum[:-1] ** 2 / k) + ((csq[-1] - csq[:-1]) - (csum[-1] - csum[:-1]) ** 2 / (n - k))
    cut = int(np.argmin(within)) + 1
    threshold = float(0.5 * (ordered[cut - 1] + ordered[cut]))
    slow = x > threshold
    share = float(slow.mean())
    normal_mean, slow_mean = float(x[~slow].mean()), float(x[slow].mean())
    rho = lag1(x)
    explained = share * (1 - share) * (slow_mean - normal_mean) ** 2
    persistence = float(np.clip(rho * x.var() / explained, 1e-6, 0.999)) if explained > 0 else 1e-6
    if start_ms is not None:
        gaps = np.diff(np.asarray(start_ms, dtype=float))
        if (gaps < 0).any():
            raise DataFileError("regime fit: start times must be in order (the log's order is the sequence)")
        gaps = np.r_[gaps, gaps.mean()]
    else:
        gaps = x  # back to back: each batch lasts until the next starts
    # A visit lasts a geometric number of batches (it ends with probability (1 − λ)·(other state's share)
    # per batch), each taking the state's mean gap; the time shares follow from the visit lengths.
    slow_visit_ms = float(gaps[slow].mean()) / ((1 - persistence) * (1 - share))
    normal_visit_ms = float(gaps[~slow].mean()) / ((1 - persistence) * share)
    spec = RegimeSpec(
        slow_factor=max(slow_mean / normal_mean, 1.0),
        slow_share=slow_visit_ms / (slow_visit_ms + normal_visit_ms),
        mean_slow_s=slow_visit_ms / 1000.0,
    )
    interval = float(gaps.mean())
    return RegimeFit(spec, rho, lag1(slow.astype(float)), persistence, interval, threshold)


def fit_regimes_from_csv(path: str | Path, column: str = "service_ms", time_column: str | None = None) -> RegimeFit:
    """Read a log (one row per batch, in order) and fit its regimes."""
    path = Path(path)
    frame = read_csv(path, "service-time log")
    service = numeric_column(frame, column, path, "service-time log")
    start = numeric_column(frame, time_column, path, "service-time log") if time_column else None
    return fit_regimes(service, start)
