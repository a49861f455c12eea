"""Honest LLM pricing (issue 22): a tensor-parallel replica costs TP × the GPU's catalogue price in `run`,
`size`, `compare`, `advise` and the planner alike (one function, sim.metrics.cost.replica_usd_per_hour),
and `--hardware NAME@X` on an LLM stage is refused, never ignored."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from sim.analysis.sizing import parse_candidates, probe
from sim.errors import ServesimError
from sim.metrics.cost import gpus_per_replica, price_usd_per_replica_hour, replica_hardware
from sim.spec.hardware import load_catalogue
from sim.spec.llm_cost import load_llm_profile
from sim.spec.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent
CHAT = ROOT / "scenarios/llm-chat-continuous.yaml"
H100 = ROOT / "models/llama2-70b-tp4-h100.yaml"
RUN = dict(replications=2, requests=300, window_s=None)


@pytest.fixture(scope="module")
def chat():
    return load_scenario(CHAT)


def test_a_replica_holds_as_many_gpus_as_its_profile_is_tensor_parallel(chat):
    assert gpus_per_replica(chat) == load_llm_profile(chat.stages[0].profile).tensor_parallel == 4


def test_size_prices_a_tp4_replica_as_run_does(chat):
    # `run` prices the scenario as written (4 × A100 80 GB per replica); `size --hardware a100-80gb` must
    # reach the same $/h and $ per 1M tokens on the same runs, not one GPU-hour per replica.
    gpu = load_catalogue()["a100-80gb"].usd_per_hour
    run_price = price_usd_per_replica_hour(chat)
    assert run_price == pytest.approx(4 * gpu)
    (candidate,) = parse_candidates("a100-80gb", chat, load_catalogue())
    assert candidate.usd_per_hour == pytest.approx(run_price)
    as_written = probe(chat, "as written", 2, 1e9, seed=1, **RUN)
    sized = probe(candidate.apply(chat), candidate.name, 2, 1e9, seed=1, **RUN)
    assert sized.usd_per_hour == pytest.approx(as_written.usd_per_hour) == pytest.approx(2 * 4 * gpu)
    assert sized.usd_per_1m_tokens == pytest.approx(as_written.usd_per_1m_tokens)


def test_a_catalogue_name_alone_is_priced_per_replica(chat):
    named = chat.with_overrides({"deployment.hardware": {"name": "h100-80gb"}})
    assert price_usd_per_replica_hour(named) == pytest.approx(4 * load_catalogue()["h100-80gb"].usd_per_hour)


def test_a_candidate_with_its_own_profile_is_priced_at_that_profiles_gpus(chat):
    (candidate,) = parse_candidates(f"h100-80gb={H100}", chat, load_catalogue())
    assert candidate.usd_per_hour == pytest.approx(4 * load_catalogue()["h100-80gb"].usd_per_hour)
    assert candidate.apply(chat).stages[0].cost.profile.hardware == "h100-80gb"


def test_compare_prices_hardware_per_replica(chat):
    from sim.analysis.compare import parse_variant

    variant = parse_variant("hardware=h100-80gb", chat)
    assert variant.overrides["deployment.hardware"] == replica_hardware(chat, "h100-80gb")
    assert replica_hardware(chat, "h100-80gb")["usd_per_hour"] == pytest.approx(
        4 * load_catalogue()["h100-80gb"].usd_per_hour
    )


@pytest.mark.parametrize("item", ["h100-80gb@2", "a100-80gb@1.5", "h100-80gb"])
def test_a_speedup_or_unmeasured_hardware_on_an_llm_stage_is_refused_naming_the_field(chat, item):
    with pytest.raises(ServesimError, match=r"stages\.llm\.profile") as caught:
        parse_candidates(item, chat, load_catalogue())
    assert "\n" not in str(caught.value)


def test_the_advisor_offers_no_speed_factor_for_an_llm_stage(chat):
    from sim.analysis.advise_levers import HardwareLever

    lever = HardwareLever(name="x", group="hardware", family="hardware", target="h100-80gb", usd_per_hour=1.0)
    named = chat.with_overrides({"deployment.hardware": {"name": "a100-80gb"}})
    assert "LLM" in (lever.applies(named) or "")


def test_a_tp4_h200_replica_is_priced_four_catalogue_gpu_hours(chat):
    # H200 and L40S have sourced catalogue prices now: an estimated TP4 profile is priced 4 × its GPU-hour in
    # the profile it was written with, in `size` and in `run`, and so has a $ per 1M tokens.
    catalogue = load_catalogue()
    for hardware in ("h200", "l40s"):
        gpu = catalogue[hardware].usd_per_hour
        assert gpu > 0 and catalogue[hardware].source.count("https://") >= 1
        path = ROOT / f"models/llama2-70b-tp4-{hardware}-estimated.yaml"
        assert load_llm_profile(path).usd_per_hour == pytest.approx(4 * gpu, rel=1e-4)
        (candidate,) = parse_candidates(f"{hardware}={path}", chat, catalogue)
        assert candidate.name == f"{hardware} (estimated)"
        assert candidate.usd_per_hour == pytest.approx(4 * gpu)
        assert price_usd_per_replica_hour(candidate.apply(chat)) == pytest.approx(4 * gpu, rel=1e-4)
    (candidate,) = parse_candidates(f"h200={ROOT / 'models/llama2-70b-tp4-h200-estimated.yaml'}", chat, catalogue)
    point = probe(candidate.apply(chat), candidate.name, 2, 1e9, seed=1, **RUN)
    assert point.usd_per_hour == pytest.approx(2 * 4 * catalogue["h200"].usd_per_hour, rel=1e-4)
    assert point.usd_per_1m_tokens > 0 and math.isfinite(point.usd_per_1m_tokens)


def test_an_estimated_profile_on_unpriced_hardware_has_no_cost(tmp_path):
    # Hardware with specifications but no price (a catalogue without the entry, a profile without a price):
    # the estimate runs, its cost is unknown (not 0).
    import yaml

    data = yaml.safe_load((ROOT / "models/llama2-70b-tp4-h200-estimated.yaml").read_text(encoding="utf-8"))
    data["usd_per_hour"] = None
    path = tmp_path / "h200-estimated.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    from sim.spec.datafiles import shipped_data_roots
    from sim.spec.scenario import parse_scenario_text

    roots = (*shipped_data_roots(), CHAT.parent, tmp_path)
    chat = parse_scenario_text(CHAT.read_text(encoding="utf-8"), base_dir=CHAT.parent, allowed_roots=roots)
    catalogue = {k: v for k, v in load_catalogue().items() if k != "h200"}
    (candidate,) = parse_candidates(f"h200={path}", chat, catalogue)
    assert candidate.name == "h200 (estimated)" and candidate.usd_per_hour is None
    variant = candidate.apply(chat)
    assert variant.stages[0].cost.profile.estimated and price_usd_per_replica_hour(variant) is None
    point = probe(variant, candidate.name, 2, 1e9, seed=1, **RUN)
    assert point.usd_per_1m_tokens is None or math.isnan(point.usd_per_1m_tokens)  # unknown, not free


def test_a_profile_measured_on_other_hardware_is_refused_naming_its_field(chat):
    with pytest.raises(ServesimError, match="hardware field") as caught:
        parse_candidates(f"h100-80gb={ROOT / 'models/llama2-70b-tp4-a100.yaml'}", chat, load_catalogue())
    assert "\n" not in str(caught.value)
