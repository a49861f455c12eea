"""Run log -> the summary: percentiles with 95% confidence intervals, stage breakdown, throughput,
utilisation, rejections, cost and SLO attainment. Every figure here is derived from the run log.

Every figure is estimated from whole replications: the mean over replications of each replication's own
figure (one replication: its own). Confidence intervals come from independent replications (Student t over
the per-replication estimates); a single replication of a stationary load is cut into 10 consecutive
sections instead (batch means, about the whole run's figure), and the output says so. A single replication
of a load that follows the clock (a daily curve) gets no interval: its sections are not exchangeable (the
night is not a sample of the noon peak), and the output says to run two or more replications.

Throughput, cost and utilisation of a load that follows the clock are taken over the measured horizon (the
scenario's horizon less its warm-up), not between the first and last request measured.

Each replication is first reduced to a small `ReplicationPart` (its figures, stage breakdown, cache counts,
replica counts); the summary merges the parts. `summarize` splits a whole run log into replications;
`simulate(..., keep_log=False)` (sim/analysis/simulate.py) reduces each replication as it finishes and
drops its log, so memory does not grow with the replication count — and both give the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sim.engine.runlog import RunLog
from sim.errors import ScenarioError
from sim.metrics import cost
from sim.metrics.invariants import ZERO_SPAN, with_status
from sim.metrics.caches import CacheCounts, cache_counts, caches_key
from sim.metrics.groups import group_rows, identical, latency_digest
from sim.metrics.llm import llm_key
from sim.metrics.load import offered_load
from sim.metrics.stats import ci95, mean_of_finite, within
from sim.metrics.windows import judge_windows, window_points
from sim.spec.levers import lever_summary
from sim.spec.scenario import ModelStage, PoolStage, Scenario, time_dependent, time_varying_load

QUANTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99, "p999": 0.999}
STAGE_QUANTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}
# A percentile q needs about 10 requests beyond it to be more than a guess.
TAIL_SAMPLES_NEEDED = 10
CI_WARN_RELATIVE_HALF_WIDTH = 0.10
# The cost of a horizon (sim.metrics.cost.horizon_cost): a day's, or a shorter horizon's and its length.
HORIZON_COST = ("usd_per_day", "usd_for_horizon", "horizon_s")


def stage_columns(scenario: Scenario) -> list[str]:
    """Log columns holding time spent per stage, in pipeline order (queue waits before their service)."""
    columns = [f"{cache.name}_lookup_ms" for cache in scenario.caches]
    for stage in scenario.stages:
        if isinstance(stage, (PoolStage, ModelStage)) or stage.kind == "llm":
            columns.append(f"{stage.name}_queue_ms")
        columns.append(f"{stage.name}_ms")
    return columns


def model_stages(scenario: Scenario) -> list[ModelStage]:
    return [stage for stage in scenario.stages if isinstance(stage, ModelStage)]


@dataclass
class _Replication:
    """What the figures of any window of one replication need, computed once per replication."""

    departures_ms: np.ndarray  # sorted
    batch_start_ms: np.ndarray  # sorted
    batch_end_ms: np.ndarray
    timeline: pd.DataFrame | None
    longest_batch_ms: float = 0.0

    def busy_instance_ms(self, t0: float, t1: float) -> float:
        """`cost.busy_instance_ms` over [t0, t1], on the batches that can overlap it: those starting within
        the longest batch before t0 up to t1 (a section of a run need not clip every batch of the run)."""
        start, end = self.batch_start_ms, self.batch_end_ms
        lo = np.searchsorted(start, t0 - self.longest_batch_ms, side="left")
        hi = np.searchsorted(start, t1, side="right")
        return cost.busy_instance_ms(start[lo:hi], end[lo:hi], t0, t1)


def _batches(batch_id: np.ndarray, start_ms: np.ndarray, service_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each batch's start and end, ordered by start. Every request of a batch carries the batch's start
    and service time, so writing them by batch id (ids are dense, numbered in dispatch order) finds each
    batch without sorting the requests."""
    valid = batch_id >= 0
    ids = batch_id[valid]
    if not len(ids):
        return np.zeros(0), np.zeros(0)
    if ids.max() < 4 * len(batch_id):
        start = np.full(int(ids.max()) + 1, np.nan)
        service = np.full(len(start), np.nan)
        start[ids], service[ids] = start_ms[valid], service_ms[valid]
        kept = ~np.isnan(start)
        start, service = start[kept], service[kept]
    else:  # sparse ids (no engine path makes them; a log read from a file may have any)
        _, first = np.unique(ids, return_index=True)
        start, service = start_ms[valid][first], service_ms[valid][first]
    if np.any(start[1:] < start[:-1]):
        order = np.argsort(start, kind="stable")
        start, service = start[order], service[order]
    return start, start + service


