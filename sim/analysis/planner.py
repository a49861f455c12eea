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

from sim.analysis.simulate import RunResult, simulate
from sim.metrics.load import offered_load
from sim.spec import transforms
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
    (sim/spec/transforms.with_run_length), so that a shortened run never consists of warm-up only."""
    if effective_requests(scenario, size) is None:
        return scenario
    return transforms.with_run_length(scenario, size.requests)


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
    """Overrides that multiply the offered request rate by `factor` (sim/spec/transforms.py)."""
    return transforms.load_overrides(scenario, factor)


def capacity_rps(scenario: Scenario) -> float:
    """Mean request rate at which the busiest stage reaches offered load 1 (the queue then grows
    without bound); infinite when no stage is capacity-limited."""
    loads = [rho for rho in offered_load(scenario).values() if math.isfinite(rho)]
    busiest = max(loads, default=0.0)
    if busiest <= 0:
        return math.inf
    return scenario.workload.arrival.mean_rate_rps / busiest


# --- service costs -------------------------------------------------------------------------------------


def stage_cost_overrides(scenario: Scenario, stage_name: str, factor: float) -> dict[str, Any]:
    """Overrides making stage `stage_name` `factor` times as slow (0.5 = twice as fast)."""
    return transforms.stage_time_overrides(scenario, stage_name, factor)


def scalable_stages(scenario: Scenario) -> list[str]:
    """Stages whose time the planner can scale."""
    return transforms.scalable_stages(scenario)


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
    return {"deployment.cold_start_ms": transforms.scale_distribution(raw, mean_s * 1000.0 / current.mean)}
