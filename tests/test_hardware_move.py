"""Moving a scenario to other catalogue hardware (sim.analysis.hardware_options.moved_overrides), as compare's
`hardware=NAME` and the planner's hardware knob do: an LLM stage takes that hardware's profile or the move is
refused; a model stage runs at the roofline ratio the Sizing candidates use, or is refused; it is never the old
costs at the new price (issue 22: 'never ignores it')."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.analysis.compare import VariantError, parse_variant
from sim.analysis.hardware_options import hardware_options, movable_hardware, moved_overrides
from sim.spec.hardware import load_catalogue
from sim.spec.llm_cost import load_llm_profile
from sim.spec.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent


def chat():
    return load_scenario(ROOT / "scenarios" / "llm-chat-continuous.yaml")


def test_an_llm_variant_on_other_hardware_runs_that_hardwares_profile():
    # Before: only deployment.hardware changed, so the A100's costs ran at the H100's price.
    overrides = parse_variant("hardware=h100-80gb", chat()).overrides
    moved = chat().with_overrides(overrides)
    assert moved.stage("llm").cost.profile.hardware == "h100-80gb"
    assert overrides["deployment.hardware"]["usd_per_hour"] == pytest.approx(4 * 6.88)
    estimated = chat().with_overrides(parse_variant("hardware=h200", chat()).overrides)
    assert estimated.stage("llm").cost.profile.estimated  # the run labels it and widens its CIs


def test_the_profile_chosen_is_fitted_as_the_stages_own():
    own = Path(chat().stage("llm").profile).stem  # the shipped per-token refit
    path = Path(moved_overrides(chat(), "h100-80gb", load_catalogue())["stages.llm.profile"])
    assert "per-token" in own and "per-token" in path.stem
    assert load_llm_profile(path).hardware == "h100-80gb"
    (option,) = [o for o in hardware_options(chat(), load_catalogue()) if o.name == "h100-80gb"]
    assert option.spec.endswith(path.name)


def test_hardware_without_a_profile_of_the_model_is_refused_by_field():
    with pytest.raises(VariantError, match=r"stages\.llm\.profile\).*no t4 profile of llama2-70b at TP4.*transfer"):
        parse_variant("hardware=t4", chat())
    assert "t4" not in movable_hardware(chat(), load_catalogue())
    assert set(movable_hardware(chat(), load_catalogue())) == {"a100-80gb", "h100-80gb", "h200", "l40s"}
    assert "(estimated)" in movable_hardware(chat(), load_catalogue())["h200"]


def test_a_model_stage_moves_at_the_roofline_speed_the_sizing_candidates_use():
    # Before: only the price moved, so a T4 served an A100's model stage as fast, 6.5x cheaper (issue 25's
    # stop: a wrong "cheapest" in a design review).
    reference = load_scenario(ROOT / "scenarios" / "reference.yaml")
    overrides = parse_variant("hardware=t4", reference).overrides
    (option,) = [o for o in hardware_options(reference, load_catalogue()) if o.name == "t4"]
    assert overrides["deployment.hardware"] == {"name": "t4", "usd_per_hour": 0.526}
    assert overrides["stages.forward.speedup"] == pytest.approx(
        reference.stage("forward").speedup * option.ratio, rel=1e-3
    )
    assert option.spec == f"t4@{option.ratio:.3g}" and option.ratio < 0.5  # the Sizing tab's candidate
    moved = reference.with_overrides(overrides)
    assert moved.stage("forward").speedup == pytest.approx(option.ratio, rel=1e-3)
    assert movable_hardware(reference, load_catalogue())["t4"].startswith(f"(roofline ×{option.ratio:.2g})")
    assert "stages.forward.speedup" not in moved_overrides(reference, "a100-80gb", load_catalogue())


def test_a_model_stage_without_a_datasheet_ratio_is_refused_by_field():
    cpu = load_scenario(ROOT / "scenarios" / "bert-cpu.yaml")
    with pytest.raises(VariantError, match=r"model stage 'forward'.*cpu-16vcpu to t4.*stages\.forward\.speedup=X"):
        parse_variant("hardware=t4", cpu)
    assert "t4" not in movable_hardware(cpu, load_catalogue())
    with pytest.raises(VariantError, match=r"from cpu-2vcpu to h100-80gb"):  # its profile's hardware
        parse_variant("hardware=h100-80gb", load_scenario(ROOT / "scenarios" / "mlp-cpu.yaml"))
    unnamed = load_scenario(ROOT / "scenarios" / "mm3.yaml")  # inline costs, no hardware named
    with pytest.raises(VariantError, match=r"names no hardware \(deployment\.hardware\.name\)"):
        parse_variant("hardware=h100-80gb", unnamed)


def test_the_advisor_moves_hardware_by_the_same_function_as_compare():
    from sim.analysis.advise_levers import HardwareLever, _hardware_levers

    reference = load_scenario(ROOT / "scenarios" / "reference.yaml")
    levers = {lever.target: lever for lever in _hardware_levers(reference)}
    assert set(levers) == {"h100-80gb", "a100-40gb"}  # the next faster, the next cheaper at a list price
    for target, lever in levers.items():
        assert lever.overrides(reference) == moved_overrides(reference, target, load_catalogue())
    (h100,) = [o for o in hardware_options(reference, load_catalogue()) if o.name == "h100-80gb"]
    assert f"×{h100.ratio:.2g}" in levers["h100-80gb"].reason
    cpu = load_scenario(ROOT / "scenarios" / "bert-cpu.yaml")
    assert _hardware_levers(cpu) == []
    lever = HardwareLever(name="x", group="hardware", family="hardware", target="t4", usd_per_hour=0.526)
    assert "no datasheet ratio from cpu-16vcpu to t4" in lever.applies(cpu)
