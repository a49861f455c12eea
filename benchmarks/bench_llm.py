"""LLM stage speed: the full Azure LLM conversation trace (19,366 requests, one hour) replayed on the
llama2-70b TP4 A100 profile with continuous batching (quiet decode steps fused into one SimPy event).
Target of the performance issue: ≤ 0.5 s CPU (the first round's was ≤ 5 s wall); ratio = CPU / target, so
≤ 1 meets it. Also static batching and chunked prefill on the same trace, for the iteration rates."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from sim.spec.arrivals import Trace
from sim.engine.llm.stage import simulate_llm_stage
from sim.spec.llm_schema import LLMStage, TokenSpec
from sim.engine.llm.tokens import sample_tokens

ROOT = Path(__file__).resolve().parent.parent
TRACE = ROOT / "scenarios" / "traces" / "azure-llm-conv-trace.csv"
PROFILE = ROOT / "models" / "llama2-70b-tp4-a100.yaml"
REPLICAS = 6  # as scenarios/llm-chat-continuous.yaml
TARGET_CPU_S = 0.5


def _trace(requests: int | None):
    trace = Trace(process="trace", file=str(TRACE), time_column="arrived_at", time_unit="s")
    arrivals = trace.generate(np.random.default_rng(0), requests or trace.length, None)
    tokens = TokenSpec(prompt_column="num_prefill_tokens", output_column="num_decode_tokens")
    prompt, output = sample_tokens(tokens, np.random.default_rng(0), len(arrivals.times_ms), arrivals.columns)
    return arrivals.times_ms, prompt, output


def replay(batching: dict, requests: int | None = None) -> tuple[float, float, int, int]:
    """(wall seconds, CPU seconds, iterations, requests) of one replay, trace reading excluded. CPU time
    is what one dedicated core would take; wall time also counts other processes on a shared machine."""
    ready, prompt, output = _trace(requests)
    stage = LLMStage.model_validate({"name": "llm", "kind": "llm", "profile": str(PROFILE), "batching": batching})
    start, cpu = time.perf_counter(), time.process_time()
    result = simulate_llm_stage(ready, prompt, output, stage, REPLICAS, np.random.default_rng(0))
    return time.perf_counter() - start, time.process_time() - cpu, len(result.iterations), len(ready)


def run(quick: bool = False) -> list[dict]:
    rows = []
    wall_s, cpu_s, iterations, requests = replay({"policy": "continuous"})
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    rows.append(
        {
            "name": "LLM conv trace, continuous (A100 TP4 × 6): CPU",
            "value": cpu_s,
            "unit": "s",
            "baseline": TARGET_CPU_S,
            "ratio": cpu_s / TARGET_CPU_S,
            "note": f"target ≤ {TARGET_CPU_S:g} s CPU; wall {wall_s:.2f} s{load}; {requests:,} requests, "
            f"{iterations:,} iterations",
        }
    )
    if not quick:
        for label, batching in (
            ("chunked prefill 2048", {"policy": "continuous", "chunked_prefill": True, "max_num_batched_tokens": 2048}),
            ("static batch 32", {"policy": "static", "batch_size": 32}),
        ):
            wall_s, cpu_s, iterations, requests = replay(batching)
            rows.append(
                {
                    "name": f"LLM conv trace, {label} (A100 TP4 × 6): wall",
                    "value": wall_s,
                    "unit": "s",
                    "note": f"CPU {cpu_s:.2f} s; {requests:,} requests, {iterations:,} iterations",
                }
            )
    return rows


if __name__ == "__main__":
    for row in run(quick=False):
        print(f"{row['name']}: {row['value']:.2f} {row['unit']}  ({row.get('note', '')})")
