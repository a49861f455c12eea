"""Measured busy share per queued stage, from the request log: busy server-time over the server-time there
was, across the measured horizon. Unlike offered load (sim/metrics/load.py: ρ at the most efficient batch
the policy allows, a capacity bound), this is what the servers actually did — a stage batching 3 requests
where it could batch 32 is as busy as its batches were long.

Per replication the horizon is [first, last] measured (non-warm-up) arrival, as the summary's throughput
and utilisation take it (sim/metrics/summary.group_figures); busy time is clipped to it, so a constant
stream at rate λ through one worker of constant service s is busy exactly λ·s. A model stage's capacity is
its instances × the replica-time paid (an autoscaled fleet's timeline included): its busy share is the
summary's `utilization`. A pool stage's capacity is its workers (× replicas, per replica). Delay stages
have no servers and LLM stages step whenever one sequence is active (sim/metrics/llm.py): neither has one.
Pooled over replications: the sum of busy time over the sum of capacity.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sim.engine.runlog import RunLog
from sim.metrics import cost
from sim.metrics.summary import stage_columns
from sim.spec.scenario import ModelStage, PoolStage, Scenario


def busy_shares(run: RunLog, scenario: Scenario) -> dict[str, float]:
    """Stage name -> busy server-time / server-time available over the measured horizon (0..1)."""
    stages = [s for s in scenario.stages if isinstance(s, (PoolStage, ModelStage))]
    busy = dict.fromkeys((s.name for s in stages), 0.0)
    capacity = dict.fromkeys((s.name for s in stages), 0.0)
    columns = stage_columns(scenario)
    for _, log in run.requests.groupby("replication", sort=True):
        measured = ~log["warmup"].to_numpy(dtype=bool)
        if measured.sum() < 2:
            continue
        arrivals = log["arrival_ms"].to_numpy(dtype=float)
        t0, t1 = float(arrivals[measured].min()), float(arrivals[measured].max())
        if t1 <= t0:
            continue
        timeline = None
        if run.timeline is not None and "replication" in run.timeline:
            part = run.timeline[run.timeline["replication"] == log["replication"].iloc[0]]
            timeline = part.sort_values("time_ms", kind="stable") if not part.empty else None
        replica_ms = cost.replica_time(scenario, timeline, t0, t1).paid_ms
        for stage in stages:
            if isinstance(stage, ModelStage):
                start, end = _batches(log, stage.name)
                servers_ms = replica_ms * scenario.deployment.instances
            else:
                start = arrivals + _time_before(log, columns, f"{stage.name}_ms")
                end = start + log[f"{stage.name}_ms"].to_numpy(dtype=float)
                servers_ms = stage.workers * (replica_ms if stage.per_replica else (t1 - t0))
            served = np.isfinite(start) & np.isfinite(end)
            busy[stage.name] += cost.busy_instance_ms(start[served], end[served], t0, t1)
            capacity[stage.name] += servers_ms
    return {name: busy[name] / capacity[name] if capacity[name] > 0 else math.nan for name in busy}


def busiest(shares: dict[str, float]) -> tuple[str, float] | None:
    """The stage with the largest finite busy share, and that share; None when no stage has one."""
    finite = {name: share for name, share in shares.items() if math.isfinite(share)}
    if not finite:
        return None
    name = max(finite, key=finite.get)
    return name, finite[name]


def _time_before(log: pd.DataFrame, columns: list[str], column: str) -> np.ndarray:
    """Milliseconds from arrival to the start of service in `column`: every stage and wait before it."""
    before = [c for c in columns[: columns.index(column)] if c in log]
    if not before:
        return np.zeros(len(log))
    return np.nan_to_num(log[before].to_numpy(dtype=float)).sum(axis=1)


def _batches(log: pd.DataFrame, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Each batch of model stage `name` once: its start and end (ms)."""
    ids = log[f"{name}_batch_id"].to_numpy()
    valid = ids >= 0
    _, first = np.unique(ids[valid], return_index=True)
    start = log[f"{name}_start_ms"].to_numpy(dtype=float)[valid][first]
    return start, start + log[f"{name}_ms"].to_numpy(dtype=float)[valid][first]
