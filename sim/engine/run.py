"""Run a scenario: arrivals -> stages in order -> one request log (a pandas DataFrame).

The pipeline is a tandem network without blocking, so each stage is simulated in turn from the times its
requests become ready: delay stages are vectorised draws, worker pools an exact FCFS recursion, model
stages a SimPy model of replicas, instances and batching (sim/engine/model_stage.py). Nothing here computes a
metric: sim/metrics/summary.py derives every figure from the log.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.spec.budget import check_run_options
from sim.errors import ScenarioError
from sim.engine.llm.pipeline import run_llm_stage
from sim.engine.runlog import LLMStageLog, RunLog
from sim.spec.scenario import DelayStage, LLMStage, ModelStage, PoolStage, Scenario
from sim.streams import stream

MAX_REQUESTS_PER_RUN = 20_000_000


def simulate_replication(scenario: Scenario, replication: int, *, seed: int, requests: int | None = None) -> RunLog:
    """One replication -> its run log: one row per arrival (rejected requests included, flagged), plus the
    autoscaling timeline and the LLM stage logs where the scenario has them."""
    check_run_options(scenario, requests, seed, 1, keep_log=False)  # this replication alone (the caller checks the run)
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
    caches = _CacheEffects(scenario, arrivals, seed, replication, columns)
    run = _Pipeline(n, arrivals.times_ms.copy(), columns)
    for stage in scenario.stages:
        run.ready = run.ready + caches.lookups_before(stage.name, run.alive)
        skipped = caches.skipped(stage.name)
        replaced, hit_ms = caches.replaced(stage.name)
        run.bypass(stage.name, replaced, hit_ms)
        active = run.alive & ~skipped & ~replaced
        if isinstance(stage, DelayStage):
            run.delay(stage, active, stream(seed, replication, "stage_service", stage.name))
        elif isinstance(stage, PoolStage):
            run.pool(stage, active, scenario.deployment, stream(seed, replication, "stage_service", stage.name))
        elif isinstance(stage, ModelStage):
            run.model(stage, active, scenario.deployment, seed, replication)
        elif isinstance(stage, LLMStage):
            run.llm(stage, active, scenario, arrivals.columns, seed, replication)
        else:  # pragma: no cover - the schema admits no other kind
            raise ScenarioError(f"stages.{stage.name}: unsupported kind {stage.kind!r}")
    alive, ready, primary_model, timelines = run.alive, run.ready, run.primary_model, run.timelines

    rejected = ~alive
    departure = np.where(alive, ready, np.nan)
    columns["rejected"] = rejected
    columns["warmup"] = workload.warmup_mask(arrivals.times_ms, own_length=requests is None)
    columns["departure_ms"] = departure
    columns["latency_ms"] = departure - arrivals.times_ms
    if primary_model is not None:
        columns["batch_size"] = columns[f"{primary_model}_batch_size"]
        columns["replica"] = columns[f"{primary_model}_replica"]
    for name, values in arrivals.columns.items():
        columns.setdefault(name, values)
    timeline = pd.concat(timelines, ignore_index=True) if timelines else None
    # copy=False: the frame takes the arrays as they are (the aliases batch_size / replica share memory with
    # their stage's columns) instead of a second copy of the whole log at the run's peak.
    requests = pd.DataFrame(columns, copy=False)
    # Each LLM stage's log stays as the engine left it: the run log makes its frames only if asked.
    llm_logs = tuple(LLMStageLog(replication, name, out.index, out.result) for name, out in run.llm_runs.items())
    return RunLog(requests=requests, timeline=timeline, llm_logs=llm_logs)


def simulate_replications(
    scenario: Scenario, replications: int, *, seed: int, requests: int | None = None, on_replication=None
) -> RunLog:
    """Replications 0..replications-1, one after another, as one run log."""
    parts = []
    for rep in range(replications):
        parts.append(simulate_replication(scenario, rep, seed=seed, requests=requests))
        if on_replication:
            on_replication(rep + 1, replications)
    return RunLog.concat(parts)


def _scatter(n: int, idx: np.ndarray, values: np.ndarray, fill) -> np.ndarray:
    """`values` of rows `idx` (sorted, distinct) as a column of n rows, `fill` elsewhere."""
    if len(idx) == n:  # every row: the values are the column (no second copy at the run's peak)
        return np.asarray(values)
    out = np.full(n, fill, dtype=np.asarray(values).dtype)
    out[idx] = values
    return out


class _CacheEffects:
    """What the scenario's caches do to each stage: lookups paid before the first stage a cache affects,
    stages a hit skips, stages a hit replaces by a local lookup (sim/spec/caching.py decides the hits)."""

    def __init__(self, scenario: Scenario, arrivals, seed: int, replication: int, columns: dict) -> None:
        self.n = len(arrivals.times_ms)
        self.skips: dict[str, np.ndarray] = {}
        self.replacements: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.lookups: dict[str, list[np.ndarray]] = {}
        if not scenario.caches:
            return
        from sim.engine import caching  # only a scenario with caches needs it (an LLM run starts faster)

        names = [stage.name for stage in scenario.stages]
        kinds = {stage.name: stage.kind for stage in scenario.stages}
        hits = caching.cache_outcomes(
            scenario.caches,
            arrivals.times_ms,
            arrivals.columns,
            seed,
            replication,
            stage_names=names,
            stage_kinds=kinds,
        )
        # An output hit answers before an inner cache is consulted: only requests that reach a cache pay it.
        reached = caching.reached_masks(scenario.caches, hits, names, kinds)

        def rng_for(sub: str) -> np.random.Generator:
            return stream(seed, replication, "cache", sub)

        lookups = caching.lookup_delays(scenario.caches, self.n, rng_for)
        self.skips = caching.skip_masks(scenario.caches, hits, names, kinds)
        self.replacements = caching.replacement_delays(scenario.caches, hits, rng_for)
        for cache in scenario.caches:
            columns[f"{cache.name}_hit"] = hits[cache.name]
            # NaN marks a cache the request never consulted (cache_summary's reached_fraction).
            columns[f"{cache.name}_lookup_ms"] = np.where(reached[cache.name], lookups[cache.name], np.nan)
            first = caching.lookup_stage(cache, names, kinds)
            self.lookups.setdefault(first, []).append(np.where(reached[cache.name], lookups[cache.name], 0.0))

    def lookups_before(self, stage: str, alive: np.ndarray) -> np.ndarray:
        total = np.zeros(self.n)
        for draws in self.lookups.get(stage, []):
            total += draws
        return np.where(alive, total, 0.0)

    def skipped(self, stage: str) -> np.ndarray:
        return self.skips.get(stage, np.zeros(self.n, dtype=bool))

    def replaced(self, stage: str) -> tuple[np.ndarray, np.ndarray]:
        mask, hit_ms = self.replacements.get(stage, (np.zeros(self.n, dtype=bool), np.zeros(self.n)))
        return mask & ~self.skipped(stage), hit_ms


class _Pipeline:
    """The state of one replication as it moves through the stages: when each request is ready for the
    next stage, which are still alive (not rejected), and the log columns written so far."""

    def __init__(self, n: int, ready: np.ndarray, columns: dict) -> None:
        self.n = n
        self.ready = ready
        self.alive = np.ones(n, dtype=bool)
        self.columns = columns
        self.primary_model: str | None = None
        self.timelines: list[pd.DataFrame] = []
        self.llm_runs: dict = {}

    def llm(
        self, stage: LLMStage, active: np.ndarray, scenario: Scenario, arrival_columns, seed: int, replication: int
    ) -> None:
        """An LLM deployment (sim/engine/llm): TTFT, TPOT and token counts join the request log; the stage's
        own log (iterations, inter-token gaps) becomes the run log's llm frames."""
        deployment = scenario.deployment
        out = run_llm_stage(
            stage,
            scenario.workload.tokens,
            self.ready,
            active,
            arrival_columns,
            deployment.replicas,
            deployment.routing,
            seed,
            replication,
        )
        name = stage.name
        queue = self._queue_column(name)
        queue[active] = out.columns.pop(f"{name}_queue_ms")[active]
        self.columns[f"{name}_ms"][active] = out.columns.pop(f"{name}_ms")[active]
        self.columns.update(out.columns)
        self.alive[out.rejected] = False
        self.ready = np.where(active, out.done_ms, self.ready)
        self.ready[out.rejected] = np.nan
        for column in (f"{name}_ms", f"{name}_queue_ms"):
            self.columns[column][out.rejected] = np.nan
        self.llm_runs[name] = out
        if self.primary_model is None:
            self.primary_model = name

    def bypass(self, name: str, replaced: np.ndarray, hit_ms: np.ndarray) -> None:
        """Start the stage's column: requests that skip the stage spend nothing in it; those whose stage a
        cache hit replaces spend `hit_ms`, without queueing."""
        self.columns[f"{name}_ms"] = np.where(self.alive, 0.0, np.nan)
        self.columns[f"{name}_ms"][replaced & self.alive] = hit_ms[replaced & self.alive]
        self.ready = np.where(replaced, self.ready + np.nan_to_num(hit_ms), self.ready)

    def _queue_column(self, name: str) -> np.ndarray:
        return self.columns.setdefault(f"{name}_queue_ms", np.where(self.alive, 0.0, np.nan))

    def delay(self, stage: DelayStage, active: np.ndarray, rng: np.random.Generator) -> None:
        draws = stage.service_ms.sample(rng, self.n)
        self.columns[f"{stage.name}_ms"][active] = draws[active]
        self.ready = np.where(active, self.ready + draws, self.ready)

    def pool(self, stage: PoolStage, active: np.ndarray, deployment, rng: np.random.Generator) -> None:
        from sim.engine.fcfs import fcfs_start_ms

        service = stage.service_ms.sample(rng, self.n)
        servers = stage.workers * (deployment.replicas if stage.per_replica else 1)
        start = fcfs_start_ms(self.ready[active], service[active], servers)
        queue = self._queue_column(stage.name)
        queue[active] = start - self.ready[active]
        self.columns[f"{stage.name}_ms"][active] = service[active]
        self.ready[active] = start + service[active]

    def model(self, stage: ModelStage, active: np.ndarray, deployment, seed: int, replication: int) -> None:
        from sim.engine.model_stage import simulate_model_stage  # and its batching kernels: not for an LLM run

        name = stage.name
        result = simulate_model_stage(
            self.ready[active],
            stage.cost,
            stage.batching,
            replicas=deployment.replicas,
            instances=deployment.instances,
            routing=deployment.routing,
            max_queue_size=deployment.max_queue_size,
            service_rng=stream(seed, replication, "batch_service", name),
            routing_rng=stream(seed, replication, "routing", name),
            autoscaling=deployment.autoscaling,
            cold_start=deployment.cold_start_ms,
            cold_start_rng=stream(seed, replication, "cold_start", name),
        )
        if result.timeline is not None:
            self.timelines.append(result.timeline.assign(stage=name, replication=replication))
        idx = np.flatnonzero(active)
        queue = self._queue_column(name)
        queue[idx] = result.start_ms - self.ready[idx]
        self.columns[f"{name}_ms"][idx] = result.service_ms
        self.columns[f"{name}_start_ms"] = _scatter(self.n, idx, result.start_ms, np.nan)
        self.columns[f"{name}_batch_id"] = _scatter(self.n, idx, result.batch_id, -1)
        self.columns[f"{name}_batch_size"] = _scatter(self.n, idx, result.batch_size, 0)
        self.columns[f"{name}_replica"] = _scatter(self.n, idx, result.replica, -1)
        self.columns[f"{name}_instance"] = _scatter(self.n, idx, result.instance, -1)
        rejected = idx[result.rejected]
        self.alive[rejected] = False
        self.ready[idx] = result.start_ms + result.service_ms
        self.ready[rejected] = np.nan
        for column in (f"{name}_ms", f"{name}_queue_ms"):
            self.columns[column][rejected] = np.nan
        if self.primary_model is None:
            self.primary_model = name
