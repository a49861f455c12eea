"""The disaggregated decode pool as it was before issue 24's speed work (numpy plans, every replica advanced
at every arrival), kept verbatim from sim/engine/llm/disaggregated.py as a test-only oracle:
tests/test_llm_decode_pool.py checks sim/engine/llm/decode_pool.py against it, step for step."""

from __future__ import annotations

from collections import deque

import numpy as np
import pandas as pd

from sim.engine.llm.ledger import ITERATION_COLUMNS
from sim.spec.llm_cost import LLMCost


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
) -> tuple[np.ndarray, np.ndarray]:
    """(gap_ms, request) of every gap between a decoded request's tokens: from its first token (the end of
    its transfer) to its first decode step's end, then step to step — its replica's consecutive steps."""
    decoded = np.flatnonzero(steps > 0)
    if not len(decoded):
        return np.empty(0), np.empty(0, dtype=np.int64)
    step_ends = [np.concatenate(r.ends) if r.ends else np.empty(0) for r in pool]
    offsets = np.concatenate(([0], np.cumsum([len(e) for e in step_ends])[:-1]))
    all_ends = np.concatenate(step_ends)
    sizes = steps[decoded] + 1  # the first token, then one per step
    start = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    times = np.empty(int(sizes.sum()))
    times[start] = first_token_ms[decoded]
    within = np.arange(len(times)) - np.repeat(start, sizes) - 1
    source = np.repeat(offsets[replica_of[decoded]] + log.first_step[decoded], sizes) + within
    is_step = within >= 0
    times[is_step] = all_ends[source[is_step]]
    owner = np.repeat(decoded, sizes)
    same = owner[1:] == owner[:-1]
    return np.diff(times)[same], owner[1:][same]
