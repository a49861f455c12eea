"""Replications over cost draws (issue 22): a run on an estimated LLM profile draws each replication's
prefill and decode cost multipliers from the transfer's 95% interval, so the latency CIs include it;
the draws are reproducible from the seed, and a measured profile runs exactly as before."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from sim.analysis import cost_draws
from sim.analysis.simulate import load_run, save_run, simulate
from sim.engine.run import simulate_replications
from sim.metrics.summary import summarize
from sim.spec.datafiles import shipped_data_roots
from sim.spec.llm_cost import load_llm_profile
from sim.spec.scenario import parse_scenario_text

ROOT = Path(__file__).resolve().parent.parent
H200 = ROOT / "models/llama2-70b-tp4-h200-estimated.yaml"
SCENARIO = """
name: draws
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


def _width(summary: dict, key: str) -> float:
    low, high = summary["llm"]["ci95"][key]["p50"]
    return high - low


def test_an_estimated_profile_gives_wider_cis_than_the_same_costs_measured(tmp_path):
    estimated = simulate(_scenario(tmp_path, H200), replications=6, seed=5).summary
    measured = simulate(_scenario(tmp_path, _copy(tmp_path, estimated=False)), replications=6, seed=5).summary
    assert _width(estimated, "tpot_ms") > 3 * _width(measured, "tpot_ms")
    assert _width(estimated, "ttft_ms") > _width(measured, "ttft_ms")
    draws = estimated["llm"]["cost_draws"]
    assert draws["ci_includes_cost_interval"] and draws["replications"] == 6
    assert any("CIs include the estimated costs' interval" in w for w in estimated["warnings"])
    assert "cost_draws" not in measured["llm"]
    assert not any("estimated costs' interval" in w for w in measured["warnings"])


def test_the_same_seed_gives_the_same_run_and_another_seed_other_draws(tmp_path):
    scenario = _scenario(tmp_path, H200)
    a = simulate(scenario, replications=3, seed=11).summary
    b = simulate(scenario, replications=3, seed=11, keep_log=False).summary
    c = simulate(scenario, replications=3, seed=12).summary
    assert json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)
    assert a["llm"]["cost_draws"] != c["llm"]["cost_draws"]
    # Adding replications never changes the earlier ones' draws.
    more = cost_draws.draws_summary(scenario, 11, 5)["profiles"]["llm"]["prefill_scale"]
    assert more[:3] == a["llm"]["cost_draws"]["profiles"]["llm"]["prefill_scale"]


def test_a_pool_of_workers_draws_as_the_process_does(tmp_path):
    scenario = _scenario(tmp_path, H200)
    here = simulate(scenario, replications=2, seed=3).summary
    pooled = simulate(scenario, replications=2, seed=3, workers=2).summary
    assert json.dumps(here, sort_keys=True, default=str) == json.dumps(pooled, sort_keys=True, default=str)


def test_a_measured_profile_runs_bit_for_bit_as_the_engine_does(tmp_path):
    # No estimated profile: the scenario object is handed to the engine untouched, and the summary is the
    # engine's own replications summarised, nothing added.
    scenario = _scenario(tmp_path, ROOT / "models/llama2-70b-tp4-h100.yaml")
    assert cost_draws.with_cost_draw(scenario, 1, 5) is scenario
    result = simulate(scenario, replications=2, seed=5)
    direct = simulate_replications(scenario, 2, seed=5)
    assert result.run.requests.equals(direct.requests)
    assert json.dumps(result.summary, sort_keys=True, default=str) == json.dumps(
        summarize(direct, scenario), sort_keys=True, default=str
    )


def test_a_band_edge_profile_is_not_drawn_again(tmp_path):
    slow = ROOT / "models/llama2-70b-tp4-h200-estimated-slow.yaml"
    assert not cost_draws.drawn(load_llm_profile(slow))
    assert cost_draws.with_cost_draw(_scenario(tmp_path, slow), 0, 5).stages[0] is not None
    assert "cost_draws" not in simulate(_scenario(tmp_path, slow), replications=2, seed=5).summary["llm"]


def test_draws_are_lognormal_with_the_interval_as_their_95_percent_range():
    profile = load_llm_profile(H200)
    widths = profile.estimate["interval_log_half_width"]
    logs = np.array([[math.log(v) for v in cost_draws.draw(profile, 9, rep, "llm").values()] for rep in range(4000)])
    for column, q in enumerate(("prefill", "decode")):
        inside = np.mean(np.abs(logs[:, column]) <= widths[q])
        assert inside == pytest.approx(0.95, abs=0.015), q
        assert abs(np.median(logs[:, column])) < 0.02
    assert abs(np.corrcoef(logs.T)[0, 1]) < 0.05  # prefill and decode drawn independently


def test_a_replication_runs_at_its_drawn_costs(tmp_path):
    scenario = _scenario(tmp_path, H200)
    profile = scenario.stages[0].cost.profile
    k = cost_draws.draw(profile, 5, 2, "llm")
    stage = cost_draws.with_cost_draw(scenario, 2, 5).stages[0]
    assert stage.cost.profile.prefill.per_token_ms == pytest.approx(profile.prefill.per_token_ms * k["prefill"])
    np.testing.assert_allclose(stage.cost.profile.decode.step_ms, np.multiply(profile.decode.step_ms, k["decode"]))
    assert stage.cost.profile.decode.per_context_token_ms == profile.decode.per_context_token_ms
    assert scenario.stages[0].cost.profile is profile  # the scenario itself is not changed


def test_one_replication_says_its_cis_do_not_include_the_interval(tmp_path):
    summary = simulate(_scenario(tmp_path, H200), replications=1, seed=5).summary
    assert summary["llm"]["cost_draws"]["ci_includes_cost_interval"] is False
    assert any("do NOT include" in w for w in summary["warnings"])


def test_a_saved_run_reads_back_with_the_same_labels(tmp_path):
    scenario = _scenario(tmp_path, H200)
    result = simulate(scenario, replications=2, seed=4)
    save_run(result, tmp_path / "run", {"seed": 4})
    again = load_run(tmp_path / "run")
    assert again.summary["llm"]["cost_draws"] == result.summary["llm"]["cost_draws"]
    assert (
        load_run(tmp_path / "run", keep_log=False).summary["llm"]["cost_draws"] == result.summary["llm"]["cost_draws"]
    )
