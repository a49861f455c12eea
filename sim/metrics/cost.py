"""Cost and utilisation, the one place they are computed — `run`, `sweep`, `size`, `advise`, the
over-time view and the planner all call these functions.

Paid replica-time is the integral of the replicas that cost money (starting, warm and draining alike)
over a window: the autoscaling timeline's step function where the deployment scales, else the fixed
replica count × the window. Cost is that replica-time at the hardware's price per replica-hour (the
scenario's `deployment.hardware.usd_per_hour`, else the price of the hardware a model profile was measured
on); cost per 1M queries divides it by the queries served in the window, and a run over a horizon (a load
that follows the clock) gets the cost of its day, or of its horizon when shorter. Utilisation is the busy
instance-time of the first model stage over the instance-time paid for, so it lies in [0, 1] however
the replica count moves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sim.spec.scenario import LLMStage, ModelStage, Scenario


def replicas_paid(timeline: pd.DataFrame) -> np.ndarray:
    """Replicas that cost money at each change-point: starting, warm and draining ones alike."""
    return (timeline["warm"] + timeline["starting"] + timeline["draining"]).to_numpy()


def step_integral(times_ms: np.ndarray, values: np.ndarray, t0: float, t1: float) -> float:
    """∫ over [t0, t1] of the step function that takes `values[i]` from `times_ms[i]` on (sorted times;
    before the first change-point, the first value)."""
    if t1 <= t0 or len(times_ms) == 0:
        return 0.0
    first = max(int(np.searchsorted(times_ms, t0, side="right")) - 1, 0)
    last = int(np.searchsorted(times_ms, t1, side="left"))
    edges = np.concatenate([[t0], times_ms[first + 1 : last], [t1]])
    return float(np.sum(values[first:last] * np.diff(edges))) if last > first else float(values[first] * (t1 - t0))


@dataclass(frozen=True)
class ReplicaTime:
    """Replica-milliseconds over a window: paid for (starting + warm + draining) and warm."""

    paid_ms: float
    warm_ms: float


def replica_time(scenario: Scenario, timeline: pd.DataFrame | None, t0: float, t1: float) -> ReplicaTime:
    """Replica-time of one replication over [t0, t1]; `timeline` is that replication's change-points
    (None for a fixed deployment)."""
    if timeline is None or timeline.empty:
        fixed = scenario.deployment.replicas * max(t1 - t0, 0.0)
        return ReplicaTime(fixed, fixed)
    times = timeline["time_ms"].to_numpy()
    return ReplicaTime(
        step_integral(times, replicas_paid(timeline), t0, t1), step_integral(times, timeline["warm"].to_numpy(), t0, t1)
    )


def gpus_per_replica(scenario: Scenario) -> int:
    """Catalogue units (GPUs) one replica occupies: the tensor-parallel degree of its LLM stage's profile
    (a TP4 replica holds 4 GPUs), else 1 (a model stage's instances share one accelerator)."""
    return max(
        (stage.cost.profile.tensor_parallel for stage in scenario.stages if isinstance(stage, LLMStage)), default=1
    )


def replica_usd_per_hour(scenario: Scenario, name: str, catalogue: dict | None = None) -> float:
    """The price of one replica-hour on catalogue hardware `name`: its unit price × the GPUs a replica holds.
    The one price function of `run`, `size`, `compare`, `advise` and the planner. A unit priced per
    single-GPU instance counts one instance per GPU (an approximation for multi-GPU replicas)."""
    if catalogue is None:
        from sim.spec.hardware import load_catalogue

        catalogue = load_catalogue()
    return catalogue[name].usd_per_hour * gpus_per_replica(scenario)


def replica_hardware(scenario: Scenario, name: str, catalogue: dict | None = None) -> dict:
    """`deployment.hardware` for catalogue hardware `name`, priced per replica (see `replica_usd_per_hour`)."""
    return {"name": name, "usd_per_hour": round(replica_usd_per_hour(scenario, name, catalogue), 6)}


def price_usd_per_replica_hour(scenario: Scenario) -> float | None:
    """The price of one replica-hour: the scenario's hardware (a catalogue name alone is priced per replica,
    × its GPUs), else the profile's measured hardware; for a disaggregated stage whose decode pool is priced
    otherwise, the mean over its fixed pools (`pooled_price`)."""
    return pooled_price(scenario, _replica_price(scenario))


def pooled_price(scenario: Scenario, base: float | None) -> float | None:
    """A disaggregated LLM stage (fixed pools, no autoscaling: every replica is paid all the time): prefill
    replicas at `base`, decode replicas at `decode.usd_per_hour`, else the decode profile's price, else
    `base` — blended so that price × replicas is the fleet's cost."""
    for stage in scenario.stages:
        split = getattr(stage, "disaggregated", None)
        if split is None or base is None:
            continue
        decode = split.decode.usd_per_hour
        if decode is None and split.decode.profile is not None:
            decode = stage.decode_cost.profile.usd_per_hour
        if decode is not None:
            return (split.prefill_replicas * base + split.decode.replicas * decode) / split.replicas
    return base


def _replica_price(scenario: Scenario) -> float | None:
    hardware = scenario.deployment.hardware
    if hardware.name and "usd_per_hour" not in hardware.model_fields_set:
        return replica_usd_per_hour(scenario, hardware.name)
    if hardware.usd_per_hour is not None:
        return hardware.usd_per_hour
    for stage in scenario.stages:
        if isinstance(stage, LLMStage) and stage.cost.profile.usd_per_hour is not None:
            return stage.cost.profile.usd_per_hour
        if isinstance(stage, ModelStage) and stage.profile is not None:
            profile = measured_profile(stage)
            if profile is not None and profile.usd_per_hour is not None:
                return profile.usd_per_hour
    return None


def measured_profile(stage: ModelStage):
    """The measured profile behind a model stage's cost (possibly wrapped in a speed-up)."""
    cost = stage.cost
    return getattr(cost, "profile", None) or getattr(getattr(cost, "inner", None), "profile", None)


def cost_figures(price: float | None, replica_ms: ReplicaTime, span_ms: float, served: int) -> dict[str, float]:
    """$/h (mean paid replicas × price) and $ per 1M queries served over a window of `span_ms`."""
    if price is None or span_ms <= 0:
        return {"usd_per_hour": math.nan, "usd_per_1m_queries": math.nan}
    usd = price * replica_ms.paid_ms / 3.6e6
    return {
        "usd_per_hour": price * replica_ms.paid_ms / span_ms,
        "usd_per_1m_queries": usd / served * 1e6 if served > 0 else math.nan,
    }


DAY_MS = 86_400_000.0


def horizon_cost(price: float | None, replica_ms: ReplicaTime, window_ms: float, horizon_ms: float) -> dict[str, float]:
    """The cost of a run over a horizon (a load that follows the clock): the replica-hours paid over the
    measured window (`window_ms`: the horizon less its warm-up) at `price`. For a horizon of a day or more,
    `usd_per_day`: that cost scaled from the window to 24 h; for a shorter one, `usd_for_horizon`: the
    window's own cost, and `horizon_s`, the window it was paid over (a day is not extrapolated from less)."""
    if horizon_ms >= DAY_MS:
        if price is None or window_ms <= 0:
            return {"usd_per_day": math.nan}
        return {"usd_per_day": price * replica_ms.paid_ms / 3.6e6 * DAY_MS / window_ms}
    usd = math.nan if price is None else price * replica_ms.paid_ms / 3.6e6
    return {"usd_for_horizon": usd, "horizon_s": window_ms / 1000.0}


def utilization(busy_instance_ms: float, replica_ms: ReplicaTime, instances: int) -> float:
    """Busy share of the instance-time paid for."""
    capacity = replica_ms.paid_ms * instances
    return float(busy_instance_ms / capacity) if capacity > 0 else math.nan


def busy_instance_ms(batch_start_ms: np.ndarray, batch_end_ms: np.ndarray, t0: float, t1: float) -> float:
    """Instance-time spent running batches inside [t0, t1]."""
    return float(np.clip(np.minimum(batch_end_ms, t1) - np.maximum(batch_start_ms, t0), 0, None).sum())


def usd_per_1m_output_tokens(usd_per_hour: float | None, output_tokens_per_s: float | None) -> float | None:
    """Dollars per million output tokens, the unit LLM serving is sold in: the fleet's $/hour over the output
    tokens it produced in an hour (None where either is unknown or zero). Every page, report and sizing reads it."""
    if not usd_per_hour or not output_tokens_per_s or not math.isfinite(usd_per_hour):
        return None
    return usd_per_hour / (output_tokens_per_s * 3600.0) * 1e6
