"""Measured busy share (sim/metrics/busy.py) on a case computable by hand, and the page's busiest-stage
card reading it rather than offered load at the maximum batch size."""

from __future__ import annotations

import pytest

from sim.analysis.simulate import simulate
from sim.metrics.busy import busiest, busy_shares
from sim.spec.scenario import parse_scenario

GAP_MS = 10.0  # constant arrivals at 100 req/s
FETCH_MS = 4.0  # one worker, constant: busy 4 ms of every 10
FORWARD_MS = 6.0  # one replica, one instance, no batching: busy 6 ms of every 10


def constant_pipeline(batching: dict | None = None) -> dict:
    return {
        "name": "busy-by-hand",
        "seed": 1,
        "replications": 2,
        "workload": {
            "arrival": {"process": "constant", "rate_rps": 1000.0 / GAP_MS},
            "requests": 400,
            "warmup_requests": 40,
        },
        "stages": [
            {"name": "fetch", "kind": "pool", "workers": 1, "service_ms": {"dist": "constant", "value": FETCH_MS}},
            {
                "name": "forward",
                "kind": "model",
                "service_ms": {"dist": "constant", "value": FORWARD_MS},
                "batching": batching or {"policy": "none"},
            },
        ],
        "deployment": {"replicas": 1},
    }


def test_busy_share_of_a_constant_stream_is_rate_times_service_time():
    scenario = parse_scenario(constant_pipeline())
    shares = busy_shares(simulate(scenario).run, scenario)
    # No queueing anywhere (4 and 6 ms < 10 ms gaps): each server works s of every GAP_MS, exactly.
    assert shares["fetch"] == pytest.approx(FETCH_MS / GAP_MS, rel=1e-9)
    assert shares["forward"] == pytest.approx(FORWARD_MS / GAP_MS, rel=1e-9)
    assert busiest(shares) == ("forward", pytest.approx(FORWARD_MS / GAP_MS, rel=1e-9))


def test_busy_share_is_what_the_batches_took_not_the_best_batch():
    """A dynamic batcher allowed batches of 8 that never forms one (no request waits for another): offered
    load at batch 8 is far below the measured share, which stays 6 ms of every 10."""
    from sim.metrics.load import offered_load

    raw = constant_pipeline({"policy": "dynamic", "max_batch_size": 8, "max_queue_delay_ms": 0})
    raw["stages"][1]["per_item"] = 0.1  # a batch of 8 would cost 1.7× one: 0.21 of the time per request
    scenario = parse_scenario(raw)
    shares = busy_shares(simulate(scenario).run, scenario)
    assert shares["forward"] == pytest.approx(FORWARD_MS / GAP_MS, rel=1e-9)
    assert offered_load(scenario)["forward"] < 0.5 * shares["forward"]
