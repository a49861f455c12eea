"""Request log -> the summary: percentiles with 95% confidence intervals, stage breakdown, throughput,
utilisation, rejections, cost and SLO attainment. Every figure here is derived from the log.

Confidence intervals come from independent replications (Student t over the per-replication estimates);
a single replication is cut into 10 consecutive sections instead (batch means), and the output says so.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from sim.spec.caching import cache_summary
from sim.engine.llm.pipeline import llm_key
from sim.errors import ScenarioError
from sim.metrics.load import offered_load
from sim.spec.scenario import ModelStage, PoolStage, Scenario

QUANTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99, "p999": 0.999}
STAGE_QUANTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}
SECTIONS_FOR_ONE_RUN = 10
# A percentile q needs about 10 requests beyond it to be more than a guess.
TAIL_SAMPLES_NEEDED = 10
CI_WARN_RELATIVE_HALF_WIDTH = 0.10


def ci95(values: np.ndarray) -> tuple[float, float]:
    """Student-t 95% interval for the mean of independent estimates."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return (math.nan, math.nan)
    mean = values.mean()
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return (float(mean - half), float(mean + half))


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


def measurement_groups(log: pd.DataFrame) -> list[pd.DataFrame]:
    """The independent pieces CIs are computed over: each replication, or sections of a single one."""
    measured = log[~log["warmup"].to_numpy()]
    replications = measured["replication"].unique()
    if len(replications) > 1:
        return [group for _, group in measured.groupby("replication", sort=True)]
    ordered = measured.sort_values("arrival_ms", kind="stable")
    bounds = np.linspace(0, len(ordered), SECTIONS_FOR_ONE_RUN + 1).astype(int)
    return [ordered.iloc[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


def group_figures(group: pd.DataFrame, scenario: Scenario, full_log: pd.DataFrame) -> dict[str, float]:
    """Latency percentiles, throughput, utilisation, rejections and attainment of one group."""
    served = group[~group["rejected"].to_numpy()]
    latency = served["latency_ms"].to_numpy()
    figures: dict[str, float] = {"requests": len(group), "served": len(served)}
    figures["mean"] = float(latency.mean()) if len(latency) else math.nan
    for key, q in QUANTILES.items():
        figures[key] = float(np.quantile(latency, q)) if len(latency) else math.nan
    t0, t1 = group["arrival_ms"].min(), group["arrival_ms"].max()
    span_ms = max(t1 - t0, 1e-9)
    replication_log = full_log[full_log["replication"].to_numpy() == group["replication"].iloc[0]]
    departures = replication_log["departure_ms"].to_numpy()
    figures["throughput_rps"] = float(np.count_nonzero((departures >= t0) & (departures <= t1)) / span_ms * 1000)
    figures["rejected_fraction"] = float(group["rejected"].mean())
    figures["utilization"] = _utilization(replication_log, scenario, t0, t1)
    budget = scenario.slo.p99_ms
    figures["attainment"] = float(np.mean(latency <= budget)) if budget and len(latency) else math.nan
    return figures


def _utilization(log: pd.DataFrame, scenario: Scenario, t0: float, t1: float) -> float:
    """Busy share of the model instances of the first model stage between t0 and t1 (from batch records)."""
    stages = model_stages(scenario)
    if not stages:
        return math.nan
    name = stages[0].name
    batches = log.loc[log[f"{name}_batch_id"].to_numpy() >= 0, [f"{name}_batch_id", f"{name}_start_ms", f"{name}_ms"]]
    batches = batches.drop_duplicates(f"{name}_batch_id")
    start = batches[f"{name}_start_ms"].to_numpy()
    end = start + batches[f"{name}_ms"].to_numpy()
    busy = np.clip(np.minimum(end, t1) - np.maximum(start, t0), 0, None).sum()
    servers = scenario.deployment.replicas * scenario.deployment.instances
    return float(busy / (servers * max(t1 - t0, 1e-9)))


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


def summarize(log: pd.DataFrame, scenario: Scenario) -> dict:
    """The `servesim run --json` contract (DESIGN.md), computed from the request log."""
    groups = measurement_groups(log)
    if not groups:
        raise ScenarioError(
            "workload: the warm-up covers the whole run, nothing is left to measure "
            "(lower warmup_requests / warmup_s or run more requests)"
        )
    per_group = pd.DataFrame([group_figures(g, scenario, log) for g in groups])
    replications = int(log["replication"].nunique())
    warnings: list[str] = []
    if replications == 1:
        warnings.append(
            f"confidence intervals from {len(groups)} sections of one replication (batch means); "
            "use --replications 5 or more for independent replications"
        )

    latency = {"mean": _mean(per_group["mean"])}
    latency.update({key: _mean(per_group[key]) for key in QUANTILES})
    latency_ci = {key: list(ci95(per_group[key])) for key in ["mean", *QUANTILES]}
    served_per_group = per_group["served"].min()
    for key, q in QUANTILES.items():
        needed = math.ceil(TAIL_SAMPLES_NEEDED / (1 - q))
        if served_per_group < needed:
            warnings.append(
                f"{key} from {int(served_per_group)} requests per {'section' if replications == 1 else 'replication'}: "
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
            what = "requests are rejected at the queue limit" if scenario.deployment.max_queue_size is not None else (
                "the queue grows without bound; latencies grow with run length and mean nothing"
            )
            warnings.insert(0, f"unstable: offered load on stage {stage_name!r} is {rho:.2f} ≥ 1 — {what}")

    throughput = _mean(per_group["throughput_rps"])
    utilization = _mean(per_group["utilization"])
    scaling = autoscaling_summary(log, scenario)
    mean_replicas = scaling["mean_replicas"] if scaling else scenario.deployment.replicas
    usd_per_hour = _usd_per_hour(scenario, mean_replicas)
    per_1m = usd_per_hour / (throughput * 3600) * 1e6 if usd_per_hour is not None and throughput > 0 else None
    if usd_per_hour is None:
        warnings.append("no deployment.hardware.usd_per_hour: cost not computed")
    for stage in model_stages(scenario):
        if stage.profile is not None:
            profile = _profile_of(stage)
            for note in getattr(profile, "warnings", ()) or ():
                warnings.append(f"stages.{stage.name}.profile: {note}")
            if getattr(profile, "lever", None):
                from calibrate.levers import lever_summary

                warnings.append(f"stages.{stage.name}: lever assumed — {lever_summary(profile.lever)}")

    budgets = scenario.slo.budgets()
    slo = {"p99_ms": scenario.slo.p99_ms, "met": None, "attainment": None}
    if budgets:
        checks = {f"p{round(q * 100)}": latency[f"p{round(q * 100)}"] <= ms for q, ms in budgets.items()}
        slo["met"] = bool(all(checks.values()))
        slo["budgets"] = {f"p{round(q * 100)}_ms": ms for q, ms in budgets.items()}
        slo["checks"] = checks
    if scenario.slo.p99_ms is not None:
        slo["attainment"] = _mean(per_group["attainment"])

    llm = llm_key(log, scenario.slo.ttft_ms, scenario.slo.tpot_ms)
    if llm:
        warnings.extend(llm["warnings"])
    return {
        "scenario": scenario.name,
        "replications": replications,
        "requests": int(per_group["requests"].sum()),
        "served": int(per_group["served"].sum()),
        "throughput_rps": throughput,
        "latency_ms": latency,
        "latency_ms_ci95": latency_ci,
        "stages": stage_breakdown(log, scenario),
        "utilization": utilization,
        "offered_load": loads,
        "rejected_fraction": _mean(per_group["rejected_fraction"]),
        "cost": {"usd_per_hour": usd_per_hour, "usd_per_1m_queries": per_1m},
        "slo": slo,
        "warnings": warnings,
        **({"autoscaling": scaling} if scaling else {}),
        **({"caches": cache_summary(log, scenario.caches)} if scenario.caches else {}),
        **({"llm": llm} if llm else {}),
    }


def _profile_of(stage: ModelStage):
    """The measured profile behind a model stage's cost (possibly wrapped in a speed-up)."""
    cost = stage.cost
    return getattr(cost, "profile", None) or getattr(getattr(cost, "inner", None), "profile", None)


def _usd_per_hour(scenario: Scenario, mean_replicas: float) -> float | None:
    price = scenario.deployment.hardware.usd_per_hour
    if price is None:
        # A measured profile carries the price of the hardware it was measured on.
        prices = [_profile_of(s).usd_per_hour for s in model_stages(scenario) if s.profile is not None]
        price = next((p for p in prices if p is not None), None)
    return None if price is None else price * mean_replicas


def time_weighted_mean(times_ms: np.ndarray, values: np.ndarray, t0: float, t1: float) -> float:
    """Mean over [t0, t1] of a step function that takes `values[i]` from `times_ms[i]` on."""
    edges = np.clip(np.append(times_ms, t1), t0, t1)
    return float(np.sum(values * np.diff(edges)) / max(t1 - t0, 1e-9))


def replicas_paid(timeline: pd.DataFrame) -> pd.Series:
    """Replicas that cost money at each change-point: starting, warm and draining ones alike."""
    return timeline["warm"] + timeline["starting"] + timeline["draining"]


def autoscaling_summary(log: pd.DataFrame, scenario: Scenario) -> dict | None:
    """Replicas over the measurement window of each replication, from the timeline of change-points."""
    timeline = log.attrs.get("timeline")
    if timeline is None or scenario.deployment.autoscaling is None:
        return None
    rows = []
    measured = log[~log["warmup"].to_numpy()]
    for rep, part in timeline.groupby("replication"):
        part = part.sort_values("time_ms", kind="stable")
        window = measured[measured["replication"] == rep]["arrival_ms"]
        t0, t1 = float(window.min()), float(window.max())
        paid = replicas_paid(part).to_numpy()
        starts = np.diff(part["starting"].to_numpy(), prepend=0)
        rows.append({
            "mean_replicas": time_weighted_mean(part["time_ms"].to_numpy(), paid, t0, t1),
            "mean_warm_replicas": time_weighted_mean(part["time_ms"].to_numpy(), part["warm"].to_numpy(), t0, t1),
            "max_replicas": int(paid.max()),
            "cold_starts": int(np.clip(starts, 0, None).sum()),
        })
    frame = pd.DataFrame(rows)
    return {
        "policy": scenario.deployment.autoscaling.policy,
        "mean_replicas": float(frame["mean_replicas"].mean()),
        "mean_replicas_ci95": list(ci95(frame["mean_replicas"])),
        "mean_warm_replicas": float(frame["mean_warm_replicas"].mean()),
        "max_replicas": int(frame["max_replicas"].max()),
        "cold_starts_per_replication": float(frame["cold_starts"].mean()),
    }


def _mean(series: pd.Series) -> float:
    values = series.to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else math.nan
