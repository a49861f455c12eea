"""Typed scenario transforms — the one way every tool (planner, compare, size, advise, sweep) changes a
scenario: scale the load or set its rate, scale a stage's time, speed a stage up, set the replica count,
the autoscaler's bounds, the cold start, the batching policy, the hardware, the routing, a pool's workers,
the latency budgets, the run length. Each returns a new, validated Scenario; the raw-dict editing stays here."""

from __future__ import annotations

import math
from typing import Any

from sim.errors import ScenarioError
from sim.spec.budget import check_whole_horizon
from sim.spec.scenario import ModelStage, Scenario

# Fields holding a time, per distribution (a shape or CV is left alone).
_TIME_FIELDS = {
    "constant": ("value",),
    "exponential": ("mean",),
    "lognormal": ("median", "p99", "mean"),
    "gamma": ("mean",),
    "uniform": ("low", "high"),
}


def scale_load(scenario: Scenario, factor: float) -> Scenario:
    """The scenario with its offered request rate multiplied by `factor`, whatever the arrival process."""
    return scenario.with_overrides(load_overrides(scenario, factor))


def load_overrides(scenario: Scenario, factor: float) -> dict[str, Any]:
    if not (factor > 0 and math.isfinite(factor)):
        raise ScenarioError(f"load factor must be a positive number (got {factor})")
    arrival = scenario.raw["workload"]["arrival"]
    process = arrival.get("process")
    base = "workload.arrival."
    if process in ("poisson", "gamma", "constant"):
        return {base + "rate_rps": arrival["rate_rps"] * factor}
    if process == "trace":
        return {base + "rate_scale": arrival.get("rate_scale", 1.0) * factor}
    if process == "on_off":
        return {
            base + "rate_on_rps": arrival["rate_on_rps"] * factor,
            base + "rate_off_rps": arrival.get("rate_off_rps", 0.0) * factor,
        }
    if "points" in arrival:
        return {base + "points": [[t, rate * factor] for t, rate in arrival["points"]]}
    raise ScenarioError(f"workload.arrival.process {process!r}: do not know how to scale its rate")


def scale_distribution(spec: Any, factor: float) -> Any:
    """A service-time spec (a bare number or a distribution mapping) with every time × `factor`; None
    when the spec cannot be scaled (empirical samples from a file)."""
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return spec * factor
    if not isinstance(spec, dict):
        return None
    out = dict(spec)
    dist = out.get("dist")
    if dist in _TIME_FIELDS:
        for key in _TIME_FIELDS[dist]:
            if isinstance(out.get(key), (int, float)):
                out[key] = out[key] * factor
        return out
    if dist == "empirical" and "samples" in out:
        out["samples"] = [value * factor for value in out["samples"]]
        return out
    return None


def stage_time_overrides(scenario: Scenario, stage_name: str, factor: float) -> dict[str, Any]:
    """Overrides making stage `stage_name` take `factor` times as long (0.5 = twice as fast). A model
    stage changes its `speedup` (so a measured profile scales too); other stages their service time."""
    if factor == 1:
        return {}
    if not (factor > 0 and math.isfinite(factor)):
        raise ScenarioError(f"stages.{stage_name}: time factor must be a positive number (got {factor})")
    stage = scenario.stage(stage_name)
    path = f"stages.{stage_name}"
    if isinstance(stage, ModelStage):
        return {f"{path}.speedup": stage.speedup / factor}
    raw = scenario.raw_stage(stage_name)
    scaled = scale_distribution(raw.get("service_ms"), factor)
    if scaled is None:
        raise ScenarioError(f"{path}.service_ms: this distribution cannot be scaled (samples from a file?)")
    return {f"{path}.service_ms": scaled}


def scale_stage_time(scenario: Scenario, stage_name: str, factor: float) -> Scenario:
    return scenario.with_overrides(stage_time_overrides(scenario, stage_name, factor))


