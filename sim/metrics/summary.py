"""Run log -> the summary: percentiles with 95% confidence intervals, stage breakdown, throughput,
utilisation, rejections, cost and SLO attainment. Every figure here is derived from the run log.

Confidence intervals come from independent replications (Student t over the per-replication estimates);
a single replication is cut into 10 consecutive sections instead (batch means), and the output says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sim.engine.runlog import RunLog
from sim.errors import ScenarioError
from sim.metrics import cost
from sim.metrics.invariants import with_status
from sim.metrics.caches import cache_summary
from sim.metrics.groups import identical_replications, measurement_groups
from sim.metrics.llm import llm_key
from sim.metrics.load import offered_load
from sim.metrics.stats import ci95, mean_of_finite, within
from sim.metrics.windows import slo_windows
from sim.spec.levers import lever_summary
from sim.spec.scenario import ModelStage, PoolStage, Scenario, time_dependent

QUANTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99, "p999": 0.999}
STAGE_QUANTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}
# A percentile q needs about 10 requests beyond it to be more than a guess.
TAIL_SAMPLES_NEEDED = 10
CI_WARN_RELATIVE_HALF_WIDTH = 0.10


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
    batch_start_ms: np.ndarray
    batch_end_ms: np.ndarray
    timeline: pd.DataFrame | None


def _replications(run: RunLog, scenario: Scenario) -> dict[int, _Replication]:
    requests = run.requests
    stages = model_stages(scenario)
    out = {}
    for rep, part in requests.groupby("replication", sort=True):
        departures = np.sort(part["departure_ms"].to_numpy())
        start = end = np.zeros(0)
        if stages:
            name = stages[0].name
            batch_id = part[f"{name}_batch_id"].to_numpy()
            _, first = np.unique(batch_id, return_index=True)
            first = first[batch_id[first] >= 0]
            start = part[f"{name}_start_ms"].to_numpy()[first]
            end = start + part[f"{name}_ms"].to_numpy()[first]
        timeline = None
        if run.timeline is not None:
            timeline = run.timeline[run.timeline["replication"].to_numpy() == rep].sort_values("time_ms", kind="stable")
        out[int(rep)] = _Replication(departures, start, end, timeline)
    return out


def group_figures(group: pd.DataFrame, scenario: Scenario, replication: _Replication) -> dict[str, float]:
    """Latency percentiles, throughput, utilisation, cost, rejections and attainment of one group (a
    replication or a section of one), over its arrival window."""
    served = group[~group["rejected"].to_numpy()]
    latency = served["latency_ms"].to_numpy()
    figures: dict[str, float] = {"requests": len(group), "served": len(served)}
    figures["mean"] = float(latency.mean()) if len(latency) else math.nan
    values = np.quantile(latency, list(QUANTILES.values())) if len(latency) else [math.nan] * len(QUANTILES)
    figures.update(zip(QUANTILES, map(float, values)))
    arrivals = group["arrival_ms"].to_numpy()
    t0, t1 = float(arrivals.min()), float(arrivals.max())
    span_ms = max(t1 - t0, 1e-9)
    departures = replication.departures_ms
    departed = int(np.searchsorted(departures, t1, side="right") - np.searchsorted(departures, t0, side="left"))
    figures["throughput_rps"] = departed / span_ms * 1000
    figures["rejected_fraction"] = float(group["rejected"].mean())
    replica_ms = cost.replica_time(scenario, replication.timeline, t0, t1)
    figures["mean_replicas"] = replica_ms.paid_ms / span_ms
    if model_stages(scenario):
        busy = cost.busy_instance_ms(replication.batch_start_ms, replication.batch_end_ms, t0, t1)
        figures["utilization"] = cost.utilization(busy, replica_ms, scenario.deployment.instances)
    else:
        figures["utilization"] = math.nan
    figures.update(cost.cost_figures(cost.price_usd_per_replica_hour(scenario), replica_ms, span_ms, departed))
    budget = scenario.slo.p99_ms
    figures["attainment"] = float(np.mean(latency <= budget)) if budget and len(latency) else math.nan
    return figures


def per_group_figures(run: RunLog, scenario: Scenario) -> pd.DataFrame:
    """One row of `group_figures` per measurement group (replication, or section of a single one)."""
    groups = measurement_groups(run.requests)
    if not groups:
        raise ScenarioError(
            "workload: the warm-up covers the whole run, nothing is left to measure "
            "(lower warmup_requests / warmup_s or run more requests)"
        )
    replications = _replications(run, scenario)
    rows = [group_figures(g, scenario, replications[int(g["replication"].iloc[0])]) for g in groups]
    return pd.DataFrame(rows)


def replication_figures(run: RunLog, scenario: Scenario) -> dict[str, float]:
    """`group_figures` of a single replication's measured requests taken whole (no sections)."""
    measured = run.requests[~run.requests["warmup"].to_numpy()]
    if measured.empty:
        raise ScenarioError("workload: the warm-up covers the whole run, nothing is left to measure")
    (replication,) = _replications(run, scenario).values()
    return group_figures(measured, scenario, replication)


