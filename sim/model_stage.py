"""The replica-bound, batched model stage: SimPy processes for arrivals and model instances.

One long-running process per model instance sleeps on a wake-up event while its queue is empty and does
one timeout per *batch*; one process feeds requests in at their ready times. With shared-queue routing
all instances pull from one central queue (an exact M/M/c for exponential service and no batching);
otherwise a router sends each request to one replica's queue. Without batching, routing or a queue limit
the stage is a plain FCFS multi-server queue and is computed without an event loop (sim/fcfs.py).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import simpy

from sim.batch_cost import BatchCost
from sim.batching import NoBatching
from sim.fcfs import fcfs_servers


@dataclass
class ModelStageResult:
    """Per request (in input order): service start, batch service time, batch, replica, instance, rejected."""

    start_ms: np.ndarray
    service_ms: np.ndarray
    batch_id: np.ndarray
    batch_size: np.ndarray
    replica: np.ndarray
    instance: np.ndarray
    rejected: np.ndarray


class _Queue:
    """A request queue and the instances waiting on it: `idle` ones (queue was empty) and at most one
    `former` (waiting for its batch to fill or its delay to run out, as Triton forms one batch at a time)."""

    def __init__(self) -> None:
        self.items: deque[int] = deque()
        self.idle: deque[simpy.Event] = deque()
        self.former: simpy.Event | None = None
        self.woken = 0

    def wake_idle(self) -> None:
        self.woken += 1
        self.idle.popleft().succeed()


class _Router:
    """Chooses a replica queue per request: round_robin, random, least_outstanding, power_of_two."""

    def __init__(self, routing: str, replicas: int, rng: np.random.Generator, n: int) -> None:
        self.routing = routing
        self.replicas = replicas
        self.outstanding = [0] * replicas
        self.count = 0
        if routing == "random":
            self.draws = rng.integers(replicas, size=n).tolist()
        elif routing == "power_of_two" and replicas > 1:
            first = rng.integers(replicas, size=n)
            second = (first + 1 + rng.integers(replicas - 1, size=n)) % replicas  # distinct from first
            self.draws = list(zip(first.tolist(), second.tolist()))

    def choose(self) -> int:
        k = self.count
        self.count += 1
        if self.replicas == 1:
            return 0
        if self.routing == "round_robin":
            return k % self.replicas
        if self.routing == "random":
            return self.draws[k]
        out = self.outstanding
        if self.routing == "power_of_two":
            a, b = self.draws[k]
            return a if out[a] <= out[b] else b
        # least_outstanding; ties rotate so replica 0 is not favoured.
        return min(range(self.replicas), key=lambda r: (out[r], (r - k) % self.replicas))


def simulate_model_stage(
    ready_ms: np.ndarray,
    cost: BatchCost,
    policy,
    replicas: int,
    instances: int,
    routing: str,
    max_queue_size: int | None,
    service_rng: np.random.Generator,
    routing_rng: np.random.Generator,
) -> ModelStageResult:
    n = len(ready_ms)
    if (
        isinstance(policy, NoBatching)
        and routing == "shared_queue"
        and max_queue_size is None
        and not cost.depends_on_busy_instances
    ):
        return _fcfs_fast_path(ready_ms, cost, replicas, instances, service_rng)

    order = np.argsort(ready_ms, kind="stable").tolist()
    ready = ready_ms.tolist()
    start = [np.nan] * n
    service = [np.nan] * n
    batch_id = [-1] * n
    batch_size = [0] * n
    replica_of = [-1] * n
    instance_of = [-1] * n
    rejected = [False] * n

    env = simpy.Environment()
    shared = routing == "shared_queue"
    queues = [_Queue()] if shared else [_Queue() for _ in range(replicas)]
    router = None if shared else _Router(routing, replicas, routing_rng, n)
    busy = [0] * replicas
    state = {"done": False, "batches": 0}
    max_batch = policy.max_batch_size
    batch_now = policy.batch_now
    deadline_of = policy.deadline_ms
    limit = max_queue_size

    def feed():
        for i in order:
            t = ready[i]
            if t > env.now:
                yield env.timeout(t - env.now)
            r = router.choose() if router else 0
            q = queues[r]
            if limit is not None and len(q.items) >= limit + len(q.idle) + q.woken:
                rejected[i] = True
                continue
            q.items.append(i)
            if router:
                router.outstanding[r] += 1
            if q.former is not None:
                if batch_now(len(q.items)):
                    q.former.succeed()
                    q.former = None
            elif q.idle:
                q.wake_idle()
        state["done"] = True
        for q in queues:
            while q.idle:
                q.wake_idle()
            if q.former is not None:
                q.former.succeed()
                q.former = None

    def instance(q: _Queue, replica: int, index: int):
        while True:
            items = q.items
            if not items:
                if state["done"]:
                    return
                wake = env.event()
                q.idle.append(wake)
                yield wake
                q.woken -= 1
                continue
            size = batch_now(len(items))
            if not size:
                deadline = deadline_of(ready[items[0]])
                if state["done"] or (deadline is not None and deadline <= env.now):
                    size = min(len(items), max_batch)
                elif q.former is not None:  # another instance is already forming this batch
                    wake = env.event()
                    q.idle.append(wake)
                    yield wake
                    q.woken -= 1
                    continue
                else:
                    wake = env.event()
                    q.former = wake
                    if deadline is None:
                        yield wake
                    else:
                        yield wake | env.timeout(deadline - env.now)
                    if q.former is wake:
                        q.former = None
                    continue
            batch = [items.popleft() for _ in range(size)]
            if items and q.idle and q.former is None:
                q.wake_idle()
            busy[replica] += 1
            duration = cost.sample_ms(size, service_rng, busy[replica])
            now = env.now
            bid = state["batches"]
            state["batches"] = bid + 1
            for i in batch:
                start[i] = now
                service[i] = duration
                batch_id[i] = bid
                batch_size[i] = size
                replica_of[i] = replica
                instance_of[i] = index
            yield env.timeout(duration)
            busy[replica] -= 1
            if router:
                router.outstanding[replica] -= size

    env.process(feed())
    for r in range(replicas):
        for k in range(instances):
            env.process(instance(queues[0] if shared else queues[r], r, k))
    env.run()
    return ModelStageResult(
        start_ms=np.asarray(start, dtype=float),
        service_ms=np.asarray(service, dtype=float),
        batch_id=np.asarray(batch_id, dtype=np.int64),
        batch_size=np.asarray(batch_size, dtype=np.int64),
        replica=np.asarray(replica_of, dtype=np.int64),
        instance=np.asarray(instance_of, dtype=np.int64),
        rejected=np.asarray(rejected, dtype=bool),
    )


def _fcfs_fast_path(
    ready_ms: np.ndarray, cost: BatchCost, replicas: int, instances: int, rng: np.random.Generator
) -> ModelStageResult:
    n = len(ready_ms)
    service = cost.sample_many_ms(1, rng, n)
    start, server = fcfs_servers(ready_ms, service, replicas * instances)
    return ModelStageResult(
        start_ms=start,
        service_ms=service,
        batch_id=np.arange(n, dtype=np.int64),
        batch_size=np.ones(n, dtype=np.int64),
        replica=server // instances,
        instance=server % instances,
        rejected=np.zeros(n, dtype=bool),
    )