def speed_up(scenario: Scenario, stage_name: str, speedup: float) -> Scenario:
    """The stage `speedup` times faster (a lever, faster hardware)."""
    return scale_stage_time(scenario, stage_name, 1.0 / speedup)


def scalable_stages(scenario: Scenario) -> list[str]:
    """Stages whose time `stage_time_overrides` can scale."""
    names = []
    for stage in scenario.stages:
        if isinstance(stage, ModelStage):
            names.append(stage.name)
        elif (
            stage.kind in ("delay", "pool")
            and scale_distribution(scenario.raw_stage(stage.name).get("service_ms"), 2.0) is not None
        ):
            names.append(stage.name)
    return names


def replica_overrides(scenario: Scenario, count: int) -> dict[str, Any]:
    """`count` fixed replicas, or `count` as the autoscaler's minimum (its maximum raised to fit)."""
    scaling = scenario.deployment.autoscaling
    if scaling is None:
        return {"deployment.replicas": count}
    raw = scenario.raw["deployment"]["autoscaling"]
    low = "min_scale" if "min_scale" in raw else "min_replicas"
    high = "max_scale" if "max_scale" in raw else "max_replicas"
    return {
        f"deployment.autoscaling.{low}": count,
        f"deployment.autoscaling.{high}": max(scaling.max_replicas, count, 1),
        "deployment.autoscaling.initial_replicas": None,
    }


def with_replicas(scenario: Scenario, count: int) -> Scenario:
    return scenario.with_overrides(replica_overrides(scenario, count))


def rate_field(scenario: Scenario) -> tuple[str, str, float] | None:
    """The single traffic field a planner turns, as (field, label, current value): a Poisson / gamma /
    constant process's rate, or a trace's time-scale; None when the process has several rates (then
    `load_overrides` multiplies all of them)."""
    arrival = scenario.raw["workload"]["arrival"]
    process = arrival.get("process")
    if "rate_rps" in arrival and process in ("poisson", "gamma", "constant"):
        return "rate_rps", "Request rate (req/s)", float(arrival["rate_rps"])
    if process == "trace":
        return "rate_scale", "Trace time-scale (× faster)", float(arrival.get("rate_scale", 1.0))
    return None


def rate_overrides(scenario: Scenario, value: float) -> dict[str, Any]:
    """The `rate_field` set to `value` (a rate in req/s, or a trace's time-scale)."""
    field = rate_field(scenario)
    if field is None:
        raise ScenarioError("workload.arrival: this process has several rates; scale them with load_overrides")
    if not (value > 0 and math.isfinite(value)):
        raise ScenarioError(f"workload.arrival.{field[0]} must be a positive number (got {value})")
    return {} if value == field[2] else {f"workload.arrival.{field[0]}": float(value)}


def batching_overrides(scenario: Scenario, stage_name: str, policy: dict[str, Any]) -> dict[str, Any]:
    """Model stage `stage_name` batched by `policy` ({policy: none | static | dynamic, ...}, as in YAML)."""
    stage = scenario.stage(stage_name)
    if not isinstance(stage, ModelStage):
        raise ScenarioError(f"stages.{stage_name}: batching applies to a model stage (this is {stage.kind})")
    current = scenario.raw_stage(stage_name).get("batching", {"policy": "none"})
    return {} if policy == current else {f"stages.{stage_name}.batching": dict(policy)}


def hardware_overrides(scenario: Scenario, hardware: dict[str, Any] | None) -> dict[str, Any]:
    """The replica's hardware (name and $/hour per replica, as sim.metrics.cost.replica_hardware gives it
    from the catalogue); None keeps the scenario's."""
    return {} if hardware is None else {"deployment.hardware": dict(hardware)}


ROUTINGS = ("shared_queue", "round_robin", "least_outstanding", "power_of_two", "random")


def routing_overrides(scenario: Scenario, routing: str) -> dict[str, Any]:
    """Requests routed by `routing` (sim/engine/routing.py: one meaning per policy)."""
    if routing not in ROUTINGS:
        raise ScenarioError(f"deployment.routing: {routing!r} is not one of {', '.join(ROUTINGS)}")
    return {} if routing == scenario.deployment.routing else {"deployment.routing": routing}


