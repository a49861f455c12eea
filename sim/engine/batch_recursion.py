"""The batched model stage without an event loop, where no state beyond the queue decides anything.

With FIFO queues, identical servers, no queue limit and no autoscaling, the Triton-style batcher of
sim/engine/model_stage.py forms one batch at a time from the head of its queue, so each batch is a
contiguous run of the sorted ready times and its dispatch time follows from three numbers: when the
previous batch left, when the first server frees, and when the head request is ready (then the wait for a
batch that can leave at once, the queue delay, or the end of traffic). The fleet walk
(sim/engine/queue_walk.py) walks each queue batch by batch, reproducing the SimPy path exactly: same
batches, start times, servers and service draws in the same order. A shared queue is one walk over every
server; routed queues (round_robin, random) are one walk each, over the replica's instances and from the
replica's own service stream, so they never wait on one another. Load-aware routing (least_outstanding,
power_of_two) grows each replica's walk as the router chooses (sim/engine/routed_walk.py).

Coincident instants follow SimPy's order where it is cheap to know: the end of traffic (every waiting
batch flushed) is replayed in SimPy's wake-up order. Tie rules where it is not (tested): a server that
frees at t sees every request ready at t (SimPy orders a completion and an arrival at the same instant by
when each was scheduled); with requests ready at the same instant the batches, times and draws match but
which idle instance of a shared queue takes one may differ. Continuous times make both ties probability 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.engine.queue_walk import walk_fixed
from sim.engine.routed_walk import walk_routed
from sim.engine.routing import ROUTINGS as ROUTED, Router
from sim.engine.service_draws import ServiceDraws
from sim.streams import replica_streams

ROUTINGS = ("shared_queue", *ROUTED)


def recursion_applies(policy, routing: str, max_queue_size: int | None, autoscaling, cost) -> bool:
    """Whether the fleet walk reproduces the stage: any routing (autoscaling: the one shared queue), no
    queue limit, a cost that depends on neither the busy instances nor the time, batches that leave on time
    (a batcher's timer lateness is drawn in the event loop). Only the SimPy stage runs the others."""
    return (
        routing in ROUTINGS
        and (autoscaling is None or routing == "shared_queue")
        and max_queue_size is None
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


def service_in_ready_order(ready_ms: np.ndarray, cost, rng: np.random.Generator) -> np.ndarray:
    """Single-request service times, drawn in the order requests are served FCFS (by ready time), as the
    SimPy path draws them."""
    order = np.argsort(ready_ms, kind="stable")
    service = np.empty(len(ready_ms))
    service[order] = ServiceDraws(cost, rng, 1).singles(len(ready_ms))
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
    """The model stage's batches, replicas and start times, as the SimPy path computes them. Batch ids
    number the batches by dispatch time (queue by queue where two leave at one instant)."""
    n = len(ready_ms)
    order = np.argsort(ready_ms, kind="stable")
    ready_sorted = ready_ms[order]
    clock = _feed_clock(ready_sorted)
    done_ms = float(clock[-1]) if n else 0.0
    rule = policy.rule()
    if routing in ("least_outstanding", "power_of_two"):
        router = Router(routing, replicas, routing_rng, n)
        draws = [ServiceDraws(cost, rng, rule.max_batch_size) for rng in replica_streams(service_rng, replicas)]
        queue_of, parts, keys = walk_routed(clock, ready_sorted, rule, draws, instances, router)
        return batches_per_request(order, n, parts, keys, routing, instances, queue_of)
    if routing == "shared_queue":
        queue_of = np.zeros(n, dtype=np.int64)
        queues, servers, streams = 1, replicas * instances, [service_rng]
    else:
        # The same router (and so the same draws, in the same order) as the SimPy path's.
        queue_of = Router(routing, replicas, routing_rng, n).fixed_assignment(n)
        queues, servers, streams = replicas, instances, replica_streams(service_rng, replicas)
    final = clock == done_ms if n else np.zeros(0, dtype=bool)
    final_rank = np.cumsum(final) - 1  # place among the arrivals at the last instant, in the feed's order
    parts, keys = [], []
    for q in range(queues):
        members = np.flatnonzero(queue_of == q) if queues > 1 else np.arange(n)
        draws = ServiceDraws(cost, streams[q], rule.max_batch_size)
        ranks = final_rank[members][final[members]].tolist()
        batches, at_end = walk_fixed(clock[members], ready_sorted[members], rule, draws, servers, done_ms, ranks, q)
        parts.append((members, batches))
        keys.append(at_end)
    return batches_per_request(order, n, parts, keys, routing, instances, queue_of)


def batches_per_request(order, n, parts, keys, routing, instances, queue_of) -> StageBatches:
    """Each queue's batches (consecutive runs of its sorted requests, in dispatch order) -> per request.
    Batch ids number every queue's batches by dispatch time as SimPy does."""
    start = np.empty(n)
    service = np.empty(n)
    batch_id = np.empty(n, dtype=np.int64)
    batch_size = np.empty(n, dtype=np.int64)
    server = np.empty(n, dtype=np.int64)
    starts = np.concatenate([b.start_ms for _, b in parts]) if parts else np.zeros(0)
    # Ties: before the end of traffic, by the arrival that woke the server (the batch's first request);
    # at the end, by SimPy's wake-up order there.
    tie = np.zeros((len(starts), 3), dtype=np.int64)
    offset = 0
    for (members, b), at_end in zip(parts, keys):
        heads = np.concatenate(([0], np.cumsum(b.size)[:-1])).astype(np.int64) if len(b.size) else np.zeros(0, int)
        tie[offset : offset + len(b.size), 0] = -1
        tie[offset : offset + len(b.size), 1] = members[heads]
        for batch, key in at_end:
            tie[offset + batch] = key
        offset += len(b.size)
    rank = np.arange(len(starts), dtype=np.int64)  # one queue: its dispatch order
    if len(parts) > 1:
        rank[np.lexsort((np.arange(len(starts)), tie[:, 2], tie[:, 1], tie[:, 0], starts))] = np.arange(len(starts))
    first = 0
    for members, b in parts:
        target = order[members]
        sizes = b.size
        start[target] = np.repeat(b.start_ms, sizes)
        service[target] = np.repeat(b.service_ms, sizes)
        batch_id[target] = np.repeat(rank[first : first + len(sizes)], sizes)
        batch_size[target] = np.repeat(sizes, sizes)
        server[target] = np.repeat(b.server, sizes)
        first += len(sizes)
    if routing == "shared_queue":
        replica, instance = server // instances, server % instances
    else:
        replica, instance = np.empty(n, dtype=np.int64), server
        replica[order] = queue_of
    return StageBatches(start, service, batch_id, batch_size, replica, instance)


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
