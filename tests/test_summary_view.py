"""The typed summary: `Summary.of(summary).to_dict()` is the `servesim run --json` object exactly, on
every kind of shipped scenario (fixed, autoscaled, caches, LLM colocated and disaggregated)."""

from __future__ import annotations

import json
import math

import pytest

from sim.analysis import planner
from sim.cli.main import json_ready
from sim.metrics.llm import without_undefined_utilization
from sim.metrics.summary_view import Summary
from sim.shipped import shipped_root
from sim.spec.scenario import load_scenario

SCENARIOS = shipped_root("scenarios")
# One of each kind the planner shows: fixed replicas, autoscaled over a day, caches, LLM, disaggregated LLM.
KINDS = ["mm3", "search-ranker", "autoscale-diurnal", "recsys-caches", "llm-chat-continuous", "llm-chat-disaggregated"]
SWEEP = planner.SWEEP


@pytest.fixture(scope="module", params=KINDS)
def summary(request) -> dict:
    scenario = load_scenario(SCENARIOS / f"{request.param}.yaml")
    return without_undefined_utilization(planner.run(scenario, SWEEP).summary)


def test_to_dict_is_the_json_exactly(summary):
    view = Summary.of(summary)
    assert view.to_dict() == summary
    # The same text, key order included: the contract does not move.
    assert json.dumps(json_ready(view.to_dict())) == json.dumps(json_ready(summary))


def test_round_trip_through_json_text(summary):
    text = json.dumps(json_ready(summary))
    assert json.dumps(Summary.of(json.loads(text)).to_dict()) == text


def test_typed_reads_equal_the_dict(summary):
    view = Summary.of(summary)
    assert view.latency_ms.p99 == summary["latency_ms"]["p99"]
    assert view.latency_ms_ci95.p99 == summary["latency_ms_ci95"]["p99"]
    assert view.cost.usd_per_hour == summary["cost"]["usd_per_hour"]
    assert ("llm" in view) == ("llm" in summary)
    assert ("autoscaling" in view) == ("autoscaling" in summary)
    if "llm" in summary:
        assert view.llm.ttft_ms.p99 == summary["llm"]["ttft_ms"]["p99"]
        assert view.llm.interval("ttft_ms", "p99") == summary["llm"]["ci95"]["ttft_ms"].get("p99")
    if "pools" in summary.get("llm", {}):
        assert view.llm.pools.decode.busy_fraction == summary["llm"]["pools"]["decode"]["busy_fraction"]
        assert view.llm.kv_transfer_ms.p99 == summary["llm"]["kv_transfer_ms"]["p99"]


def test_absent_and_null_keys_stay_as_given():
    given = {"latency_ms": {"p99": 3}, "slo": {"p99_ms": None, "met": None, "windows": None}, "new_key": [1]}
    out = Summary.of(given).to_dict()
    assert out == given
    assert isinstance(out["latency_ms"]["p99"], int)  # never coerced to 3.0: the JSON text stays "3"


def test_nan_is_kept_not_copied():
    nan = math.nan
    assert Summary.of({"utilization": nan}).to_dict()["utilization"] is nan


def test_a_view_is_its_own_view():
    view = Summary.of({"scenario": "x"})
    assert Summary.of(view) is view


def test_an_estimated_llm_profiles_keys_ride_along_in_order():
    """An LLM on an estimated profile adds llm.costs_estimated and llm.cost_interval (after the view's
    known keys); the text is still the same."""
    from pathlib import Path

    scenario = load_scenario(SCENARIOS / "llm-chat-continuous.yaml").with_overrides(
        {
            "stages.llm.profile": str(Path(SCENARIOS).parent / "models" / "llama2-70b-tp4-h200-estimated.yaml"),
            "deployment.hardware": {"name": "h200", "usd_per_hour": 31.648},
        }
    )
    summary = without_undefined_utilization(planner.run(scenario, SWEEP).summary)
    assert "costs_estimated" in summary["llm"]
    assert json.dumps(json_ready(Summary.of(summary).to_dict())) == json.dumps(json_ready(summary))
    assert Summary.of(summary).llm.costs_estimated.hardware == "h200"
