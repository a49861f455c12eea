"""The batched model stage without an event loop, where no state beyond the queue decides anything.

With FIFO queues, identical servers, no queue limit and no autoscaling, the Triton-style batcher of
sim/engine/model_stage.py forms one batch at a time from the head of its queue, so each batch is a
contiguous run of the sorted ready times and its dispatch time follows from three numbers: when the
previous batch left, when the first server frees, and when the head request is ready (then the wait for a
preferred size, the queue delay, or the end of traffic). This module walks batch by batch, reproducing the
SimPy path exactly: same batches, start times, servers and service draws in the same order.

Tie rule (instants that coincide exactly): a server that evaluates the queue at time t sees every request
whose ready time is ≤ t; simultaneous dispatches of different replica queues draw their service times in
replica order. SimPy orders such coincidences by when their events were scheduled, so constant-time
scenarios where a completion lands exactly on an arrival may differ; at the end of traffic (when every
waiting batch is flushed) the SimPy order is reproduced.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from dataclasses import dataclass

import numpy as np

from sim.spec.batch_cost import AffineCost, ScaledSingle, SpedUp
from sim.spec.batching import DynamicBatching, NoBatching, StaticBatching
from sim.spec.distributions import Constant, Exponential, Gamma, Lognormal, Uniform

ROUTINGS = ("shared_queue", "round_robin", "random")
# numpy draws these one value after another from the bit stream, so a bulk draw of k equals k single draws.
_BULK_SAFE = (Constant, Exponential, Lognormal, Gamma, Uniform)


def recursion_applies(policy, routing: str, max_queue_size: int | None, autoscaling, cost) -> bool:
    """Whether the stage's outcome is a function of the ready times and service draws alone."""
    return (
        isinstance(policy, (NoBatching, StaticBatching, DynamicBatching))
        and routing in ROUTINGS
        and max_queue_size is None
        and autoscaling is None
        and not cost.depends_on_busy_instances
    )


@dataclass(frozen=True)
class StageBatches:
    """Per request (in input order): start, batch service time, batch id, batch size, replica, instance."""

    start_ms: np.ndarray
    service_ms: np.ndarray
    batch_id: np.ndarray
    batch_size: np.ndarray
    replica: np.ndarray
    instance: np.ndarray