def _replication(run: RunLog, scenario: Scenario) -> _Replication:
    """`_Replication` of a one-replication run log."""
    part = run.requests
    departures = np.sort(part["departure_ms"].to_numpy())
    start = end = np.zeros(0)
    stages = model_stages(scenario)
    if stages:
        name = stages[0].name
        start, end = _batches(
            part[f"{name}_batch_id"].to_numpy(), part[f"{name}_start_ms"].to_numpy(), part[f"{name}_ms"].to_numpy()
        )
    timeline = None
    if run.timeline is not None:
        timeline = run.timeline.sort_values("time_ms", kind="stable")
    longest = float((end - start).max()) if len(start) else 0.0
    return _Replication(departures, start, end, timeline, longest)


@dataclass
class ReplicationPart:
    """One replication reduced to what the summary needs from it (a few kB, whatever its length)."""

    whole: dict[str, float] | None  # group_figures of its measured requests (None: all warm-up)
    sections: list[dict[str, float]]  # ... of its sections (the first replication only)
    digest: str | None  # latency fingerprint: are the replications a deterministic replay?
    latency_range: tuple[float, float]  # of its measured, served requests
    stages: dict[str, dict[str, float]]  # stage_breakdown
    caches: dict[str, CacheCounts] = field(default_factory=dict)
    scaling: dict[str, float] | None = None  # warm replicas, max replicas, cold starts
    window_points: tuple[np.ndarray, np.ndarray] | None = None  # for the per-window SLO verdict
    llm_run: RunLog | None = None  # an LLM stage's log is kept whole (sim/metrics/llm.py)


def measured_window(log: pd.DataFrame, scenario: Scenario) -> tuple[float, float] | None:
    """The measured horizon of one replication of a load that follows the clock, in ms: from the end of
    the warm-up (`warmup_s`, else the last warm-up arrival, else 0) to the end of the scenario's horizon.
    None for any other load: its window is the span of the requests measured."""
    if not time_varying_load(scenario):
        return None
    _, horizon_ms = scenario.workload.length()
    if scenario.workload.warmup_s is not None:
        return scenario.workload.warmup_s * 1000.0, horizon_ms
    warmup = log["warmup"].to_numpy()
    start = float(log["arrival_ms"].to_numpy()[warmup].max()) if warmup.any() else 0.0
    return start, horizon_ms


def replication_part(run: RunLog, scenario: Scenario, *, first: bool) -> ReplicationPart:
    """Reduce a one-replication run log; `first`: the first replication also keeps its sections' figures
    (the CIs of a single replication, or of identical ones, come from them; none for a load that follows
    the clock)."""
    log = run.requests
    replication = _replication(run, scenario)
    whole = group_rows(log, False)
    sections = group_rows(log, True) if first and not time_varying_load(scenario) else []
    window = measured_window(log, scenario)
    measured = log["latency_ms"].to_numpy()[~log["warmup"].to_numpy() & ~log["rejected"].to_numpy()]
    measured = measured[np.isfinite(measured)]
    latency_range = (float(measured.min()), float(measured.max())) if len(measured) else (math.inf, -math.inf)
    budgets = scenario.slo.budgets()
    return ReplicationPart(
        whole=group_figures(log, whole[0], scenario, replication, window) if whole else None,
        sections=[group_figures(log, rows, scenario, replication) for rows in sections],
        digest=latency_digest(log),
        latency_range=latency_range,
        stages=stage_breakdown(log, scenario),
        caches=cache_counts(log, scenario.caches, whole, sections) if scenario.caches else {},
        scaling=_scaling(
            replication.timeline, scenario, log["arrival_ms"].to_numpy()[whole[0]] if whole else None, window
        ),
        window_points=window_points(log) if budgets and time_dependent(scenario) else None,
        llm_run=run if run.llm_requests is not None else None,
    )


