"""The independent pieces every confidence interval is computed over: each replication, or consecutive
sections of a single one (batch means)."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

SECTIONS_FOR_ONE_RUN = 10


def latency_digest(rows: pd.DataFrame) -> str | None:
    """A fingerprint of one replication's latencies, request for request (NaN for a rejected request);
    None for a partial log (one stage's columns), which shows no replay."""
    if "latency_ms" not in rows.columns:
        return None
    latency = rows["latency_ms"].to_numpy(dtype=float)
    missing = np.isnan(latency)
    if missing.any():
        latency = np.where(missing, np.nan, latency)  # one NaN bit pattern
    return hashlib.blake2b(memoryview(np.ascontiguousarray(latency)).cast("B"), digest_size=20).hexdigest()


def identical(digests: list[str | None]) -> bool:
    """Several replications whose latencies are the same, request for request: a deterministic replay (a
    trace with fixed costs) that more seeds cannot vary. Their spread, zero, is no confidence interval."""
    return len(digests) > 1 and digests[0] is not None and all(d == digests[0] for d in digests[1:])


def identical_replications(log: pd.DataFrame) -> bool:
    """`identical` over the replications of a whole log."""
    replication = log["replication"].to_numpy()
    return identical([latency_digest(log[replication == rep]) for rep in np.unique(replication)])


def group_rows(log: pd.DataFrame, sectioned: bool) -> list[np.ndarray]:
    """The measurement groups one replication's rows contribute, as row positions: its measured requests
    whole, or (the only replication, or the first of identical ones) cut into SECTIONS_FOR_ONE_RUN
    consecutive sections by arrival time. Positions, not frames: no copy of the log."""
    measured = np.flatnonzero(~log["warmup"].to_numpy())
    if not len(measured):
        return []
    if not sectioned:
        return [measured]
    arrival = log["arrival_ms"].to_numpy()[measured]
    if np.any(arrival[1:] < arrival[:-1]):
        measured = measured[np.argsort(arrival, kind="stable")]
    bounds = np.linspace(0, len(measured), SECTIONS_FOR_ONE_RUN + 1).astype(int)
    return [measured[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


def replication_groups(rows: pd.DataFrame, sectioned: bool) -> list[pd.DataFrame]:
    """`group_rows` as frames."""
    return [rows.iloc[positions] for positions in group_rows(rows, sectioned)]


def measurement_groups(log: pd.DataFrame) -> list[pd.DataFrame]:
    """The measured (non-warm-up) requests, split into replications — or, for a single replication (or
    identical ones: only the first counts), into SECTIONS_FOR_ONE_RUN consecutive sections by arrival time."""
    replication = log["replication"].to_numpy()
    reps = np.unique(replication)
    if len(reps) > 1 and not identical_replications(log):
        return [group for rep in reps for group in replication_groups(log[replication == rep], False)]
    return replication_groups(log[replication == reps.min()], True) if len(reps) else []
