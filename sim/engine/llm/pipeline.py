"""The LLM stage inside a scenario run: token counts for the requests, the stage simulated on the requests
that reach it, and the log columns it adds. sim/engine/run.py calls `run_llm_stage` for a `kind: llm` stage;
sim/metrics/summary.py calls `summarize_llm_runs` for the `llm` key of the summary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from sim.errors import ScenarioError
from sim.engine.llm.stage import LLMStageResult, simulate_llm_stage
from sim.metrics.llm import QUANTILES, llm_summary
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

    def __deepcopy__(self, memo: dict) -> "LLMStageRun":
        return self  # rides in `DataFrame.attrs`, which pandas deep-copies on every operation; never modified


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
    result = simulate_llm_stage(
        ready_ms[index],
        prompt[index],
        output[index],
        stage,
        replicas,
        stream(seed, replication, "routing", stage.name),
        routing=routing,
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


def summarize_llm_runs(
    runs: list[LLMStageRun],
    includes: list[np.ndarray] | None = None,
    *,
    ttft_slo_ms: float | None = None,
    tpot_slo_ms: float | None = None,
) -> dict:
    """The `llm` key over replications: one replication's summary as is; for several, every figure is the
    mean over replications and the percentile CIs are t intervals over the replications' values.
    `includes[i]` masks the run's n requests counted (e.g. `~log.warmup` of replication i)."""
    summaries = []
    for i, run in enumerate(runs):
        include = None if includes is None else np.asarray(includes[i], dtype=bool)[run.index]
        summaries.append(llm_summary(run.result, ttft_slo_ms=ttft_slo_ms, tpot_slo_ms=tpot_slo_ms, include=include))
    if len(summaries) == 1:
        return summaries[0]
    merged = _mean_of(summaries)
    from scipy import stats

    k = len(summaries)
    half = stats.t.ppf(0.975, k - 1) / np.sqrt(k)
    merged["ci95"] = {}
    for key in ("ttft_ms", "tpot_ms", "itl_ms", "e2el_ms"):
        merged["ci95"][key] = {}
        for q in ("mean", *QUANTILES):
            values = np.array([s[key][q] for s in summaries if s[key][q] is not None], dtype=float)
            if len(values) >= 2:
                spread = half * values.std(ddof=1)
                merged["ci95"][key][q] = [float(values.mean() - spread), float(values.mean() + spread)]
    merged["warnings"] = sorted({w for s in summaries for w in s["warnings"]})
    merged["replications"] = k
    return merged


def llm_key(log: pd.DataFrame, ttft_slo_ms: float | None, tpot_slo_ms: float | None) -> dict | None:
    """The `llm` key of the summary from a run log whose `attrs["llm"]` maps an LLM stage name to its
    `LLMStageRun` per replication (replication order); warm-up requests (`log.warmup`) are left out.
    With several LLM stages, the first is summarised (its name is under `stage`)."""
    runs_by_stage = log.attrs.get("llm")
    if not runs_by_stage:
        return None
    name, runs = next(iter(runs_by_stage.items()))
    replication = log["replication"].to_numpy()
    warmup = log["warmup"].to_numpy()
    includes = [~warmup[replication == r] for r in np.unique(replication)]
    summary = summarize_llm_runs(runs, includes, ttft_slo_ms=ttft_slo_ms, tpot_slo_ms=tpot_slo_ms)
    return {"stage": name, **summary}


def _mean_of(items: list):
    first = items[0]
    if isinstance(first, dict):
        return {key: _mean_of([item[key] for item in items]) for key in first if key != "ci95"}
    if isinstance(first, bool) or first is None or isinstance(first, (str, list)):
        return first
    if isinstance(first, int):
        return int(round(float(np.mean(items))))
    return float(np.mean([x for x in items if x is not None])) if any(x is not None for x in items) else None
