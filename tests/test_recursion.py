"""The event-free batch recursion (sim/engine/batch_recursion.py) against the SimPy model stage it replaces:
same batches, start times, replicas, instances and service draws, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.engine.batch_recursion import _feed_clock, recursion_applies, solve_batches
from sim.engine.model_stage import simulate_model_stage
from sim.spec.batch_cost import AffineCost, AffineSpec, ScaledSingle, SpedUp
from sim.spec.batching import DynamicBatching, NoBatching, StaticBatching
from sim.spec.distributions import Empirical, Exponential, Gamma, Lognormal
from sim.streams import replica_streams

FIELDS = ("start_ms", "service_ms", "batch_id", "batch_size", "replica", "instance", "rejected")


def stage(ready_ms, cost, policy, replicas, instances, routing, force_simpy, seed=11):
    service_rng = np.random.default_rng(seed)
    routing_rng = np.random.default_rng(seed + 1)
    result = simulate_model_stage(
        ready_ms, cost, policy, replicas, instances, routing, None, service_rng, routing_rng, force_simpy=force_simpy
    )
    return result, service_rng.bit_generator.state


@st.composite
def policies(draw):
    kind = draw(st.sampled_from(["dynamic", "static", "none"]))
    if kind == "none":
        return NoBatching(policy="none")
    max_batch = draw(st.integers(1, 9))
    if kind == "static":
        timeout = draw(st.one_of(st.none(), st.floats(0.0, 8.0)))
        return StaticBatching(policy="static", batch_size=max_batch, timeout_ms=timeout)
    preferred = draw(st.lists(st.integers(1, max_batch), max_size=3))
    delay = draw(st.floats(0.0, 8.0))
    return DynamicBatching(
        policy="dynamic", max_batch_size=max_batch, max_queue_delay_ms=delay, preferred_batch_sizes=tuple(preferred)
    )


@st.composite
def costs(draw, discrete: bool = True):
    """Service draws; continuous ones make exact ties between completions and arrivals have probability 0."""
    kinds = ["affine", "exponential", "lognormal", "sped_up"] + (["empirical"] if discrete else [])
    kind = draw(st.sampled_from(kinds))
    base = draw(st.floats(0.1, 6.0))
    if kind == "affine":
        return AffineCost(
            AffineSpec(base_ms=base, per_item_ms=draw(st.floats(0.0, 2.0)), cv=draw(st.floats(0.05, 1.0)))
        )
    if kind == "sped_up":
        inner = AffineCost(AffineSpec(base_ms=base, per_item_ms=0.7, cv=0.3))
        return SpedUp(inner, draw(st.floats(1.1, 4.0)))
    per_item = draw(st.floats(0.0, 1.0))
    if kind == "exponential":
        return ScaledSingle(Exponential(dist="exponential", mean=base), per_item)
    if kind == "lognormal":
        return ScaledSingle(Lognormal(dist="lognormal", median=base, p99=base * 3), per_item)
    # rng.choice draws differently in bulk: this cost takes the one-call-per-batch route.
    samples = [base * k for k in (0.5, 0.9, 1.3, 2.2)]
    return ScaledSingle(Empirical(dist="empirical", samples=samples), per_item)


@settings(max_examples=300, deadline=None)
@given(
    gaps=st.lists(st.floats(0.001, 4.0), min_size=1, max_size=70),
    shuffle_seed=st.integers(0, 2**16),
    policy=policies(),
    cost=costs(),
    replicas=st.integers(1, 4),
    instances=st.integers(1, 3),
    routing=st.sampled_from(["shared_queue", "round_robin", "random", "least_outstanding", "power_of_two"]),
)
def test_recursion_reproduces_the_simpy_stage(gaps, shuffle_seed, policy, cost, replicas, instances, routing):
    jitter = np.random.default_rng(shuffle_seed)
    # Continuous jitter keeps completions (e.g. of empirical, discrete service times) off arrival instants.
    ready = np.cumsum(gaps) + 0.37 + jitter.uniform(0.0, 1e-3, len(gaps))
    jitter.shuffle(ready)  # the stage takes requests in any order
    simpy_result, simpy_rng = stage(ready, cost, policy, replicas, instances, routing, force_simpy=True)
    fast_result, fast_rng = stage(ready, cost, policy, replicas, instances, routing, force_simpy=False)
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(fast_result, name), getattr(simpy_result, name), err_msg=name)
    assert fast_rng == simpy_rng  # the service stream ends where the SimPy path left it


@settings(max_examples=200, deadline=None)
@given(
    # Odd gaps, so that a queue delay (a round number) does not end exactly on a later arrival.
    gaps=st.lists(st.sampled_from([0.0, 0.0, 0.5137, 1.7291, 3.1013]), min_size=1, max_size=50),
    policy=policies(),
    cost=costs(discrete=False),
    replicas=st.integers(1, 3),
    instances=st.integers(1, 3),
    routing=st.sampled_from(["shared_queue", "round_robin", "random", "least_outstanding", "power_of_two"]),
)
def test_simultaneous_arrivals_get_the_same_batches(gaps, policy, cost, replicas, instances, routing):
    # Tie rule: requests ready at the same instant form the same batches at the same times with the same
    # draws; which idle instance takes one may differ (SimPy sends an instance woken for nothing to the
    # back of its idle list), and so may the numbers of batches that leave two queues at one instant.
    ready = np.cumsum(gaps) + 0.37
    simpy_result, _ = stage(ready, cost, policy, replicas, instances, routing, force_simpy=True)
    fast_result, _ = stage(ready, cost, policy, replicas, instances, routing, force_simpy=False)
    for name in ("start_ms", "service_ms", "batch_size"):
        np.testing.assert_array_equal(getattr(fast_result, name), getattr(simpy_result, name), err_msg=name)
    pairs = set(zip(fast_result.batch_id.tolist(), simpy_result.batch_id.tolist()))
    assert len(pairs) == len(set(fast_result.batch_id.tolist())) == len(set(simpy_result.batch_id.tolist()))
    for result in (fast_result, simpy_result):  # ids count batches in the order they leave
        by_id = np.argsort(result.batch_id, kind="stable")
        assert np.all(np.diff(result.start_ms[by_id]) >= 0)
    if routing != "shared_queue":
        np.testing.assert_array_equal(fast_result.replica, simpy_result.replica)


def test_large_run_matches_simpy_exactly():
    # The reference model stage in miniature: 20,000 requests at ρ ≈ 0.8 on 8 replicas.
    rng = np.random.default_rng(3)
    ready = np.cumsum(rng.exponential(0.25, 20_000)) + rng.lognormal(0.0, 0.6, 20_000)
    cost = AffineCost(AffineSpec(base_ms=4.0, per_item_ms=1.0, cv=0.1))
    policy = DynamicBatching(policy="dynamic", max_batch_size=8, max_queue_delay_ms=2.0)
    for routing in ("shared_queue", "round_robin", "least_outstanding", "power_of_two"):
        simpy_result, _ = stage(ready, cost, policy, 8, 1, routing, force_simpy=True)
        fast_result, _ = stage(ready, cost, policy, 8, 1, routing, force_simpy=False)
        for name in FIELDS:
            np.testing.assert_array_equal(getattr(fast_result, name), getattr(simpy_result, name), err_msg=name)


def test_completion_at_an_arrival_sees_that_arrival():
    # Tie rule: one instance, batches of up to 4 with no delay, constant 10 ms. The batch of [1] ends at
    # 11 ms, exactly when the third request is ready: the freed instance takes [5, 11] together.
    # (SimPy orders the coincidence by when each event was scheduled and would send [5] alone.)
    cost = AffineCost(AffineSpec(base_ms=10.0, per_item_ms=0.0, cv=0.0))
    policy = DynamicBatching(policy="dynamic", max_batch_size=4, max_queue_delay_ms=0.0)
    out = solve_batches(
        np.array([1.0, 5.0, 11.0]),
        cost,
        policy,
        1,
        1,
        "shared_queue",
        np.random.default_rng(0),
        np.random.default_rng(1),
    )
    assert out.start_ms.tolist() == [1.0, 11.0, 11.0]
    assert out.batch_size.tolist() == [1, 2, 2]
    assert out.batch_id.tolist() == [0, 1, 1]


def test_end_of_traffic_flushes_waiting_batches_on_every_replica():
    # Static batches of 3 without a timeout, round_robin on two replicas: replica 0 holds requests 0, 2, 4
    # (a full batch at 5 ms), replica 1 holds 1, 3 and would wait forever; traffic ends at 5 ms, so its
    # partial batch leaves then too. Each replica draws from its own child of the stage stream.
    cost = AffineCost(AffineSpec(base_ms=2.0, per_item_ms=0.0, cv=0.5))
    policy = StaticBatching(policy="static", batch_size=3)
    ready = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    out = solve_batches(ready, cost, policy, 2, 1, "round_robin", np.random.default_rng(4), np.random.default_rng(5))
    assert out.start_ms.tolist() == [5.0] * 5
    assert out.replica.tolist() == [0, 1, 0, 1, 0]
    assert out.batch_id.tolist() == [0, 1, 0, 1, 0]
    first, second = (rng.gamma(4.0, 2.0 / 4.0) for rng in replica_streams(np.random.default_rng(4), 2))
    assert out.service_ms.tolist() == [first, second, first, second, first]


def test_feed_clock_follows_simpy_rounding():
    # SimPy's clock after a timeout of (t − now) is now + (t − now), which is not always t.
    ready = np.array([0.1, 0.30000000000000004, 1e-300, 7.0, 7.0, 1e16 + 2.0])
    ready.sort()
    now, expected = 0.0, []
    for t in ready.tolist():
        if t > now:
            now = now + (t - now)
        expected.append(now)
    assert _feed_clock(ready).tolist() == expected


@pytest.mark.parametrize(
    "routing, queue_limit, autoscaling, applies",
    [
        ("shared_queue", None, None, True),
        ("round_robin", None, None, True),
        ("random", None, None, True),
        ("least_outstanding", None, None, True),
        ("power_of_two", None, None, True),
        ("shared_queue", 10, None, False),
        ("shared_queue", None, object(), True),
        ("round_robin", None, object(), False),
    ],
)
def test_which_stages_the_walk_takes(routing, queue_limit, autoscaling, applies):
    cost = ScaledSingle(Gamma(dist="gamma", mean=2.0, cv=0.5), 0.5)
    policy = DynamicBatching(policy="dynamic", max_batch_size=4, max_queue_delay_ms=1.0)
    assert recursion_applies(policy, routing, queue_limit, autoscaling, cost) is applies


def test_compiled_kernels_match_the_python_loops():
    # numba (loaded for large stages) must give the pure-Python results bit for bit: the FCFS pool and the
    # fleet walk's kernel, which is one source run both ways (sim/engine/compiled.py).
    pytest.importorskip("numba")
    from sim.engine import compiled, fcfs

    if compiled.MODE == "python":
        pytest.skip("numba disabled by SERVESIM_NO_NUMBA")
    rng = np.random.default_rng(8)
    ready = np.cumsum(rng.exponential(0.25, 20_000)) + rng.lognormal(0.0, 0.6, 20_000)
    service = rng.exponential(6.4, 20_000)
    cost = AffineCost(AffineSpec(base_ms=4.0, per_item_ms=1.0, cv=0.1))
    runs = {}
    for mode in ("numba", "python"):
        saved, compiled.MODE = compiled.MODE, mode
        try:
            starts = fcfs.fcfs_start_ms(ready, service, 32)
            batches = [
                solve_batches(ready, cost, policy, 8, 2, routing, np.random.default_rng(1), np.random.default_rng(2))
                for policy in (
                    DynamicBatching(
                        policy="dynamic", max_batch_size=8, max_queue_delay_ms=2.0, preferred_batch_sizes=(4,)
                    ),
                    StaticBatching(policy="static", batch_size=4, timeout_ms=3.0),
                )
                for routing in ("shared_queue", "round_robin")
            ]
        finally:
            compiled.MODE = saved
        runs[mode] = starts, batches
    np.testing.assert_array_equal(runs["numba"][0], fcfs.fcfs_servers(ready, service, 32)[0])
    np.testing.assert_array_equal(runs["python"][0], runs["numba"][0])
    for fast, slow in zip(runs["numba"][1], runs["python"][1]):
        for name in ("start_ms", "service_ms", "batch_id", "batch_size", "replica", "instance"):
            np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name), err_msg=name)
