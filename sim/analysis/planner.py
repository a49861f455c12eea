"""The planner's pure computations, shared by app.py, the compare report and the app benchmark.

The interactive app runs short (a few thousand requests, three replications: about half a second for
the default scenario) and shows the 95% CI of that short run honestly; a scenario whose horizon is a time
or whose traffic changes over time keeps its whole horizon and runs fewer replications instead; a
"precise" run uses the scenario's own length and replications. Knob helpers delegate to the typed transforms
of sim/spec/transforms.py. Nothing here imports streamlit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from sim.analysis.simulate import RunResult, simulate
from sim.metrics.load import offered_load
from sim.metrics.summary_view import Summary
from sim.spec import transforms
from sim.spec.scenario import Scenario, time_dependent

# Interactive default: about half a second for scenarios/vision-a100.yaml on one core (benchmarks/bench_app.py).
QUICK_REQUESTS = 6000
QUICK_REPLICATIONS = 3
# Each point of a sweep (load curve, trade-off, cost vs replicas) runs shorter still.
SWEEP_REQUESTS = 2000
# Three replications: with two, the 95% t-interval multiplies the spread by 12.7 and says nothing.
SWEEP_REPLICATIONS = 3
# A scenario whose horizon is a time, or whose traffic or capacity changes over time, is never cut short
# (that would cut out the peak, the spike, the deploy); a short run of it gives up replications instead,
# down to one, to stay near this many simulated requests in all.
QUICK_HORIZON_BUDGET = 60_000
SWEEP_HORIZON_BUDGET = 20_000
# Simulated requests per second of wall time on one core (benchmarks/bench_app.py; LLM stages iterate per token).
REQUESTS_PER_S = 40_000
LLM_REQUESTS_PER_S = 8_000


@dataclass(frozen=True)
class RunSize:
    """How long a run is: requests per replication and replications (None: the scenario's own), and the
    simulated requests in all that a run keeping a scenario's whole horizon aims at."""

    requests: int | None
    replications: int | None
    horizon_budget: int | None = None
    name: str = "short run"

    @property
    def label(self) -> str:
        if self.requests is None:
            return "precise run (the scenario's own length and replications)"
        return f"{self.name}: {self.requests:,} requests × {self.replications} replications"


QUICK = RunSize(QUICK_REQUESTS, QUICK_REPLICATIONS, QUICK_HORIZON_BUDGET, "quick run")
SWEEP = RunSize(SWEEP_REQUESTS, SWEEP_REPLICATIONS, SWEEP_HORIZON_BUDGET, "sweep point")
PRECISE = RunSize(None, None)


@dataclass(frozen=True)
class RunPlan:
    """What a run of some size simulates: `requests` per replication (None: the scenario's whole horizon)
    over `replications`, about `expected_requests` per replication."""

    requests: int | None
    replications: int
    expected_requests: float
    whole_horizon: bool


def keeps_horizon(scenario: Scenario) -> bool:
    """A short run keeps this scenario's whole horizon: its length is a time, or it changes over time."""
    return scenario.workload.duration_s is not None or time_dependent(scenario)


def expected_requests(scenario: Scenario) -> float:
    count, horizon_ms = scenario.workload.length()
    return float(count) if count is not None else horizon_ms / 1000.0 * scenario.workload.arrival.mean_rate_rps


def plan(scenario: Scenario, size: RunSize) -> RunPlan:
    """What a run of `size` simulates for this scenario. Never more than the scenario itself; a scenario
    that keeps its horizon is simulated whole, with fewer replications (at least one) when it is long."""
    own = expected_requests(scenario)
    if size.requests is None:
        replications = scenario.replications if size.replications is None else size.replications
        return RunPlan(None, replications, own, True)
    replications = min(size.replications or scenario.replications, scenario.replications)
    if keeps_horizon(scenario):
        budget = size.horizon_budget or size.requests * replications
        fitting = max(1, int(budget // max(own, 1.0)))
        return RunPlan(None, min(replications, fitting), own, True)
    if own <= size.requests:
        return RunPlan(None, replications, own, True)
    return RunPlan(size.requests, replications, float(size.requests), False)


def effective_requests(scenario: Scenario, size: RunSize) -> int | None:
    """Requests per replication a run of `size` simulates (None: the scenario's own length)."""
    return plan(scenario, size).requests


def simulated_requests(scenario: Scenario, size: RunSize) -> float:
    """Requests a run of `size` simulates in all (per replication × replications), about."""
    run_plan = plan(scenario, size)
    return run_plan.expected_requests * run_plan.replications


def estimated_seconds(scenario: Scenario, size: RunSize, requests_per_s: float | None = None) -> float:
    """Wall time of a run of `size`: at `requests_per_s`, this scenario's own measured speed (the planner
    times the run it shows), else at the rough default speed of its kind (REQUESTS_PER_S, which the compiled
    engine paths beat by 3× to 50×: an upper bound rather than an estimate)."""
    if requests_per_s is None or not requests_per_s > 0:
        llm = any(stage.kind == "llm" for stage in scenario.stages)
        requests_per_s = LLM_REQUESTS_PER_S if llm else REQUESTS_PER_S
    return simulated_requests(scenario, size) / requests_per_s


def describe(scenario: Scenario, size: RunSize) -> str:
    """What a run of `size` of this scenario is, in words (shown next to its numbers)."""
    if size.requests is None:
        return size.label
    run_plan = plan(scenario, size)
    reps = f"{run_plan.replications} replication{'s' if run_plan.replications != 1 else ''}"
    if run_plan.requests is not None:
        return f"{size.name}: {run_plan.requests:,} requests × {reps} (the first of the scenario's {expected_requests(scenario):,.0f})"
    count, horizon_ms = scenario.workload.length()
    if count is None:
        what = f"the scenario's own {format_duration(horizon_ms / 1000.0)} horizon, whole (about {run_plan.expected_requests:,.0f} requests)"
    else:
        what = f"the scenario's own {count:,} requests"
    why = []
    if time_dependent(scenario):
        why.append("its traffic or capacity changes over time")
    if run_plan.replications < scenario.replications:
        why.append(f"fewer replications than the scenario's {scenario.replications}, never a shorter horizon")
    return f"{size.name}: {what} × {reps}" + (f" ({'; '.join(why)})" if why else "")


def format_duration(seconds: float) -> str:
    """86400 -> '24 h', 3600 -> '1 h', 90 -> '90 s'."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 600 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:,.6g} s"


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
    run_plan = plan(scenario, size)
    return simulate(
        sized(scenario, size),
        requests=run_plan.requests,
        seed=seed,
        replications=run_plan.replications,
        on_replication=on_replication,
    )


# --- traffic -------------------------------------------------------------------------------------------


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


# --- verdicts -------------------------------------------------------------------------------------------


def slo_verdict(value: float | None, ci: tuple[float, float] | list | None, budget_ms: float | None) -> str | None:
    """The one rule for "does it meet the budget", shared by the verdict cards, Compare and Sizing
    (sim/analysis/sizing.verdict judges each probe the same way): "meets" when the larger of the 95% CI's
    upper end and the estimate is within the budget, "too close" when only the estimate is, "misses"
    otherwise; None without a budget or an estimate. A run without an honest CI is judged on its estimate."""
    if budget_ms is None or value is None or not math.isfinite(value):
        return None
    upper = value
    if ci is not None and len(ci) == 2 and ci[1] is not None and math.isfinite(ci[1]):
        upper = max(upper, float(ci[1]))
    if upper <= budget_ms:
        return "meets"
    return "too close" if value <= budget_ms else "misses"


# --- comparing runs ------------------------------------------------------------------------------------

SIGNIFICANCE_LEVEL = 0.05
# Metric key of the compare table -> the per-group figure (sim.metrics.summary.group_figures) behind it.
GROUP_FIGURE = {
    "p50": "p50",
    "p95": "p95",
    "p99": "p99",
    "throughput_rps": "throughput_rps",
    "slo_attainment": "attainment",
    "rejected_fraction": "rejected_fraction",
}


def unstable(summary: Summary | dict) -> bool:
    """The run's latencies mean nothing (sim.metrics.invariants: a queue that grows without bound, or
    nothing served)."""
    return Summary.of(summary).status != "ok"


def group_values(result: RunResult, key: str) -> np.ndarray:
    """The independent values of metric `key` whose mean the summary reports: one per replication (or per
    batch-means section of a single replication), from the summary's own per-group figures."""
    from sim.metrics.summary import per_group_figures

    column = GROUP_FIGURE.get(key, key if key == "usd_per_1m_queries" else None)
    figures = per_group_figures(result.run, result.scenario)
    if column is None or column not in figures:
        return np.array([])
    return figures[column].to_numpy(dtype=float)


@dataclass(frozen=True)
class Delta:
    """A variant's difference from the baseline: `value` (variant − baseline), `relative` to the baseline,
    whether it is significant at SIGNIFICANCE_LEVEL, and by which test."""

    value: float
    relative: float | None
    significant: bool
    test: str


def delta(
    baseline: np.ndarray,
    variant: np.ndarray,
    baseline_ci: tuple[float, float] | None = None,
    variant_ci: tuple[float, float] | None = None,
) -> Delta | None:
    """Welch's t-test on the per-replication values (two or more each side); otherwise whether the two
    95% CIs overlap. None when either side has no finite value."""
    from scipy import stats

    base = baseline[np.isfinite(baseline)]
    other = variant[np.isfinite(variant)]
    if not len(base) or not len(other):
        return None
    diff = float(other.mean() - base.mean())
    relative = diff / abs(base.mean()) if base.mean() else None
    if len(base) >= 2 and len(other) >= 2:
        if np.ptp(base) == 0 and np.ptp(other) == 0:  # no spread either side: any difference is exact
            return Delta(diff, relative, diff != 0, "identical replications")
        p_value = float(stats.ttest_ind(other, base, equal_var=False).pvalue)
        return Delta(diff, relative, p_value < SIGNIFICANCE_LEVEL, f"Welch t, p = {p_value:.2g}")
    if baseline_ci and variant_ci and all(map(math.isfinite, (*baseline_ci, *variant_ci))):
        apart = variant_ci[0] > baseline_ci[1] or variant_ci[1] < baseline_ci[0]
        return Delta(diff, relative, apart, "95% CIs " + ("do not overlap" if apart else "overlap"))
    return Delta(diff, relative, False, "one value each: no test")
