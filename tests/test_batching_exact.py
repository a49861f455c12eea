"""Exact event logs of tiny scenarios with constant times: each batching rule, worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from sim.engine.run import simulate_replication
from tests.helpers import model_scenario


def run(batching: dict, *, gap_ms: float, cost_ms: float, requests: int, replicas: int = 1, **kw):
    scenario = model_scenario(
        arrival={"process": "constant", "rate_rps": 1000.0 / gap_ms},
        service_ms={"dist": "constant", "value": cost_ms},
        per_item=0.0,
        batching=batching,
        requests=requests,
        warmup=0,
        replicas=replicas,
        **kw,
    )
    return simulate_replication(scenario, 0, seed=1).requests


def test_constant_arrivals_are_evenly_spaced():
    log = run({"policy": "none"}, gap_ms=10, cost_ms=1, requests=5)
    assert np.allclose(log["arrival_ms"], [10, 20, 30, 40, 50])


def test_static_batch_waits_for_exactly_n():
    # Arrivals at 10, 20, 30, 40 ms; a batch of 4 leaves when the 4th arrives.
    log = run({"policy": "static", "batch_size": 4}, gap_ms=10, cost_ms=5, requests=8)
    assert log["forward_start_ms"].tolist() == [40, 40, 40, 40, 80, 80, 80, 80]
    assert log["forward_queue_ms"].tolist() == [30, 20, 10, 0, 30, 20, 10, 0]
    assert (log["batch_size"] == 4).all()


def test_static_timeout_sends_a_partial_batch():
    # batch_size 4, timeout 15 ms: the request at 10 ms has waited 15 ms at 25 ms -> batch of two.
    # The third (30 ms) is the last request of the run: it leaves when traffic ends.
    log = run({"policy": "static", "batch_size": 4, "timeout_ms": 15}, gap_ms=10, cost_ms=1, requests=3)
    assert log["forward_start_ms"].tolist() == [25, 25, 30]
    assert log["batch_size"].tolist() == [2, 2, 1]


def test_static_without_timeout_flushes_leftovers_when_traffic_ends():
    log = run({"policy": "static", "batch_size": 4}, gap_ms=10, cost_ms=5, requests=6)
    assert log["batch_size"].tolist() == [4, 4, 4, 4, 2, 2]
    assert log["forward_start_ms"].iloc[4:].tolist() == [60, 60]


def test_dynamic_batch_leaves_at_the_delay_with_whatever_is_queued():
    # Arrivals every 1 ms from 1 ms; max 4, delay 2.5 ms; service 10 ms.
    # First batch: the request of 1 ms has waited 2.5 ms at 3.5 ms -> requests 1, 2, 3 leave together.
    # While it runs (3.5 -> 13.5) ten more arrive; the idle instance does not wait: 4 leave at 13.5.
    log = run({"policy": "dynamic", "max_batch_size": 4, "max_queue_delay_ms": 2.5}, gap_ms=1, cost_ms=10, requests=12)
    assert log["forward_start_ms"].iloc[:3].tolist() == [3.5] * 3
    assert log["batch_size"].iloc[:3].tolist() == [3] * 3
    assert log["forward_start_ms"].iloc[3:7].tolist() == [13.5] * 4
    assert log["forward_start_ms"].iloc[7:11].tolist() == [23.5] * 4
    assert log["batch_size"].max() == 4


def test_dynamic_batch_leaves_at_once_at_a_preferred_size():
    # Preferred size 2 with a long delay: the batch leaves when the 2nd request arrives (20 ms).
    log = run(
        {"policy": "dynamic", "max_batch_size": 8, "max_queue_delay_ms": 100, "preferred_batch_sizes": [2]},
        gap_ms=10,
        cost_ms=1,
        requests=4,
    )
    assert log["forward_start_ms"].tolist() == [20, 20, 40, 40]


def test_dynamic_batch_leaves_at_once_at_the_max_size():
    log = run({"policy": "dynamic", "max_batch_size": 3, "max_queue_delay_ms": 1000}, gap_ms=10, cost_ms=1, requests=3)
    assert log["forward_start_ms"].tolist() == [30, 30, 30]


def test_largest_formable_preferred_size_is_sent():
    # Service 100 ms keeps the instance busy while 5 queue up; preferred [2, 4] -> it takes 4, not 2.
    log = run(
        {"policy": "dynamic", "max_batch_size": 8, "max_queue_delay_ms": 1000, "preferred_batch_sizes": [2, 4]},
        gap_ms=10,
        cost_ms=55,
        requests=7,
    )
    # 10 ms: a batch of one is not preferred -> waits; 20 ms: 2 queued -> leaves (20 -> 75).
    # By 75 ms, 30..70 (5 requests) queued -> the largest preferred size formable is 4.
    assert log["batch_size"].tolist()[:6] == [2, 2, 4, 4, 4, 4]
    assert log["forward_start_ms"].iloc[2] == 75


def test_two_replicas_serve_two_batches_at_once():
    log = run({"policy": "static", "batch_size": 2}, gap_ms=10, cost_ms=100, requests=4, replicas=2)
    assert log["forward_start_ms"].tolist() == [20, 20, 40, 40]
    assert sorted(log["replica"].unique().tolist()) == [0, 1]


def test_queue_limit_rejects_what_does_not_fit():
    # One server busy 100 ms from 10 ms; room for 2 waiting: requests at 20, 30 wait, 40..90 are rejected.
    log = run({"policy": "none"}, gap_ms=10, cost_ms=100, requests=9, max_queue_size=2)
    assert log["rejected"].tolist() == [False, False, False] + [True] * 6
    assert np.isnan(log.loc[log["rejected"], "latency_ms"]).all()


@pytest.mark.parametrize("routing", ["round_robin", "least_outstanding", "power_of_two", "random"])
def test_per_replica_routing_uses_every_replica(routing):
    log = run({"policy": "none"}, gap_ms=1, cost_ms=5, requests=200, replicas=4, routing=routing)
    assert sorted(log["replica"].unique().tolist()) == [0, 1, 2, 3]
    assert (log["forward_queue_ms"] >= 0).all()
