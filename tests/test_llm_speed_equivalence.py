"""The LLM engine made fast (issue 24) gives the results of the engine before that work, request for request.

The oracle is that engine, kept verbatim in tests/llm_oracle/. Each case runs both on the same inputs and
compares every column of the request log, every iteration row and every inter-token gap. Equality is
exact (rtol 0) — the fast paths add the same floats in the same order — except where `RTOL` says.
Besides, the `servesim run --json` summaries of the three shipped LLM scenarios, recorded at the start
commit (tests/llm_speed_fixture/) on the profiles they shipped with then, must come back the same.
"""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import sim.engine.llm.pipeline as pipeline
from sim.cli.main import main as servesim
from sim.metrics.llm import CI_GROUPS, _by_group, _positions
from sim.spec.scenario import parse_scenario
from sim.streams import stream
import sim.engine.llm.stage as engine_stage
from sim.engine.llm.stage import simulate_llm_stage
from tests.llm_oracle import stage as oracle
from tests.llm_support import ROOT, SYNTHETIC, stage

RTOL = 0.0  # exact
SCENARIOS = ("llm-chat-continuous", "llm-code-continuous", "llm-chat-static")
FIXTURES = ROOT / "tests" / "llm_speed_fixture"
# The profiles the fixtures were recorded on; the scenarios have shipped the per-token refits since (issue 22).
RECORDED_ON = {
    "llm-chat-continuous": "llama2-70b-tp4-a100",
    "llm-code-continuous": "llama2-70b-tp4-h100",
    "llm-chat-static": "llama2-70b-tp4-a100",
}


def assert_same_column(new, old, what: str) -> None:
    new, old = np.asarray(new), np.asarray(old)
    assert new.dtype == old.dtype, what
    if old.dtype.kind == "f":
        np.testing.assert_allclose(new, old, rtol=RTOL, atol=0, err_msg=what)
    else:
        np.testing.assert_array_equal(new, old, err_msg=what)


def assert_same(new, old) -> None:
    """Two LLMStageResults hold the same request log, iteration log and inter-token gaps."""
    for name in ("requests", "iterations"):
        new_frame, old_frame = getattr(new, name), getattr(old, name)
        assert list(new_frame.columns) == list(old_frame.columns)
        assert len(new_frame) == len(old_frame)
        for column in old_frame.columns:
            assert_same_column(new_frame[column], old_frame[column], f"{name}.{column}")
    assert_same_column(new.itl_request, old.itl_request, "itl_request")
    assert_same_column(new.itl_ms, old.itl_ms, "itl_ms")
    assert new.num_gpu_blocks == old.num_gpu_blocks


def scenario_raw(name: str) -> dict:
    return yaml.safe_load((ROOT / "scenarios" / f"{name}.yaml").read_text(encoding="utf-8"))


def both_engines(raw: dict, requests: int | None = None):
    """(current, oracle) stage results of the scenario's LLM stage on its first replication's inputs."""
    scenario = parse_scenario(raw, base_dir=ROOT / "scenarios")
    workload = scenario.workload
    count, horizon_ms = (requests, None) if requests is not None else workload.length()
    arrivals = workload.arrival.generate(stream(scenario.seed, 0, "arrivals"), count, horizon_ms)
    llm = next(s for s in scenario.stages if s.kind == "llm")
    n = len(arrivals.times_ms)

    def one(simulate):
        original = pipeline.simulate_llm_stage
        pipeline.simulate_llm_stage = simulate
        try:
            return pipeline.run_llm_stage(
                llm,
                workload.tokens,
                arrivals.times_ms,
                np.ones(n, dtype=bool),
                arrivals.columns,
                scenario.deployment.replicas,
                scenario.deployment.routing,
                scenario.seed,
                0,
            ).result
        finally:
            pipeline.simulate_llm_stage = original

    return one(simulate_llm_stage), one(oracle.simulate_llm_stage)


@pytest.mark.parametrize("name", SCENARIOS)
def test_shipped_scenario_matches_the_oracle_request_for_request(name):
    new, old = both_engines(scenario_raw(name))
    assert len(new.requests) > 8000  # the whole trace
    assert_same(new, old)


def _changed(name: str, changes: dict) -> dict:
    raw = copy.deepcopy(scenario_raw(name))
    for dotted, value in changes.items():
        *path, last = dotted.split(".")
        target = raw
        for key in path:
            target = target[int(key)] if isinstance(target, list) else target[key]
        target[last] = value
    return raw


