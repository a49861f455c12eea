"""The typed transforms the sidebar knobs are built on (sim/spec/transforms.py): each changes the field
in the spelling the scenario uses, and the scenario it gives says so. Pure: no Streamlit."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.errors import ScenarioError
from sim.spec import transforms
from sim.spec.scenario import load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parent.parent


def knative(**scaling) -> dict:
    return {
        "name": "knative",
        "seed": 1,
        "workload": {"arrival": {"process": "poisson", "rate_rps": 20}, "requests": 1000},
        "stages": [{"name": "forward", "kind": "model", "service_ms": {"dist": "exponential", "mean": 50}}],
        "deployment": {
            "autoscaling": {"policy": "knative", "min_scale": 1, "max_scale": 6, **scaling},
            "cold_start_ms": {"dist": "lognormal", "median": 4000, "p99": 12000},
        },
    }


def test_autoscaling_bounds_in_knatives_spelling():
    scenario = parse_scenario(knative())
    overrides = transforms.autoscaling_bounds_overrides(scenario, 3, 9)
    assert overrides == {"deployment.autoscaling.min_scale": 3, "deployment.autoscaling.max_scale": 9}
    changed = scenario.with_overrides(overrides)
    assert (changed.deployment.autoscaling.min_replicas, changed.deployment.autoscaling.max_replicas) == (3, 9)
    assert transforms.autoscaling_bounds_overrides(scenario, 1, 6) == {}


def test_autoscaling_bounds_need_an_autoscaler():
    with pytest.raises(ScenarioError, match="fixed replica count"):
        transforms.autoscaling_bounds_overrides(load_scenario(ROOT / "scenarios" / "mm3.yaml"), 2, 4)


def test_cold_start_keeps_its_shape_and_moves_its_mean():
    scenario = parse_scenario(knative())
    before = scenario.deployment.cold_start_ms
    target_s = 2 * before.mean / 1000.0
    changed = scenario.with_overrides(transforms.cold_start_overrides(scenario, target_s))
    after = changed.deployment.cold_start_ms
    assert after.mean == pytest.approx(2 * before.mean)
    assert changed.raw["deployment"]["cold_start_ms"]["dist"] == "lognormal"
    # Ratio p99 / median (the shape) unchanged: both times doubled.
    raw = changed.raw["deployment"]["cold_start_ms"]
    assert raw["p99"] / raw["median"] == pytest.approx(3.0)
    none = scenario.with_overrides(transforms.cold_start_overrides(scenario, 0))
    assert none.deployment.cold_start_ms is None


def test_rate_of_a_trace_is_its_time_scale():
    scenario = load_scenario(ROOT / "scenarios" / "llm-chat-continuous.yaml")
    field, label, value = transforms.rate_field(scenario)
    assert (field, value) == ("rate_scale", 1.0) and "time-scale" in label
    faster = scenario.with_overrides(transforms.rate_overrides(scenario, 1.5))
    assert faster.workload.arrival.mean_rate_rps == pytest.approx(1.5 * scenario.workload.arrival.mean_rate_rps)


def test_batching_routing_workers_and_budgets():
    scenario = load_scenario(ROOT / "scenarios" / "vision-a100.yaml")
    policy = {"policy": "static", "batch_size": 4, "timeout_ms": 5.0}
    changed = scenario.with_overrides(transforms.batching_overrides(scenario, "forward", policy))
    assert changed.raw_stage("forward")["batching"] == policy
    with pytest.raises(ScenarioError, match="model stage"):
        transforms.batching_overrides(scenario, "preprocess", policy)
    assert transforms.routing_overrides(scenario, scenario.deployment.routing) == {}
    with pytest.raises(ScenarioError, match="not one of"):
        transforms.routing_overrides(scenario, "sideways")
    workers = scenario.stage("preprocess").workers
    assert (
        scenario.with_overrides(transforms.workers_overrides(scenario, "preprocess", workers + 2))
        .stage("preprocess")
        .workers
        == workers + 2
    )
    budgets = transforms.budget_overrides(scenario, p99_ms=0, ttft_ms=500)
    assert budgets == {"slo.p99_ms": None, "slo.ttft_ms": 500.0}