def _scaling(
    timeline: pd.DataFrame | None,
    scenario: Scenario,
    arrivals: np.ndarray | None,
    window: tuple[float, float] | None = None,
) -> dict | None:
    """Warm replicas over the measurement window (`window`, else the span of the measured arrivals), most
    replicas paid at once and cold starts, from the replication's change-points (sorted by time)."""
    if timeline is None or scenario.deployment.autoscaling is None or timeline.empty:
        return None
    warm = math.nan
    if arrivals is not None:
        t0, t1 = window or (float(arrivals.min()), float(arrivals.max()))
        warm = cost.replica_time(scenario, timeline, t0, t1).warm_ms / max(t1 - t0, 1e-9)
    return {
        "warm": warm,
        "max": int(cost.replicas_paid(timeline).max()),
        "cold_starts": int(np.clip(np.diff(timeline["starting"].to_numpy(), prepend=0), 0, None).sum()),
    }


def group_figures(
    log: pd.DataFrame,
    rows: np.ndarray,
    scenario: Scenario,
    replication: _Replication,
    window: tuple[float, float] | None = None,
) -> dict[str, float]:
    """Latency percentiles, throughput, utilisation, cost, rejections and attainment of one group (the
    rows at positions `rows` of a replication's log: the replication or a section of one), over `window`
    (ms; the measured horizon of a load that follows the clock, which also gets the cost of its horizon),
    else the span of the group's arrivals. Throughput: the requests served (departed) in the window over
    its length."""
    rejected = log["rejected"].to_numpy()[rows]
    latency = log["latency_ms"].to_numpy()[rows][~rejected]
    figures: dict[str, float] = {"requests": len(rows), "served": len(latency)}
    figures["mean"] = float(latency.mean()) if len(latency) else math.nan
    values = np.quantile(latency, list(QUANTILES.values())) if len(latency) else [math.nan] * len(QUANTILES)
    figures.update(zip(QUANTILES, map(float, values)))
    if window is None:
        arrivals = log["arrival_ms"].to_numpy()[rows]
        t0, t1 = float(arrivals.min()), float(arrivals.max())
    else:
        t0, t1 = window
    # Arrivals on one instant (a degenerate trace) leave no time to take a rate over: the rates are NaN
    # and the verdict says why (sim/metrics/invariants.py), rather than 0 served per second.
    span_ms = t1 - t0 if t1 > t0 else math.nan
    departures = replication.departures_ms
    departed = int(np.searchsorted(departures, t1, side="right") - np.searchsorted(departures, t0, side="left"))
    figures["throughput_rps"] = departed / span_ms * 1000
    figures["rejected_fraction"] = float(rejected.mean())
    replica_ms = cost.replica_time(scenario, replication.timeline, t0, t1)
    figures["mean_replicas"] = replica_ms.paid_ms / span_ms
    if math.isnan(span_ms):
        figures["utilization"] = math.nan
    elif model_stages(scenario):
        busy = replication.busy_instance_ms(t0, t1)
        figures["utilization"] = cost.utilization(busy, replica_ms, scenario.deployment.instances)
    else:
        figures["utilization"] = math.nan
    price = cost.price_usd_per_replica_hour(scenario)
    paid_over_ms = 0.0 if math.isnan(span_ms) else span_ms  # the cost functions' "no window"
    figures.update(cost.cost_figures(price, replica_ms, paid_over_ms, departed))
    if window is not None:
        figures.update(cost.horizon_cost(price, replica_ms, paid_over_ms, scenario.workload.length()[1]))
    budget = scenario.slo.p99_ms
    figures["attainment"] = float(np.mean(latency <= budget)) if budget and len(latency) else math.nan
    return figures