VARIANTS = {
    "least_outstanding": ("llm-chat-continuous", {"deployment.routing": "least_outstanding"}),
    "shared_queue": ("llm-chat-continuous", {"deployment.routing": "shared_queue"}),
    "random": ("llm-chat-continuous", {"deployment.routing": "random"}),
    "power_of_two": ("llm-code-continuous", {"deployment.routing": "power_of_two"}),
    "kv_pressure_preemption": (
        "llm-chat-continuous",
        {"workload.arrival.rate_scale": 4.0, "stages.0.batching.gpu_memory_utilization": 0.55},
    ),
    "kv_pressure_chunked": (
        "llm-chat-continuous",
        {
            "workload.arrival.rate_scale": 4.0,
            "stages.0.batching.chunked_prefill": True,
            "stages.0.batching.max_num_batched_tokens": 2048,
            "stages.0.batching.num_gpu_blocks": 1500,
        },
    ),
    "no_kv_cache": ("llm-chat-continuous", {"stages.0.kv_cache": False, "workload.arrival.rate_scale": 0.3}),
    "prefix_cache": ("llm-chat-continuous", {"stages.0.prefix_cache": {"hit_rate": 0.4}}),
    "static_timeout": ("llm-chat-static", {"stages.0.batching.timeout_ms": 400.0, "deployment.replicas": 12}),
    "static_no_kv_cache": ("llm-chat-static", {"stages.0.kv_cache": False, "deployment.replicas": 16}),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_scenario_variant_matches_the_oracle(variant):
    name, changes = VARIANTS[variant]
    new, old = both_engines(_changed(name, changes), requests=2500)
    assert_same(new, old)
    if variant.startswith("kv_pressure"):
        assert old.requests.preemptions.sum() > 0  # the case checks preemption, not only admission


@st.composite
def small_cases(draw):
    n = draw(st.integers(1, 30))
    ready = np.sort(np.array(draw(st.lists(st.floats(0, 3000), min_size=n, max_size=n))))
    prompt = np.array(draw(st.lists(st.integers(1, 300), min_size=n, max_size=n)))
    output = np.array(draw(st.lists(st.integers(1, 80), min_size=n, max_size=n)))
    if draw(st.booleans()):
        seqs = draw(st.integers(1, 8))
        batching = {
            "policy": "continuous",
            "max_num_seqs": seqs,
            "max_num_batched_tokens": draw(st.integers(max(seqs, 16), 512)),
            "block_size": draw(st.sampled_from([4, 8, 16])),
            "num_gpu_blocks": draw(st.integers(4, 60)),
            "chunked_prefill": draw(st.booleans()),
            "watermark": draw(st.sampled_from([0.0, 0.01, 0.1])),
        }
    else:
        batching = {
            "policy": "static",
            "batch_size": draw(st.integers(1, 6)),
            "timeout_ms": draw(st.sampled_from([0.0, 50.0])),
        }
    options = {
        "kv_cache": draw(st.booleans()),
        "replicas": draw(st.integers(1, 3)),
        "routing": draw(st.sampled_from(["round_robin", "random", "least_outstanding", "shared_queue"])),
        "hit_rate": draw(st.sampled_from([0.0, 0.5])),
        "seed": draw(st.integers(0, 3)),
        "fuse_quiet_steps": draw(st.booleans()),
    }
    return ready, prompt, output, batching, options


# Found by hypothesis: under a load-aware router every replica's fused decode runs are cut at the next arrival
# to *any* replica (one shared cursor); cut elsewhere, SimPy's clock sums differ in the last bit.
SHARED_CURSOR_CASE = (
    np.array([0.0] * 12 + [11.0, 11.0, 31.0] + [191.0] * 15),
    np.array([1, 1, 1, 1, 17, 17, 17, 17, 17, 16, 17] + [1] * 19),
    np.array([1, 1, 11, 1, 1, 1, 1, 1, 1, 2] + [1] * 20),
    {"policy": "continuous", "max_num_seqs": 1, "max_num_batched_tokens": 16, "block_size": 4},
    {"kv_cache": True, "replicas": 3, "routing": "least_outstanding", "hit_rate": 0.0, "seed": 0},
)
SHARED_CURSOR_CASE[3].update(num_gpu_blocks=4, chunked_prefill=False, watermark=0.0)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_cases())
@example(SHARED_CURSOR_CASE)
def test_small_configurations_match_the_oracle(tmp_path_factory, case):
    ready, prompt, output, batching, o = case
    profile = tmp_path_factory.mktemp("p") / "synthetic.yaml"
    profile.write_text(yaml.safe_dump(SYNTHETIC))
    s = stage(profile, batching=batching, kv_cache=o["kv_cache"], prefix_cache={"hit_rate": o["hit_rate"]})
    runs = [
        simulate(
            ready,
            prompt,
            output,
            s,
            o["replicas"],
            np.random.default_rng(o["seed"]),
            o["routing"],
            fuse_quiet_steps=o.get("fuse_quiet_steps", True),
        )
        for simulate in (simulate_llm_stage, oracle.simulate_llm_stage)
    ]
    assert_same(*runs)


