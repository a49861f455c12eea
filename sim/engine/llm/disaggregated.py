"""Disaggregated LLM serving: prefill and decode on separate pools of replicas (DistServe, OSDI '24;
Splitwise, ISCA '24; vLLM's disaggregated prefill), joined by a KV-cache transfer.

- **Prefill pool**: the stage's own engine (sim/engine/llm/stage.py) on `prefill_replicas` replicas, each request
  asking for one output token: its prompt is computed (batched and budgeted as the stage's continuous
  batching says) and its first token sampled, then its KV blocks are freed.
- **Transfer**: the prompt's KV cache (prompt tokens × the model's KV bytes a token) crosses `link`, each GPU
  of the tensor-parallel replica sending its shard (bandwidth × GPUs, plus the link's set-up latency). With
  `overlap: layer` each layer leaves as soon as it is computed, so only what outlasts the prefill's compute
  is exposed: max(transfer / layers, transfer − prefill × (layers − 1) / layers). Transfers do not contend
  with each other (a link per GPU pair, as in a non-blocking fabric).
- **Decode pool**: continuous, decode-only batching on `decode.replicas` replicas. A request goes to the
  replica with the fewest requests (running + waiting; ties to the lowest index) when its KV arrives, and is
  admitted first come, first served at a step boundary when fewer than `max_num_seqs` run and the blocks of
  its whole KV cache (prompt + output − 1 tokens) are free — a decode instance pulls a KV cache only when it
  can keep it, so nothing is ever preempted (vLLM would admit on the current size and preempt under
  pressure: under heavy KV pressure this holds fewer sequences than vLLM, and never recomputes). A step of b
  sequences holding C context tokens costs the decode profile's `decode_step_ms(b, C)`; between admissions
  and finishes the batch is constant and its steps form an arithmetic series (sim/engine/llm/decode_pool.py
  walks them).
- **Time to first token**: when the transfer ends — the decode instance streams every token, the first
  included (vLLM's disaggregated prefill). TPOT and ITL are the decode pool's, its queueing included.

The result is one `LLMStageResult`: the prefill pool's replicas are 0..P−1 and the decode pool's P..P+D−1 in
`replica` and in the iteration log, whose `kv_blocks_used` counts each pool's own blocks; `pools` says which
is which, `transfer_ms` (a request column) what each transfer exposed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.engine.llm.decode_pool import decode_iterations, decode_token_gaps, simulate_decode_pool
from sim.spec.llm_schema import LLMStage


def transfer_ms(stage: LLMStage, prompt: np.ndarray, prefill_ms: np.ndarray) -> np.ndarray:
    """What each request's KV transfer adds after its prefill ends (ms): see the module docstring."""
    link = stage.disaggregated.link
    profile = stage.cost.profile
    gpus = min(profile.memory.gpus, stage.decode_cost.profile.memory.gpus)
    whole = link.setup_ms + prompt * profile.memory.kv_bytes_per_token / (link.gb_per_s * gpus * 1e9) * 1e3
    if link.overlap == "none":
        return whole
    layers = profile.decode.kv_read.layers
    return np.maximum(whole / layers, whole - prefill_ms * (layers - 1) / layers)


def decode_blocks(stage: LLMStage) -> int:
    """KV blocks of one decode replica: its GPU memory share after the weights (vLLM's sizing)."""
    from sim.engine.llm.stage import kv_blocks

    decode = stage.disaggregated.decode
    field = f"stages.{stage.name}.disaggregated.decode"
    return kv_blocks(stage.decode_cost, decode.gpu_memory_utilization, None, stage.batching.block_size, field)


def simulate_disaggregated(
    ready_ms: np.ndarray,
    prompt: np.ndarray,
    output: np.ndarray,
    stage: LLMStage,
    rng: np.random.Generator,
    routing: str = "round_robin",
    prefix_rng: np.random.Generator | None = None,
):
    """Run a disaggregated stage (module docstring): the prefill pool, the transfers, the decode pool."""
    from sim.engine.llm.stage import LLMStageResult, simulate_llm_stage

    split = stage.disaggregated
    prefill_stage = stage.model_copy(update={"disaggregated": None})
    prefill = simulate_llm_stage(
        ready_ms,
        prompt,
        np.ones_like(output),
        prefill_stage,
        split.prefill_replicas,
        rng,
        routing=routing,
        prefix_rng=prefix_rng,
    )
    p = prefill.requests
    name = stage.name
    bs = stage.batching.block_size
    num_blocks = decode_blocks(stage)
    ready = np.asarray(ready_ms, dtype=float)
    rejected = p.rejected.to_numpy().copy()
    need = -(-(prompt + output - 1) // bs)
    rejected |= (need > num_blocks) & (output > 1)  # a decode replica could never hold its KV cache
    prefill_end = p.first_token_ms.to_numpy()
    exposed = np.where(rejected, np.nan, transfer_ms(stage, prompt, p[f"{name}_ms"].to_numpy()))
    first_token = prefill_end + exposed
    steps = np.where(rejected, 0, output - 1)
    decoding = np.flatnonzero(steps > 0)
    log, replica_of, pool = simulate_decode_pool(
        first_token[decoding],
        (prompt + 1)[decoding],
        steps[decoding],
        need[decoding],
        stage.decode_cost,
        split.decode.replicas,
        num_blocks,
        split.decode.max_num_seqs,
    )
    n = len(ready)
    done = first_token.copy()
    done[decoding] = log.done_ms
    decode_queue = np.zeros(n)
    decode_queue[decoding] = log.admitted_ms - first_token[decoding]
    replica = p.replica.to_numpy().copy()
    replica[decoding] = split.prefill_replicas + replica_of
    queue = p[f"{name}_queue_ms"].to_numpy() + decode_queue
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = np.where(output > 1, (done - first_token) / (output - 1), np.nan)
    nan_if_rejected = lambda values: np.where(rejected, np.nan, values)  # noqa: E731
    requests = pd.DataFrame(
        {
            f"{name}_queue_ms": nan_if_rejected(queue),
            f"{name}_ms": nan_if_rejected(done - ready - queue),
            "ttft_ms": nan_if_rejected(first_token - ready),
            "tpot_ms": nan_if_rejected(tpot),
            "e2e_ms": nan_if_rejected(done - ready),
            "ready_ms": ready,
            "first_token_ms": nan_if_rejected(first_token),
            "done_ms": nan_if_rejected(done),
            "prompt_tokens": prompt,
            "output_tokens": output,
            "cached_tokens": p.cached_tokens.to_numpy(),
            "replica": np.where(rejected, -1, replica),
            "preemptions": p.preemptions.to_numpy(),
            "rejected": rejected,
            "transfer_ms": exposed,
        }
    )
    gaps = decode_token_gaps(pool, replica_of, log, first_token[decoding], steps[decoding])
    gap_counts = np.zeros(n, dtype=np.int64)
    gap_counts[decoding] = steps[decoding]
    iterations = pd.concat(
        [prefill.iterations, decode_iterations(pool, split.prefill_replicas)], ignore_index=True
    ).sort_values(["time_ms", "replica"], kind="stable", ignore_index=True)
    return LLMStageResult(
        requests=requests,
        iterations=iterations,
        itl_ms=gaps,
        itl_counts=gap_counts,
        num_gpu_blocks=num_blocks,
        block_size=bs,
        replicas=split.replicas,
        stage=stage,
        prompt_too_long=prefill.prompt_too_long,
        prompt_limit=prefill.prompt_limit,
        prefill_replicas=split.prefill_replicas,
        prefill_gpu_blocks=prefill.num_gpu_blocks,
    )
