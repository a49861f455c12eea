"""The replica-bound, batched model stage: SimPy processes for arrivals, model instances and the autoscaler.

One long-running process per model instance sleeps on a wake-up event while its queue is empty and does
one timeout per *batch*; one process feeds requests in at their ready times. With shared-queue routing
all instances pull from one central queue (an exact M/M/c for exponential service and no batching);
otherwise a router sends each request to one replica's queue. With autoscaling, replicas start (after a
cold start), serve, and drain (finish their batch, take no more) as the policy decides.

This SimPy model is the definition, and the oracle of the event-free paths that run instead of it: batches
of one on a shared queue are a plain FCFS multi-server queue (sim/engine/fcfs.py); every other routing,
batching and autoscaling the fleet walk reproduces (sim/engine/batch_recursion.py, queue_walk.py,
fleet_walk.py, routed_walk.py). SimPy itself runs only a queue limit, a cost that depends on the busy
instances or the time, and a batcher's timer lateness.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import simpy

from sim.engine.batch_recursion import (
    _feed_clock,
    batches_per_request,
    recursion_applies,
    service_in_ready_order,
    solve_batches,
)
from sim.engine.fcfs import fcfs_servers
from sim.engine.fleet_walk import AutoscaledFleet
from sim.engine.service_draws import ServiceDraws
from sim.spec.autoscaling import SAMPLE_INTERVAL_MS, LoadSamples
from sim.spec.batch_cost import BatchCost
from sim.engine.routing import Router
from sim.streams import replica_streams

STARTING, WARM, DRAINING, STOPPED = "starting", "warm", "draining", "stopped"


@dataclass
class ModelStageResult:
    """Per request (in input order): service start, batch service time, batch, replica, instance, rejected;
    and the stage's timeline of change-points (replicas by state, queue, ongoing, busy instances)."""

    start_ms: np.ndarray
    service_ms: np.ndarray
    batch_id: np.ndarray
    batch_size: np.ndarray
    replica: np.ndarray
    instance: np.ndarray
    rejected: np.ndarray
    timeline: pd.DataFrame | None = None


class _Queue:
    """A request queue and the instances waiting on it: `idle` ones (queue was empty) and at most one
    `former` (waiting for its batch to fill or its delay to run out, as Triton forms one batch at a time)."""

    def __init__(self) -> None:
        self.items: deque[int] = deque()
        self.idle: deque[simpy.Event] = deque()
        self.former: simpy.Event | None = None
        self.former_replica: _Replica | None = None
        self.woken = 0

    def wake_idle(self) -> None:
        self.woken += 1
        self.idle.popleft().succeed()


@dataclass
class _Replica:
    index: int
    state: str
    busy: int = 0
    idle_events: list = field(default_factory=list)


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
    autoscaling=None,
    cold_start=None,
    cold_start_rng: np.random.Generator | None = None,
    force_simpy: bool = False,
) -> ModelStageResult:
    """Each request's service start, batch and replica; `force_simpy` skips the event-free recursions
    (the reference they are tested against)."""
    cost = cost.for_run()  # costs with state over a run (regimes, replay) start afresh
    fixed = (
        max_queue_size is None
        and autoscaling is None
        and not cost.depends_on_busy_instances
        and not cost.depends_on_time
    )
    if not force_simpy and fixed and policy.rule().max_batch_size == 1 and routing == "shared_queue":
        return _fcfs_fast_path(ready_ms, cost, replicas, instances, service_rng)
    if not force_simpy and recursion_applies(policy, routing, max_queue_size, autoscaling, cost):
        if autoscaling is not None:
            return _autoscaled_walk(
                ready_ms, cost, policy, instances, service_rng, autoscaling, cold_start, cold_start_rng
            )
        b = solve_batches(ready_ms, cost, policy, replicas, instances, routing, service_rng, routing_rng)
        return ModelStageResult(
            b.start_ms,
            b.service_ms,
            b.batch_id,
            b.batch_size,
            b.replica,
            b.instance,
            np.zeros(len(ready_ms), dtype=bool),
        )
    sim = _StageSimulation(
        ready_ms,
        cost,
        policy,
        replicas,
        instances,
        routing,
        max_queue_size,
        service_rng,
        routing_rng,
        autoscaling,
        cold_start,
        cold_start_rng,
    )
    return sim.run()