class _ServiceDraws:
    """Batch service times in dispatch order, bit-identical to one `cost.sample_ms(size, rng)` per batch.

    Costs that are a per-size multiple of one draw from a bulk-safe distribution are drawn in chunks; a
    chunk never exceeds the fewest batches still to come, so the generator ends where per-batch calls
    would have left it. Other costs (measured profiles, empirical samples) are drawn one call per batch.
    """

    def __init__(self, cost, rng: np.random.Generator, max_batch: int) -> None:
        self.cost = cost
        self.rng = rng
        self.max_batch = max_batch
        self.divisors: list[float] = []
        inner = cost
        while isinstance(inner, SpedUp):
            self.divisors.insert(0, inner.speedup)
            inner = inner.inner
        self.bulk = None  # (rng, k) -> k base draws
        self.constant: list[float] | None = None  # a cost that draws nothing: its value per batch size
        self.multiplier = [0.0] * (max_batch + 1)
        if isinstance(inner, ScaledSingle) and isinstance(inner.single, _BULK_SAFE):
            self.bulk = inner.single.sample
            self.multiplier = [inner._scale(size) for size in range(max_batch + 1)]
        elif isinstance(inner, AffineCost):
            spec = inner.spec
            if spec.cv == 0 or (spec.base_ms == 0 and spec.per_item_ms == 0):
                self.constant = [inner.mean_ms(size) for size in range(max_batch + 1)]
            else:
                shape = 1.0 / spec.cv**2
                # numpy's gamma(shape, scale) is scale × standard_gamma(shape), bit for bit.
                self.bulk = lambda rng, k: rng.standard_gamma(shape, size=k)
                self.multiplier = [inner.mean_ms(size) / shape for size in range(max_batch + 1)]
        self.base: list[float] = []
        self.used = 0

    def refill(self, requests_left: int) -> None:
        """Draw as many base values as there are surely batches left (each holds at most max_batch)."""
        k = max(1, -(-requests_left // self.max_batch))
        self.base = self.bulk(self.rng, k).tolist()
        self.used = 0


def solve_batches(
    ready_ms: np.ndarray,
    cost,
    policy,
    replicas: int,
    instances: int,
    routing: str,
    service_rng: np.random.Generator,
    routing_rng: np.random.Generator,
) -> StageBatches:
    """The model stage's batches, replicas and start times, as the SimPy path computes them."""
    n = len(ready_ms)
    order = np.argsort(ready_ms, kind="stable")
    ready_sorted = ready_ms[order]
    clock = _feed_clock(ready_sorted)
    done_ms = float(clock[-1]) if n else 0.0
    if routing == "shared_queue":
        queue_of = np.zeros(n, dtype=np.int64)
        queues, servers = 1, replicas * instances
    else:
        if routing == "random":
            # The same draw, in the same order, as the SimPy router's.
            queue_of = routing_rng.integers(replicas, size=n)
        else:
            queue_of = np.arange(n) % replicas
        if replicas == 1:
            queue_of = np.zeros(n, dtype=np.int64)
        queues, servers = replicas, instances
    members = [np.flatnonzero(queue_of == q) for q in range(queues)]
    last_queue = int(queue_of[-1]) if n else 0
    solvers = [
        _Queue(clock[m].tolist(), ready_sorted[m].tolist(), servers, policy, done_ms, q == last_queue)
        for q, m in enumerate(members)
    ]
    draws = _ServiceDraws(cost, service_rng, policy.max_batch_size)
    log = _walk(solvers, draws, n)

    start = np.empty(n)
    service = np.empty(n)
    batch_id = np.empty(n, dtype=np.int64)
    batch_size = np.empty(n, dtype=np.int64)
    server = np.empty(n, dtype=np.int64)
    b_queue, b_size, b_start, b_service, b_server = (np.asarray(column) for column in log)
    b_id = np.arange(len(b_size), dtype=np.int64)
    for q, m in enumerate(members):
        mine = b_queue == q if queues > 1 else slice(None)
        sizes = b_size[mine]
        # A queue's batches are consecutive runs of its sorted requests, dispatched in that order.
        target = order[m]
        start[target] = np.repeat(b_start[mine], sizes)
        service[target] = np.repeat(b_service[mine], sizes)
        batch_id[target] = np.repeat(b_id[mine], sizes)
        batch_size[target] = np.repeat(sizes, sizes)
        server[target] = np.repeat(b_server[mine], sizes)
    if routing == "shared_queue":
        replica, instance = server // instances, server % instances
    else:
        replica, instance = np.empty(n, dtype=np.int64), server
        replica[order] = queue_of
    return StageBatches(start, service, batch_id, batch_size, replica, instance)


def _walk(solvers: list["_Queue"], draws: _ServiceDraws, n: int) -> tuple[list, list, list, list, list]:
    """Commit batches in global dispatch order (service draws are shared by all queues)."""
    b_queue: list[int] = []
    b_size: list[int] = []
    b_start: list[float] = []
    b_service: list[float] = []
    b_server: list[int] = []
    left = n
    if len(solvers) == 1 and draws.divisors == [] and (draws.bulk is not None or draws.constant is not None):
        left = _walk_one_queue(solvers[0], draws, left, b_size, b_start, b_service, b_server)
        b_queue = [0] * len(b_size)
    bulk, multiplier, divisors, constant = draws.bulk, draws.multiplier, draws.divisors, draws.constant
    cost, rng = draws.cost, draws.rng
    heap = []
    for q, solver in enumerate(solvers):
        key = solver.plan(q)
        if key is not None:
            heap.append(key)
    heapq.heapify(heap)
    single = len(solvers) == 1
    while heap:
        key = heap[0]
        q = key[-1]
        solver = solvers[q]
        size, d = solver.size, solver.dispatch_ms
        if constant is not None:
            duration = constant[size]
        elif bulk is not None:
            if draws.used == len(draws.base):
                draws.refill(left)
            duration = draws.base[draws.used] * multiplier[size]
            draws.used += 1
        else:
            duration = cost.sample_ms(size, rng, 1)
        for divisor in divisors:
            duration = duration / divisor
        b_queue.append(q)
        b_size.append(size)
        b_start.append(d)
        b_service.append(duration)
        b_server.append(solver.server)
        left -= size
        solver.commit(duration)
        key = solver.plan(q)
        if key is None:
            heapq.heappop(heap)
        elif single:
            heap[0] = key
        else:
            heapq.heapreplace(heap, key)
    return b_queue, b_size, b_start, b_service, b_server


def _walk_one_queue(queue: "_Queue", draws: _ServiceDraws, left: int, b_size: list, b_start: list,
                    b_service: list, b_server: list) -> int:
    """`_Queue.plan` + commit inlined for one queue, up to the end of traffic (where `plan` takes over)."""
    clock, ready, free, n = queue.clock, queue.ready, queue.free, queue.n
    done_ms, delay_ms, max_batch, now_sizes = queue.done_ms, queue.delay_ms, queue.max_batch, queue.now_sizes
    trigger_offset = queue.trigger - 1
    # Counting the queue stops at max_batch: batch_now saturates there, so no decision looks further.
    s, previous = queue.head, queue.previous_ms
    constant, multiplier = draws.constant, draws.multiplier
    base, used = draws.base, draws.used
    heapreplace = heapq.heapreplace
    while s < n:
        free_at, server = free[0]
        t0 = previous if previous > free_at else free_at
        if clock[s] > t0:
            t0 = clock[s]
        if t0 >= done_ms:
            break
        queued = bisect_right(clock, t0, s, s + max_batch if s + max_batch < n else n) - s
        size = max_batch if queued >= max_batch else now_sizes[queued]
        if size:
            d = t0
        else:
            deadline = None if delay_ms is None else ready[s] + delay_ms
            if deadline is not None and deadline <= t0:
                d = t0
                size = queued
            else:
                d = done_ms
                j = s + trigger_offset
                if j < n and clock[j] <= d:
                    d = clock[j]
                if deadline is not None:
                    wake = t0 + (deadline - t0)
                    if wake < deadline:
                        wake = deadline
                    if wake < d:
                        d = wake
                if d >= done_ms:
                    break
                queued = bisect_right(clock, d, s, s + max_batch if s + max_batch < n else n) - s
                size = (max_batch if queued >= max_batch else now_sizes[queued]) or queued
        if constant is not None:
            duration = constant[size]
        else:
            if used == len(base):
                draws.refill(left)
                base, used = draws.base, 0
            duration = base[used] * multiplier[size]
            used += 1
        b_size.append(size)
        b_start.append(d)
        b_service.append(duration)
        b_server.append(server)
        heapreplace(free, (d + duration, server))
        s += size
        left -= size
        previous = d
    queue.head, queue.previous_ms = s, previous
    draws.used = used
    return left


class _Queue:
    """One FIFO queue with its identical servers (a heap of (free at, server), idle ones ordered as the
    SimPy idle list: longest idle first, then creation order)."""

    def __init__(self, clock: list[float], ready: list[float], servers: int, policy, done_ms: float,
                 gets_last_arrival: bool) -> None:
        self.clock = clock  # when the feed process appended each request (the SimPy clock at its arrival)
        self.ready = ready
        self.n = len(clock)
        self.free = [(0.0, k) for k in range(servers)]
        self.head = 0
        self.previous_ms = 0.0
        self.done_ms = done_ms
        self.gets_last_arrival = gets_last_arrival
        self.max_batch = policy.max_batch_size
        self.now_sizes = [policy.batch_now(m) for m in range(self.max_batch)]
        self.trigger = next((m for m in range(1, self.max_batch + 1) if policy.batch_now(m)), self.max_batch)
        if isinstance(policy, DynamicBatching):
            self.delay_ms = policy.max_queue_delay_ms
        elif isinstance(policy, StaticBatching):
            self.delay_ms = policy.timeout_ms
        else:
            self.delay_ms = 0.0
        # A former woken at the end of traffic, and its place then: (server, (phase, rank)).
        self.deferred: tuple[int, tuple[int, int]] | None = None
        self.size = 0
        self.dispatch_ms = 0.0
        self.server = 0

    def _batch_now(self, queued: int) -> int:
        return self.max_batch if queued >= self.max_batch else self.now_sizes[queued]

    def plan(self, q: int) -> tuple | None:
        """Work out the next batch (size, dispatch time, server); return its global order key."""
        s = self.head
        if s >= self.n:
            return None
        clock, done_ms, max_batch, n = self.clock, self.done_ms, self.max_batch, self.n
        free_at, server = self.free[0]
        t0 = self.previous_ms
        if free_at > t0:
            t0 = free_at
        if clock[s] > t0:
            t0 = clock[s]
        queued = bisect_right(clock, t0, s, s + max_batch if s + max_batch < n else n) - s
        size = self._batch_now(queued)
        rank = 0  # how this dispatch resumes at the end-of-traffic instant (see the order key below)
        if size:
            d = t0
        else:
            deadline = None if self.delay_ms is None else self.ready[s] + self.delay_ms
            if t0 >= done_ms or (deadline is not None and deadline <= t0):
                d = t0
                size = min(queued, self.max_batch)
            else:
                # This server waits for its batch to form (the SimPy `former`).
                d = done_ms
                woken_by_last = False
                j = s + self.trigger - 1
                if j < self.n and clock[j] <= d:
                    d = clock[j]
                    woken_by_last = d == done_ms
                if deadline is not None:
                    wake = t0 + (deadline - t0)
                    if wake < deadline:  # SimPy's next wait of (deadline - now) lands on it exactly
                        wake = deadline
                    if wake < d:
                        d = wake
                queued = bisect_right(clock, d, s, s + max_batch if s + max_batch < n else n) - s
                size = self._batch_now(queued) or min(queued, self.max_batch)
                if d == done_ms:
                    # At the end of traffic the feed wakes the former (first if the last arrival completed
                    # its batch) and every idle server. A former waiting on its queue delay resumes through
                    # a condition event, after all of them; one with no delay resumes at its wake-up's turn.
                    if deadline is None and woken_by_last:
                        late = None
                        rank = -1  # it resumes before anything else at that instant
                    elif deadline is None:
                        late = (1, 0)
                    else:
                        late = (2, 0 if woken_by_last else 1)
                    if late is not None:
                        self.deferred = (server, late)
                        if self._first_idle_other() is not None:
                            # An idle server resumes before the former and takes the batch.
                            heapq.heapreplace(self.free, (done_ms, server))
                            free_at, server = self.free[0]
                            rank = 1
        self.size, self.dispatch_ms, self.server = size, d, server
        if d != done_ms:
            return (d, 0, 0, q)
        if self.deferred is not None and self.deferred[0] == server:
            return (d, *self.deferred[1], q)
        if rank == -1 or rank == 0 and self.gets_last_arrival and clock[s] == done_ms and self.previous_ms < done_ms and free_at < done_ms:
            return (d, 0, 0, q)
        return (d, 1, 0, q)

    def _first_idle_other(self) -> int | None:
        """Another server idle before the end of traffic, if any (the heap's second smallest)."""
        free, done_ms = self.free, self.done_ms
        best = None
        for i in (1, 2):
            if i < len(free) and free[i][0] < done_ms and (best is None or free[i] < best):
                best = free[i]
        return None if best is None else best[1]

    def commit(self, duration_ms: float) -> None:
        d = self.dispatch_ms
        heapq.heapreplace(self.free, (d + duration_ms, self.server))
        self.head += self.size
        self.previous_ms = d


def _feed_clock(ready_sorted: np.ndarray) -> np.ndarray:
    """The SimPy clock when the feed appends each request: now + (ready − now), which rounds away from
    `ready` in rare cases (and then carries on to the following arrivals until it lands back on them)."""
    n = len(ready_sorted)
    clock = ready_sorted.copy()
    if n == 0:
        return clock
    previous = np.concatenate(([0.0], ready_sorted[:-1]))
    moved = ready_sorted > previous
    stepped = np.where(moved, previous + (ready_sorted - previous), previous)
    bad = np.flatnonzero(stepped != ready_sorted)
    i = 0
    for b in bad.tolist():
        if b < i:
            continue
        now = float(clock[b - 1]) if b > 0 else 0.0
        i = b
        while i < n:
            t = float(ready_sorted[i])
            now = now + (t - now) if t > now else now
            clock[i] = now
            i += 1
            if now == t:
                break
    return clock
