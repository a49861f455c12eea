"""The LLM stage inside a scenario run: token counts for the requests, the stage simulated on the requests
that reach it, and the log columns it adds. sim/engine/run.py calls `run_llm_stage` for a `kind: llm` stage;
sim/metrics/llm.py derives the `llm` key of the summary from the frames the run log keeps of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from sim.errors import ScenarioError
from sim.engine.llm.disaggregated import simulate_disaggregated
from sim.engine.llm.stage import LLMStageResult, simulate_llm_stage
from sim.spec.llm_schema import LLMStage, TokenSpec
from sim.engine.llm.tokens import sample_tokens
from sim.streams import stream


@dataclass
class LLMStageRun:
    """What one LLM stage did in one replication, aligned with the run's n requests.

    `columns`: log columns to add (`<stage>_queue_ms`, `<stage>_ms`, `ttft_ms`, `tpot_ms`, `prompt_tokens`,
    `output_tokens`, `cached_tokens`, `<stage>_replica`, `<stage>_batch_size` (sequences in the request's
    first iteration is not tracked: 0), `<stage>_preemptions`); `done_ms`: when each request's last token
    left (NaN where it did not reach or was rejected by the stage); `rejected`: rejected by this stage;
    `result`: the stage log itself (iterations, ITL) for the summary, `index`: which of the n it holds."""

    columns: dict[str, np.ndarray]
    done_ms: np.ndarray
    rejected: np.ndarray
    result: LLMStageResult
    index: np.ndarray


def run_llm_stage(
    stage: LLMStage,
    tokens: TokenSpec | None,
    ready_ms: np.ndarray,
    active: np.ndarray,
    arrival_columns: Mapping[str, np.ndarray],
    replicas: int,
    routing: str,
    seed: int,
    replication: int,
) -> LLMStageRun:
    """Draw (or read) every request's token counts from the `tokens` stream — so they are the same
    whatever the policy — then simulate the stage on the `active` requests from their ready times."""
    if tokens is None:
        raise ScenarioError(
            f"workload.tokens: stage {stage.name!r} is an llm stage and needs token counts, e.g. "
            "tokens: {prompt: {dist: lognormal, median: 1000, p99: 4000}, output: {dist: uniform, low: 10, high: 500}} "
            "or tokens: {prompt_column: num_prefill_tokens, output_column: num_decode_tokens} with a trace"
        )
    n = len(ready_ms)
    prompt, output = sample_tokens(tokens, stream(seed, replication, "tokens"), n, arrival_columns)
    index = np.flatnonzero(active)
    if stage.disaggregated is not None:
        result = simulate_disaggregated(
            ready_ms[index],
            prompt[index],
            output[index],
            stage,
            stream(seed, replication, "routing", stage.name),
            routing=routing,
            prefix_rng=stream(seed, replication, "prefix_cache", stage.name),
        )
    else:
        result = simulate_llm_stage(
            ready_ms[index],
            prompt[index],
            output[index],
            stage,
            replicas,
            stream(seed, replication, "routing", stage.name),
            routing=routing,
            prefix_rng=stream(seed, replication, "prefix_cache", stage.name),
        )
    log = result.requests
    name = stage.name

    def scatter(values: np.ndarray, fill: float | int) -> np.ndarray:
        out = np.full(n, fill, dtype=float if isinstance(fill, float) else values.dtype)
        out[index] = values
        return out

    columns = {
        f"{name}_queue_ms": scatter(log[f"{name}_queue_ms"].to_numpy(), np.nan),
        f"{name}_ms": scatter(log[f"{name}_ms"].to_numpy(), np.nan),
        "ttft_ms": scatter(log.ttft_ms.to_numpy(), np.nan),
        "tpot_ms": scatter(log.tpot_ms.to_numpy(), np.nan),
        "prompt_tokens": prompt,
        "output_tokens": output,
        "cached_tokens": scatter(log.cached_tokens.to_numpy(), 0),
        f"{name}_replica": scatter(log.replica.to_numpy(), -1),
        f"{name}_batch_size": np.zeros(n, dtype=np.int64),
        f"{name}_preemptions": scatter(log.preemptions.to_numpy(), 0),
    }
    rejected = np.zeros(n, dtype=bool)
    rejected[index] = log.rejected.to_numpy()
    return LLMStageRun(columns, scatter(log.done_ms.to_numpy(), np.nan), rejected, result, index)