def workers_overrides(scenario: Scenario, stage_name: str, workers: int) -> dict[str, Any]:
    """Pool stage `stage_name` with `workers` workers (per replica, where the stage says so)."""
    stage = scenario.stage(stage_name)
    if stage.kind != "pool":
        raise ScenarioError(f"stages.{stage_name}: workers apply to a pool stage (this is {stage.kind})")
    return {} if workers == stage.workers else {f"stages.{stage_name}.workers": int(workers)}


def autoscaling_bounds_overrides(
    scenario: Scenario, min_replicas: int | None = None, max_replicas: int | None = None
) -> dict[str, Any]:
    """The autoscaler's replica bounds, in the spelling the scenario uses (Knative's min_scale /
    max_scale, or min_replicas / max_replicas); only those that change."""
    scaling = scenario.deployment.autoscaling
    if scaling is None:
        raise ScenarioError("deployment.autoscaling: this scenario has a fixed replica count (set replicas)")
    raw = scenario.raw["deployment"]["autoscaling"]
    low = "min_scale" if "min_scale" in raw else "min_replicas"
    high = "max_scale" if "max_scale" in raw else "max_replicas"
    out: dict[str, Any] = {}
    if min_replicas is not None and min_replicas != scaling.min_replicas:
        out[f"deployment.autoscaling.{low}"] = int(min_replicas)
    if max_replicas is not None and max_replicas != scaling.max_replicas:
        out[f"deployment.autoscaling.{high}"] = int(max_replicas)
    return out


def cold_start_overrides(scenario: Scenario, mean_s: float) -> dict[str, Any]:
    """New replicas with a cold start of mean `mean_s` seconds (the distribution's shape kept if one was
    given; 0 removes it)."""
    raw = scenario.raw.get("deployment", {}).get("cold_start_ms")
    current = getattr(scenario.deployment, "cold_start_ms", None)
    if mean_s <= 0:
        return {"deployment.cold_start_ms": None} if raw is not None else {}
    if raw is None or current is None or current.mean <= 0:
        return {"deployment.cold_start_ms": {"dist": "constant", "value": mean_s * 1000.0}}
    if math.isclose(current.mean, mean_s * 1000.0):
        return {}
    scaled = scale_distribution(raw, mean_s * 1000.0 / current.mean)
    if scaled is None:
        raise ScenarioError("deployment.cold_start_ms: this distribution cannot be scaled (samples from a file?)")
    return {"deployment.cold_start_ms": scaled}


def budget_overrides(scenario: Scenario, **budgets_ms: float | None) -> dict[str, Any]:
    """Latency budgets set (a value) or removed (None or 0): `p99_ms=100`, `ttft_ms=1000`, `tpot_ms=100`;
    only those that change. A budget is a positive number of milliseconds (sim.spec.scenario.Slo)."""
    out: dict[str, Any] = {}
    for name, value in budgets_ms.items():
        if name not in type(scenario.slo).model_fields:
            raise ScenarioError(f"slo.{name}: not a latency budget ({', '.join(type(scenario.slo).model_fields)})")
        new = float(value) if value else None
        if new != getattr(scenario.slo, name):
            out[f"slo.{name}"] = new
    return out


def with_run_length(scenario: Scenario, requests: int) -> Scenario:
    """The scenario cut (or stretched) to `requests` per replication, keeping its warm-up *share*
    (Workload.warmup_share, the one warm-up rule), so a short run is never all warm-up. A load that follows
    the clock is refused (sim.spec.budget.check_whole_horizon): its first requests are not its horizon."""
    check_whole_horizon(scenario, "--requests")
    share = scenario.workload.warmup_share()
    return scenario.with_overrides(
        {
            "workload.requests": requests,
            "workload.duration_s": None,
            "workload.warmup_s": None,
            "workload.warmup_requests": round(share * requests),
        }
    )


