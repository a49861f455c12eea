"""The estimated costs' interval for model stages (issue 22): a model stage on a batch-cost profile moved to
other hardware (calibrate/transfer_model.py, `estimated: true`) runs replication 0 again with every batch
cost at the interval's fast and slow ends, and each latency CI widens to cover both; the top-level
`cost_interval` and a warning say so, `size` labels the candidate "(estimated)", and a measured profile
runs exactly as before."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from calibrate import transfer_model as tm
from sim.analysis import cost_interval
from sim.analysis.simulate import load_run, save_run, simulate
from sim.analysis.sizing import parse_candidates
from sim.engine.run import simulate_replication, simulate_replications
from sim.errors import DataFileError
from sim.metrics.summary import summarize
from sim.metrics.summary_view import Summary
from sim.spec.datafiles import shipped_data_roots
from sim.spec.hardware import load_catalogue
from sim.spec.profile import load_profile, profile_from_dict
from sim.spec.scenario import parse_scenario_text

ROOT = Path(__file__).resolve().parent.parent
RESNET = ROOT / "models/resnet50-v100-clockwork.yaml"
WORK = tm.Work(flops_per_item=8.18e9, bytes_per_batch=1.0224e8)  # ResNet-50: 4.09 GMACs, 25.6 M fp32 weights
SCENARIO = """
name: r50
seed: 3
workload:
  arrival: {{process: poisson, rate_rps: 60}}
  requests: 3000
  warmup_requests: 150
stages:
  - name: forward
    kind: model
    profile: {profile}
    speedup: {speedup}
    batching: {{policy: dynamic, max_batch_size: 8, max_queue_delay_ms: 2}}
deployment:
  replicas: 1
"""


def _t4() -> dict:
    """ResNet-50's V100 profile moved to a T4 (95% interval per batch -44..+77%)."""
    return tm.transfer_batch_profile(yaml.safe_load(RESNET.read_text(encoding="utf-8")), "t4", WORK)