def parts_of(run: RunLog, scenario: Scenario) -> list[ReplicationPart]:
    """A whole run log reduced replication by replication (the first one's sections only when they count:
    it is the only one, or the others repeat it)."""
    logs = run.split()
    parts = [replication_part(log, scenario, first=len(logs) == 1) for log in logs]
    if len(parts) > 1 and _sectioned(parts):
        parts[0] = replication_part(logs[0], scenario, first=True)
    return parts


def _sectioned(parts: list[ReplicationPart]) -> bool:
    """CIs from the first replication's sections: it is the only one, or the others repeat it."""
    return len(parts) == 1 or identical([part.digest for part in parts])


def _estimates(parts: list[ReplicationPart]) -> pd.DataFrame:
    """One row of `group_figures` per replication, taken whole, whose means are the summary's figures (the
    first alone when the replications repeat it)."""
    rows = [part.whole for part in (parts[:1] if _sectioned(parts) else parts) if part.whole is not None]
    if not rows:
        raise ScenarioError(
            "workload: the warm-up covers the whole run, nothing is left to measure "
            "(lower warmup_requests / warmup_s or run more requests)"
        )
    return pd.DataFrame(rows)


def _interval_groups(parts: list[ReplicationPart]) -> pd.DataFrame | None:
    """One row of `group_figures` per independent group the confidence intervals are computed over: the
    replications, or the sections of the first when it stands alone (a stationary load only: a load that
    follows the clock keeps none); None: no honest interval."""
    if not _sectioned(parts):
        return pd.DataFrame([part.whole for part in parts if part.whole is not None])
    return pd.DataFrame(parts[0].sections) if parts[0].sections else None


def _interval(estimates: pd.DataFrame, groups: pd.DataFrame | None, key: str, sectioned: bool) -> tuple[float, float]:
    """95% CI of figure `key`: Student t over the replications, or over the sections about the whole
    replication's figure; NaN where no honest interval exists."""
    if groups is None or key not in groups:
        return (math.nan, math.nan)
    return ci95(groups[key], centre=float(estimates[key].iloc[0]) if sectioned else None)


def per_group_figures(run: RunLog, scenario: Scenario) -> pd.DataFrame:
    """One row of `group_figures` per independent group (replication, or section of a single replication
    of a stationary load; the replication whole where no sections count)."""
    parts = parts_of(run, scenario)
    groups = _interval_groups(parts)
    return groups if groups is not None and len(groups) else _estimates(parts)


def replication_figures(run: RunLog, scenario: Scenario) -> dict[str, float]:
    """`group_figures` of a single replication's measured requests taken whole (no sections)."""
    measured = group_rows(run.requests, False)
    if not measured:
        raise ScenarioError("workload: the warm-up covers the whole run, nothing is left to measure")
    window = measured_window(run.requests, scenario)
    return group_figures(run.requests, measured[0], scenario, _replication(run, scenario), window)


def stage_breakdown(log: pd.DataFrame, scenario: Scenario) -> dict[str, dict[str, float]]:
    """Mean and percentiles of the time each served, measured request spent in each stage."""
    served = ~log["warmup"].to_numpy() & ~log["rejected"].to_numpy()
    breakdown = {}
    for column in stage_columns(scenario):
        if column not in log:
            continue
        values = log[column].to_numpy(dtype=float)[served]
        if column.endswith("_lookup_ms"):  # a cache not consulted cost nothing
            values = np.nan_to_num(values, nan=0.0)
        values = values[np.isfinite(values)]
        if not len(values):
            continue
        entry = {"mean": float(values.mean())}
        entry.update({key: float(np.quantile(values, q)) for key, q in STAGE_QUANTILES.items()})
        breakdown[column.removesuffix("_ms")] = entry
    return breakdown


def summarize(run: RunLog, scenario: Scenario) -> dict:
    """The `servesim run --json` contract (DESIGN.md), computed from the run log."""
    return summarize_parts(parts_of(run, scenario), scenario)


