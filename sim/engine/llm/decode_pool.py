"""The decode pool of a disaggregated LLM stage (sim/engine/llm/disaggregated.py says what it models): its
replicas walked step by step in plain Python, each only when it must be.

A replica's running batch is kept as sums — sequences `batch`, `context_base` = Σ (context at a sequence's
first step − that step's number), so that step S holds `context_base + batch × S` tokens of context — and a
heap of the step at which each sequence finishes; a step costs the decode profile's
`decode_step_ms(batch, context)`. Between admissions and finishes the batch is constant: its steps form one
*plan* whose end times are the plan's start plus the running sum of its steps' durations (numpy's cumsum
order, so that every time keeps its bits whichever way the steps are walked).

A request goes to the replica with the fewest requests (running + waiting) when its KV cache arrives. That
count changes only when a sequence finishes, so a replica is walked up to an arrival only when a finish may
fall before it (a heap of each replica's earliest possible finish, found in closed form with a margin) or
when it receives the request; the others keep their steps for later, unchanged: nothing else reaches them.
"""

from __future__ import annotations

import heapq
import math
from array import array
from collections import deque

import numpy as np
import pandas as pd

from sim.engine.llm.ledger import ITERATION_COLUMNS
from sim.spec.llm_cost import LLMCost

# A finish time found in closed form may differ from the step-by-step sum by rounding (k steps: about k ulp);
# a replica is walked when its finish may come this much (relative, plus 1 ns) before an arrival.
_FINISH_MARGIN = 1e-9


class DecodeLog:
    """Per-request records of the decode pool: admission time, first step index on its replica, end."""

    def __init__(self, n: int) -> None:
        self.admitted_ms = np.full(n, np.nan)
        self.first_step = np.zeros(n, dtype=np.int64)
        self.done_ms = np.full(n, np.nan)


