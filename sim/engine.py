"""Run a scenario: arrivals -> stages in order -> one request log (a pandas DataFrame).

The pipeline is a tandem network without blocking, so each stage is simulated in turn from the times its
requests become ready: delay stages are vectorised draws, worker pools an exact FCFS recursion, model
stages a SimPy model of replicas, instances and batching (sim/model_stage.py). Nothing here computes a
metric: sim/metrics.py derives every figure from the log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from sim.errors import ScenarioError
from sim.fcfs import fcfs_servers
from sim.model_stage import simulate_model_stage
from sim.scenario import DelayStage, ModelStage, PoolStage, Scenario
from sim.streams import stream

MAX_REQUESTS_PER_RUN = 20_000_000


@dataclass
class RunResult:
    """A finished run: the scenario, the request log of every replication, and the summary derived from it."""

    scenario: Scenario
    log: pd.DataFrame
    summary: dict = field(default_factory=dict)


def simulate(
    scenario: Scenario,
    *,
    requests: int | None = None,
    seed: int | None = None,
    replications: int | None = None,
    on_replication: Callable[[int, int], None] | None = None,
) -> RunResult:
    """Simulate `replications` independent replications (default: the scenario's) and summarise them."""
    from sim.metrics import summarize

    seed = scenario.seed if seed is None else seed
    replications = scenario.replications if replications is None else replications
    if requests is not None and requests <= 0:
        raise ScenarioError(f"--requests must be positive (got {requests})")
    if replications <= 0:
        raise ScenarioError(f"--replications must be positive (got {replications})")
    logs = []
    for rep in range(replications):
        logs.append(simulate_replication(scenario, rep, seed=seed, requests=requests))
        if on_replication:
            on_replication(rep + 1, replications)
    log = combine_logs(logs)
    return RunResult(scenario=scenario, log=log, summary=summarize(log, scenario))


def simulate_replication(
    scenario: Scenario, replication: int, *, seed: int, requests: int | None = None
) -> pd.DataFrame:
    """One replication -> its request log, one row per arrival (rejected requests included, flagged)."""
    workload = scenario.workload
    count, horizon_ms = (requests, None) if requests is not None else workload.length()
    if count is not None and count > MAX_REQUESTS_PER_RUN:
        raise ScenarioError(f"workload.requests: {count} is above the limit of {MAX_REQUESTS_PER_RUN} per run")
    if horizon_ms is not None and horizon_ms / 1000 * workload.arrival.mean_rate_rps > MAX_REQUESTS_PER_RUN:
        raise ScenarioError(
            f"workload.duration_s: {horizon_ms / 1000:g} s at {workload.arrival.mean_rate_rps:g} rps is above "
            f"the limit of {MAX_REQUESTS_PER_RUN} requests per run"
        )
    arrivals = workload.arrival.generate(stream(seed, replication, "arrivals"), count, horizon_ms)
    n = len(arrivals.times_ms)
    if n == 0:
        raise ScenarioError("workload: the arrival process produced no requests (duration too short?)")

    columns: dict[str, np.ndarray] = {
        "request": np.arange(n),
        "replication": np.full(n, replication),
        "arrival_ms": arrivals.times_ms,
    }
    ready = arrivals.times_ms.copy()
    alive = np.ones(n, dtype=bool)
    deployment = scenario.deployment
    primary_model: str | None = None
    timelines: list[pd.DataFrame] = []
    for stage in scenario.stages:
        rng = stream(seed, replication, "stage_service", stage.name)
        if isinstance(stage, DelayStage):
            delay = np.where(alive, stage.service_ms.sample(rng, n), np.nan)
            columns[f"{stage.name}_ms"] = delay
            ready = ready + delay
        elif isinstance(stage, PoolStage):
            service = stage.service_ms.sample(rng, n)
            servers = stage.workers * (deployment.replicas if stage.per_replica else 1)
            start = np.full(n, np.nan)
            start[alive], _ = fcfs_servers(ready[alive], service[alive], servers)
            columns[f"{stage.name}_queue_ms"] = start - ready
            columns[f"{stage.name}_ms"] = np.where(alive, service, np.nan)
            ready = start + service
        elif isinstance(stage, ModelStage):
            result = simulate_model_stage(
                ready[alive],
                stage.cost,
                stage.batching,
                replicas=deployment.replicas,
                instances=deployment.instances,
                routing=deployment.routing,
                max_queue_size=deployment.max_queue_size,
                service_rng=stream(seed, replication, "batch_service", stage.name),
                routing_rng=stream(seed, replication, "routing", stage.name),
                autoscaling=deployment.autoscaling,
                cold_start=deployment.cold_start_ms,
                cold_start_rng=stream(seed, replication, "cold_start", stage.name),
            )
            if result.timeline is not None:
                timelines.append(result.timeline.assign(stage=stage.name, replication=replication))
            idx = np.flatnonzero(alive)
            name = stage.name
            start = _scatter(n, idx, result.start_ms, np.nan)
            service = _scatter(n, idx, result.service_ms, np.nan)
            columns[f"{name}_queue_ms"] = start - ready
            columns[f"{name}_ms"] = service
            columns[f"{name}_start_ms"] = start
            columns[f"{name}_batch_id"] = _scatter(n, idx, result.batch_id, -1)
            columns[f"{name}_batch_size"] = _scatter(n, idx, result.batch_size, 0)
            columns[f"{name}_replica"] = _scatter(n, idx, result.replica, -1)
            columns[f"{name}_instance"] = _scatter(n, idx, result.instance, -1)
            alive[idx[result.rejected]] = False
            ready = np.where(alive, start + service, np.nan)
            if primary_model is None:
                primary_model = name
        else:  # pragma: no cover - the schema admits no other kind
            raise ScenarioError(f"stages.{stage.name}: unsupported kind {stage.kind!r}")

    rejected = ~alive
    departure = np.where(alive, ready, np.nan)
    columns["rejected"] = rejected
    columns["warmup"] = _warmup_mask(scenario, arrivals.times_ms)
    columns["departure_ms"] = departure
    columns["latency_ms"] = departure - arrivals.times_ms
    if primary_model is not None:
        columns["batch_size"] = columns[f"{primary_model}_batch_size"]
        columns["replica"] = columns[f"{primary_model}_replica"]
    for name, values in arrivals.columns.items():
        columns.setdefault(name, values)
    log = pd.DataFrame(columns)
    if timelines:
        log.attrs["timeline"] = pd.concat(timelines, ignore_index=True)
    return log


def combine_logs(logs: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate replication logs, keeping their timelines (replica counts over time) together."""
    timelines = [part.attrs["timeline"] for part in logs if "timeline" in part.attrs]
    bare = []
    for part in logs:  # pandas compares attrs on concat; DataFrames inside attrs cannot be compared
        part = part.copy(deep=False)
        part.attrs = {}
        bare.append(part)
    log = pd.concat(bare, ignore_index=True)
    if timelines:
        log.attrs["timeline"] = pd.concat(timelines, ignore_index=True)
    return log


def _scatter(n: int, idx: np.ndarray, values: np.ndarray, fill) -> np.ndarray:
    out = np.full(n, fill, dtype=np.asarray(values).dtype)
    out[idx] = values
    return out


def _warmup_mask(scenario: Scenario, arrival_ms: np.ndarray) -> np.ndarray:
    """Requests excluded from statistics: the first `warmup_requests`, those arriving before `warmup_s`,
    or by default the first 5% of the run."""
    workload = scenario.workload
    n = len(arrival_ms)
    if workload.warmup_s is not None:
        return arrival_ms < workload.warmup_s * 1000.0
    count = workload.warmup_requests if workload.warmup_requests is not None else n // 20
    mask = np.zeros(n, dtype=bool)
    mask[: min(count, max(n - 1, 0))] = True
    return mask
