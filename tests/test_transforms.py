"""Typed scenario transforms: what each does to the scenario, checked on the validated result."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.errors import ScenarioError
from sim.metrics.load import offered_load
from sim.spec import transforms
from sim.spec.scenario import load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[1]
BARE = {
    "name": "bare", "workload": {"arrival": {"process": "poisson", "rate_rps": 10}, "requests": 1000},
    "stages": [{"name": "pre", "kind": "pool", "workers": 2, "service_ms": 12},
               {"name": "forward", "kind": "model", "service_ms": 20}],
}  # fmt: skip


def test_a_bare_number_service_time_scales():
    scenario = transforms.scale_stage_time(parse_scenario(BARE), "pre", 0.5)
    assert scenario.stage("pre").service_ms.mean == pytest.approx(6.0)


def test_scaling_the_load_scales_every_offered_load():
    for name in ("vision-a100", "autoscale-diurnal", "mm3"):
        scenario = load_scenario(ROOT / "scenarios" / f"{name}.yaml")
        before, after = offered_load(scenario), offered_load(transforms.scale_load(scenario, 1.5))
        for stage, rho in before.items():
            assert after[stage] == pytest.approx(1.5 * rho)


def test_a_speed_up_divides_a_measured_profile_too():
    scenario = load_scenario(ROOT / "scenarios" / "mlp-cpu.yaml")
    faster = transforms.speed_up(scenario, "forward", 2.0)
    assert faster.stage("forward").cost.mean_ms(4) == pytest.approx(scenario.stage("forward").cost.mean_ms(4) / 2)


def test_a_short_run_keeps_the_warmup_share():
    scenario = load_scenario(ROOT / "scenarios" / "mm3.yaml")  # 10,000 of 200,000 requests: 5%
    short = transforms.with_run_length(scenario, 4000)
    assert short.workload.requests == 4000 and short.workload.warmup_requests == 200
    steady = parse_scenario(
        {**BARE, "workload": {"arrival": BARE["workload"]["arrival"], "duration_s": 600, "warmup_s": 60}}
    )
    assert transforms.with_run_length(steady, 1000).workload.warmup_share() == pytest.approx(0.1)


def test_a_time_varying_day_is_never_cut_to_its_first_requests():
    day = load_scenario(ROOT / "scenarios" / "autoscale-diurnal.yaml")
    with pytest.raises(ScenarioError, match=r"^--requests: .* changes over time.*workload\.duration_s"):
        transforms.with_run_length(day, 1000)


def test_replicas_of_a_fixed_and_an_autoscaled_deployment():
    assert transforms.with_replicas(parse_scenario(BARE), 7).deployment.replicas == 7
    knative = {**BARE, "deployment": {"autoscaling": {"policy": "knative", "min_scale": 1, "max_scale": 3}}}
    scaled = transforms.with_replicas(parse_scenario(knative), 5).deployment.autoscaling
    assert (scaled.min_replicas, scaled.max_replicas) == (5, 5)


def test_nonsense_factors_are_clear_errors():
    with pytest.raises(ScenarioError, match="load factor"):
        transforms.scale_load(parse_scenario(BARE), float("inf"))
    with pytest.raises(ScenarioError, match="stages.pre"):
        transforms.scale_stage_time(parse_scenario(BARE), "pre", -1)