def _write(tmp_path: Path, data: dict, name: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _scenario(tmp_path: Path, profile: Path, speedup: float = 1.0):
    roots = (*shipped_data_roots(), tmp_path)
    text = SCENARIO.format(profile=profile, speedup=speedup)
    return parse_scenario_text(text, base_dir=tmp_path, allowed_roots=roots)


@pytest.fixture
def profiles(tmp_path: Path) -> dict[str, Path]:
    """The estimate, the same costs marked measured, and the estimate's two ends written as their own files."""
    data = _t4()
    out = {
        "estimated": _write(tmp_path, data, "r50-t4"),
        "measured": _write(tmp_path, {k: v for k, v in data.items() if k not in ("estimated", "estimate")}, "r50-m"),
    }
    for end, edged in tm.band(data).items():
        out[end] = _write(tmp_path, edged, f"r50-t4-{end}")
    return out


def _dumps(summary: dict) -> str:
    return json.dumps(summary, sort_keys=True, default=str)


def test_the_transfer_writes_estimated_and_its_interval_as_profile_fields(tmp_path, profiles):
    profile = load_profile(profiles["estimated"])
    width = profile.estimate["interval_log_half_width"]
    # roofline 0.25, unmeasured hardware 0.15 (same vendor, same precision, GPU to GPU): 1.96 * sqrt(0.085)
    assert width == pytest.approx(round(1.959964 * math.hypot(0.25, 0.15), 4))
    assert profile.estimated and profile.estimate["interval_pct"] == "-44..+77"
    assert profile.estimate["source_hardware"] == "v100-16gb" and "roofline" in profile.estimate["basis"]
    assert load_profile(profiles["slow"]).estimate["band_edge"] == "slow"
    measured = load_profile(RESNET)  # a profile without the fields loads as it did: measured
    assert not measured.estimated and measured.estimate == {}


def test_estimated_without_its_interval_is_refused_naming_the_field():
    data = yaml.safe_load(RESNET.read_text(encoding="utf-8"))
    with pytest.raises(DataFileError, match="estimate"):
        profile_from_dict({**data, "estimated": True})


def test_an_end_divides_the_stages_speedup_by_the_intervals_multiplier(tmp_path, profiles):
    scenario = _scenario(tmp_path, profiles["estimated"], speedup=2.0)
    width = load_profile(profiles["estimated"]).estimate["interval_log_half_width"]
    for end, sign in (("fast", -1.0), ("slow", 1.0)):
        assert cost_interval.at_end(scenario, end).stages[0].speedup == pytest.approx(2.0 / math.exp(sign * width))
    assert scenario.stages[0].speedup == 2.0  # the scenario itself is not changed


def test_every_ci_covers_the_run_on_the_interval_ends_written_as_profiles(tmp_path, profiles):
    # Worked independently: replication 0 on the `transfer --band` files, every latency x exp(-/+ width).
    summary = simulate(_scenario(tmp_path, profiles["estimated"]), replications=3, seed=3).summary
    ends = {}
    for end in ("fast", "slow"):
        edge = _scenario(tmp_path, profiles[end])
        ends[end] = summarize(simulate_replication(edge, 0, seed=3), edge)["latency_ms"]
    for q in ("p50", "p99"):
        low, high = summary["latency_ms_ci95"][q]
        assert low <= ends["fast"][q] * (1 + 1e-9) and ends["slow"][q] * (1 - 1e-9) <= high, q
        assert ends["fast"][q] < summary["latency_ms"][q] < ends["slow"][q]
    interval = summary["cost_interval"]
    assert interval["slow_end"]["latency_ms_p99"] == pytest.approx(ends["slow"]["p99"], rel=1e-9)
    assert interval["interval_pct"] == {"forward": "-44..+77"}
    assert interval["batch_cost_x_slow"]["forward"] == pytest.approx(1.7707, abs=1e-4)
    assert any(w.startswith("forward (resnet50-v100-clockwork-on-t4-estimated") for w in summary["warnings"])


def test_an_estimated_profile_gives_wider_cis_than_the_same_costs_measured(tmp_path, profiles):
    estimated = simulate(_scenario(tmp_path, profiles["estimated"]), replications=3, seed=3).summary
    measured = simulate(_scenario(tmp_path, profiles["measured"]), replications=3, seed=3).summary
    width = lambda s, q: np.diff(s["latency_ms_ci95"][q])[0]  # noqa: E731
    for q in ("p50", "p99"):
        assert width(estimated, q) > 3 * width(measured, q)
    assert estimated["latency_ms"] == measured["latency_ms"]  # the point figures are the estimate's own
    assert estimated["stages"] == measured["stages"]
    assert "cost_interval" not in measured and not any("estimated costs" in w for w in measured["warnings"])


def test_a_measured_profile_runs_bit_for_bit_as_the_engine_does(tmp_path):
    scenario = _scenario(tmp_path, RESNET)
    assert not cost_interval.estimated_stages(scenario)
    result = simulate(scenario, replications=2, seed=5)
    direct = simulate_replications(scenario, 2, seed=5)
    assert result.run.requests.equals(direct.requests)
    assert _dumps(result.summary) == _dumps(summarize(direct, scenario))


def test_an_interval_end_is_not_widened_again(tmp_path, profiles):
    scenario = _scenario(tmp_path, profiles["slow"])
    assert not cost_interval.estimated_stages(scenario)
    assert "cost_interval" not in simulate(scenario, replications=2, seed=5).summary


def test_the_same_seed_gives_the_same_summary_in_process_streamed_and_pooled(tmp_path, profiles):
    scenario = _scenario(tmp_path, profiles["estimated"])
    a = simulate(scenario, replications=2, seed=11).summary
    b = simulate(scenario, replications=2, seed=11, keep_log=False).summary
    c = simulate(scenario, replications=2, seed=11, workers=2).summary
    assert _dumps(a) == _dumps(b) == _dumps(c) == _dumps(simulate(scenario, replications=2, seed=11).summary)


def test_a_saved_run_reads_back_with_the_same_summary(tmp_path, profiles):
    result = simulate(_scenario(tmp_path, profiles["estimated"]), replications=2, seed=4)
    save_run(result, tmp_path / "run", {"seed": 4, "requests": None})
    assert _dumps(load_run(tmp_path / "run").summary) == _dumps(result.summary)
    assert _dumps(load_run(tmp_path / "run", keep_log=False).summary) == _dumps(result.summary)


def test_run_json_keeps_the_key_and_the_contract(tmp_path, profiles):
    summary = simulate(_scenario(tmp_path, profiles["estimated"]), replications=2, seed=4).summary
    view = Summary.of(summary)
    assert "cost_interval" in view and view.to_dict() == summary
    assert list(summary)[-1] == "cost_interval"  # additive: after every key the contract already had
    json.dumps(summary, allow_nan=False)


def test_size_labels_a_candidate_on_an_estimated_profile(tmp_path, profiles):
    scenario = _scenario(tmp_path, RESNET)
    catalogue = load_catalogue()
    labels = [c.name for c in parse_candidates(f"t4={profiles['estimated']},v100-16gb", scenario, catalogue)]
    assert labels == ["t4 (estimated)", "v100-16gb"]
    slow = parse_candidates(f"t4={profiles['slow']}", scenario, catalogue)[0]
    assert slow.name == "t4 (estimated, slow)" and slow.hardware == "t4"
    assert parse_candidates(f"t4={profiles['measured']}", scenario, catalogue)[0].name == "t4"