class DecodeReplica:
    """One decode replica: its running batch (as sums, module docstring), its waiting queue, and the steps
    it has done — end times and durations step by step, batch / waiting / blocks in use run by run."""

    def __init__(self, cost: LLMCost, num_blocks: int, max_seqs: int, log: DecodeLog) -> None:
        self.cost = cost
        self.kv_ms = cost.kv_ms_per_token
        self.num_blocks = num_blocks
        self.free = num_blocks
        self.max_seqs = max_seqs
        self.log = log
        self.now = 0.0
        self.walked_to = -math.inf  # every step ending before this is done
        self.step = 0  # steps done
        self.batch = 0
        self.context_base = 0
        self.finishing: list[tuple[int, int, int, int]] = []  # heap: last step, request, blocks, context term
        self.waiting: deque[tuple[int, float, int, int, int]] = deque()  # request, ready, blocks, context, steps
        self.step_ms = 0.0  # the batch's step cost without context
        self.plan_start_ms = 0.0
        self.plan_sum_ms = 0.0  # the durations of the plan's steps done, summed in order
        self.ends = array("d")
        self.durations = array("d")
        self.runs: list[tuple[int, int, int, int]] = []  # steps, batch, waiting, blocks used: constant over each
        self.run_start = 0

    def outstanding(self) -> int:
        return self.batch + len(self.waiting)

    def enqueue(self, request: int, ready_ms: float, blocks: int, context: int, steps: int) -> None:
        self.close_run()
        self.waiting.append((request, ready_ms, blocks, context, steps))

    def advance(self, until_ms: float) -> None:
        """Do every step that ends before `until_ms`, admitting at each step boundary what has arrived by then
        (requests arriving together at `until_ms` are all enqueued before any of them is admitted)."""
        waiting, finishing, kv_ms = self.waiting, self.finishing, self.kv_ms
        while True:
            if not self.batch:
                if not waiting or waiting[0][1] >= until_ms:
                    break
                self.now = max(self.now, waiting[0][1])
                self._admit()
                if not self.batch:  # pragma: no cover - an empty replica holds any request not rejected
                    raise RuntimeError("decode pool: a request fits no empty replica")
            duration = self.step_ms + kv_ms * (self.context_base + self.batch * self.step)
            total = self.plan_sum_ms + duration
            end = self.plan_start_ms + total
            if end >= until_ms:
                break
            self.plan_sum_ms = total
            self.ends.append(end)
            self.durations.append(duration)
            self.step += 1
            self.now = end
            if finishing[0][0] < self.step:
                self._finish()
                self._admit()
            elif (
                waiting and waiting[0][1] <= end and self.batch < self.max_seqs and self.free >= waiting[0][2]
            ):  # the head of the queue has arrived and fits: the batch changes at this boundary
                self._admit()
        self.walked_to = max(self.walked_to, until_ms)

    def earliest_finish_ms(self) -> float:
        """A time before which no sequence of this replica can finish (nor its request count change)."""
        waiting = self.waiting
        if not self.batch:
            return max(waiting[0][1], self.walked_to) if waiting else math.inf
        last, s, b = self.finishing[0][0], self.step, self.batch
        k = last - s + 1  # steps to the first finish, if nobody joins
        context = k * self.context_base + b * ((s + last) * k // 2)
        end = self.plan_start_ms + self.plan_sum_ms + k * self.step_ms + self.kv_ms * context
        bound = end - _FINISH_MARGIN * (abs(end) + 1.0)
        if waiting and b < self.max_seqs and self.free >= waiting[0][2]:
            # The head joins at the first step end at or after its arrival; the new batch finishes nobody
            # before the step after that.
            next_end = self.plan_start_ms + (self.plan_sum_ms + self.step_ms + self.kv_ms * (self.context_base + b * s))
            bound = min(bound, max(next_end, waiting[0][1]))
        return max(bound, self.walked_to)

    def _admit(self) -> None:
        """Admit the head of the queue while it has arrived, fits and leaves the batch within max_seqs."""
        waiting, log = self.waiting, self.log
        admitted = False
        while waiting and self.batch < self.max_seqs:
            request, ready_ms, blocks, context, steps = waiting[0]
            if ready_ms > self.now or blocks > self.free:
                break  # first come, first served: nobody passes the head of the queue
            if not admitted:
                self.close_run()
                admitted = True
            waiting.popleft()
            self.free -= blocks
            term = context - self.step
            self.batch += 1
            self.context_base += term
            heapq.heappush(self.finishing, (self.step + steps - 1, request, blocks, term))
            log.admitted_ms[request] = self.now
            log.first_step[request] = self.step
        if admitted:
            self._new_plan()

    def _finish(self) -> None:
        """The sequences whose last step was the one just done leave, with their blocks."""
        self.close_run()
        finishing, done_ms = self.finishing, self.log.done_ms
        while finishing and finishing[0][0] < self.step:
            _, request, blocks, term = heapq.heappop(finishing)
            done_ms[request] = self.now
            self.free += blocks
            self.batch -= 1
            self.context_base -= term
        self._new_plan()

    def _new_plan(self) -> None:
        self.step_ms = self.cost.decode_step_ms(self.batch, 0) if self.batch else 0.0
        self.plan_start_ms, self.plan_sum_ms = self.now, 0.0

    def close_run(self) -> None:
        """Record the steps since the last change of batch, queue or blocks with the values they ran under."""
        if self.step > self.run_start:
            used = self.num_blocks - self.free
            self.runs.append((self.step - self.run_start, self.batch, len(self.waiting), used))
            self.run_start = self.step


def simulate_decode_pool(
    ready_ms: np.ndarray,
    context: np.ndarray,
    steps: np.ndarray,
    blocks: np.ndarray,
    cost: LLMCost,
    replicas: int,
    num_blocks: int,
    max_seqs: int,
) -> tuple[DecodeLog, np.ndarray, list[DecodeReplica]]:
    """Decode `steps[i]` tokens of request i, whose KV cache (`context[i]` tokens at its first step, needing
    `blocks[i]` blocks at its last) arrives at `ready_ms[i]`: (records, replica of each request, replicas)."""
    n = len(ready_ms)
    log = DecodeLog(n)
    pool = [DecodeReplica(cost, num_blocks, max_seqs, log) for _ in range(replicas)]
    replica_of = np.full(n, -1, dtype=np.int64)
    outstanding = [0] * replicas
    due = [math.inf] * replicas  # each replica's earliest possible finish; the heap holds it (and stale ones)
    heap = [(math.inf, r) for r in range(replicas)]
    ready, need, first_context, todo = (a.tolist() for a in (ready_ms, blocks, context, steps))
    for request in np.argsort(ready_ms, kind="stable").tolist():
        at = ready[request]
        while heap[0][0] < at:  # replicas where a finish may fall before the arrival: walk them to it
            bound, r = heapq.heappop(heap)
            if bound != due[r]:
                continue  # stale
            pool[r].advance(at)
            outstanding[r] = pool[r].outstanding()
            due[r] = pool[r].earliest_finish_ms()
            heapq.heappush(heap, (due[r], r))
        target = outstanding.index(min(outstanding))  # the fewest requests; ties to the lowest index
        replica = pool[target]
        replica.advance(at)  # its steps before the arrival run without it
        replica.enqueue(request, at, need[request], first_context[request], todo[request])
        replica_of[request] = target
        outstanding[target] = replica.outstanding()
        due[target] = replica.earliest_finish_ms()
        heapq.heappush(heap, (due[target], target))
    for replica in pool:
        replica.advance(math.inf)
        replica.close_run()
    return log, replica_of, pool


def decode_iterations(pool: list[DecodeReplica], first_replica: int) -> pd.DataFrame:
    """The decode pool's steps as iteration rows (ITERATION_COLUMNS), replicas numbered from `first_replica`."""
    runs = [(first_replica + r, *run) for r, replica in enumerate(pool) for run in replica.runs]
    if not runs:
        return pd.DataFrame({c: pd.Series(dtype=float if c.endswith("_ms") else np.int64) for c in ITERATION_COLUMNS})
    replica, lengths, batch, waiting, used = (np.asarray(column, dtype=np.int64) for column in zip(*runs))
    ends = np.concatenate([np.frombuffer(r.ends, dtype=float) for r in pool])
    durations = np.concatenate([np.frombuffer(r.durations, dtype=float) for r in pool])
    b = np.repeat(batch, lengths)
    zeros = np.zeros(len(b), dtype=np.int64)
    return pd.DataFrame(
        {
            "time_ms": ends - durations,
            "duration_ms": durations,
            "replica": np.repeat(replica, lengths),
            "batch_size": b,
            "running": b,
            "waiting": np.repeat(waiting, lengths),
            "kv_blocks_used": np.repeat(used, lengths),
            "prefill_tokens": zeros,
            "decode_tokens": b,
            "preempted": zeros,
        }
    )


def decode_token_gaps(
    pool: list[DecodeReplica], replica_of: np.ndarray, log: DecodeLog, first_token_ms: np.ndarray, steps: np.ndarray
) -> np.ndarray:
    """Every gap between a decoded request's tokens, request after request (`steps[i]` of request i): from
    its first token (the end of its transfer) to its first decode step's end, then step to step — slices of
    its replica's step-to-step gaps, copied a slice at a time."""
    decoded = np.flatnonzero(steps > 0)
    if not len(decoded):
        return np.empty(0)
    step_ends = [np.frombuffer(r.ends, dtype=float) for r in pool]
    offsets = np.concatenate(([0], np.cumsum([len(e) for e in step_ends])[:-1])).astype(np.int64)
    all_ends = np.concatenate(step_ends)
    first = offsets[replica_of[decoded]] + log.first_step[decoded]
    to_first_step = all_ends[first] - first_token_ms[decoded]
    step_gaps = np.diff(all_ends)  # step_gaps[k - 1]: end of step k minus end of step k - 1
    counts = steps[decoded]
    gaps = np.empty(int(counts.sum()))
    at = 0
    for k, count, first_ms in zip(first.tolist(), counts.tolist(), to_first_step.tolist()):
        gaps[at] = first_ms
        gaps[at + 1 : at + count] = step_gaps[k : k + count - 1]
        at += count
    return gaps