def _numbers(tree, path=""):
    """Every number in a JSON tree, by its path."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _numbers(value, f"{path}.{key}")
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            yield from _numbers(value, f"{path}[{i}]")
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
        yield path, tree


@pytest.mark.parametrize("name", SCENARIOS)
def test_run_summary_matches_the_one_recorded_before_the_speed_work(name, capsys):
    recorded = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    profile = ROOT / "models" / f"{RECORDED_ON[name]}.yaml"
    servesim(["run", str(ROOT / "scenarios" / f"{name}.yaml"), "--set", f"stages.0.profile={profile}", "--json"])
    summary = json.loads(capsys.readouterr().out)
    # Since recorded: the prompt-limit rejections, counted in `rejected` all along, are also said (their count
    # and a warning); nothing else may differ.
    too_long = summary["llm"].pop("rejected_prompt_too_long", 0)
    assert too_long <= summary["llm"]["rejected"]
    said = [w for w in summary["llm"]["warnings"] if "rejected: prompt longer than the limit" in w]
    assert len(said) == (1 if too_long else 0)
    summary["llm"]["warnings"] = [w for w in summary["llm"]["warnings"] if w not in said]
    assert set(summary) == set(recorded)
    expected, got = dict(_numbers(recorded)), dict(_numbers(summary))
    assert set(got) == set(expected)
    for path, value in expected.items():
        assert math.isclose(got[path], value, rel_tol=1e-12, abs_tol=0), path
    assert summary["llm"]["warnings"] == recorded["llm"]["warnings"]


def test_the_shipped_traces_are_walked_without_simpy(monkeypatch):
    def no_simpy(*args):
        raise AssertionError("fell back to the SimPy model")

    monkeypatch.setattr(engine_stage, "_simulate_with_simpy", no_simpy)
    both_engines(scenario_raw("llm-chat-continuous"), requests=3000)


def test_an_arrival_at_the_end_of_its_replicas_iteration_is_left_to_simpy(tmp_path, monkeypatch):
    """Request 1 arrives exactly when request 0's prefill ends: SimPy's event order decides whether the
    replica sees it then; the walk refuses the tie and the SimPy model runs instead."""
    profile = tmp_path / "synthetic.yaml"
    profile.write_text(yaml.safe_dump(SYNTHETIC))
    s = stage(profile)
    prefill_end = 0 + s.cost.prefill_parts_ms(100, 100 * 100, 1)
    ready, prompt, output = np.array([0.0, prefill_end, prefill_end + 5]), np.array([100, 50, 20]), np.array([1, 4, 3])
    fallbacks = []
    original = engine_stage._simulate_with_simpy
    monkeypatch.setattr(engine_stage, "_simulate_with_simpy", lambda *a: fallbacks.append(1) or original(*a))
    new = simulate_llm_stage(ready, prompt, output, s, 1, np.random.default_rng(0))
    assert fallbacks == [1]
    assert_same(new, oracle.simulate_llm_stage(ready, prompt, output, s, 1, np.random.default_rng(0)))


@pytest.mark.parametrize("shuffled", [False, True])
def test_batch_means_groups_from_one_sort_are_the_masked_groups(shuffled):
    rng = np.random.default_rng(5)
    values = rng.exponential(40.0, 5000)
    groups = np.sort(rng.integers(-1, CI_GROUPS, 5000))
    groups[groups == 4] = 5  # a group absent
    if shuffled:
        groups = rng.permutation(groups)
    parts = _by_group(values, groups)
    expected = [values[groups == g] for g in range(CI_GROUPS) if np.any(groups == g)]
    assert len(parts) == len(expected) == CI_GROUPS - 1
    for part, want in zip(parts, expected):
        np.testing.assert_array_equal(part, want)


@pytest.mark.parametrize("index", [np.arange(50), np.array([0, 3, 4, 9, 49]), np.array([1, 2, 5])])
def test_token_gap_rows_are_found_as_a_search_would(index):
    rows = np.repeat(index, 3)
    np.testing.assert_array_equal(_positions(index, rows), np.searchsorted(index, rows))