class _StageSimulation:
    def __init__(
        self,
        ready_ms,
        cost,
        policy,
        replicas,
        instances,
        routing,
        max_queue_size,
        service_rng,
        routing_rng,
        autoscaling,
        cold_start,
        cold_start_rng,
    ) -> None:
        n = len(ready_ms)
        self.n = n
        self.ready = ready_ms.tolist()
        self.cost = cost
        self.policy = policy
        self.rule = policy.rule()  # the batching rule every engine path reads (sim/spec/batching.py)
        self.instances = instances
        self.limit = max_queue_size
        self.service_rng = service_rng
        overshoot = getattr(policy, "dispatch_overshoot_ms", None)
        # One overshoot per request, used when it is the oldest in a batch that leaves on its deadline;
        # drawn from a child of the service stream, so the service draws stay as without it.
        self.overshoot_ms = (
            overshoot.sample(np.random.default_rng(service_rng.bit_generator.seed_seq.spawn(1)[0]), n).tolist()
            if overshoot is not None
            else None
        )
        self.autoscaling = autoscaling
        self.idle_to_zero_ms = autoscaling.idle_to_zero_ms if autoscaling is not None else None
        self.cold_start = cold_start
        self.cold_start_rng = cold_start_rng
        self.env = simpy.Environment()
        self.shared = routing == "shared_queue"
        self.queues = [_Queue()] if self.shared else [_Queue() for _ in range(replicas)]
        self.router = None if self.shared else Router(routing, replicas, routing_rng, n)
        # A shared queue draws its batches' service times from the stage stream in dispatch order; routed
        # queues each from their replica's own stream (as the fleet walk does).
        self.service_rngs = [service_rng] if self.shared else replica_streams(service_rng, replicas)
        self.outstanding = [0] * replicas  # per replica: queued + in service (for load-aware routing)
        self.done = False
        self.batches = 0
        self.in_service = 0
        self.start = [np.nan] * n
        self.service = [np.nan] * n
        self.batch_id = [-1] * n
        self.batch_size = [0] * n
        self.replica_of = [-1] * n
        self.instance_of = [-1] * n
        self.rejected = [False] * n
        self.replicas: list[_Replica] = []  # live ones only: stopped replicas leave the list
        self.replicas_started = 0
        self.timeline: list[tuple] = []
        self.samples = LoadSamples()
        first = autoscaling.start_replicas if autoscaling is not None else replicas
        for _ in range(first):
            self._add_replica(warm=True)

    # --- replicas -----------------------------------------------------------------------------------

    def _add_replica(self, warm: bool) -> _Replica:
        replica = _Replica(index=self.replicas_started, state=WARM if warm else STARTING)
        self.replicas_started += 1
        self.replicas.append(replica)
        if warm:
            self._start_instances(replica)
        else:
            self.env.process(self._cold_start(replica))
        return replica

    def _start_instances(self, replica: _Replica) -> None:
        queue = self.queues[0] if self.shared else self.queues[replica.index]
        for k in range(self.instances):
            self.env.process(self._instance(queue, replica, k))

    def _cold_start(self, replica: _Replica):
        duration = float(self.cold_start.sample(self.cold_start_rng, 1)[0]) if self.cold_start is not None else 0.0
        yield self.env.timeout(duration)
        if replica.state == STARTING:
            replica.state = WARM
            self._start_instances(replica)
            self._record()

    def _drain(self, replica: _Replica) -> None:
        """Stop a replica: a starting one at once; a warm one after its running batches."""
        if replica.state == STARTING:
            self._stop(replica)
            return
        if replica.busy:
            replica.state = DRAINING
        else:
            self._stop(replica)
        for queue in self.queues:
            if queue.former is not None and queue.former_replica is replica:
                queue.former.succeed()
                queue.former = None
        for event in replica.idle_events:
            for queue in self.queues:
                if event in queue.idle:
                    queue.idle.remove(event)
                    queue.woken += 1
                    event.succeed()

    def _stop(self, replica: _Replica) -> None:
        replica.state = STOPPED
        self.replicas.remove(replica)

    def _count(self, state: str) -> int:
        return sum(1 for r in self.replicas if r.state == state)

    def _record(self) -> None:
        queued = sum(len(q.items) for q in self.queues)
        busy = sum(r.busy for r in self.replicas)
        self.timeline.append(
            (
                self.env.now,
                self._count(WARM),
                self._count(STARTING),
                self._count(DRAINING),
                queued,
                queued + self.in_service,
                busy,
            )
        )

    # --- processes ----------------------------------------------------------------------------------

    def _feed(self):
        env, ready, limit, router, queues = self.env, self.ready, self.limit, self.router, self.queues
        batch_now = self.rule.batch_now
        for i in sorted(range(self.n), key=ready.__getitem__):
            t = ready[i]
            if t > env.now:
                yield env.timeout(t - env.now)
            r = router.choose(self.outstanding) if router else 0
            q = queues[r]
            if limit is not None and len(q.items) >= limit + len(q.idle) + q.woken:
                self.rejected[i] = True
                continue
            q.items.append(i)
            if router:
                self.outstanding[r] += 1
            if q.former is not None:
                if batch_now(len(q.items)):
                    q.former.succeed()
                    q.former = None
            elif q.idle:
                q.wake_idle()
            elif self.autoscaling is not None and not any(rep.state in (WARM, STARTING) for rep in self.replicas):
                self._scale_to(1)  # the activator: traffic at zero replicas starts one at once
        self.done = True
        for q in queues:
            while q.idle:
                q.wake_idle()
            if q.former is not None:
                q.former.succeed()
                q.former = None

    def _instance(self, q: _Queue, replica: _Replica, index: int):
        env, ready, rule, cost = self.env, self.ready, self.rule, self.cost
        max_batch = rule.max_batch_size
        while True:
            if replica.state != WARM:
                if q.items and q.idle and q.former is None:
                    q.wake_idle()  # hand the queue on to a replica that stays
                return
            items = q.items
            if not items or (q.former is not None and not rule.batch_now(len(items))):
                if self.done and not items:
                    return
                yield from self._wait_idle(q, replica)
                continue
            size = rule.batch_now(len(items))
            if not size:
                deadline = rule.deadline_ms(ready[items[0]])
                if deadline is not None and self.overshoot_ms is not None:
                    deadline += self.overshoot_ms[items[0]]
                if self.done or (deadline is not None and deadline <= env.now):
                    size = min(len(items), max_batch)
                else:
                    wake = env.event()
                    q.former, q.former_replica = wake, replica
                    yield wake if deadline is None else wake | env.timeout(deadline - env.now)
                    if q.former is wake:
                        q.former = None
                    continue
            batch = [items.popleft() for _ in range(size)]
            if items and q.idle and q.former is None:
                q.wake_idle()
            replica.busy += 1
            self.in_service += size
            rng = self.service_rngs[0 if self.shared else replica.index]
            duration = cost.sample_ms(size, rng, replica.busy, env.now)
            now = env.now
            bid = self.batches
            self.batches += 1
            start, service, batch_id, batch_size = self.start, self.service, self.batch_id, self.batch_size
            for i in batch:
                start[i] = now
                service[i] = duration
                batch_id[i] = bid
                batch_size[i] = size
                self.replica_of[i] = replica.index
                self.instance_of[i] = index
            yield env.timeout(duration)
            replica.busy -= 1
            self.in_service -= size
            if self.router:
                self.outstanding[replica.index] -= size
            if replica.state == DRAINING and replica.busy == 0:
                self._stop(replica)
                self._record()
            if self.idle_to_zero_ms is not None and self.in_service == 0 and not any(q.items for q in self.queues):
                self.env.process(self._idle_to_zero())

    def _wait_idle(self, q: _Queue, replica: _Replica):
        wake = self.env.event()
        q.idle.append(wake)
        replica.idle_events.append(wake)
        yield wake
        replica.idle_events.remove(wake)
        q.woken -= 1

    def _autoscaler(self):
        env, policy, samples = self.env, self.autoscaling, self.samples
        decide_every = max(1, round(policy.decision_interval_s * 1000 / SAMPLE_INTERVAL_MS))
        state: dict = {}
        tick = 0
        while not (self.done and self.in_service == 0 and not any(q.items for q in self.queues)):
            yield env.timeout(SAMPLE_INTERVAL_MS)
            tick += 1
            warm = [r for r in self.replicas if r.state == WARM]
            queued = sum(len(q.items) for q in self.queues)
            samples.time_ms.append(env.now)
            samples.ongoing.append(queued + self.in_service)
            samples.warm.append(len(warm))
            samples.busy_share.append(sum(r.busy for r in warm) / (len(warm) * self.instances) if warm else 0.0)
            self._record()
            if tick % decide_every == 0:
                current = sum(1 for r in self.replicas if r.state in (WARM, STARTING))
                target = policy.desired_replicas(env.now, samples, current, state)
                if samples.ongoing[-1] > 0:
                    target = max(target, 1)
                self._scale_to(target)

    def _idle_to_zero(self):
        """Scale to zero once the stage has been empty for the policy's idle time (Knative's stable window
        plus grace period); any request in the meantime cancels it."""
        wait_ms = self.idle_to_zero_ms
        arrivals_before = self.batches + sum(len(q.items) for q in self.queues)
        if wait_ms > 0:
            yield self.env.timeout(wait_ms)
        still_empty = self.in_service == 0 and not any(q.items for q in self.queues)
        if still_empty and self.batches + sum(len(q.items) for q in self.queues) == arrivals_before:
            self._scale_to(0)

    def _scale_to(self, target: int) -> None:
        active = [r for r in self.replicas if r.state in (WARM, STARTING)]
        if target > len(active):
            for _ in range(target - len(active)):
                self._add_replica(warm=False)
        elif target < len(active):
            # Cancel cold starts first, then idle replicas, then the newest busy ones.
            victims = sorted(active, key=lambda r: (r.state != STARTING, r.busy > 0, -r.index))
            for replica in victims[: len(active) - target]:
                self._drain(replica)
        else:
            return
        self._record()

    def run(self) -> ModelStageResult:
        self.env.process(self._feed())
        if self.autoscaling is not None:
            self._record()
            self.env.process(self._autoscaler())
        self.env.run()
        timeline = None
        if self.autoscaling is not None:
            self._record()
            timeline = pd.DataFrame(
                self.timeline, columns=["time_ms", "warm", "starting", "draining", "queued", "ongoing", "busy"]
            )
        return ModelStageResult(
            start_ms=np.asarray(self.start, dtype=float),
            service_ms=np.asarray(self.service, dtype=float),
            batch_id=np.asarray(self.batch_id, dtype=np.int64),
            batch_size=np.asarray(self.batch_size, dtype=np.int64),
            replica=np.asarray(self.replica_of, dtype=np.int64),
            instance=np.asarray(self.instance_of, dtype=np.int64),
            rejected=np.asarray(self.rejected, dtype=bool),
            timeline=timeline,
        )


