"""The estimated costs' interval in the latency CIs (issue 22): a run on an estimated LLM profile repeats
replication 0 at the interval's fast and slow ends and widens every CI to cover both; the widening does not
depend on how many replications ran, the run is reproducible, and a measured profile runs exactly as before."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from sim.analysis import cost_interval
from sim.analysis.simulate import load_run, save_run, simulate
from sim.engine.run import simulate_replication, simulate_replications
from sim.metrics.summary import summarize
from sim.spec.datafiles import shipped_data_roots
from sim.spec.llm_cost import load_llm_profile
from sim.spec.scenario import parse_scenario_text

ROOT = Path(__file__).resolve().parent.parent
H200 = ROOT / "models/llama2-70b-tp4-h200-estimated.yaml"
SCENARIO = """
name: interval
seed: 5
workload:
  arrival: {{process: poisson, rate_rps: 1.0}}
  requests: 300
  warmup_requests: 20
  tokens: {{prompt: {{dist: lognormal, median: 500, p99: 2000}}, output: {{dist: lognormal, median: 100, p99: 400}}}}
stages:
  - name: llm
    kind: llm
    profile: {profile}
deployment:
  replicas: 1
"""


def _scenario(tmp_path: Path, profile: Path):
    roots = (*shipped_data_roots(), tmp_path)
    return parse_scenario_text(SCENARIO.format(profile=profile), base_dir=tmp_path, allowed_roots=roots)


def _copy(tmp_path: Path, **changes) -> Path:
    data = yaml.safe_load(H200.read_text(encoding="utf-8"))
    data.update(changes)
    path = tmp_path / f"h200-{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _dumps(summary: dict) -> str:
    return json.dumps(summary, sort_keys=True, default=str)


def test_every_ci_covers_the_figure_at_both_ends_of_the_cost_interval(tmp_path):
    scenario = _scenario(tmp_path, H200)
    summary = simulate(scenario, replications=3, seed=5).summary
    ends = {}
    for end in ("fast", "slow"):  # worked independently: replication 0 at the end's costs, summarised
        edge = cost_interval.at_end(scenario, end)
        ends[end] = summarize(simulate_replication(edge, 0, seed=5), edge)
    for key in ("ttft_ms", "tpot_ms", "e2el_ms"):
        for q in ("p50", "p99"):
            low, high = summary["llm"]["ci95"][key][q]
            assert low <= ends["fast"]["llm"][key][q] <= ends["slow"]["llm"][key][q] <= high, (key, q)
            assert low <= summary["llm"][key][q] <= high
    low, high = summary["latency_ms_ci95"]["p99"]
    assert low <= ends["fast"]["latency_ms"]["p99"] and ends["slow"]["latency_ms"]["p99"] <= high
    interval = summary["llm"]["cost_interval"]
    assert interval["ends"]["slow"]["tpot_ms_p99"] == ends["slow"]["llm"]["tpot_ms"]["p99"]
    assert any("estimated costs: every 95% CI spans" in w for w in summary["warnings"])


def test_the_widening_does_not_shrink_with_replications_nor_explode_with_two(tmp_path):
    # Before: a CI over per-replication cost draws ran from 0 to several times the figure with two
    # replications (t = 12.7) and would shrink to nothing with many.
    scenario = _scenario(tmp_path, H200)
    end = {
        e: summarize(simulate_replication(cost_interval.at_end(scenario, e), 0, seed=5), scenario)
        for e in ("fast", "slow")
    }
    for replications in (2, 8):
        low, high = simulate(scenario, replications=replications, seed=5).summary["llm"]["ci95"]["tpot_ms"]["p50"]
        # The traffic's own CI of the TPOT median is narrow here: the costs' range sets both ends.
        assert low == pytest.approx(end["fast"]["llm"]["tpot_ms"]["p50"], rel=0.05)
        assert high == pytest.approx(end["slow"]["llm"]["tpot_ms"]["p50"], rel=0.05)


def test_an_estimated_profile_gives_wider_cis_than_the_same_costs_measured(tmp_path):
    estimated = simulate(_scenario(tmp_path, H200), replications=3, seed=5).summary
    measured = simulate(_scenario(tmp_path, _copy(tmp_path, estimated=False)), replications=3, seed=5).summary
    width = lambda s: np.diff(s["llm"]["ci95"]["tpot_ms"]["p50"])[0]  # noqa: E731
    assert width(estimated) > 3 * width(measured)
    # The point figures are the estimate's own: the same as the same costs marked measured.
    assert estimated["llm"]["tpot_ms"] == measured["llm"]["tpot_ms"]
    assert "cost_interval" not in measured["llm"]
    assert not any("estimated costs" in w for w in measured["warnings"])


def test_the_same_seed_gives_the_same_summary_in_process_streamed_and_pooled(tmp_path):
    scenario = _scenario(tmp_path, H200)
    a = simulate(scenario, replications=2, seed=11).summary
    b = simulate(scenario, replications=2, seed=11, keep_log=False).summary
    c = simulate(scenario, replications=2, seed=11, workers=2).summary
    assert _dumps(a) == _dumps(b) == _dumps(c)


def test_a_measured_profile_runs_bit_for_bit_as_the_engine_does(tmp_path):
    scenario = _scenario(tmp_path, ROOT / "models/llama2-70b-tp4-h100.yaml")
    assert not cost_interval.estimated_stages(scenario)
    result = simulate(scenario, replications=2, seed=5)
    direct = simulate_replications(scenario, 2, seed=5)
    assert result.run.requests.equals(direct.requests)
    assert _dumps(result.summary) == _dumps(summarize(direct, scenario))


def test_a_band_edge_profile_is_not_widened_again(tmp_path):
    slow = ROOT / "models/llama2-70b-tp4-h200-estimated-slow.yaml"
    assert not cost_interval.has_interval(load_llm_profile(slow))
    assert "cost_interval" not in simulate(_scenario(tmp_path, slow), replications=2, seed=5).summary["llm"]


def test_an_end_runs_at_the_intervals_multipliers(tmp_path):
    scenario = _scenario(tmp_path, H200)
    profile = scenario.stages[0].cost.profile
    widths = profile.estimate["interval_log_half_width"]
    stage = cost_interval.at_end(scenario, "slow").stages[0]
    assert stage.cost.profile.prefill.per_token_ms == pytest.approx(
        profile.prefill.per_token_ms * math.exp(widths["prefill"])
    )
    np.testing.assert_allclose(
        stage.cost.profile.decode.step_ms, np.multiply(profile.decode.step_ms, math.exp(widths["decode"]))
    )
    assert stage.cost.profile.estimate["band_edge"] == "slow"
    assert scenario.stages[0].cost.profile is profile  # the scenario itself is not changed


def test_one_replication_gets_the_costs_range_as_its_ci(tmp_path):
    summary = simulate(_scenario(tmp_path, H200), replications=1, seed=5).summary
    low, high = summary["llm"]["ci95"]["tpot_ms"]["p99"]
    assert low < summary["llm"]["tpot_ms"]["p99"] < high


def test_a_saved_run_reads_back_with_the_same_summary(tmp_path):
    scenario = _scenario(tmp_path, H200)
    result = simulate(scenario, replications=2, seed=4)
    save_run(result, tmp_path / "run", {"seed": 4, "requests": None})
    assert _dumps(load_run(tmp_path / "run").summary) == _dumps(result.summary)
    assert _dumps(load_run(tmp_path / "run", keep_log=False).summary) == _dumps(result.summary)
