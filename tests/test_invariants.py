"""Invariants that hold for any scenario (hypothesis): every request arrives once and leaves once or is
rejected, waits are never negative, batches never exceed the max and share one start, and a replica
never runs more batches at once than it has instances."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.engine.run import simulate_replication
from sim.spec.scenario import parse_scenario

policies = st.one_of(
    st.just({"policy": "none"}),
    st.builds(
        lambda b, t: {"policy": "static", "batch_size": b, "timeout_ms": t},
        st.integers(1, 6),
        st.one_of(st.none(), st.floats(0, 20)),
    ),
    st.builds(
        lambda b, d, p: {
            "policy": "dynamic",
            "max_batch_size": b,
            "max_queue_delay_ms": d,
            "preferred_batch_sizes": [s for s in p if s <= b],
        },
        st.integers(1, 8),
        st.floats(0, 20),
        st.lists(st.integers(1, 8), max_size=2),
    ),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    policy=policies,
    replicas=st.integers(1, 3),
    instances=st.integers(1, 2),
    routing=st.sampled_from(["shared_queue", "round_robin", "least_outstanding", "random", "power_of_two"]),
    limit=st.one_of(st.none(), st.integers(0, 5)),
    rate=st.floats(5, 400),
    seed=st.integers(0, 2**16),
)
def test_request_log_invariants(policy, replicas, instances, routing, limit, rate, seed):
    scenario = parse_scenario(
        {
            "name": "prop",
            "workload": {"arrival": {"process": "gamma", "rate_rps": rate, "cv": 2.0}, "requests": 300},
            "stages": [
                {"name": "net", "kind": "delay", "service_ms": {"dist": "exponential", "mean": 2}},
                {"name": "pre", "kind": "pool", "workers": 2, "service_ms": {"dist": "exponential", "mean": 3}},
                {
                    "name": "forward",
                    "kind": "model",
                    "batch_cost": {"base_ms": 5, "per_item_ms": 1, "cv": 0.3},
                    "batching": policy,
                },
            ],
            "deployment": {"replicas": replicas, "instances": instances, "routing": routing, "max_queue_size": limit},
        }
    )
    log = simulate_replication(scenario, 0, seed=seed).requests
    assert len(log) == 300 and log["request"].is_unique
    served = log[~log["rejected"]]
    assert np.all(served["departure_ms"] >= served["arrival_ms"])
    assert np.allclose(
        served["latency_ms"],
        served[["net_ms", "pre_queue_ms", "pre_ms", "forward_queue_ms", "forward_ms"]].sum(axis=1),
    )
    for column in ("pre_queue_ms", "forward_queue_ms"):
        assert (served[column] >= -1e-9).all()
    if limit is None:
        assert not log["rejected"].any()
    max_batch = {"none": 1, "static": policy.get("batch_size"), "dynamic": policy.get("max_batch_size")}[
        policy["policy"]
    ]
    assert served["batch_size"].between(1, max_batch).all()
    batches = served.groupby("forward_batch_id")
    assert (batches["forward_start_ms"].nunique() == 1).all()
    assert (batches.size() == batches["batch_size"].first()).all()
    # At no moment does a replica run more batches than it has instances.
    first = batches.first()
    for _, rows in first.groupby("forward_replica"):
        start = rows["forward_start_ms"].to_numpy()
        end = start + rows["forward_ms"].to_numpy()
        events = np.concatenate([np.c_[start, np.ones_like(start)], np.c_[end, -np.ones_like(end)]])
        events = events[np.lexsort((events[:, 1], events[:, 0]))]  # ends before starts at equal times
        assert np.cumsum(events[:, 1]).max() <= instances
