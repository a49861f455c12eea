"""The interface of an LLM batching policy: one replica's queue and running state. A scheduler holds no
SimPy environment: the replica process (sim/engine/llm/stage.py), or the replica walk that stands in for it
(sim/engine/llm/replica_walk.py), asks `plan(now_ms)` for the next iteration's duration, sleeps that long,
then calls `finish(now_ms)`. Policies: sim/engine/llm/static.py, sim/engine/llm/continuous.py;
the name -> class registry: sim/engine/llm/policies.py."""

from __future__ import annotations

from collections import deque
from typing import ClassVar

import numpy as np

from sim.spec.llm_cost import LLMCost
from sim.engine.llm.ledger import Ledger

MAX_STEPS_PER_EVENT = 1024


def blocks_for(tokens: int, block_size: int) -> int:
    return -(-tokens // block_size)


def watermark_blocks(batching, num_blocks: int) -> int:
    """Blocks an admission must leave free (vLLM's `watermark_blocks = int(watermark × num_gpu_blocks)`),
    so that running sequences can still grow without an immediate preemption."""
    return int(getattr(batching, "watermark", 0.0) * num_blocks)


class ArrivalCursor:
    """The ready times (sorted) of the requests that may still reach a replica, and how many already did:
    its own arrivals when routing is fixed in advance (round robin, random), everyone's otherwise."""

    def __init__(self, times_ms: list[float]) -> None:
        self.times_ms = times_ms
        self.position = 0

    def next_ms(self) -> float:
        return self.times_ms[self.position] if self.position < len(self.times_ms) else float("inf")


class LLMScheduler:
    """Base class: one replica's queue and running state under one batching policy."""

    policy: ClassVar[str]

    def __init__(
        self,
        replica: int,
        batching,
        cost: LLMCost,
        kv_cache: bool,
        num_blocks: int,
        prompt: np.ndarray,
        output: np.ndarray,
        cached: np.ndarray,
        ready_ms: np.ndarray,
        ledger: Ledger,
        token_lists: tuple[list[int], list[int], list[int]] | None = None,
    ) -> None:
        self.replica = replica
        self.batching = batching
        self.cost = cost
        self.kv_cache = kv_cache
        self.num_blocks = num_blocks
        self.prompt = prompt
        self.output = output
        self.cached = cached
        self.ready_ms = ready_ms
        self.ledger = ledger
        # prompt, output and cached as Python lists, made once for all replicas (else by the policy that reads them)
        self.token_lists = token_lists
        self.waiting: deque[int] = deque()
        self.wake = None  # the replica process's wake-up event while it sleeps (set by the engine)
        self.wait_until_ms: float | None = None
        self.arrivals: ArrivalCursor | None = None  # set by the engine: lets quiet decode steps be fused
        self.fuse_quiet_steps = False

    def enqueue(self, request: int) -> None:
        self.waiting.append(request)

    def has_work(self) -> bool:
        raise NotImplementedError

    def outstanding(self) -> int:
        """Requests on this replica not finished yet (for least-outstanding routing)."""
        raise NotImplementedError

    def plan(self, now_ms: float) -> float | None:
        """Compose the next iteration and return its duration in ms; None = wait (until `wait_until_ms`
        or the next arrival) before deciding."""
        raise NotImplementedError

    def finish(self, now_ms: float) -> None:
        """Apply the end of the iteration planned last."""
        raise NotImplementedError
