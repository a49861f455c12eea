"""Engine speed: simulated requests per second on the reference scenario, servesim vs a plain SimPy model
of the same scenario (ratio measured in the same run), and the M/M/c fast path."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from benchmarks.plain_simpy import run_plain_simpy
from sim.engine.run import simulate_replication
from sim.spec.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent


def _timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def run(quick: bool = False) -> list[dict]:
    requests = 100_000 if quick else 1_000_000
    reference = load_scenario(ROOT / "scenarios" / "reference.yaml")
    log, servesim_s = _timed(lambda: simulate_replication(reference, 0, seed=1, requests=requests).requests)

    network = reference.stage("network").service_ms
    pool = reference.stage("preprocess")
    forward = reference.stage("forward")
    latency, plain_s = _timed(
        lambda: run_plain_simpy(
            requests,
            rate_rps=reference.workload.arrival.rate_rps,
            network_ms=network.mu_sigma,
            pool_workers=pool.workers * reference.deployment.replicas,
            pool_mean_ms=pool.service_ms.mean,
            batch_base_ms=forward.batch_cost.base_ms,
            batch_per_item_ms=forward.batch_cost.per_item_ms,
            batch_cv=forward.batch_cost.cv,
            max_batch_size=forward.batching.max_batch_size,
            max_queue_delay_ms=forward.batching.max_queue_delay_ms,
            servers=reference.deployment.replicas * reference.deployment.instances,
            post_ms=reference.stage("postprocess").service_ms.value,
        )
    )
    skip = requests // 20
    ours_p99 = float(np.quantile(log["latency_ms"].to_numpy()[skip:], 0.99))
    plain_p99 = float(np.quantile(latency[skip:], 0.99))

    mm3 = load_scenario(ROOT / "scenarios" / "mm3.yaml")
    _, mm3_s = _timed(lambda: simulate_replication(mm3, 0, seed=7, requests=requests))
    return [
        {"name": "reference: servesim", "value": requests / servesim_s, "unit": "req/s"},
        {"name": "reference: plain SimPy", "value": requests / plain_s, "unit": "req/s"},
        {
            "name": "reference: servesim / plain SimPy",
            "value": plain_s / servesim_s,
            "unit": "×",
            "baseline": 3.0,
            "ratio": plain_s / servesim_s / 3.0,
            "note": f"target ≥ 3×; p99 {ours_p99:.2f} ms vs plain {plain_p99:.2f} ms ({requests:,} requests)",
        },
        {"name": "M/M/3 fast path: servesim", "value": requests / mm3_s, "unit": "req/s"},
    ]


if __name__ == "__main__":
    for row in run(quick=True):
        print(row)
