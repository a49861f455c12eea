"""The autoscaled model stage without an event loop: one shared queue (a `QueueWalk`,
sim/engine/queue_walk.py) whose replicas an autoscaling policy starts and drains, walked from event to event.

The SimPy model stage (sim/engine/model_stage.py) is the definition; this reproduces it exactly (tested
request for request and timeline row for row). Between events the set of warm servers is fixed and the
queue walk sends the batches. The events, a handful a run:
- the autoscaler's control tick (every second): sample the load, ask the policy, start replicas (each after
  its cold start) or drain them (a busy one finishes its batch first). Ticks are taken in stretches: the
  queue walk samples them on its way to the next other event, the policy reads them one by one, and where
  it changes the fleet the walk goes back to that tick;
- a cold start ending (new warm servers), a drained replica's last batch ending;
- the stage falling empty for the idle-to-zero time (Knative's scale to zero), traffic reaching a stage
  with no replica (the activator starts one);
- the instant of the last arrival (the queue walk replays it).

Coincident instants follow SimPy's order: a cold start and a tick at one instant run in the order they were
scheduled, and servers that a cold start makes warm take their batches before a tick at that instant
samples the load; a drain that takes the waiting former replays SimPy's hand-off step by step.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from sim.engine import compiled
from sim.engine import fleet_kernel as k
from sim.engine.queue_walk import Batches, QueueWalk
from sim.engine.service_draws import ServiceDraws
from sim.spec.autoscaling import SAMPLE_INTERVAL_MS, LoadSamples
from sim.spec.batching import BatchRule

STARTING, WARM, DRAINING, STOPPED = "starting", "warm", "draining", "stopped"
TIMELINE_COLUMNS = ["time_ms", "warm", "starting", "draining", "queued", "ongoing", "busy"]


# --- the autoscaled fleet ------------------------------------------------------------------------------


@dataclass
class _Replica:
    index: int
    state: str
    servers: range  # its instances' server ids: index × instances + k


class _Event(NamedTuple):
    """A pending event, ordered as SimPy processes them: by time, then by when it was scheduled, then by
    kind (a tick's timeout is scheduled before a cold start begun in the same step); `seq` is unique, so
    the order never compares further."""

    time_ms: float
    scheduled_ms: float
    rank: int
    seq: int
    kind: str
    replica: _Replica | None = None


TICK, COLD_END, DRAINED, ZERO = 0, 1, 2, 3  # the order of kinds scheduled at one instant in one step


@dataclass
class FleetRun:
    """What the autoscaled walk returns: the batches in dispatch order (server s is instance s mod
    instances of replica s // instances) and the timeline of change-points."""

    batches: Batches
    timeline: pd.DataFrame


class AutoscaledFleet:
    """One shared queue whose replicas an autoscaling policy starts and drains (sim/spec/autoscaling.py),
    walked as the SimPy model stage runs it: the policy is asked at its control ticks with the load sampled
    once a second; new replicas serve after a cold start; a drained replica finishes its batch and stops;
    min_replicas 0 scales to zero after the policy's idle time, and traffic at zero replicas starts one."""

    def __init__(
        self,
        clock: np.ndarray,
        ready: np.ndarray,
        rule: BatchRule,
        draws: ServiceDraws,
        instances: int,
        policy,
        cold_start,
        cold_start_rng: np.random.Generator | None,
    ) -> None:
        self.walk = QueueWalk(clock, ready, rule, draws, compiled.loops(len(clock)))
        self.walk.set_idle_to_zero(policy.idle_to_zero_ms)
        self.idle_to_zero = policy.idle_to_zero_ms is not None
        # Ticks in stretches (`_tick_block`) where nothing but the queue acts between them; a policy that
        # scales to zero on its own clock keeps one tick at a time.
        self.blocks = not self.idle_to_zero
        self.instances = instances
        self.policy = policy
        self.cold_start = cold_start
        self.cold_start_rng = cold_start_rng
        self.live: list[_Replica] = []
        self.started = 0
        self.events: list[_Event] = []
        self.seq = 0
        self.rows: list[tuple] = []
        self.samples = LoadSamples()
        self.state: dict = {}
        self.tick = 0
        self.decide_every = max(1, round(policy.decision_interval_s * 1000 / SAMPLE_INTERVAL_MS))
        self.zero_since = -math.inf  # when the last warm or starting replica went (traffic then starts one)
        self.last_ms = 0.0  # the latest instant anything was scheduled for (the run ends there)
        for _ in range(policy.start_replicas):
            self._add_replica(0.0, warm=True)
        self._record(0.0)
        self._schedule(SAMPLE_INTERVAL_MS, 0.0, TICK, "tick")

    # --- the run --------------------------------------------------------------------------------------

    def run(self) -> FleetRun:
        walk = self.walk
        while True:
            event = self._next_event()
            if event is not None and event.kind == "tick" and self.blocks and self._tick_block(event):
                continue
            stop = event.time_ms if event is not None else math.inf
            self._walk_until(stop)
            if self._next_event() is not event:
                continue  # the walk made something happen earlier (the activator, the last lull's scale to zero)
            if event is None:
                break
            heapq.heappop(self.events)
            if event.kind == "tick":
                self._tick(event.time_ms)
            elif event.kind == "cold_end":
                if self._cold_end(event):
                    # The new servers' processes start at once (SimPy's urgent initialisation): batches they
                    # send at this instant leave before anything else scheduled for it.
                    self._walk_until(np.nextafter(event.time_ms, math.inf))
            elif event.kind == "drained":
                self._drained(event)
            elif event.kind == "zero":
                walk.fs[k.FIRED_FOR] = event.scheduled_ms
                self._scale_to(0, event.time_ms)
        self._record(max(self.last_ms, walk.max_end_ms, walk.done_ms))
        return FleetRun(walk.batches(), pd.DataFrame(self.rows, columns=TIMELINE_COLUMNS))

    def _walk_until(self, stop_ms: float) -> None:
        """Run the queue up to `stop_ms`, acting on what the walk hands back on the way."""
        walk = self.walk
        while True:
            status = walk.advance(stop_ms)
            if status == k.ZERO:
                zero_at = float(walk.fs[k.ZERO_AT])
                self.last_ms = max(self.last_ms, zero_at)
                self._scale_to(0, zero_at)
                continue
            if status == k.STALLED:
                arrival = self._activator_arrival()
                if arrival is not None and arrival < stop_ms:
                    self._scale_to(1, arrival)
                    return  # its cold start is the next event, before `stop_ms`
                if not walk.flushed and walk.done_ms < stop_ms:
                    walk.end_of_traffic()
                    continue
                return
            if status == k.END_OF_TRAFFIC:
                walk.end_of_traffic()
                continue
            return

    def _next_event(self) -> _Event | None:
        walk = self.walk
        # After the last request has left, the final lull can still scale the fleet to zero.
        if self.idle_to_zero and walk.head >= walk.n and walk.max_end_ms > walk.fs[k.FIRED_FOR]:
            end = walk.max_end_ms
            if not any(e.kind == "zero" for e in self.events):
                self._schedule(end + float(walk.fs[k.IDLE_ZERO]), end, ZERO, "zero")
        return self.events[0] if self.events else None

    def _schedule(self, time_ms: float, scheduled_ms: float, rank: int, kind: str, replica=None) -> None:
        self.seq += 1
        heapq.heappush(self.events, _Event(time_ms, scheduled_ms, rank, self.seq, kind, replica))
        self.last_ms = max(self.last_ms, time_ms)

    # --- events ---------------------------------------------------------------------------------------

    def _tick(self, now: float) -> None:
        """The autoscaler's once-a-second step: sample, record, and at its decision interval ask the policy."""
        queued, in_service, busy, busy_warm, warm, starting, draining = self._load(now)
        target, finished = self._sampled(now, queued, in_service, busy, busy_warm, warm, starting, draining)
        if target is not None:
            self._scale_to(target, now)
        if not finished:
            self._schedule(now + SAMPLE_INTERVAL_MS, now, TICK, "tick")

    def _sampled(self, now, queued, in_service, busy, busy_warm, warm, starting, draining) -> tuple:
        """A tick's load sample, timeline row and (at its interval) decision; returns the target when the
        policy changes the fleet (else None), and whether the ticks end here (traffic over, stage empty)."""
        self.tick += 1
        ongoing = queued + in_service
        samples = self.samples
        samples.time_ms.append(now)
        samples.ongoing.append(ongoing)
        samples.warm.append(warm)
        samples.busy_share.append(busy_warm / (warm * self.instances) if warm else 0.0)
        self.rows.append((now, warm, starting, draining, queued, ongoing, busy))
        target = None
        if self.tick % self.decide_every == 0:
            target = self.policy.desired_replicas(now, samples, warm + starting, self.state)
            if ongoing > 0:
                target = max(target, 1)
            if target == warm + starting:
                target = None
        return target, now >= self.walk.done_ms and ongoing == 0

    def _tick_block(self, event: _Event) -> bool:
        """The ticks from `event` up to the next other event, sampled by the walk on its way there and handed
        to the policy one by one. Where the policy changes the fleet at a tick, the walk goes back to that
        tick (same service draws) and the change applies there. False: no tick could be taken this way."""
        walk = self.walk
        first = event.time_ms
        others = self.events[1:3]  # the heap's next smallest is one of the top's children
        until = min(others).time_ms if others else math.inf
        if not first < until:
            return False
        saved = walk.snapshot()
        walk.sample_ticks(first, until)
        walk.advance(until)  # it stops early where it would draw, hand back or fill its samples
        queued, in_service, busy_warm = walk.take_ticks()
        if not queued:
            walk.speculating = False  # nothing was sent past `first` (it would have been sampled first)
            return False
        heapq.heappop(self.events)
        warm, starting, draining = self._counts()
        now = first - SAMPLE_INTERVAL_MS
        for j in range(len(queued)):
            now += SAMPLE_INTERVAL_MS  # as the kernel steps its ticks
            extra_requests, extra_busy = self._serving(now, DRAINING) if draining else (0, 0)
            target, finished = self._sampled(
                now,
                queued[j],
                in_service[j] + extra_requests,
                busy_warm[j] + extra_busy,
                busy_warm[j],
                warm,
                starting,
                draining,
            )
            if target is not None:
                walk.restore(saved)
                walk.advance(now)
                self._scale_to(target, now)
            if target is not None or finished:
                if not finished:
                    self._schedule(now + SAMPLE_INTERVAL_MS, now, TICK, "tick")
                walk.speculating = False
                return True
        walk.speculating = False
        following = float(walk.fs[k.NEXT_TICK])
        self._schedule(following, following - SAMPLE_INTERVAL_MS, TICK, "tick")
        return True

    def _counts(self) -> tuple[int, int, int]:
        """Replicas warm, starting and draining."""
        counts = {WARM: 0, STARTING: 0, DRAINING: 0}
        for replica in self.live:
            counts[replica.state] += 1
        return counts[WARM], counts[STARTING], counts[DRAINING]

    def _serving(self, now: float, state: str) -> tuple[int, int]:
        """Requests in service and busy instances at `now` on the replicas in `state`."""
        end_ms, sizes = self.walk.end_ms, self.walk.last_size
        requests = busy = 0
        for replica in self.live:
            if replica.state == state:
                for s in replica.servers:
                    if end_ms[s] > now:
                        requests += int(sizes[s])
                        busy += 1
        return requests, busy

    def _cold_end(self, event: _Event) -> bool:
        replica = event.replica
        if replica.state != STARTING:
            return False  # cancelled while starting
        replica.state = WARM
        self.walk.add_servers(replica.servers, event.time_ms)
        self._record(event.time_ms)
        return True

    def _drained(self, event: _Event) -> None:
        replica = event.replica
        self._stop(replica)
        self._record(event.time_ms)

    # --- replicas -------------------------------------------------------------------------------------

    def _add_replica(self, now: float, warm: bool) -> None:
        index = self.started
        self.started += 1
        replica = _Replica(
            index, WARM if warm else STARTING, range(index * self.instances, (index + 1) * self.instances)
        )
        self.live.append(replica)
        self.walk.ensure_servers(self.started * self.instances)
        if warm:
            self.walk.add_servers(replica.servers, now)
            return
        duration = 0.0
        if self.cold_start is not None:
            duration = float(self.cold_start.sample(self.cold_start_rng, 1)[0])
        self._schedule(now + duration, now, COLD_END, "cold_end", replica)

    def _scale_to(self, target: int, now: float) -> None:
        active = [r for r in self.live if r.state in (WARM, STARTING)]
        if target > len(active):
            for _ in range(target - len(active)):
                self._add_replica(now, warm=False)
        elif target < len(active):
            # Cancel cold starts first, then idle replicas, then the newest busy ones.
            victims = sorted(active, key=lambda r: (r.state != STARTING, self._busy(r, now) > 0, -r.index))
            self._drain(victims[: len(active) - target], now)
            if target == 0:
                self.zero_since = now
        else:
            return
        self._record(now)

    def _drain(self, victims: list[_Replica], now: float) -> None:
        """Stop replicas: a starting one at once, a warm one after its running batches. Its idle instances
        leave the pull; if one was waiting for a batch to form (the former) while requests are queued, the
        queue is handed on as SimPy does (`_hand_on`)."""
        walk = self.walk
        queued = walk.arrived_by(now) - walk.head
        free = sorted(walk.free())
        first = walk.first_server()
        idle = [s for at, s in free if at <= now]  # SimPy's idle list in order, the former (if any) first
        former = first if queued and first in idle else None
        wakers: list[tuple[str, int]] = []  # what resumes at `now`, in the order _drain scheduled it
        for replica in victims:
            if replica.state == STARTING:
                self._stop(replica)
                continue
            mine = set(replica.servers)
            if former in mine:
                wakers.append(("former", former))
            wakers.extend(("idle", s) for s in idle if s in mine and s != former)
            walk.remove_servers(replica.servers)
            busy_until = max(float(walk.end_ms[s]) for s in replica.servers)
            if busy_until > now:
                replica.state = DRAINING
                self._schedule(busy_until, now, DRAINED, "drained", replica)
            else:
                self._stop(replica)
        if any(kind == "former" for kind, _ in wakers):
            self._hand_on(now, wakers)

    def _hand_on(self, now: float, wakers: list[tuple[str, int]]) -> None:
        """SimPy's hand-off at a drain that took the former, replayed step by step in SimPy's order: each
        drained instance resumes and, while requests wait and no former is left, wakes the first server of
        the idle list; the drained former does the same one step later (it waited on a condition event when
        its batch had a queue delay). A woken server sends a batch (and wakes the next idle one if requests
        are left), becomes the new former, or goes back to the end of the idle list."""
        walk, rule = self.walk, self.walk.rule
        idle = [s for at, s in sorted(walk.free()) if at <= now]
        steps = deque(
            ("former_wait" if kind == "former" and rule.delay_ms is not None else "wake", s) for kind, s in wakers
        )
        former = None
        back: list[int] = []
        while steps:
            step, server = steps.popleft()
            queued = walk.arrived_by(now) - walk.head
            if step == "former_wait":
                steps.append(("wake", server))  # the condition event resumes it after what is scheduled now
            elif step == "wake":
                if queued and idle and former is None:
                    steps.append(("run", idle.pop(0)))
            elif former is not None or not queued:
                idle.append(server)  # woken for nothing: back to the end of the idle list
                back.append(server)
            else:
                size = rule.batch_now(queued)
                if not size:
                    deadline = rule.deadline_ms(float(walk.ready[walk.head]))
                    if deadline is None or deadline > now:
                        former = server
                        continue
                    size = min(queued, rule.max_batch_size)
                walk.send(now, size, server)
                if queued > size and idle and former is None:
                    steps.append(("run", idle.pop(0)))
        when: dict[int, float] = {}
        at = now
        for server in back:  # the same instant, each a hair after the one before (SimPy's list order)
            if server in idle:
                when[server] = at
                at = float(np.nextafter(at, math.inf))
        if former is not None:
            # The new former heads the queue (its wait starts now: the floor), ahead of every idle server.
            when[former] = float(np.nextafter(min([entry[0] for entry in walk.free()] + [now]), -math.inf))
            walk.fs[k.FLOOR] = max(float(walk.fs[k.FLOOR]), now)
        if when:
            walk.set_free([(when.get(s, at), s) for at, s in walk.free()])

    def _stop(self, replica: _Replica) -> None:
        replica.state = STOPPED
        self.live.remove(replica)

    def _activator_arrival(self) -> float | None:
        """When traffic finds no warm or starting replica: the first arrival after the last one went."""
        if any(r.state in (WARM, STARTING) for r in self.live):
            return None
        walk = self.walk
        first = max(walk.head, walk.arrived_by(self.zero_since))
        return float(walk.clock[first]) if first < walk.n else None

    # --- load -----------------------------------------------------------------------------------------

    def _busy(self, replica: _Replica, now: float) -> int:
        end_ms = self.walk.end_ms
        return sum(1 for s in replica.servers if end_ms[s] > now)

    def _load(self, now: float) -> tuple[int, int, int, int, int, int, int]:
        """At `now`: requests queued, requests in service, busy instances (all, and of warm replicas), and
        the replicas warm, starting and draining."""
        warm_requests, busy_warm = self._serving(now, WARM)
        draining_requests, busy_draining = self._serving(now, DRAINING)
        queued = self.walk.arrived_by(now) - self.walk.head
        in_service, busy = warm_requests + draining_requests, busy_warm + busy_draining
        return (queued, in_service, busy, busy_warm, *self._counts())

    def _record(self, now: float) -> None:
        queued, in_service, busy, _, warm, starting, draining = self._load(now)
        self.rows.append((now, warm, starting, draining, queued, queued + in_service, busy))