def summarize_parts(parts: list[ReplicationPart], scenario: Scenario) -> dict:
    """The `servesim run --json` contract from the replications' parts, in replication order."""
    per_group = _estimates(parts)  # one row per replication: the figures are their means
    groups = _interval_groups(parts)  # what the CIs are computed over (None: no honest interval)
    replications = len(parts)
    warnings: list[str] = []
    sectioned = _sectioned(parts)  # one replication (or identical ones) stands for the run
    if sectioned and groups is None:
        repeated = (
            f"the {replications} replications are identical (a deterministic replay), so they count as one; "
            if replications > 1
            else ""
        )
        warnings.append(
            f"no confidence intervals: {repeated}the load changes over time, so sections of one replication are "
            "not exchangeable samples of it; run --replications 2 or more for intervals over replications"
        )
    elif replications > 1 and sectioned:
        warnings.append(
            f"the {replications} replications are identical (a deterministic replay: a trace with fixed costs); "
            f"they add nothing: figures from one, confidence intervals from {len(groups)} sections of it (batch means)"
        )
    elif replications == 1:
        warnings.append(
            f"confidence intervals from {len(groups)} sections of one replication (batch means); "
            "use --replications 5 or more for independent replications"
        )

    latency = {"mean": mean_of_finite(per_group["mean"])}
    latency.update({key: mean_of_finite(per_group[key]) for key in QUANTILES})
    # A latency figure cannot leave the range of the latencies measured: a Student-t interval over two or
    # three replications of a heavy tail can (p999 [-2,505 ms, 10.2 s]); it is clipped to that range.
    floor = min(part.latency_range[0] for part in parts)
    ceiling = max(part.latency_range[1] for part in parts)
    if floor > ceiling:  # nothing measured was served
        floor, ceiling = math.nan, math.nan
    latency_ci = {
        key: list(within(_interval(per_group, groups, key, sectioned), floor, ceiling)) for key in ["mean", *QUANTILES]
    }
    by_sections = sectioned and groups is not None
    served_per_group = (groups if by_sections else per_group)["served"].min()
    for key, q in QUANTILES.items():
        needed = math.ceil(TAIL_SAMPLES_NEEDED / (1 - q))
        if served_per_group < needed:
            warnings.append(
                f"{key} from {int(served_per_group)} requests per {'section' if by_sections else 'replication'}: "
                f"fewer than {needed}, the estimate is unreliable (run more requests)"
            )
        elif key != "p999":
            low, high = latency_ci[key]
            value = latency[key]
            if value and math.isfinite(low) and (high - low) / 2 > CI_WARN_RELATIVE_HALF_WIDTH * value:
                warnings.append(
                    f"{key} 95% CI half-width is {(high - low) / 2 / value:.0%} of the value: run longer or more replications"
                )

    if per_group["throughput_rps"].isna().any():  # group_figures: arrivals on one instant
        warnings.insert(0, f"the {ZERO_SPAN}")
    loads = offered_load(scenario)
    for stage_name, rho in loads.items():
        if rho >= 1:
            what = (
                "requests are rejected at the queue limit"
                if scenario.deployment.max_queue_size is not None
                else ("the queue grows without bound; latencies grow with run length and mean nothing")
            )
            warnings.insert(0, f"unstable: offered load on stage {stage_name!r} is {rho:.2f} ≥ 1 — {what}")

    usd_per_hour = mean_of_finite(per_group["usd_per_hour"])
    usd_per_1m = mean_of_finite(per_group["usd_per_1m_queries"])
    if cost.price_usd_per_replica_hour(scenario) is None:
        warnings.append("no deployment.hardware.usd_per_hour: cost not computed")
    for stage in model_stages(scenario):
        profile = cost.measured_profile(stage) if stage.profile is not None else None
        if profile is not None:
            for note in getattr(profile, "warnings", ()) or ():
                warnings.append(f"stages.{stage.name}.profile: {note}")
            if getattr(profile, "lever", None):
                warnings.append(f"stages.{stage.name}: lever assumed — {lever_summary(profile.lever)}")

    budgets = scenario.slo.budgets()
    slo = {"p99_ms": scenario.slo.p99_ms, "met": None, "attainment": None}
    if budgets:
        checks = {f"p{round(q * 100)}": latency[f"p{round(q * 100)}"] <= ms for q, ms in budgets.items()}
        slo["met"] = bool(all(checks.values()))
        slo["budgets"] = {f"p{round(q * 100)}_ms": ms for q, ms in budgets.items()}
        slo["checks"] = checks
    if scenario.slo.p99_ms is not None:
        slo["attainment"] = mean_of_finite(per_group["attainment"])
    if budgets and time_dependent(scenario):  # the load changes: a spike's window must not average away
        points = [part.window_points for part in parts if part.window_points is not None]
        slo["windows"] = judge_windows(*(np.concatenate(c) for c in zip(*points)), budgets) if points else None

    scaling = autoscaling_summary(per_group, parts, scenario, _interval(per_group, groups, "mean_replicas", sectioned))
    llm_runs = [part.llm_run for part in parts if part.llm_run is not None]
    llm = llm_key(RunLog.concat(llm_runs), scenario) if llm_runs else None
    if llm:
        warnings.extend(llm["warnings"])
    return with_status(
        {
            "scenario": scenario.name,
            "replications": replications,
            "requests": int(per_group["requests"].sum()),
            "served": int(per_group["served"].sum()),
            "throughput_rps": mean_of_finite(per_group["throughput_rps"]),
            "latency_ms": latency,
            "latency_ms_ci95": latency_ci,
            "stages": merged_stages(parts, sectioned),
            "utilization": mean_of_finite(per_group["utilization"]),
            "offered_load": loads,
            "rejected_fraction": mean_of_finite(per_group["rejected_fraction"]),
            "cost": {
                "usd_per_hour": _none_if_nan(usd_per_hour),
                "usd_per_1m_queries": _none_if_nan(usd_per_1m),
                "mean_replicas": mean_of_finite(per_group["mean_replicas"]),
                **{key: _none_if_nan(mean_of_finite(per_group[key])) for key in HORIZON_COST if key in per_group},
            },
            "slo": slo,
            "warnings": warnings,
            **({"autoscaling": scaling} if scaling else {}),
            **(
                {
                    "caches": caches_key(
                        [p.caches for p in parts], scenario.caches, sectioned, intervals=groups is not None
                    )
                }
                if scenario.caches
                else {}
            ),
            **({"llm": llm} if llm else {}),
        },
        scenario,
    )


