"""The disaggregated decode pool walked replica by replica in plain Python (sim/engine/llm/decode_pool.py)
gives, bit for bit, what the numpy-planned pool that advanced every replica at every arrival gave
(tests/llm_decode_oracle.py): admission, first step, end and replica of every request, every iteration row
and every inter-token gap — on the shipped disaggregated scenarios and on small random pools that crowd
admission (few blocks, few sequences, simultaneous arrivals)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sim.engine.llm.disaggregated as disaggregated
from sim.engine.llm import decode_pool
from sim.engine.llm.pipeline import run_llm_stage
from sim.spec.llm_cost import LLMCost, load_llm_profile
from sim.spec.scenario import load_scenario
from tests import llm_decode_oracle as oracle
from tests.llm_support import ROOT, SYNTHETIC

SCENARIOS = ("llm-chat-disaggregated", "llm-code-disaggregated")


def assert_same_pool(inputs: tuple, first_token_ms: np.ndarray | None = None) -> None:
    """The new and the old pool on the same inputs agree exactly."""
    ready, context, steps = inputs[:3]
    log, replica_of, pool = decode_pool.simulate_decode_pool(*inputs)
    old_log, old_replica_of, old_pool = oracle.simulate_decode_pool(*inputs)
    np.testing.assert_array_equal(replica_of, old_replica_of)
    for name in ("admitted_ms", "first_step", "done_ms"):
        np.testing.assert_array_equal(getattr(log, name), getattr(old_log, name), err_msg=name)
    new_rows, old_rows = decode_pool.decode_iterations(pool, 3), oracle.decode_iterations(old_pool, 3)
    assert list(new_rows.columns) == list(old_rows.columns)
    for column in old_rows.columns:
        assert new_rows[column].dtype == old_rows[column].dtype, column
        np.testing.assert_array_equal(new_rows[column].to_numpy(), old_rows[column].to_numpy(), err_msg=column)
    first_token = ready if first_token_ms is None else first_token_ms
    gaps = decode_pool.decode_token_gaps(pool, replica_of, log, first_token, steps)
    old_gaps, owner = oracle.decode_token_gaps(old_pool, old_replica_of, old_log, first_token, steps)
    np.testing.assert_array_equal(gaps, old_gaps)
    np.testing.assert_array_equal(np.repeat(np.arange(len(steps)), steps), owner)


@pytest.mark.parametrize("name", SCENARIOS)
def test_shipped_scenarios_decode_as_before(name, monkeypatch):
    scenario = load_scenario(ROOT / "scenarios" / f"{name}.yaml")
    seen = []

    def spy(*inputs):
        seen.append(inputs)
        return decode_pool.simulate_decode_pool(*inputs)

    monkeypatch.setattr(disaggregated, "simulate_decode_pool", spy)
    workload, llm = scenario.workload, scenario.stages[0]
    arrivals = workload.arrival.generate(np.random.default_rng(0), *workload.length())
    n = len(arrivals.times_ms)
    run_llm_stage(llm, workload.tokens, arrivals.times_ms, np.ones(n, bool), arrivals.columns, 6, "round_robin", 1, 0)
    (inputs,) = seen
    assert len(inputs[0]) > 8000  # the whole trace reached the decode pool
    assert_same_pool(inputs)


@st.composite
def crowded_pools(draw):
    n = draw(st.integers(1, 40))
    ready = np.array(draw(st.lists(st.sampled_from([0.0, 5.0, 20.0, 21.5, 60.0, 300.0]), min_size=n, max_size=n)))
    ready = ready + np.array(draw(st.lists(st.floats(0, 200), min_size=n, max_size=n)))
    num_blocks = draw(st.integers(4, 40))
    context = np.array(draw(st.lists(st.integers(1, 60), min_size=n, max_size=n)))
    steps = np.array(draw(st.lists(st.integers(1, 30), min_size=n, max_size=n)))
    blocks = np.minimum(-(-(context + steps) // 4), num_blocks)
    replicas = draw(st.integers(1, 4))
    max_seqs = draw(st.integers(1, 6))
    return ready, context, steps, blocks, replicas, num_blocks, max_seqs


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(crowded_pools())
def test_small_crowded_pools_decode_as_before(tmp_path_factory, case):
    ready, context, steps, blocks, replicas, num_blocks, max_seqs = case
    cost = _synthetic_cost(tmp_path_factory)
    assert_same_pool((ready, context, steps, blocks, cost, replicas, num_blocks, max_seqs))


def test_a_replica_no_finish_can_reach_is_not_walked_at_an_arrival():
    """Two long requests on two replicas, then arrivals every millisecond: neither replica can finish before
    them, so once both have caught up (at the first), only the replica receiving each arrival is walked."""
    cost = LLMCost(load_llm_profile(ROOT / "models" / "llama2-70b-tp4-a100.yaml"))
    ready = np.concatenate(([0.0, 0.0], 1000.0 + np.arange(20.0)))
    steps = np.concatenate(([5000, 5000], np.full(20, 3)))
    context, blocks = np.full(22, 100), np.full(22, 8)
    walks = []
    original = decode_pool.DecodeReplica.advance

    def counted(self, until_ms):
        walks.append(until_ms)
        return original(self, until_ms)

    decode_pool.DecodeReplica.advance = counted
    try:
        decode_pool.simulate_decode_pool(ready, context, steps, blocks, cost, 2, 10_000, 256)
    finally:
        decode_pool.DecodeReplica.advance = original
    assert len([t for t in walks if 1000.0 < t < np.inf]) == 19  # one walk per later arrival: its replica's
    assert_same_pool((ready, context, steps, blocks, cost, 2, 10_000, 256))


_COST = {}


def _synthetic_cost(tmp_path_factory) -> LLMCost:
    if "cost" not in _COST:
        import yaml

        path = tmp_path_factory.mktemp("profile") / "synthetic.yaml"
        path.write_text(yaml.safe_dump(SYNTHETIC))
        _COST["cost"] = LLMCost(load_llm_profile(path))
    return _COST["cost"]
