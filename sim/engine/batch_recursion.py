"""The batched model stage without an event loop, where no state beyond the queue decides anything.

With FIFO queues, identical servers, no queue limit and no autoscaling, the Triton-style batcher of
sim/engine/model_stage.py forms one batch at a time from the head of its queue, so each batch is a
contiguous run of the sorted ready times and its dispatch time follows from three numbers: when the
previous batch left, when the first server frees, and when the head request is ready (then the wait for a
preferred size, the queue delay, or the end of traffic). This module walks batch by batch, reproducing the
SimPy path exactly: same batches, start times, servers and service draws in the same order.

Coincident instants follow SimPy's order where it is cheap to know: the end of traffic (every waiting
batch flushed) is replayed in SimPy's wake-up order, and simultaneous dispatches on different queues draw
their service times in the order SimPy resumes them. Tie rules where it is not (tested): a server that
frees at t sees every request ready at t (SimPy orders a completion and an arrival at the same instant by
when each was scheduled); with requests ready at the same instant the batches, times and draws match but
which idle instance of a shared queue takes one may differ. Continuous times make both ties probability 0.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass

import numpy as np

from sim.engine import compiled
from sim.engine.routing import FIXED_ROUTINGS, Router
from sim.spec.batch_cost import AffineCost, ScaledSingle, SpedUp
from sim.spec.batching import DynamicBatching, NoBatching, StaticBatching
from sim.spec.distributions import Constant, Exponential, Gamma, Lognormal, Uniform

ROUTINGS = ("shared_queue", *FIXED_ROUTINGS)
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
        and not cost.depends_on_time
        and getattr(policy, "dispatch_overshoot_ms", None) is None  # timer lateness: drawn in the event loop
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

    def singles(self, n: int) -> np.ndarray:
        """`n` batches of one, drawn in one go (the FCFS fast path)."""
        if self.constant is not None:
            values = np.full(n, self.constant[1])
        elif self.bulk is not None:
            values = self.bulk(self.rng, n) * self.multiplier[1]
        else:
            return np.array([self.cost.sample_ms(1, self.rng, 1) for _ in range(n)], dtype=float)
        for divisor in self.divisors:
            values = values / divisor
        return values

    def next(self, size: int, requests_left: int) -> float:
        """The service time of the next batch sent, of `size` requests."""
        if self.constant is not None:
            duration = self.constant[size]
        elif self.bulk is not None:
            if self.used == len(self.base):
                self.refill(requests_left)
            duration = self.base[self.used] * self.multiplier[size]
            self.used += 1
        else:
            duration = self.cost.sample_ms(size, self.rng, 1)
        for divisor in self.divisors:
            duration = duration / divisor
        return duration

    def refill(self, requests_left: int) -> None:
        """Draw as many base values as there are surely batches left (each holds at most max_batch)."""
        k = max(1, -(-requests_left // self.max_batch))
        self.base = self.bulk(self.rng, k).tolist()
        self.used = 0


def service_in_ready_order(ready_ms: np.ndarray, cost, rng: np.random.Generator) -> np.ndarray:
    """Single-request service times, drawn in the order requests are served FCFS (by ready time), as the
    SimPy path draws them."""
    order = np.argsort(ready_ms, kind="stable")
    service = np.empty(len(ready_ms))
    service[order] = _ServiceDraws(cost, rng, 1).singles(len(ready_ms))
    return service


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
        # The same router (and so the same draws, in the same order) as the SimPy path's.
        queue_of = Router(routing, replicas, routing_rng, n).fixed_assignment(n)
        queues, servers = replicas, instances
    members = [np.flatnonzero(queue_of == q) for q in range(queues)]
    draws = _ServiceDraws(cost, service_rng, policy.max_batch_size)
    lazy = _compiled_walk(queues, draws)  # the kernel reads the arrays; Python lists only for what it leaves
    solvers = [
        _Queue(q, clock[m], ready_sorted[m], m, servers, policy, done_ms, lazy=lazy) for q, m in enumerate(members)
    ]
    final_arrivals = queue_of[clock == done_ms].tolist() if n else []
    log = _walk(solvers, draws, n, final_arrivals)
    del solvers, clock, ready_sorted  # their lists and copies are the walk's, not the result's

    start = np.empty(n)
    service = np.empty(n)
    batch_id = np.empty(n, dtype=np.int64)
    batch_size = np.empty(n, dtype=np.int64)
    server = np.empty(n, dtype=np.int64)
    b_queue, b_size, b_start, b_service, b_server = log
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


_LOG_DTYPES = (np.int64, np.int64, float, float, np.int64)  # queue, size, start, service, server


def _one_queue_walk(queues: int, draws: _ServiceDraws) -> bool:
    """A single queue whose service draws come in bulk or are constant: walked by `_walk_one_queue`."""
    return queues == 1 and not draws.divisors and (draws.bulk is not None or draws.constant is not None)


def _compiled_walk(queues: int, draws: _ServiceDraws) -> bool:
    return _one_queue_walk(queues, draws) and compiled.AVAILABLE


def _walk(solvers: list[_Queue], draws: _ServiceDraws, n: int, final_arrivals: list[int]) -> tuple:
    """Commit batches in global dispatch order (service draws are shared by all queues): those before the
    end of traffic, those at that instant (in SimPy's order of wake-ups), then the ones after it. Returns
    the batches' (queue, size, start, service, server) as arrays."""
    log: tuple[list, list, list, list, list] = ([], [], [], [], [])
    chunk = None
    left = n
    if _compiled_walk(len(solvers), draws):
        left, chunk = _walk_one_queue_compiled(solvers[0], draws, left)
        solvers[0].materialize(solvers[0].head)
    elif _one_queue_walk(len(solvers), draws):
        left = _walk_one_queue(solvers[0], draws, left, *log[1:])
        log[0].extend([0] * len(log[1]))
    done_ms = solvers[0].done_ms
    left = _walk_heap(solvers, draws, left, log, before_ms=done_ms)
    left = _end_of_traffic(solvers, draws, left, log, final_arrivals)
    _walk_heap(solvers, draws, left, log, before_ms=math.inf)
    columns = tuple(np.asarray(column, dtype=dtype) for column, dtype in zip(log, _LOG_DTYPES))
    if chunk is not None:
        columns = tuple(np.concatenate([a, b]) for a, b in zip(chunk, columns))
    return columns


def _walk_heap(solvers: list[_Queue], draws: _ServiceDraws, left: int, log: tuple, before_ms: float) -> int:
    """Commit every batch dispatched before `before_ms`, earliest first (simultaneous ones by `_Queue.key`)."""
    b_queue, b_size, b_start, b_service, b_server = log
    heap = [solver.key for solver in solvers if solver.plan()]
    heapq.heapify(heap)
    heapreplace, heappop, next_duration = heapq.heapreplace, heapq.heappop, draws.next
    while heap and heap[0][0] < before_ms:
        q = heap[0][4]
        solver = solvers[q]
        size = solver.size
        duration = next_duration(size, left)
        b_queue.append(q)
        b_size.append(size)
        b_start.append(solver.dispatch_ms)
        b_service.append(duration)
        b_server.append(solver.server)
        left -= size
        solver.commit(duration)
        if solver.plan():
            heapreplace(heap, solver.key)
        else:
            heappop(heap)
    return left


def _end_of_traffic(
    solvers: list[_Queue], draws: _ServiceDraws, left: int, log: tuple, final_arrivals: list[int]
) -> int:
    """The instant of the last arrival, replayed in SimPy's order. The feed appends the arrivals of that
    instant, each waking its queue's former (once its batch can leave) or else one idle server; then it
    marks traffic done and wakes, queue by queue, every idle server and the former. A former waiting on a
    queue delay resumes through a condition event, so after all of those. Each server woken takes one
    batch of what is left (a preferred size, or up to the max) or, finding nothing, stops."""
    done_ms = solvers[0].done_ms
    formers: list[int | None] = []
    idle: list[list[int]] = []
    queued: list[int] = []
    for solver in solvers:
        waiting = bisect_left(solver.clock, done_ms, solver.head) - solver.head
        free = sorted(entry for entry in solver.free if entry[0] < done_ms)
        former = free.pop(0)[1] if waiting and free else None
        formers.append(former)
        idle.append([server for _, server in free])
        queued.append(waiting)
    through_condition = solvers[0].delay_ms is not None
    woken: list[tuple[int, int]] = []
    late: list[tuple[int, int]] = []
    for q in final_arrivals:
        queued[q] += 1
        if formers[q] is not None:
            if solvers[q]._batch_now(queued[q]):
                (late if through_condition else woken).append((formers[q], q))
                formers[q] = None
        elif idle[q]:
            woken.append((idle[q].pop(0), q))
    for q, solver in enumerate(solvers):
        woken.extend((server, q) for server in idle[q])
        if formers[q] is not None:
            (late if through_condition else woken).append((formers[q], q))
    b_queue, b_size, b_start, b_service, b_server = log
    for server, q in woken + late:
        solver = solvers[q]
        remaining = solver.n - solver.head
        if remaining <= 0:
            continue
        size = solver._batch_now(remaining) or min(remaining, solver.max_batch)
        duration = draws.next(size, left)
        b_queue.append(q)
        b_size.append(size)
        b_start.append(done_ms)
        b_service.append(duration)
        b_server.append(server)
        left -= size
        solver.dispatched(done_ms, size, server, duration)
    return left


def _walk_one_queue_compiled(queue: _Queue, draws: _ServiceDraws, left: int) -> tuple[int, tuple]:
    """`_walk_one_queue` through the numba kernel (sim/engine/compiled.py), refilling draws between calls;
    returns the requests left and the batches as arrays (queue, size, start, service, server)."""
    free_at = np.array([entry[0] for entry in queue.free])
    free_server = np.array([entry[1] for entry in queue.free], dtype=np.int64)
    room = queue.n - queue.head
    out_size = np.empty(room, dtype=np.int64)
    out_start = np.empty(room)
    out_service = np.empty(room)
    out_server = np.empty(room, dtype=np.int64)
    constant = np.asarray(draws.constant if draws.constant is not None else [0.0], dtype=float)
    base, used, count = np.asarray(draws.base[draws.used :], dtype=float), 0, 0
    head, previous = queue.head, queue.previous_ms
    while True:
        head, previous, used, count, finished = compiled.batch_walk(
            queue.clock_array,
            queue.ready_array,
            free_at,
            free_server,
            head,
            previous,
            queue.done_ms,
            0.0 if queue.delay_ms is None else queue.delay_ms,
            queue.delay_ms is not None,
            queue.max_batch,
            np.asarray(queue.now_sizes, dtype=np.int64),
            queue.trigger - 1,
            constant,
            draws.constant is not None,
            base,
            used,
            np.asarray(draws.multiplier, dtype=float),
            out_size,
            out_start,
            out_service,
            out_server,
            count,
        )
        if finished:
            break
        base, used = draws.bulk(draws.rng, max(1, -(-(left - (head - queue.head)) // draws.max_batch))), 0
    left -= head - queue.head
    queue.head, queue.previous_ms = head, previous
    queue.free = list(zip(free_at.tolist(), free_server.tolist()))
    heapq.heapify(queue.free)
    draws.base, draws.used = base[used:].tolist(), 0
    batches = (np.zeros(count, dtype=np.int64), out_size[:count], out_start[:count], out_service[:count])
    return left, (*batches, out_server[:count])


def _walk_one_queue(
    queue: _Queue, draws: _ServiceDraws, left: int, b_size: list, b_start: list, b_service: list, b_server: list
) -> int:
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
    """One FIFO queue with its identical servers: a heap of (free at, server), which orders idle servers as
    the SimPy idle list does (longest idle first, then creation order)."""

    def __init__(
        self,
        index: int,
        clock: np.ndarray,
        ready: np.ndarray,
        arrival_rank: np.ndarray,
        servers: int,
        policy,
        done_ms: float,
        lazy: bool = False,
    ) -> None:
        self.index = index
        self.clock_array, self.ready_array, self.rank_array = clock, ready, arrival_rank
        if not lazy:
            self.materialize(0)
        self.n = len(clock)
        self.free = [(0.0, k) for k in range(servers)]
        self.head = 0
        self.previous_ms = 0.0
        self.done_ms = done_ms
        self.max_batch = policy.max_batch_size
        self.now_sizes = [policy.batch_now(m) for m in range(self.max_batch)]
        self.trigger = next((m for m in range(1, self.max_batch + 1) if policy.batch_now(m)), self.max_batch)
        if isinstance(policy, DynamicBatching):
            self.delay_ms = policy.max_queue_delay_ms
        elif isinstance(policy, StaticBatching):
            self.delay_ms = policy.timeout_ms
        else:
            self.delay_ms = 0.0
        self.size = 0
        self.dispatch_ms = 0.0
        self.server = 0
        # Order among dispatches at one instant: (time, resumes through a condition event, when its wake-up
        # was scheduled, rank of the arrival that woke the server, queue): SimPy resumes processes in the
        # order their wake-ups were scheduled (a queue-delay timeout: when the server began to wait).
        self.key: tuple = ()

    def materialize(self, start: int) -> None:
        """The Python lists the walk reads, from request `start` on (earlier places hold a shared 0: the
        compiled kernel has already walked them, and a list of floats costs 32 bytes a request)."""
        pad = [0] * start
        self.clock = pad + self.clock_array[start:].tolist()  # the SimPy clock when the feed appended each
        self.ready = pad + self.ready_array[start:].tolist()
        self.arrival_rank = pad + self.rank_array[start:].tolist()  # place in the feed's (global) order

    def _batch_now(self, queued: int) -> int:
        return self.max_batch if queued >= self.max_batch else self.now_sizes[queued]

    def plan(self) -> bool:
        """Work out the next batch (size, dispatch time, server); False when the queue is done."""
        s = self.head
        n = self.n
        if s >= n:
            return False
        clock, done_ms, max_batch = self.clock, self.done_ms, self.max_batch
        hi = s + max_batch if s + max_batch < n else n
        free_at, server = self.free[0]
        t0 = self.previous_ms
        if free_at > t0:
            t0 = free_at
        if clock[s] > t0:
            t0 = clock[s]
        queued = bisect_right(clock, t0, s, hi) - s
        size = self._batch_now(queued)
        waker, through_condition, scheduled = s, 0, t0
        if size:
            d = t0
        else:
            deadline = None if self.delay_ms is None else self.ready[s] + self.delay_ms
            if t0 >= done_ms or (deadline is not None and deadline <= t0):
                d = t0
                size = min(queued, max_batch)
            else:
                # This server waits for its batch to form (the SimPy `former`): until a preferred size can
                # leave, the queue delay runs out, or traffic ends (the end is `_end_of_traffic`'s).
                d = done_ms
                j = s + self.trigger - 1
                through_condition = 0 if deadline is None else 1
                if j < n and clock[j] < d:
                    d = clock[j]
                    waker = j
                    scheduled = d
                if deadline is not None:
                    wake = t0 + (deadline - t0)
                    if wake < deadline:  # SimPy's next wait of (deadline - now) lands on it exactly
                        wake = deadline
                    if wake < d:
                        d = wake
                        waker, scheduled = s, t0
                queued = bisect_right(clock, d, s, hi) - s
                size = self._batch_now(queued) or min(queued, max_batch)
        self.size, self.dispatch_ms, self.server = size, d, server
        self.key = (d, through_condition, scheduled, self.arrival_rank[waker], self.index)
        return True

    def commit(self, duration_ms: float) -> None:
        """Send the planned batch (its server is the heap's first)."""
        d = self.dispatch_ms
        heapq.heapreplace(self.free, (d + duration_ms, self.server))
        self.head += self.size
        self.previous_ms = d

    def dispatched(self, dispatch_ms: float, size: int, server: int, duration_ms: float) -> None:
        """Send a batch on a given server (at the end of traffic, where the heap's first may not be it)."""
        self.free = [(dispatch_ms + duration_ms, k) if k == server else (t, k) for t, k in self.free]
        heapq.heapify(self.free)
        self.head += size
        self.previous_ms = dispatch_ms


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
