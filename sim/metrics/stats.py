"""The one confidence-interval rule of servesim, and the Student t quantile it needs.

Every interval (latency percentiles, cache hit rates, replica counts, LLM figures, sweep tables) is a
Student-t 95% interval over independent estimates: one per replication, or one per consecutive section
of a single replication of a stationary load (batch means; never for a load that follows the clock,
whose sections are not exchangeable). The t quantile is computed here from the closed-form t
distribution function for integer degrees of freedom (Abramowitz & Stegun 26.7.3-4), so that a summary
does not import scipy.stats (a second of start-up for one number).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

CONFIDENCE = 0.95


def _t_two_sided_mass(t: float, dof: int) -> float:
    """P(|T| <= t) for Student's t with `dof` degrees of freedom (A&S 26.7.3 / 26.7.4)."""
    theta = math.atan(t / math.sqrt(dof))
    c2 = math.cos(theta) ** 2
    if dof % 2 == 1:
        total, term = 0.0, math.cos(theta)
        for k in range(1, (dof - 1) // 2 + 1):
            total += term
            term *= c2 * (2 * k) / (2 * k + 1)
        return 2.0 / math.pi * (theta + math.sin(theta) * total) if dof > 1 else 2.0 * theta / math.pi
    total, term = 0.0, 1.0
    for k in range(1, dof // 2 + 1):
        total += term
        term *= c2 * (2 * k - 1) / (2 * k)
    return math.sin(theta) * total


@lru_cache(maxsize=256)
def t_quantile(dof: int, confidence: float = CONFIDENCE) -> float:
    """The two-sided `confidence` quantile of Student's t (e.g. 2.776 for 4 degrees of freedom)."""
    if dof < 1:
        raise ValueError(f"degrees of freedom must be at least 1 (got {dof})")
    if dof > 1000:
        # Cornish-Fisher expansion about the normal quantile (A&S 26.7.5): exact to ~1e-10 this far out.
        from statistics import NormalDist

        z = NormalDist().inv_cdf(0.5 + confidence / 2)
        return z + (z**3 + z) / (4 * dof) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * dof**2)
    low, high = 0.0, 1.0
    while _t_two_sided_mass(high, dof) < confidence:
        high *= 2.0
    for _ in range(64):
        mid = 0.5 * (low + high)
        if _t_two_sided_mass(mid, dof) < confidence:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)


def ci95(values, centre: float | None = None) -> tuple[float, float]:
    """Student-t 95% interval for the mean of independent estimates (NaN, NaN with fewer than two).
    `centre`: the interval about that estimate instead, with the half-width the estimates' spread gives
    (sectioning: the whole run's estimate, its sections' spread; Asmussen & Glynn, Stochastic Simulation,
    2007, III.5a: less biased than the sections' mean for a percentile)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) < 2 or (centre is not None and not math.isfinite(centre)):
        return (math.nan, math.nan)
    mean = values.mean() if centre is None else centre
    half = t_quantile(len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return (float(mean - half), float(mean + half))


def within(interval: tuple[float, float], low: float, high: float) -> tuple[float, float]:
    """`interval` clipped to [low, high]: the range the estimated figure cannot leave (a NaN range or NaN
    bound is kept as it is)."""
    if math.isnan(low) or math.isnan(high):
        return interval
    return tuple(float(min(max(v, low), high)) if math.isfinite(v) else v for v in interval)


def ci95_columns(per_group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`ci95` of every column of a (groups × figures) array at once."""
    per_group = np.asarray(per_group, dtype=float)
    k = per_group.shape[0]
    if k < 2:
        nan = np.full(per_group.shape[1:], math.nan)
        return nan, nan
    centre = per_group.mean(axis=0)
    half = t_quantile(k - 1) * per_group.std(axis=0, ddof=1) / math.sqrt(k)
    return centre - half, centre + half


def mean_of_finite(values) -> float:
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else math.nan
