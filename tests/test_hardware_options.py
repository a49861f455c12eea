"""Sizing candidates from the catalogue, each with its relative speed stated and sourced (issue 21: the
Sizing tab took `l4@2`, a factor the user made up, and defaulted to the scenario's own hardware alone)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.analysis.hardware_options import (
    DECODE_BATCH,
    DECODE_CONTEXT,
    PREFILL_TOKENS,
    hardware_options,
    preselected,
)
from sim.spec.hardware import load_catalogue, load_specifications
from sim.spec.llm_cost import LLMCost, load_llm_profile
from sim.spec.scenario import load_scenario
from ui.views.sizing import OWN, sizing_candidates, sources_text

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def ranker():
    return load_scenario(ROOT / "scenarios" / "search-ranker.yaml")


@pytest.fixture(scope="module")
def chat():
    return load_scenario(ROOT / "scenarios" / "llm-chat-continuous.yaml")


def test_a_model_stage_gets_each_gpu_at_its_datasheet_ratio(ranker):
    specs = load_specifications()
    options = {o.name: o for o in hardware_options(ranker)}
    t4, l4 = specs["t4"], specs["l4"]
    bandwidth = l4.memory_bandwidth_gb_s / t4.memory_bandwidth_gb_s
    compute = l4.peak_tflops("fp16") / t4.peak_tflops("fp16")
    option = options["l4"]
    assert option.spec == f"l4@{min(bandwidth, compute):.3g}"  # sized at the slower of the two ratios
    assert option.estimated and option.source == l4.source  # the datasheet it comes from
    assert f"memory bandwidth ×{bandwidth:.2g}" in option.label and f"FP16 ×{compute:.2g}" in option.label
    assert "t4" not in options and not any(specs[name].kind == "cpu" for name in options)


def test_an_llm_gets_profiles_of_its_model_measured_or_estimated_with_their_interval(chat):
    options = {o.name: o for o in hardware_options(chat)}
    assert set(options) == {"h100-80gb", "h200", "l40s"}  # no band ends, no second profile of one GPU
    assert not options["h100-80gb"].estimated and options["h100-80gb"].interval is None
    h200 = load_llm_profile(ROOT / "models" / "llama2-70b-tp4-h200-estimated.yaml")
    option = options["h200"]
    assert option.estimated and option.source == "models/llama2-70b-tp4-h200-estimated.yaml"
    for pool, pct in h200.estimate["interval_pct"].items():
        assert f"{pool} {pct}%" in option.interval
    own = LLMCost(chat.stages[-1].cost.profile)
    theirs = LLMCost(h200)
    prefill = own.prefill_ms(PREFILL_TOKENS) / theirs.prefill_ms(PREFILL_TOKENS)
    context = DECODE_BATCH * DECODE_CONTEXT
    decode = own.decode_step_ms(DECODE_BATCH, context) / theirs.decode_step_ms(DECODE_BATCH, context)
    assert f"×{prefill:.2g} prefill, ×{decode:.2g} decode" in option.label
    assert option.label.startswith("h200 (estimated)")
    assert option.usd_per_hour == pytest.approx(load_catalogue()["h200"].usd_per_hour * 4)  # TP4: four GPUs


def test_the_default_is_never_the_own_hardware_alone(ranker, chat):
    for scenario in (ranker, chat):
        assert preselected(hardware_options(scenario))
    assert not preselected(hardware_options(chat))[0].estimated  # a measured profile before estimates


def test_the_default_leaves_out_other_vendors_approximate_prices_and_far_prices(ranker):
    reference = load_scenario(ROOT / "scenarios" / "reference.yaml")  # on a100-80gb
    options = {o.name: o for o in hardware_options(reference)}
    assert options["mi300x"].other_vendor and options["v100-16gb"].price_approximate
    chosen = [o.name for o in preselected(list(options.values()))]
    assert "mi300x" not in chosen and "v100-16gb" not in chosen
    # A T4 ranker: a B200 (×25 by its datasheet) is offered, never preselected at 27× the price.
    options = {o.name: o for o in hardware_options(ranker)}
    assert options["b200"].far_price and "b200" not in [o.name for o in preselected(list(options.values()))]


def test_a_cpu_scenario_has_no_sourced_alternative():
    assert hardware_options(load_scenario(ROOT / "scenarios" / "mlp-cpu.yaml")) == []


def test_candidates_carry_the_estimate_in_their_name(ranker, chat):
    catalogue = load_catalogue()
    options = {o.name: o for o in hardware_options(ranker, catalogue)}
    own, l4 = sizing_candidates(ranker, catalogue, ["l4"], options, True, "")
    assert own.own and l4.hardware == "l4" and l4.name.startswith("l4 (estimated ×")
    assert l4.speedup == pytest.approx(float(options["l4"].spec.split("@")[1]))
    options = {o.name: o for o in hardware_options(chat, catalogue)}
    (h200,) = sizing_candidates(chat, catalogue, ["h200"], options, False, "")
    assert h200.name == "h200 (estimated)" and h200.profile.endswith("llama2-70b-tp4-h200-estimated.yaml")
    assert "calibrate transfer" in sources_text([options["h200"]])


def test_an_own_factor_is_still_possible_as_an_advanced_option(ranker):
    catalogue = load_catalogue()
    candidates = sizing_candidates(ranker, catalogue, [], {}, False, "l4@2")
    assert [(c.name, c.speedup) for c in candidates] == [("l4", 2.0)]


def test_own_is_the_planners_word():
    assert OWN == "as configured"
