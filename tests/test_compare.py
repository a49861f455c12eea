"""Variant syntax, winners, knees and the planner's knob helpers (sim/analysis/compare.py, sim/analysis/planner.py)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sim.analysis import compare, planner
from sim.spec import transforms
from sim.errors import ServesimError
from sim.present.comparison import comparison_cells
from sim.spec.scenario import parse_scenario_text

BASE = """
name: two-stage
seed: 5
workload:
  arrival: {process: poisson, rate_rps: 40}
  requests: 20000
  warmup_requests: 2000
stages:
  - name: decode
    kind: pool
    workers: 2
    service_ms: {dist: lognormal, median: 10, p99: 30}
  - name: forward
    kind: model
    batch_cost: {base_ms: 4.0, per_item_ms: 1.0}
    batching: {policy: none}
deployment:
  replicas: 1
  hardware: {name: l4, usd_per_hour: 0.80}
slo: {p99_ms: 80}
"""


@pytest.fixture(scope="module")
def scenario():
    return parse_scenario_text(BASE)


# --- variant syntax ------------------------------------------------------------------------------------


def test_batching_shorthand_targets_the_model_stage(scenario):
    variant = compare.parse_variant("dyn:batching=dynamic(max_batch_size=32,max_queue_delay_ms=5)", scenario)
    assert variant.name == "dyn"
    assert variant.overrides == {
        "stages.forward.batching": {"policy": "dynamic", "max_batch_size": 32, "max_queue_delay_ms": 5}
    }


def test_dotted_path_with_a_yaml_mapping_and_a_colon_inside_braces(scenario):
    spec = "stages.forward.batching={policy: static, batch_size: 4, timeout_ms: 10}"
    variant = compare.parse_variant(spec, scenario)
    assert variant.name == spec  # no NAME: prefix — the colons are inside the braces
    assert variant.overrides == {"stages.forward.batching": {"policy": "static", "batch_size": 4, "timeout_ms": 10}}


def test_several_settings_and_shorthands(scenario):
    variant = compare.parse_variant("big: replicas=3, rate=55.5; slo=50, stages.decode.workers=4", scenario)
    assert variant.overrides == {
        "deployment.replicas": 3,
        "workload.arrival.rate_rps": 55.5,
        "slo.p99_ms": 50,
        "stages.decode.workers": 4,
    }


def test_load_factor_scales_the_rate(scenario):
    assert compare.parse_variant("load=1.5", scenario).overrides == {"workload.arrival.rate_rps": 60.0}


@pytest.mark.parametrize(
    "spec, words",
    [
        ("batching=sideways", ["policy"]),
        ("replicas=0", ["deployment.replicas"]),
        ("colour=red", ["unknown setting", "colour"]),
        ("replicas", ["not KEY=VALUE"]),
        ("stages.nope.workers=3", ["no item named 'nope'"]),
        ("batching=dynamic(32)", ["not NAME=VALUE"]),
    ],
)
def test_bad_variants_name_the_problem(scenario, spec, words):
    with pytest.raises(ServesimError) as err:
        compare.parse_variant(spec, scenario)
    for word in words:
        assert word in str(err.value)
    assert spec.split("=")[0] in str(err.value)


def test_repeated_names_are_refused(scenario):
    with pytest.raises(ServesimError, match="repeated"):
        compare.parse_variants(["a:replicas=2", "a:replicas=3"], scenario)


def test_split_top_level_respects_brackets_and_quotes():
    assert compare.split_top_level("a=1,b={x: 1, y: [2, 3]};c='p,q'") == ["a=1", "b={x: 1, y: [2, 3]}", "c='p,q'"]


# --- winners -------------------------------------------------------------------------------------------


def _summary(p99: float, throughput: float, per_1m: float | None) -> dict:
    latency = {"mean": p99 / 2, "p50": p99 / 3, "p90": p99 / 1.5, "p95": p99 / 1.2, "p99": p99, "p999": p99 * 1.5}
    return {
        "latency_ms": latency,
        "latency_ms_ci95": {k: [v * 0.95, v * 1.05] for k, v in latency.items()},
        "throughput_rps": throughput,
        "cost": {"usd_per_hour": 1.0, "usd_per_1m_queries": per_1m},
        "slo": {"attainment": None},
        "rejected_fraction": 0.0,
    }


def test_winners_pick_the_best_and_share_ties():
    summaries = [_summary(50, 100.0, 2.0), _summary(40, 100.4, 4.0), _summary(60, 80.0, 1.0)]
    won = compare.winners(summaries, ["a", "b", "c"])
    assert won["p99"] == ["b"]
    assert won["throughput_rps"] == ["a", "b"]  # 0.4% apart: a tie, not a win
    assert won["usd_per_1m_queries"] == ["c"]
    assert won["rejected_fraction"] == ["a", "b", "c"]
    assert "slo_attainment" not in won  # nobody has it


def test_comparison_table_stars_the_winner_and_shows_the_ci():
    summaries = [_summary(50, 100.0, 2.0), _summary(40, 100.0, 4.0)]
    fake = compare.Comparison(base=None, results=[], seed=1, size=planner.QUICK)
    fake.results = [type("R", (), {"variant": compare.Variant(n), "summary": s})() for n, s in zip("ab", summaries)]
    fake.winners = compare.winners(summaries, ["a", "b"])
    table = comparison_cells(fake)
    assert table.loc["p99 latency (ms)", "b"] == "**40.0 [38.0, 42.0]** ★"
    assert table.loc["p99 latency (ms)", "a"] == "50.0 [47.5, 52.5]"


# --- knee and SLO crossing ---------------------------------------------------------------------------------


def test_knee_of_the_mm1_mean_sojourn_curve():
    """Kneedle on y = 1/(1−x) over [x0, x1]: the knee is where y' = 1/(1−x)² equals the chord's slope
    (y1 − y0)/(x1 − x0), i.e. x* = 1 − sqrt((x1 − x0)/(y1 − y0)); the grid point nearest x* wins."""
    x = np.linspace(0.05, 0.95, 91)
    y = 1 / (1 - x)
    exact = 1 - math.sqrt((x[-1] - x[0]) / (y[-1] - y[0]))
    assert x[compare.knee_index(x, y)] == pytest.approx(exact, abs=0.01)


def test_no_knee_on_a_straight_line():
    x = np.linspace(0, 1, 10)
    assert compare.knee_index(x, 2 * x + 1) is None


def test_max_rate_within_slo_interpolates_the_crossing():
    curve = pd.DataFrame({"rate_rps": [10, 20, 30, 40], "p99": [20, 30, 60, 120]})
    assert compare.max_rate_within_slo(curve, 45) == pytest.approx(25.0)
    assert compare.max_rate_within_slo(curve, 200) == 40
    assert compare.max_rate_within_slo(curve, 10) is None


def test_max_rate_within_slo_when_only_the_middle_of_the_curve_meets():
    """A static batcher with a timeout waits it out at light load: p99 over the SLO at the lowest rate,
    within it in the middle (the report said "none" beside a chart meeting from 1,400 to 3,600 req/s)."""
    curve = pd.DataFrame({"rate_rps": [400, 1400, 2500, 3600, 4000], "p99": [45, 28, 25, 30, 90]})
    assert compare.max_rate_within_slo(curve, 30) == pytest.approx(3600.0)
    assert compare.max_rate_within_slo(curve, 50) == pytest.approx(3600 + 20 / 60 * 400)


# --- planner helpers -----------------------------------------------------------------------------------


def test_capacity_is_the_rate_that_saturates_the_busiest_stage(scenario):
    # decode: 2 workers, lognormal median 10 p99 30 -> mean = median·exp(σ²/2), σ = ln(3)/z99.
    sigma = math.log(3) / 2.3263478740408408
    decode_capacity = 2 / (10 * math.exp(sigma**2 / 2)) * 1000
    forward_capacity = 1 / 5.0 * 1000  # one replica, no batching, 4 + 1 ms per request
    assert planner.capacity_rps(scenario) == pytest.approx(min(decode_capacity, forward_capacity), rel=1e-9)


def test_scale_distribution_keeps_the_shape():
    assert transforms.scale_distribution({"dist": "lognormal", "median": 10, "p99": 30}, 0.5) == {
        "dist": "lognormal",
        "median": 5.0,
        "p99": 15.0,
    }
    assert transforms.scale_distribution({"dist": "gamma", "mean": 4, "cv": 2}, 3) == {
        "dist": "gamma",
        "mean": 12,
        "cv": 2,
    }


def test_stage_cost_override_halves_the_offered_load(scenario):
    from sim.metrics.load import offered_load

    faster = scenario.with_overrides(planner.stage_cost_overrides(scenario, "decode", 0.5))
    assert offered_load(faster)["decode"] == pytest.approx(offered_load(scenario)["decode"] / 2)
    assert planner.stage_cost_overrides(scenario, "decode", 1.0) == {}


def test_a_short_run_keeps_the_warmup_share(scenario):
    short = planner.sized(scenario, planner.RunSize(3000, 2))
    assert short.workload.requests == 3000
    assert short.workload.warmup_requests == 300  # 2000 of 20000 = 10%
    result = planner.run(scenario, planner.RunSize(3000, 2))
    assert len(result.log) == 6000
    assert int(result.log["warmup"].sum()) == 600


def test_same_seed_same_answer(scenario):
    a = planner.run(scenario, planner.RunSize(2000, 2)).summary
    b = planner.run(scenario, planner.RunSize(2000, 2)).summary
    assert a["latency_ms"] == b["latency_ms"]


def test_variants_share_the_arrivals(scenario):
    variants = compare.parse_variants(["one:replicas=1", "two:replicas=2"], scenario)
    result = compare.run_comparison(scenario, variants, size=planner.RunSize(2000, 2))
    one, two = (r.result.log for r in result.results)
    assert np.array_equal(one["arrival_ms"].to_numpy(), two["arrival_ms"].to_numpy())
    assert result.winners["p99"] == ["two"]


def test_quick_runs_keep_the_horizon_of_time_varying_traffic():
    spiky = parse_scenario_text(
        BASE.replace(
            "arrival: {process: poisson, rate_rps: 40}\n  requests: 20000\n  warmup_requests: 2000",
            "arrival: {process: time_varying, points: [[0, 40], [60, 40]], spikes: [{at_s: 20, duration_s: 5, multiplier: 2}]}\n"
            "  duration_s: 60",
        )
    )
    assert planner.time_dependent(spiky)
    assert planner.effective_requests(spiky, planner.QUICK) is None  # ~2,600 requests: the whole minute
    assert "own" in planner.describe(spiky, planner.QUICK)
    steady = parse_scenario_text(BASE)
    assert planner.effective_requests(steady, planner.QUICK) == planner.QUICK_REQUESTS
