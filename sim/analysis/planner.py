"""The planner's pure computations, shared by app.py, the compare report and the app benchmark.

The interactive app runs short (a few thousand requests, three replications: about half a second for
the default scenario) and shows the 95% CI of that short run honestly; a "precise" run uses the
scenario's own length. Knob helpers turn a planner's question ("twice the traffic", "decode 30% faster")
into the dotted-path overrides of `Scenario.with_overrides`. Nothing here imports streamlit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from sim.engine.run import RunResult, simulate
from sim.metrics.load import offered_load
from sim.spec.scenario import Scenario

# Interactive default: about half a second for scenarios/vision-a100.yaml on one core (benchmarks/bench_app.py).
QUICK_REQUESTS = 6000
QUICK_REPLICATIONS = 3
# Each point of a sweep (load curve, trade-off, cost vs replicas) runs shorter still.
SWEEP_REQUESTS = 2000
# Three replications: with two, the 95% t-interval multiplies the spread by 12.7 and says nothing.
SWEEP_REPLICATIONS = 3


@dataclass(frozen=True)
class RunSize:
    """How long a run is: requests per replication (None: the scenario's own length) and replications."""

    requests: int | None
    replications: int | None

    @property
    def label(self) -> str:
        if self.requests is None:
            return "precise run (the scenario's own length and replications)"
        return f"quick run: {self.requests:,} requests × {self.replications} replications"


QUICK = RunSize(QUICK_REQUESTS, QUICK_REPLICATIONS)
SWEEP = RunSize(SWEEP_REQUESTS, SWEEP_REPLICATIONS)
PRECISE = RunSize(None, None)


# A scenario whose traffic or capacity changes over time (spikes, on/off, a trace, an autoscaler) keeps
# its own horizon in a quick run — cutting it short would cut the spike out — up to this many requests.
TIME_DEPENDENT_MAX_REQUESTS = 60_000


def time_dependent(scenario: Scenario) -> bool:
    process = scenario.raw["workload"]["arrival"].get("process")
    return process in ("time_varying", "on_off", "trace") or getattr(scenario.deployment, "autoscaling", None) is not None


def expected_requests(scenario: Scenario) -> float:
    count, horizon_ms = scenario.workload.length()
    return float(count) if count is not None else horizon_ms / 1000.0 * scenario.workload.arrival.mean_rate_rps


def effective_requests(scenario: Scenario, size: RunSize) -> int | None:
    """Requests per replication a run of `size` simulates (None: the scenario's own length)."""
    if size.requests is None:
        return None
    if time_dependent(scenario) and expected_requests(scenario) <= TIME_DEPENDENT_MAX_REQUESTS:
        return None
    return size.requests


def describe(scenario: Scenario, size: RunSize) -> str:
    """What a run of `size` of this scenario is, in words (shown next to its numbers)."""
    if size.requests is not None and effective_requests(scenario, size) is None:
        return (f"quick run: the scenario's own {expected_requests(scenario):,.0f} requests (its traffic changes over "
                f"time) × {size.replications} replications")
    return size.label


def sized(scenario: Scenario, size: RunSize) -> Scenario:
    """The scenario to simulate for a run of `size`: a short run keeps the scenario's warm-up *share*
    (a 1,000-request warm-up of a 20,000-request scenario becomes 5% of the short run), so that a
    shortened run never consists of warm-up only."""
    if effective_requests(scenario, size) is None:
        return scenario
    share = warmup_share(scenario)
    overrides: dict[str, Any] = {"workload.warmup_s": None, "workload.duration_s": None}
    overrides["workload.requests"] = size.requests
    overrides["workload.warmup_requests"] = int(round(share * size.requests)) if share is not None else None
    return scenario.with_overrides(overrides)


def warmup_share(scenario: Scenario) -> float | None:
    """Fraction of a run the scenario discards as warm-up (None: the engine's default)."""
    workload = scenario.workload
    count, horizon_ms = workload.length()
    if workload.warmup_requests is not None and count:
        return workload.warmup_requests / count
    if workload.warmup_s is not None and horizon_ms:
        return workload.warmup_s * 1000.0 / horizon_ms
    if workload.warmup_s is not None and count:
        expected = workload.warmup_s * workload.arrival.mean_rate_rps
        return min(expected / count, 0.5)
    return None


def run(
    scenario: Scenario,
    size: RunSize = QUICK,
    *,
    seed: int | None = None,
    on_replication: Callable[[int, int], None] | None = None,
) -> RunResult:
    """Simulate `scenario` at the given run size (same seed ⇒ same result)."""
    return simulate(
        sized(scenario, size),
        requests=effective_requests(scenario, size),
        seed=seed,
        replications=size.replications,
        on_replication=on_replication,
    )


# --- traffic -------------------------------------------------------------------------------------------

def load_knob(scenario: Scenario) -> tuple[str, str, float] | None:
    """The single traffic field a planner turns, as (dotted path, label, current value), or None when
    the arrival process has several rates (then `scale_load` multiplies all of them)."""
    arrival = scenario.raw["workload"]["arrival"]
    process = arrival.get("process")
    if "rate_rps" in arrival and process in ("poisson", "gamma", "constant"):
        return "workload.arrival.rate_rps", "Request rate (req/s)", float(arrival["rate_rps"])
    if process == "trace":
        return "workload.arrival.rate_scale", "Trace time-scale (× faster)", float(arrival.get("rate_scale", 1.0))
    return None


def scale_load(scenario: Scenario, factor: float) -> dict[str, Any]:
    """Overrides that multiply the offered request rate by `factor`, whatever the arrival process."""
    if factor <= 0:
        raise ValueError(f"load factor must be positive (got {factor})")
    arrival = scenario.raw["workload"]["arrival"]
    process = arrival.get("process")
    base = "workload.arrival."
    if process in ("poisson", "gamma", "constant"):
        return {base + "rate_rps": arrival["rate_rps"] * factor}
    if process == "trace":
        return {base + "rate_scale": arrival.get("rate_scale", 1.0) * factor}
    if process == "on_off":
        return {base + "rate_on_rps": arrival["rate_on_rps"] * factor,
                base + "rate_off_rps": arrival.get("rate_off_rps", 0.0) * factor}
    if "points" in arrival:
        return {base + "points": [[t, rate * factor] for t, rate in arrival["points"]]}
    raise ValueError(f"workload.arrival.process {process!r}: do not know how to scale its rate")


def capacity_rps(scenario: Scenario) -> float:
    """Mean request rate at which the busiest stage reaches offered load 1 (the queue then grows
    without bound); infinite when no stage is capacity-limited."""
    loads = [rho for rho in offered_load(scenario).values() if math.isfinite(rho)]
    busiest = max(loads, default=0.0)
    if busiest <= 0:
        return math.inf
    return scenario.workload.arrival.mean_rate_rps / busiest


# --- service costs -------------------------------------------------------------------------------------

def scale_distribution(spec: dict | float, factor: float) -> dict | float:
    """A service-time spec with every time multiplied by `factor` (shape and CV unchanged); a bare number
    (the schema's shorthand for a constant) stays a bare number."""
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return spec * factor
    spec = dict(spec)
    dist = spec.get("dist")
    time_keys = {"constant": ("value",), "exponential": ("mean",), "lognormal": ("median", "p99", "mean"),
                 "gamma": ("mean",), "uniform": ("low", "high")}
    if dist in time_keys:
        for key in time_keys[dist]:
            if spec.get(key) is not None:
                spec[key] = spec[key] * factor
        return spec
    if dist == "empirical" and "samples" in spec:
        spec["samples"] = [value * factor for value in spec["samples"]]
        return spec
    raise ValueError(f"cannot scale a {dist!r} distribution given as {sorted(spec)}")


def stage_cost_overrides(scenario: Scenario, stage_name: str, factor: float) -> dict[str, Any]:
    """Overrides making stage `stage_name` `factor` times as slow (0.5 = twice as fast); {} for factor 1
    or for a cost this cannot scale (a measured profile: use a calibration lever instead)."""
    if factor == 1:
        return {}
    raw = next(stage for stage in scenario.raw["stages"] if stage.get("name") == stage_name)
    path = f"stages.{stage_name}"
    if "batch_cost" in raw:
        cost = dict(raw["batch_cost"])
        cost["base_ms"] = cost["base_ms"] * factor
        cost["per_item_ms"] = cost["per_item_ms"] * factor
        return {f"{path}.batch_cost": cost}
    if "service_ms" in raw:
        try:
            return {f"{path}.service_ms": scale_distribution(raw["service_ms"], factor)}
        except ValueError:
            return {}
    return {}


def scalable_stages(scenario: Scenario) -> list[str]:
    """Stages whose cost `stage_cost_overrides` can scale."""
    names = []
    for raw in scenario.raw["stages"]:
        if "batch_cost" in raw:
            names.append(raw["name"])
        elif "service_ms" in raw and stage_cost_overrides(scenario, raw["name"], 2.0):
            names.append(raw["name"])
    return names


def model_stage_name(scenario: Scenario) -> str | None:
    """The first replica-bound model stage (the one batching knobs act on)."""
    for stage in scenario.stages:
        if stage.kind == "model":
            return stage.name
    return None


# --- autoscaling ---------------------------------------------------------------------------------------

def autoscaling_keys(scenario: Scenario) -> tuple[str, str] | None:
    """The raw names of the autoscaler's replica bounds (Knative spells them min_scale / max_scale)."""
    raw = scenario.raw.get("deployment", {}).get("autoscaling")
    if not isinstance(raw, dict):
        return None
    low = "min_scale" if "min_scale" in raw else "min_replicas"
    high = "max_scale" if "max_scale" in raw else "max_replicas"
    return low, high


def cold_start_overrides(scenario: Scenario, mean_s: float) -> dict[str, Any]:
    """Overrides giving new replicas a cold start of mean `mean_s` seconds (the shape kept if one was given)."""
    raw = scenario.raw.get("deployment", {}).get("cold_start_ms")
    current = getattr(scenario.deployment, "cold_start_ms", None)
    if mean_s <= 0:
        return {"deployment.cold_start_ms": None} if raw is not None else {}
    if raw is None or current is None or current.mean <= 0:
        return {"deployment.cold_start_ms": {"dist": "constant", "value": mean_s * 1000.0}}
    if math.isclose(current.mean, mean_s * 1000.0):
        return {}
    return {"deployment.cold_start_ms": scale_distribution(raw, mean_s * 1000.0 / current.mean)}
