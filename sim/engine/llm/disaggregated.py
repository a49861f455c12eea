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
  and finishes the batch is constant and its steps form an arithmetic series, walked in one numpy pass.
- **Time to first token**: when the transfer ends — the decode instance streams every token, the first
  included (vLLM's disaggregated prefill). TPOT and ITL are the decode pool's, its queueing included.

The result is one `LLMStageResult`: the prefill pool's replicas are 0..P−1 and the decode pool's P..P+D−1 in
`replica` and in the iteration log, whose `kv_blocks_used` counts each pool's own blocks; `pools` says which
is which, `transfer_ms` (a request column) what each transfer exposed.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import pandas as pd

from sim.engine.llm.ledger import ITERATION_COLUMNS
from sim.spec.llm_cost import LLMCost
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


class _DecodeReplica:
    """One decode replica: its running batch (request, context of the next step, steps left, blocks held),
    its waiting queue and the steps it has done (end times and iteration rows, in chunks)."""

    def __init__(self, cost: LLMCost, num_blocks: int, max_seqs: int) -> None:
        self.cost = cost
        self.num_blocks = num_blocks
        self.free = num_blocks
        self.max_seqs = max_seqs
        self.now = 0.0
        self.request = np.empty(0, dtype=np.int64)
        self.context = np.empty(0, dtype=np.int64)
        self.left = np.empty(0, dtype=np.int64)
        self.held = np.empty(0, dtype=np.int64)
        self.waiting: deque[tuple[int, float, int, int, int]] = deque()  # request, ready, blocks, context, steps
        self.steps = 0
        self.plan: tuple[np.ndarray, np.ndarray] | None = None  # the planned steps' end times and durations
        self.pos = 0  # steps of the plan done
        self.ends: list[np.ndarray] = []
        self.rows: list[tuple] = []

    def outstanding(self) -> int:
        return len(self.request) + len(self.waiting)

    def enqueue(self, request: int, ready_ms: float, blocks: int, context: int, steps: int) -> None:
        self.waiting.append((request, ready_ms, blocks, context, steps))

    def advance(self, until_ms: float, out: "_DecodeLog") -> None:
        """Do every step that ends before `until_ms`, admitting at each step boundary what has arrived by then
        (requests arriving together at `until_ms` are all enqueued before any of them is admitted).
        The steps of an unchanged batch are planned once, up to its first finish (an arithmetic series of
        contexts), and cut where an arrival that fits joins."""
        while True:
            if self.plan is not None and self.plan[0][self.pos] >= until_ms:
                return  # the next step ends later: nothing to do yet
            if not len(self.request):
                if not self.waiting or self.waiting[0][1] >= until_ms:
                    return
                self.now = max(self.now, self.waiting[0][1])
                self._admit(out)
            if self.plan is None:
                b = len(self.request)
                durations = self.cost.decode_steps_ms(b, int(self.context.sum()) + b * np.arange(int(self.left.min())))
                self.plan, self.pos = (self.now + np.cumsum(durations), durations), 0
            ends, durations = self.plan
            cut = len(ends) - self.pos
            if self.waiting and len(self.request) < self.max_seqs and self.free >= self.waiting[0][2]:
                # The head of the queue fits: the batch changes at the first boundary at or after its arrival.
                cut = min(cut, int(np.searchsorted(ends[self.pos :], self.waiting[0][1], side="left")) + 1)
            done = min(cut, int(np.searchsorted(ends[self.pos : self.pos + cut], until_ms, side="left")))
            if done == 0:
                return
            self._commit(done, ends[self.pos : self.pos + done], durations[self.pos : self.pos + done], out)
            if done < cut:
                return
            self._admit(out)

    def _admit(self, out: "_DecodeLog") -> None:
        admitted = []
        while self.waiting and len(self.request) + len(admitted) < self.max_seqs:
            request, ready_ms, blocks, context, steps = self.waiting[0]
            if ready_ms > self.now or blocks > self.free:
                break  # first come, first served: nobody passes the head of the queue
            self.waiting.popleft()
            self.free -= blocks
            admitted.append((request, context, steps, blocks))
            out.admitted(request, self.now, self.steps)
        if admitted:
            r, c, s, h = (np.array(x, dtype=np.int64) for x in zip(*admitted))
            self.request = np.concatenate([self.request, r])
            self.context = np.concatenate([self.context, c])
            self.left = np.concatenate([self.left, s])
            self.held = np.concatenate([self.held, h])
            self.plan = None

    def _commit(self, k: int, ends: np.ndarray, durations: np.ndarray, out: "_DecodeLog") -> None:
        self.rows.append(
            (ends - durations, durations, len(self.request), len(self.waiting), self.num_blocks - self.free)
        )
        self.ends.append(ends)
        self.steps += k
        self.pos += k
        self.now = float(ends[-1])
        self.context += k
        self.left -= k
        finished = self.left == 0
        if finished.any():
            out.finished(self.request[finished], self.now)
            self.free += int(self.held[finished].sum())
            keep = ~finished
            self.request, self.context = self.request[keep], self.context[keep]
            self.left, self.held = self.left[keep], self.held[keep]
            self.plan = None
        elif self.pos == len(self.plan[0]):  # pragma: no cover - a plan ends with a finish
            self.plan = None


class _DecodeLog:
    """Per-request records of the decode pool: admission time, first step index on its replica, end."""

    def __init__(self, n: int) -> None:
        self.admitted_ms = np.full(n, np.nan)
        self.first_step = np.zeros(n, dtype=np.int64)
        self.done_ms = np.full(n, np.nan)

    def admitted(self, request: int, now_ms: float, step: int) -> None:
        self.admitted_ms[request] = now_ms
        self.first_step[request] = step

    def finished(self, requests: np.ndarray, now_ms: float) -> None:
        self.done_ms[requests] = now_ms


def simulate_decode_pool(
    ready_ms: np.ndarray,
    context: np.ndarray,
    steps: np.ndarray,
    blocks: np.ndarray,
    cost: LLMCost,
    replicas: int,
    num_blocks: int,
    max_seqs: int,
) -> tuple[_DecodeLog, np.ndarray, list[_DecodeReplica]]:
    """Decode `steps[i]` tokens of request i, whose KV cache (`context[i]` tokens at its first step, needing
    `blocks[i]` blocks at its last) arrives at `ready_ms[i]`: (records, replica of each request, replicas)."""
    n = len(ready_ms)
    out = _DecodeLog(n)
    pool = [_DecodeReplica(cost, num_blocks, max_seqs) for _ in range(replicas)]
    replica_of = np.full(n, -1, dtype=np.int64)
    for request in np.argsort(ready_ms, kind="stable").tolist():
        at = float(ready_ms[request])
        for replica in pool:
            replica.advance(at, out)
        target = min(range(replicas), key=lambda r: pool[r].outstanding())
        replica_of[request] = target
        pool[target].enqueue(request, at, int(blocks[request]), int(context[request]), int(steps[request]))
    for replica in pool:
        replica.advance(np.inf, out)
    return out, replica_of, pool


def decode_iterations(pool: list[_DecodeReplica], first_replica: int) -> pd.DataFrame:
    """The decode pool's steps as iteration rows (ITERATION_COLUMNS), replicas numbered from `first_replica`."""
    chunks = [(first_replica + r, *row) for r, replica in enumerate(pool) for row in replica.rows]
    if not chunks:
        return pd.DataFrame({c: pd.Series(dtype=float if c.endswith("_ms") else np.int64) for c in ITERATION_COLUMNS})
    replica, start, duration, batch, waiting, used = zip(*chunks)
    lengths = np.fromiter((len(d) for d in duration), dtype=np.int64, count=len(chunks))

    def each(values) -> np.ndarray:
        return np.repeat(np.asarray(values, dtype=np.int64), lengths)

    b = each(batch)
    zeros = np.zeros(len(b), dtype=np.int64)
    return pd.DataFrame(
        {
            "time_ms": np.concatenate(start),
            "duration_ms": np.concatenate(duration),
            "replica": each(replica),
            "batch_size": b,
            "running": b,
            "waiting": each(waiting),
            "kv_blocks_used": each(used),
            "prefill_tokens": zeros,
            "decode_tokens": b,
            "preempted": zeros,
        }
    )


def decode_token_gaps(
    pool: list[_DecodeReplica], replica_of: np.ndarray, log: _DecodeLog, first_token_ms: np.ndarray, steps: np.ndarray
) -> np.ndarray:
    """Every gap between a decoded request's tokens, request after request (`steps[i]` of request i): from
    its first token (the end of its transfer) to its first decode step's end, then step to step — slices of
    its replica's step-to-step gaps, never copied one by one."""
    decoded = np.flatnonzero(steps > 0)
    if not len(decoded):
        return np.empty(0)
    step_ends = [np.concatenate(r.ends) if r.ends else np.empty(0) for r in pool]
    offsets = np.concatenate(([0], np.cumsum([len(e) for e in step_ends])[:-1])).astype(np.int64)
    all_ends = np.concatenate(step_ends)
    first = offsets[replica_of[decoded]] + log.first_step[decoded]
    to_first_step = all_ends[first] - first_token_ms[decoded]
    step_gaps = np.diff(all_ends)  # step_gaps[k - 1]: end of step k minus end of step k - 1
    pieces = []
    for i, (k, count) in enumerate(zip(first.tolist(), steps[decoded].tolist())):
        pieces.append(to_first_step[i : i + 1])
        pieces.append(step_gaps[k : k + count - 1])
    return np.concatenate(pieces)


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
