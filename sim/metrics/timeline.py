"""Metrics over time, from the request log and the replica timeline: traffic, windowed p50 / p99,
rejections, replicas (warm / starting) and cost per window — what a capacity planner watches through a
daily curve, a spike and its cold starts."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.engine.runlog import RunLog
from sim.metrics import cost
from sim.spec.scenario import Scenario


def windowed(run: RunLog, scenario: Scenario, window_s: float = 60.0) -> pd.DataFrame:
    """One row per window of arrival time, pooled over replications (warm-up included: it is a timeline).
    Replicas and cost per window come from the same replica-time integral as the run's summary."""
    log = run.requests
    window_ms = window_s * 1000.0
    replications = max(int(log["replication"].nunique()), 1)
    index = (log["arrival_ms"].to_numpy() // window_ms).astype(np.int64)
    frame = pd.DataFrame(
        {
            "window": index,
            "latency_ms": log["latency_ms"].to_numpy(),
            "rejected": log["rejected"].to_numpy(),
        }
    )
    grouped = frame.groupby("window")
    out = pd.DataFrame(
        {
            "start_s": grouped.size().index.to_numpy() * window_s,
            "arrival_rps": grouped.size().to_numpy() / window_s / replications,
            "p50_ms": grouped["latency_ms"].quantile(0.50).to_numpy(),
            "p99_ms": grouped["latency_ms"].quantile(0.99).to_numpy(),
            "rejected_fraction": grouped["rejected"].mean().to_numpy(),
        }
    )
    warm, paid = [], []
    for start_s in out["start_s"]:
        t0, t1 = start_s * 1000.0, start_s * 1000.0 + window_ms
        per_replication = [cost.replica_time(scenario, part, t0, t1) for part in _timelines(run)]
        paid.append(float(np.mean([r.paid_ms for r in per_replication])) / window_ms)
        warm.append(float(np.mean([r.warm_ms for r in per_replication])) / window_ms)
    out["paid_replicas"] = paid
    if run.timeline is not None:
        out["warm_replicas"] = warm
    price = cost.price_usd_per_replica_hour(scenario)
    if price is not None:
        out["usd_per_hour"] = out["paid_replicas"] * price
    return out


def _timelines(run: RunLog) -> list[pd.DataFrame | None]:
    """Each replication's change-points, sorted (None per replication for a fixed deployment)."""
    if run.timeline is None:
        return [None] * len(run.replications)
    return [part.sort_values("time_ms", kind="stable") for _, part in run.timeline.groupby("replication", sort=True)]