def stage_breakdown(log: pd.DataFrame, scenario: Scenario) -> dict[str, dict[str, float]]:
    """Mean and percentiles of the time each served, measured request spent in each stage."""
    served = log[~log["warmup"].to_numpy() & ~log["rejected"].to_numpy()]
    breakdown = {}
    for column in stage_columns(scenario):
        if column not in served:
            continue
        values = served[column].to_numpy(dtype=float)
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
    log = run.requests
    per_group = per_group_figures(run, scenario)
    replications = int(log["replication"].nunique())
    warnings: list[str] = []
    sectioned = replications == 1 or identical_replications(log)  # CIs from sections of one replication
    if replications > 1 and sectioned:
        warnings.append(
            f"the {replications} replications are identical (a deterministic replay: a trace with fixed costs); "
            f"they add nothing: figures and confidence intervals from {len(per_group)} sections of one (batch means)"
        )
    elif replications == 1:
        warnings.append(
            f"confidence intervals from {len(per_group)} sections of one replication (batch means); "
            "use --replications 5 or more for independent replications"
        )

    latency = {"mean": mean_of_finite(per_group["mean"])}
    latency.update({key: mean_of_finite(per_group[key]) for key in QUANTILES})
    # A latency figure cannot leave the range of the latencies measured: a Student-t interval over two or
    # three replications of a heavy tail can (p999 [-2,505 ms, 10.2 s]); it is clipped to that range.
    measured = log["latency_ms"].to_numpy()[~log["warmup"].to_numpy() & ~log["rejected"].to_numpy()]
    measured = measured[np.isfinite(measured)]
    floor, ceiling = (float(measured.min()), float(measured.max())) if len(measured) else (math.nan, math.nan)
    latency_ci = {key: list(within(ci95(per_group[key]), floor, ceiling)) for key in ["mean", *QUANTILES]}
    served_per_group = per_group["served"].min()
    for key, q in QUANTILES.items():
        needed = math.ceil(TAIL_SAMPLES_NEEDED / (1 - q))
        if served_per_group < needed:
            warnings.append(
                f"{key} from {int(served_per_group)} requests per {'section' if sectioned else 'replication'}: "
                f"fewer than {needed}, the estimate is unreliable (run more requests)"
            )
        elif key != "p999":
            low, high = latency_ci[key]
            value = latency[key]
            if value and math.isfinite(low) and (high - low) / 2 > CI_WARN_RELATIVE_HALF_WIDTH * value:
                warnings.append(
                    f"{key} 95% CI half-width is {(high - low) / 2 / value:.0%} of the value: run longer or more replications"
                )

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
        slo["windows"] = slo_windows(run, scenario)

    scaling = autoscaling_summary(per_group, run, scenario)
    llm = llm_key(run, scenario)
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
            "stages": stage_breakdown(log, scenario),
            "utilization": mean_of_finite(per_group["utilization"]),
            "offered_load": loads,
            "rejected_fraction": mean_of_finite(per_group["rejected_fraction"]),
            "cost": {
                "usd_per_hour": _none_if_nan(usd_per_hour),
                "usd_per_1m_queries": _none_if_nan(usd_per_1m),
                "mean_replicas": mean_of_finite(per_group["mean_replicas"]),
            },
            "slo": slo,
            "warnings": warnings,
            **({"autoscaling": scaling} if scaling else {}),
            **({"caches": cache_summary(log, scenario.caches)} if scenario.caches else {}),
            **({"llm": llm} if llm else {}),
        },
        scenario,
    )


def autoscaling_summary(per_group: pd.DataFrame, run: RunLog, scenario: Scenario) -> dict | None:
    """Replicas over the measurement windows (paid: starting + warm + draining) and cold starts."""
    if run.timeline is None or scenario.deployment.autoscaling is None:
        return None
    maxima, cold_starts, warm = [], [], []
    measured = run.requests[~run.requests["warmup"].to_numpy()]
    for rep, part in run.timeline.groupby("replication", sort=True):
        part = part.sort_values("time_ms", kind="stable")
        window = measured["arrival_ms"].to_numpy()[measured["replication"].to_numpy() == rep]
        t0, t1 = float(window.min()), float(window.max())
        warm.append(cost.replica_time(scenario, part, t0, t1).warm_ms / max(t1 - t0, 1e-9))
        maxima.append(int(cost.replicas_paid(part).max()))
        cold_starts.append(int(np.clip(np.diff(part["starting"].to_numpy(), prepend=0), 0, None).sum()))
    return {
        "policy": scenario.deployment.autoscaling.policy,
        "mean_replicas": mean_of_finite(per_group["mean_replicas"]),
        "mean_replicas_ci95": list(ci95(per_group["mean_replicas"])),
        "mean_warm_replicas": float(np.mean(warm)),
        "max_replicas": int(max(maxima)),
        "cold_starts_per_replication": float(np.mean(cold_starts)),
    }


def _none_if_nan(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else value
