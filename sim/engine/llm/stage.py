"""Simulate one `kind: llm` stage: requests ready at given times, with prompt and output token counts,
served by `replicas` LLM replicas under one batching policy.

The SimPy model is the definition: one process per replica sleeps on a wake-up event while it has no
work and otherwise does one timeout per *iteration* (a prefill, a decode step, or a mixed chunked
iteration) — never per token or per request; the policy object (sim/engine/llm/policies.py) decides each
iteration's composition and cost. Runs of decode steps in which nothing can change (no arrival for the
replica, no request finishing before the last of them, no block shortage) share one timeout and one
record (sim/engine/llm/ledger.py expands it to one row per step). A dispatcher process hands each request
to a replica when it becomes ready. Under a fixed routing (round robin, random) replicas do not interact
and are walked one by one without SimPy (sim/engine/llm/replica_walk.py), with the same log; a load-aware
router, or an arrival on the very clock value of its replica's event, runs the SimPy model.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sim.errors import ScenarioError
from sim.engine.llm.ledger import Ledger
from sim.engine.llm.policies import SCHEDULERS, ArrivalCursor, LLMScheduler
from sim.engine.llm.replica_walk import SimultaneousEvents, dispatch_clock, walk_replica
from sim.engine.routing import FIXED_ROUTINGS, ROUTINGS, Router
from sim.engine.llm.scheduler import watermark_blocks
from sim.spec.llm_schema import ContinuousLLMBatching, LLMStage

if TYPE_CHECKING:
    import simpy


@dataclass
class LLMStageResult:
    """The log of an LLM stage run.

    `requests`: one row per input request, in input order (see `request_columns`).
    `iterations`: one row per iteration: time_ms (start), duration_ms, replica, batch_size (sequences
    computed), running (sequences holding KV), waiting, kv_blocks_used, prefill_tokens, decode_tokens,
    preempted.
    `itl_ms`: every inter-token gap, request after request (input order); `itl_counts`: how many gaps each
    request has (`itl_request` expands it to the request of each gap, on demand: millions of gaps).
    """

    requests: pd.DataFrame
    iterations: pd.DataFrame
    itl_ms: np.ndarray
    itl_counts: np.ndarray
    num_gpu_blocks: int
    block_size: int
    replicas: int
    stage: LLMStage
    prompt_too_long: np.ndarray | None = None  # rejected because the prompt exceeds vLLM's prompt limit
    prompt_limit: int | None = None
    # A disaggregated stage (sim/engine/llm/disaggregated.py): replicas 0..prefill_replicas-1 are the prefill
    # pool, with prefill_gpu_blocks KV blocks each; the rest the decode pool, with num_gpu_blocks each.
    prefill_replicas: int | None = None
    prefill_gpu_blocks: int | None = None

    @property
    def itl_request(self) -> np.ndarray:
        """The request (input index) of each gap in `itl_ms`."""
        return np.repeat(np.arange(len(self.itl_counts)), self.itl_counts)


def gpu_blocks(stage: LLMStage) -> int:
    """KV blocks per replica: given, or from GPU memory (GiB) minus weights (vLLM's sizing)."""
    batching = stage.batching
    if isinstance(batching, ContinuousLLMBatching) and batching.num_gpu_blocks is not None:
        return batching.num_gpu_blocks
    utilisation = getattr(batching, "gpu_memory_utilization", 0.9)
    return kv_blocks(
        stage.cost,
        utilisation,
        getattr(batching, "gpu_memory_gib", None),
        batching.block_size,
        f"stages.{stage.name}.batching",
    )


def kv_blocks(cost, utilisation: float, gpu_memory_gib: float | None, block_size: int, field: str) -> int:
    """KV blocks of one replica of `cost`'s profile: `utilisation` of its GPU memory after the weights, in
    blocks of `block_size` tokens; none left is refused, naming `field`."""
    blocks = cost.kv_capacity_tokens(utilisation, gpu_memory_gib) // block_size
    if blocks <= 0:
        m = cost.profile.memory
        raise ScenarioError(
            f"{field}: no room for a KV cache: the weights ({m.weights_gib} GiB) fill "
            f"{utilisation:g} of {m.gpus} × {m.gpu_memory_gib} GiB"
        )
    return blocks


def simulate_llm_stage(
    ready_ms: np.ndarray,
    prompt_tokens: np.ndarray,
    output_tokens: np.ndarray,
    stage: LLMStage,
    replicas: int,
    rng: np.random.Generator,
    routing: str = "round_robin",
    fuse_quiet_steps: bool = True,
    prefix_rng: np.random.Generator | None = None,
) -> LLMStageResult:
    """Run the stage. `rng` draws the routing choices, `prefix_rng` the prefix-cache hits (default: a
    generator spawned from `rng`); nothing else is random.
    `fuse_quiet_steps=False` gives every iteration its own event (same results; for tests and speed
    comparisons)."""
    with _without_cyclic_gc():
        return _simulate(
            ready_ms, prompt_tokens, output_tokens, stage, replicas, rng, routing, fuse_quiet_steps, prefix_rng
        )


@contextmanager
def _without_cyclic_gc():
    """Python's cycle collector off while the stage runs. The run makes hundreds of thousands of small
    records and no reference cycles worth collecting, yet every pass of the collector walks every object
    of the process (pandas, pydantic, ...): a third of the conversation trace's engine CPU. The previous
    state comes back afterwards, exception or not."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _simulate(
    ready_ms: np.ndarray,
    prompt_tokens: np.ndarray,
    output_tokens: np.ndarray,
    stage: LLMStage,
    replicas: int,
    rng: np.random.Generator,
    routing: str,
    fuse_quiet_steps: bool,
    prefix_rng: np.random.Generator | None,
) -> LLMStageResult:
    ready_ms = np.asarray(ready_ms, dtype=float)
    prompt = np.asarray(prompt_tokens, dtype=np.int64)
    output = np.asarray(output_tokens, dtype=np.int64)
    n = len(ready_ms)
    if not (len(prompt) == len(output) == n):
        raise ScenarioError(f"stages.{stage.name}: {n} requests but {len(prompt)} prompts and {len(output)} outputs")
    if n and (prompt.min() < 1 or output.min() < 1):
        raise ScenarioError(f"stages.{stage.name}: prompt and output token counts must be >= 1")
    if routing not in (*ROUTINGS, "shared_queue"):
        raise ScenarioError(
            f"deployment.routing: {routing!r} is not available for an llm stage (use one of {', '.join(ROUTINGS)}, shared_queue)"
        )
    if prefix_rng is None:
        prefix_rng = rng.spawn(1)[0]
    cached = stage.prefix_cache.cached_tokens(prompt, prefix_rng) if stage.prefix_cache else np.zeros(n, dtype=np.int64)
    num_blocks = gpu_blocks(stage)
    limit = (
        stage.batching.prompt_limit(stage.max_model_len) if isinstance(stage.batching, ContinuousLLMBatching) else None
    )
    too_long = prompt > limit if limit is not None else np.zeros(n, dtype=bool)
    rejected = _rejected(stage, prompt, output, num_blocks) | too_long
    order = np.argsort(ready_ms, kind="stable")
    order = order[~rejected[order]]
    # A shared queue in front of LLM replicas is modelled as least-outstanding dispatch, since each replica
    # admits from its own queue every iteration.
    router = Router("least_outstanding" if routing == "shared_queue" else routing, replicas, rng, len(order))
    choices = router.fixed_assignment(len(order)) if routing in FIXED_ROUTINGS else None

    token_lists = (prompt.tolist(), output.tolist(), cached.tolist())  # read-only: one copy for every replica

    def fresh_replicas() -> tuple[Ledger, list[LLMScheduler]]:
        ledger = Ledger(n, replicas, stage.cost.kv_ms_per_token)
        ledger.rejected[:] = rejected
        scheduler_class = SCHEDULERS[stage.batching.policy]
        schedulers = [
            scheduler_class(
                r,
                stage.batching,
                stage.cost,
                stage.kv_cache,
                num_blocks,
                prompt,
                output,
                cached,
                ready_ms,
                ledger,
                token_lists,
            )
            for r in range(replicas)
        ]
        # Under a load-aware router any arrival may reach any replica: one cursor, moved by every dispatch.
        everyone = ArrivalCursor(ready_ms[order].tolist()) if choices is None else None
        for r, scheduler in enumerate(schedulers):
            scheduler.arrivals = everyone or ArrivalCursor(ready_ms[order[choices == r]].tolist())
            scheduler.fuse_quiet_steps = fuse_quiet_steps
        return ledger, schedulers

    ledger, schedulers = fresh_replicas()
    try:
        if choices is None:
            raise SimultaneousEvents  # the router looks at the replicas' load: they interact
        _walk_replicas(schedulers, order, choices, ready_ms)
    except SimultaneousEvents:
        ledger, schedulers = fresh_replicas()
        _simulate_with_simpy(schedulers, order, ready_ms, router)

    del schedulers  # their per-request state is spent: let it go before the log is laid out
    unfinished = ~ledger.rejected & np.isnan(ledger.last_token_ms)
    if unfinished.any():  # pragma: no cover - a scheduler bug, not a user error
        raise RuntimeError(f"llm stage {stage.name}: {int(unfinished.sum())} requests never finished")
    iterations = ledger.iteration_frame(release=True)
    itl_ms, itl_counts = ledger.token_gaps()
    return LLMStageResult(
        requests=_request_frame(stage.name, ready_ms, prompt, output, cached, ledger),
        iterations=iterations,
        itl_ms=itl_ms,
        itl_counts=itl_counts,
        num_gpu_blocks=num_blocks,
        block_size=stage.batching.block_size,
        replicas=replicas,
        stage=stage,
        prompt_too_long=too_long,
        prompt_limit=limit,
    )


def _rejected(stage: LLMStage, prompt: np.ndarray, output: np.ndarray, num_blocks: int) -> np.ndarray:
    """Requests no replica could ever serve: longer than `max_model_len`, or (continuous batching) whose
    KV cache at its last token needs more blocks than a replica has less vLLM's watermark — vLLM could
    never finish them."""
    rejected = np.zeros(len(prompt), dtype=bool)
    if stage.max_model_len is not None:
        rejected |= prompt + output > stage.max_model_len
    if isinstance(stage.batching, ContinuousLLMBatching):
        usable = num_blocks - watermark_blocks(stage.batching, num_blocks)
        rejected |= -(-(prompt + output - 1) // stage.batching.block_size) > usable
    return rejected


def _walk_replicas(
    schedulers: list[LLMScheduler], order: np.ndarray, choices: np.ndarray, ready_ms: np.ndarray
) -> None:
    """Fixed routing: each replica on its own (sim/engine/llm/replica_walk.py)."""
    clock_ms, group = dispatch_clock(ready_ms[order])
    for r, scheduler in enumerate(schedulers):
        mine = np.flatnonzero(choices == r).tolist()
        walk_replica(scheduler, order[mine].tolist(), [clock_ms[k] for k in mine], [group[k] for k in mine])


def _simulate_with_simpy(
    schedulers: list[LLMScheduler], order: np.ndarray, ready_ms: np.ndarray, router: Router
) -> None:
    """One SimPy process per replica and one dispatcher handing requests to them at their ready times."""
    import simpy  # only where replicas interact (a load-aware router) or a tie needs SimPy's event order

    env = simpy.Environment()
    for scheduler in schedulers:
        env.process(_replica(env, scheduler))
    env.process(_dispatch(env, order, ready_ms, schedulers, router))
    env.run()


def _replica(env: simpy.Environment, scheduler: LLMScheduler):
    """One replica: sleep while idle, else one timeout per iteration."""
    while True:
        if not scheduler.has_work():
            scheduler.wake = env.event()
            yield scheduler.wake
            scheduler.wake = None
        duration_ms = scheduler.plan(env.now)
        if duration_ms is None:  # the policy waits for a fuller batch
            scheduler.wake = env.event()
            yield scheduler.wake | env.timeout(max(scheduler.wait_until_ms - env.now, 0.0))
            scheduler.wake = None
            continue
        yield env.timeout(duration_ms)
        scheduler.finish(env.now)


def _dispatch(env, order, ready_ms, schedulers, router: Router):
    """Hand each request to the replica the router chooses (sim/engine/routing.py), at its ready time."""
    fixed = router.routing in FIXED_ROUTINGS
    choices = router.fixed_assignment(len(order)) if fixed else None
    for k, request in enumerate(order.tolist()):
        delay = ready_ms[request] - env.now
        if delay > 0:
            yield env.timeout(delay)
        if fixed:
            target = schedulers[choices[k]]
        else:
            target = schedulers[router.choose([s.outstanding() for s in schedulers])]
        target.arrivals.position += 1
        target.enqueue(request)
        if target.wake is not None and not target.wake.triggered:
            target.wake.succeed()


def _request_frame(name, ready_ms, prompt, output, cached, ledger: Ledger) -> pd.DataFrame:
    first_scheduled, first_token, last_token = ledger.first_scheduled_ms, ledger.first_token_ms, ledger.last_token_ms
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = np.where(output > 1, (last_token - first_token) / (output - 1), np.nan)
    return pd.DataFrame(
        {
            f"{name}_queue_ms": first_scheduled - ready_ms,
            f"{name}_ms": last_token - first_scheduled,
            "ttft_ms": first_token - ready_ms,
            "tpot_ms": tpot,
            "e2e_ms": last_token - ready_ms,
            "ready_ms": ready_ms,
            "first_token_ms": first_token,
            "done_ms": last_token,
            "prompt_tokens": prompt,
            "output_tokens": output,
            "cached_tokens": cached,
            "replica": ledger.replica,
            "preemptions": ledger.preemptions,
            "rejected": ledger.rejected,
        }
    )
