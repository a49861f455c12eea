"""The `caches` key of the summary, from the cache columns of the request log.

Each replication is reduced to counts (`cache_counts`), and the key is computed from the counts of every
replication (`caches_key`), so a run summarised replication by replication, its log dropped as it goes,
gives the same figures as the whole log.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sim.metrics.groups import group_rows, identical_replications
from sim.metrics.stats import ci95, within


@dataclass
class CacheCounts:
    """One cache in one replication: sums over the measured requests that consulted it, and every
    request's outcome by minute of arrival (warm-up included: the per-minute view is a timeline)."""

    measured: int  # measured (non-warm-up) requests
    reached: int  # ... that consulted the cache
    hits: float  # ... and hit
    hit_counted: int  # ... with a known outcome (a NaN hit is not counted)
    lookup_ms_sum: float | None  # their lookup time (None: the cache records none)
    lookup_counted: int
    per_minute_total: np.ndarray
    per_minute_hits: np.ndarray
    group_hit_rates: list[float]  # the replication's measured requests whole (none if all are warm-up)
    section_hit_rates: list[float]  # its sections (computed for the first replication only)


def cache_counts(
    log: pd.DataFrame, caches: list, groups: list[np.ndarray], sections: list[np.ndarray]
) -> dict[str, CacheCounts]:
    """Per cache that left columns in `log` (one replication's rows): its counts, and its hit rate in
    each of the measurement groups the CI is computed over (sim/metrics/groups.py): the replication
    whole (`groups`) and cut into `sections`, as row positions (sim/metrics/groups.py)."""
    minute = (log["arrival_ms"].to_numpy() // 60_000).astype(np.int64)
    minutes = int(minute.max()) + 1 if len(minute) else 0
    measured_rows = ~log["warmup"].to_numpy(dtype=bool)
    out = {}
    for cache in caches:
        column, lookup = f"{cache.name}_hit", f"{cache.name}_lookup_ms"
        if column not in log:
            continue
        reached = log[lookup].notna().to_numpy() if lookup in log else np.ones(len(log), dtype=bool)
        hit = log[column].to_numpy(dtype=float)
        counted = measured_rows & reached
        lookup_ms = log[lookup].to_numpy(dtype=float)[counted] if lookup in log else None
        out[cache.name] = CacheCounts(
            measured=int(measured_rows.sum()),
            reached=int(counted.sum()),
            hits=float(np.nansum(hit[counted])),
            hit_counted=int(np.isfinite(hit[counted]).sum()),
            lookup_ms_sum=None if lookup_ms is None else float(np.nansum(lookup_ms)),
            lookup_counted=0 if lookup_ms is None else int(np.isfinite(lookup_ms).sum()),
            per_minute_total=np.bincount(minute[reached], minlength=minutes),
            per_minute_hits=np.bincount(minute[reached], weights=hit[reached], minlength=minutes),
            group_hit_rates=[_hit_rate(hit, reached, rows) for rows in groups],
            section_hit_rates=[_hit_rate(hit, reached, rows) for rows in sections],
        )
    return out


def caches_key(parts: list[dict[str, CacheCounts]], caches: list, sectioned: bool, intervals: bool = True) -> dict:
    """The `caches` entry of `run --json` from the replications' counts, in replication order.

    Per cache, over the requests that consulted it (a NaN `<name>_lookup_ms` marks one that did not):
    tier, reached_fraction and hit_rate over measured requests (not warm-up), the hit rate's 95% CI over
    replications (or, `sectioned`, the sections of the first, as in sim/metrics/summary.py; NaN without
    `intervals`: a single replication of a load that follows the clock), mean
    lookup_ms, and hit_rate_per_minute: every request (warm-up included, it is a timeline) pooled over
    replications by minute of arrival, minute 0 first; None for a minute without any.
    """
    summary = {}
    for cache in caches:
        counts = [part[cache.name] for part in parts if cache.name in part]
        if not counts:
            continue
        measured = sum(c.measured for c in counts)
        reached = sum(c.reached for c in counts)
        hit_counted = sum(c.hit_counted for c in counts)
        groups = counts[0].section_hit_rates if sectioned else [rate for c in counts for rate in c.group_hit_rates]
        lo, hi = within(ci95(np.array(groups if intervals else [], dtype=float)), 0.0, 1.0)
        minutes = max(len(c.per_minute_total) for c in counts)
        total = sum(np.pad(c.per_minute_total, (0, minutes - len(c.per_minute_total))) for c in counts)
        hits = sum(np.pad(c.per_minute_hits, (0, minutes - len(c.per_minute_hits))) for c in counts)
        entry = {
            "tier": cache.tier,
            "reached_fraction": reached / measured if measured else math.nan,
            "hit_rate": sum(c.hits for c in counts) / hit_counted if hit_counted else math.nan,
            "hit_rate_ci95": [lo, hi],
            "hit_rate_per_minute": [float(h / t) if t else None for h, t in zip(hits, total)],
        }
        if counts[0].lookup_ms_sum is not None:
            looked = sum(c.lookup_counted for c in counts)
            entry["lookup_ms_mean"] = sum(c.lookup_ms_sum for c in counts) / looked if looked else math.nan
        summary[cache.name] = entry
    return summary


def cache_summary(log: pd.DataFrame, caches: list) -> dict:
    """`caches_key` of a whole request log (every replication)."""
    replication = log["replication"].to_numpy()
    reps = np.unique(replication)
    sectioned = len(reps) == 1 or identical_replications(log)
    parts = []
    for i, rep in enumerate(reps):
        rows = log[replication == rep]
        sections = group_rows(rows, True) if i == 0 else []
        parts.append(cache_counts(rows, caches, group_rows(rows, False), sections))
    return caches_key(parts, caches, sectioned)


def _hit_rate(hit: np.ndarray, reached: np.ndarray, rows: np.ndarray) -> float:
    """Hit rate over the requests at positions `rows` that consulted the cache (NaN outcomes skipped)."""
    values = hit[rows[reached[rows]]]
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else math.nan