def schema_paths() -> list[str]:
    """Every dotted field path of the scenario schema (a list item, e.g. a stage, is written `*`), for
    hints that name where a field really lives."""
    if not _SCHEMA_PATHS:
        _SCHEMA_PATHS.extend(sorted(set(_paths_of(Scenario, ()))))
    return _SCHEMA_PATHS


_SCHEMA_PATHS: list[str] = []


def _models_in(annotation: Any) -> list[type]:
    """The pydantic models an annotation can hold (through Optional, unions, Annotated and lists)."""
    from typing import get_args

    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _models_in(arg)]


def _paths_of(model: type, prefix: tuple[str, ...]):
    for name, field in model.model_fields.items():
        for key in dict.fromkeys((name, field.alias or name)):
            path = (*prefix, key)
            yield ".".join(path)
            listed = "list[" in str(field.annotation) or getattr(field.annotation, "__origin__", None) is list
            for inner in _models_in(field.annotation):
                if len(path) < 8:
                    yield from _paths_of(inner, (*path, "*") if listed else path)


def path_hint(dotted: str) -> str | None:
    """Where an override path the schema does not know lives, e.g. `autoscaling.min_replicas` ->
    `deployment.autoscaling.min_replicas`; None when the path is known (or nothing close is)."""
    keys = dotted.split(".")
    known = schema_paths()

    def matches(pattern: str, parts: list[str]) -> bool:
        steps = pattern.split(".")
        return len(steps) == len(parts) and all(s in ("*", p) for s, p in zip(steps, parts))

    if any(matches(pattern, keys) for pattern in known):
        return None
    if any(pattern.split(".")[: len(keys)] == keys for pattern in known):
        return None  # a prefix of a known path (a whole sub-mapping)
    suffix = [
        pattern
        for pattern in known
        if len(pattern.split(".")) > len(keys) and matches(".".join(pattern.split(".")[-len(keys) :]), keys)
    ]
    if suffix:
        return " or ".join(dict.fromkeys(path.replace("*", "NAME") for path in suffix[:3]))
    import difflib

    close = difflib.get_close_matches(dotted, [p for p in known if "*" not in p], n=1)
    return close[0] if close else None


def split_stage(scenario: Scenario) -> str | None:
    """The LLM stage whose prefill and decode run on separate pools (`disaggregated`), if any."""
    return next((s.name for s in scenario.stages if getattr(s, "disaggregated", None) is not None), None)


def split_overrides(scenario: Scenario, prefill: int, decode: int) -> dict[str, Any]:
    """A disaggregated stage's pools set to `prefill` and `decode` replicas (the deployment holds both)."""
    stage = split_stage(scenario)
    if stage is None:
        raise ScenarioError("stages: no LLM stage has disaggregated prefill and decode pools")
    for label, count in (("prefill_replicas", prefill), ("decode.replicas", decode)):
        if not (isinstance(count, int) and count >= 1):
            raise ScenarioError(f"stages.{stage}.disaggregated.{label} must be a whole number ≥ 1 (got {count})")
    path = f"stages.{stage}.disaggregated"
    return {
        f"{path}.prefill_replicas": prefill,
        f"{path}.decode.replicas": decode,
        "deployment.replicas": prefill + decode,
    }


def with_split(scenario: Scenario, prefill: int, decode: int) -> Scenario:
    return scenario.with_overrides(split_overrides(scenario, prefill, decode))


def colocated(scenario: Scenario, replicas: int | None = None) -> Scenario:
    """A disaggregated scenario served colocated: every replica runs prefill and decode on the stage's own
    profile and price, `replicas` of them (default: as many as both pools held)."""
    stage = split_stage(scenario)
    if stage is None:
        return scenario
    count = scenario.deployment.replicas if replicas is None else replicas
    return scenario.with_overrides({f"stages.{stage}.disaggregated": None, "deployment.replicas": count})