def merged_stages(parts: list[ReplicationPart], sectioned: bool) -> dict[str, dict[str, float]]:
    """The stage breakdown over replications: each figure the mean of the replications' (as the latency
    percentiles are); the first replication's alone when they are identical or it is the only one."""
    if sectioned:
        return parts[0].stages
    merged = {}
    for stage in dict.fromkeys(name for part in parts for name in part.stages):
        entries = [part.stages[stage] for part in parts if stage in part.stages]
        merged[stage] = {key: mean_of_finite([entry[key] for entry in entries]) for key in entries[0]}
    return merged


def autoscaling_summary(
    per_group: pd.DataFrame, parts: list[ReplicationPart], scenario: Scenario, mean_replicas_ci95: tuple[float, float]
) -> dict | None:
    """Replicas over the measurement windows (paid: starting + warm + draining) and cold starts."""
    scaling = [part.scaling for part in parts if part.scaling is not None]
    if not scaling or scenario.deployment.autoscaling is None:
        return None
    return {
        "policy": scenario.deployment.autoscaling.policy,
        "mean_replicas": mean_of_finite(per_group["mean_replicas"]),
        "mean_replicas_ci95": list(mean_replicas_ci95),
        "mean_warm_replicas": float(np.mean([s["warm"] for s in scaling])),
        "max_replicas": int(max(s["max"] for s in scaling)),
        "cold_starts_per_replication": float(np.mean([s["cold_starts"] for s in scaling])),
    }


def _none_if_nan(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else value
