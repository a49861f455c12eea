"""The `caches` key of the summary, from the cache columns of the request log."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sim.metrics.groups import measurement_groups
from sim.metrics.stats import ci95, within


def cache_summary(log: pd.DataFrame, caches: list) -> dict:
    """The `caches` entry of `run --json`, from the log's `<name>_hit` / `<name>_lookup_ms` columns.

    Per cache, over the requests that consulted it (a NaN `<name>_lookup_ms` marks one that did not):
    tier, reached_fraction and hit_rate over measured requests (not warm-up), the hit rate's 95% CI over
    replications (or sections of a single one, as in sim/metrics/summary.py), mean lookup_ms, and hit_rate_per_minute: every request (warm-up included, it is a
    timeline) pooled over replications by minute of arrival, minute 0 first; None for a minute without any.
    """
    minute = (log["arrival_ms"].to_numpy() // 60_000).astype(np.int64)
    minutes = int(minute.max()) + 1 if len(minute) else 0
    measured_rows = ~log["warmup"].to_numpy(dtype=bool)
    summary = {}
    for cache in caches:
        column, lookup = f"{cache.name}_hit", f"{cache.name}_lookup_ms"
        if column not in log:
            continue
        reached = log[lookup].notna().to_numpy() if lookup in log else np.ones(len(log), dtype=bool)
        hit = log[column].to_numpy(dtype=float)
        rows = log[measured_rows & reached]
        lo, hi = within(
            ci95(np.array([_hit_rate(group, column, lookup) for group in measurement_groups(log)])), 0.0, 1.0
        )
        total = np.bincount(minute[reached], minlength=minutes)
        hits = np.bincount(minute[reached], weights=hit[reached], minlength=minutes)
        entry = {
            "tier": cache.tier,
            "reached_fraction": float(reached[measured_rows].mean()) if measured_rows.any() else math.nan,
            "hit_rate": float(rows[column].mean()) if len(rows) else math.nan,
            "hit_rate_ci95": [lo, hi],
            "hit_rate_per_minute": [float(h / t) if t else None for h, t in zip(hits, total)],
        }
        if lookup in log:
            entry["lookup_ms_mean"] = float(rows[lookup].mean()) if len(rows) else math.nan
        summary[cache.name] = entry
    return summary


def _hit_rate(rows: pd.DataFrame, column: str, lookup: str) -> float:
    if lookup in rows:
        rows = rows[rows[lookup].notna().to_numpy()]
    return float(rows[column].mean()) if len(rows) else math.nan