def _autoscaled_walk(
    ready_ms, cost, policy, instances, service_rng, autoscaling, cold_start, cold_start_rng
) -> ModelStageResult:
    """The autoscaled stage through the fleet walk (sim/engine/fleet_walk.py)."""
    n = len(ready_ms)
    order = np.argsort(ready_ms, kind="stable")
    ready_sorted = ready_ms[order]
    rule = policy.rule()
    fleet = AutoscaledFleet(
        _feed_clock(ready_sorted),
        ready_sorted,
        rule,
        ServiceDraws(cost, service_rng, rule.max_batch_size),
        instances,
        autoscaling,
        cold_start,
        cold_start_rng,
    )
    out = fleet.run()
    queue_of = np.zeros(n, dtype=np.int64)
    b = batches_per_request(order, n, [(np.arange(n), out.batches)], [[]], "shared_queue", instances, queue_of)
    return ModelStageResult(
        b.start_ms,
        b.service_ms,
        b.batch_id,
        b.batch_size,
        b.replica,
        b.instance,
        np.zeros(n, dtype=bool),
        timeline=out.timeline,
    )


def _fcfs_fast_path(
    ready_ms: np.ndarray, cost: BatchCost, replicas: int, instances: int, rng: np.random.Generator
) -> ModelStageResult:
    n = len(ready_ms)
    order = np.argsort(ready_ms, kind="stable")
    service = service_in_ready_order(ready_ms, cost, rng)
    # A request that finds a free server starts at SimPy's clock when the feed appends it (now + (ready -
    # now), which can round a hair off `ready`), as the fleet walk does.
    start_sorted, server_sorted = fcfs_servers(_feed_clock(ready_ms[order]), service[order], replicas * instances)
    start = np.empty(n)
    server = np.empty(n, dtype=np.int64)
    start[order], server[order] = start_sorted, server_sorted
    batch_id = np.empty(n, dtype=np.int64)
    batch_id[order] = np.arange(n)  # numbered in dispatch order
    return ModelStageResult(
        start_ms=start,
        service_ms=service,
        batch_id=batch_id,
        batch_size=np.ones(n, dtype=np.int64),
        replica=server // instances,
        instance=server % instances,
        rejected=np.zeros(n, dtype=bool),
    )
