"""The independent pieces every confidence interval is computed over: each replication, or consecutive
sections of a single one (batch means)."""

from __future__ import annotations

import numpy as np
import pandas as pd

SECTIONS_FOR_ONE_RUN = 10


def identical_replications(log: pd.DataFrame) -> bool:
    """Several replications whose latencies are the same, request for request: a deterministic replay (a
    trace with fixed costs) that more seeds cannot vary. Their spread, zero, is no confidence interval."""
    replication = log["replication"].to_numpy()
    kept = np.unique(replication)
    if len(kept) < 2 or "latency_ms" not in log.columns:  # a partial log (one stage's columns) shows no replay
        return False
    latency = log["latency_ms"].to_numpy()
    first = latency[replication == kept[0]]
    return all(np.array_equal(first, latency[replication == r], equal_nan=True) for r in kept[1:])


def measurement_groups(log: pd.DataFrame) -> list[pd.DataFrame]:
    """The measured (non-warm-up) requests, split into replications — or, for a single replication (or
    identical ones: only the first counts), into SECTIONS_FOR_ONE_RUN consecutive sections by arrival time."""
    measured = log[~log["warmup"].to_numpy()]
    replication = measured["replication"].to_numpy()
    if len(np.unique(replication)) > 1:
        if not identical_replications(log):
            return [group for _, group in measured.groupby("replication", sort=True)]
        measured = measured[replication == replication.min()]
    ordered = measured.sort_values("arrival_ms", kind="stable")
    bounds = np.linspace(0, len(ordered), SECTIONS_FOR_ONE_RUN + 1).astype(int)
    return [ordered.iloc[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]
