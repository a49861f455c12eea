"""Per-replica queues behind a load-aware router (least_outstanding, power_of_two) without an event loop.

The router looks at each replica's outstanding requests (queued + in service) when a request arrives, so the
queues cannot be walked one after another as round_robin's are. Here every replica's queue is a fleet walk
(sim/engine/queue_walk.py) that grows as requests are routed to it: before each arrival, each queue is walked
up to that instant (only those that can do something before it), the router reads the outstanding counts,
and the request joins the chosen queue. A queue walked up to an arrival never commits a batch that a later
arrival could change, so this reproduces the SimPy stage exactly (tested request for request), each replica
drawing from its own service stream as the SimPy stage does. The end of traffic flushes every queue in
SimPy's order (batch ids follow it, as for round_robin).
"""

from __future__ import annotations

import math

import numpy as np

from sim.engine import compiled
from sim.engine import fleet_kernel as k
from sim.engine.queue_walk import Batches, QueueWalk
from sim.engine.routing import Router
from sim.engine.service_draws import ServiceDraws
from sim.spec.batching import BatchRule


def walk_routed(
    clock: np.ndarray,
    ready: np.ndarray,
    rule: BatchRule,
    draws: list[ServiceDraws],
    instances: int,
    router: Router,
) -> tuple[np.ndarray, list[tuple[np.ndarray, Batches]], list[list]]:
    """`clock` / `ready` sorted by ready time. Returns each request's replica and, per replica, its members
    (positions in the sorted order) with its batches and the SimPy order keys of those sent at the end."""
    n = len(clock)
    replicas = router.replicas
    done_ms = float(clock[-1]) if n else 0.0
    loops = compiled.loops(n)
    empty = np.zeros(0)
    queues = [QueueWalk(empty, empty, rule, draws[r], loops, done_ms) for r in range(replicas)]
    for queue in queues:
        queue.add_servers(range(instances), 0.0)
        queue.draw_ahead = 256 * rule.max_batch_size  # its own stream: draw 256 batches at a time
    members: list[list[int]] = [[] for _ in range(replicas)]
    choice = np.empty(n, dtype=np.int64)
    next_at = [math.inf] * replicas  # with its queue as it is, nothing happens at replica r before this
    outstanding = [0] * replicas
    clock_list, ready_list = clock.tolist(), ready.tolist()
    final = [i for i in range(n) if clock_list[i] == done_ms]
    for i in range(n):
        now = clock_list[i]
        for r in range(replicas):
            queue = queues[r]
            if now > next_at[r]:
                next_at[r] = _walk_to(queue, now)
            outstanding[r] = _outstanding(queue, now)
        r = router.choose(outstanding)
        choice[i] = r
        members[r].append(i)
        queues[r].append(now, ready_list[i])
        next_at[r] = -math.inf  # a new request can send a batch at once
    ranks = {i: rank for rank, i in enumerate(final)}
    out, keys = [], []
    for r, queue in enumerate(queues):
        while True:
            status = queue.advance(math.inf)
            if status == k.END_OF_TRAFFIC or (status == k.STALLED and not queue.flushed):
                queue.end_of_traffic([ranks[i] for i in members[r] if i in ranks], r)
                continue
            break
        out.append((np.asarray(members[r], dtype=np.int64), queue.batches()))
        keys.append(queue.order_at_end)
    return choice, out, keys


def _walk_to(queue: QueueWalk, now: float) -> float:
    """Walk a queue up to `now` (exclusive); when it can next do something on its own."""
    status = queue.advance(now)
    if status == k.REACHED:
        return float(queue.fs[k.NEXT_AT])
    return math.inf  # every request it has is sent (the end of traffic is after the last arrival)


def _outstanding(queue: QueueWalk, now: float) -> int:
    """Requests queued or in service at the replica at `now` (what SimPy's router counts)."""
    end_ms, sizes = queue.end_ms, queue.last_size
    in_service = 0
    for s in range(len(end_ms)):
        if end_ms[s] > now:
            in_service += int(sizes[s])
    return queue.n - queue.head + in_service
