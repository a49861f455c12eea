"""One router for every stage: each policy means the same thing for model and LLM stages, and its draws
come from the routing stream alone (the prefix cache has its own)."""

from __future__ import annotations

import numpy as np
import pytest

from sim.engine.routing import Router


def test_power_of_two_compares_two_distinct_replicas_and_keeps_the_first_on_a_tie():
    router = Router("power_of_two", 4, np.random.default_rng(1), 5000)
    assert all(a != b for a, b in router.draws)
    for a, b in router.draws[:200]:
        loads = [5, 5, 5, 5]
        assert router.choose(loads) == a  # a tie keeps the first drawn
    loads = [0, 9, 9, 9]
    for _ in range(200):
        a, b = router.draws[router.count]
        chosen = router.choose(loads)
        assert chosen == (a if loads[a] <= loads[b] else b)


def test_least_outstanding_rotates_ties():
    router = Router("least_outstanding", 3, np.random.default_rng(0), 6)
    assert [router.choose([0, 0, 0]) for _ in range(6)] == [0, 1, 2, 0, 1, 2]
    assert Router("least_outstanding", 3, np.random.default_rng(0), 1).choose([4, 1, 2]) == 1


def test_random_routing_is_uniform_and_round_robin_cycles():
    router = Router("random", 4, np.random.default_rng(2), 40_000)
    counts = np.bincount(router.fixed_assignment(40_000), minlength=4)
    assert np.all(np.abs(counts / 40_000 - 0.25) < 0.01)
    assert Router("round_robin", 3, np.random.default_rng(0), 7).fixed_assignment(7).tolist() == [0, 1, 2, 0, 1, 2, 0]


@pytest.mark.parametrize("routing", ["round_robin", "random", "power_of_two", "least_outstanding"])
def test_model_and_llm_stages_route_the_same_way(routing, tmp_path):
    """With no load difference to look at (every request done before the next arrives), both stage kinds
    send request k to the same replica: the same router, the same draws."""
    from sim.engine.llm.stage import simulate_llm_stage
    from sim.engine.model_stage import simulate_model_stage
    from sim.spec.batch_cost import AffineCost, AffineSpec
    from sim.spec.batching import NoBatching
    from tests.llm_support import stage, synthetic_profile

    n, replicas = 60, 3
    ready = np.arange(n) * 1e6  # far apart: every replica is idle when a request arrives
    model = simulate_model_stage(
        ready,
        AffineCost(AffineSpec(base_ms=1.0, per_item_ms=0.0)),
        NoBatching(policy="none"),
        replicas=replicas,
        instances=1,
        routing=routing,
        max_queue_size=None,
        service_rng=np.random.default_rng(9),
        routing_rng=np.random.default_rng(5),
    )
    llm = simulate_llm_stage(
        ready,
        np.full(n, 16),
        np.full(n, 4),
        stage(synthetic_profile(tmp_path)),
        replicas,
        np.random.default_rng(5),
        routing,
    )
    np.testing.assert_array_equal(model.replica, llm.requests["replica"].to_numpy())


def test_prefix_cache_hits_do_not_depend_on_the_routing_policy(tmp_path):
    """The prefix cache draws from its own stream: switching routing leaves every request's hits alone."""
    from sim.engine.llm.stage import simulate_llm_stage
    from tests.llm_support import stage, synthetic_profile

    st = stage(synthetic_profile(tmp_path), prefix_cache={"hit_rate": 0.4})
    ready, prompt, output = np.arange(300) * 50.0, np.full(300, 64), np.full(300, 8)
    cached = [
        simulate_llm_stage(
            ready, prompt, output, st, 3, np.random.default_rng(1), routing, prefix_rng=np.random.default_rng(7)
        )
        .requests["cached_tokens"]
        .to_numpy()
        for routing in ("round_robin", "random", "power_of_two")
    ]
    assert cached[0].sum() > 0
    np.testing.assert_array_equal(cached[0], cached[1])
    np.testing.assert_array_equal(cached[0], cached[2])
