"""The summary's cost per request at growing run lengths (it must stay linear): CPU µs per request of
`summarize` on mm3 logs of 1e5, 1e6 (and 4e6) requests × 2 replications, the ratio against the smallest
run measured in the same process, and the engine time of the same log for scale."""

from __future__ import annotations

import time
from pathlib import Path

from sim.engine.run import simulate_replications
from sim.metrics.summary import summarize
from sim.spec.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent


def run(quick: bool = False) -> list[dict]:
    scenario = load_scenario(ROOT / "scenarios" / "mm3.yaml")
    sizes = (100_000, 1_000_000) if quick else (100_000, 1_000_000, 4_000_000)
    rows, first = [], None
    for n in sizes:
        started = time.process_time()
        run_log = simulate_replications(scenario, 2, seed=1, requests=n)
        engine_s = time.process_time() - started
        best = min(_timed(lambda: summarize(run_log, scenario)) for _ in range(3 if n <= 1_000_000 else 1))
        per_request_us = best / (2 * n) * 1e6
        first = first or per_request_us
        rows.append(
            {
                "name": f"summary: mm3, {n:,} requests × 2",
                "value": per_request_us,
                "unit": "CPU µs/request",
                "baseline": first,
                "ratio": per_request_us / first,
                "note": f"engine {engine_s / (2 * n) * 1e6:.2f} µs/request; ratio 1 = linear; target ≤ 0.2 µs",
            }
        )
    return rows


def _timed(fn) -> float:
    started = time.process_time()
    fn()
    return time.process_time() - started
