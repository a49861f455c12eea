"""The batched model stage without an event loop: one FIFO queue and the servers that pull from it, walked
batch by batch, for a fixed fleet and for an autoscaled one.

The SimPy model stage (sim/engine/model_stage.py) is the definition; this walk reproduces it exactly (same
batches, start times, servers and service draws, in the same order; tested request for request). Between
the moments something outside the queue acts, the set of warm servers is fixed and each batch follows from
when the previous one left, when the first server frees and when the head request is ready (then the wait
for a batch that can leave at once, the queue delay, or the end of traffic): the compiled inner loop
(sim/engine/fleet_kernel.py) walks those stretches. Everything else is a handful of events a run:
- the autoscaler's control tick (every second): sample the load, ask the policy, start replicas (each after
  its cold start) or drain them (a busy one finishes its batch first);
- a cold start ending (new warm servers), a drained replica's last batch ending;
- the stage falling empty for the idle-to-zero time (Knative's scale to zero), traffic reaching a stage
  with no replica (the activator starts one);
- the instant of the last arrival, which flushes every waiting batch, replayed in SimPy's wake-up order.

Coincident instants follow SimPy's order where it is cheap to know: a cold start and a tick at one instant
run in the order they were scheduled, and servers that a cold start makes warm take their batches before
a tick at that instant samples the load. Tie rules where it is not (tested): a server that frees at t sees
every request ready at t; with requests ready at the same instant the batches, times and draws match but
which idle server takes one may differ; two servers that free at the same instant (discrete service times
can do that) take work in server order, SimPy's in the order their batches left. Continuous times make
these ties probability 0.
"""

from __future__ import annotations

import heapq
from collections import deque
import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from sim.engine import compiled
from sim.engine import fleet_kernel as k
from sim.engine.service_draws import ServiceDraws
from sim.spec.autoscaling import SAMPLE_INTERVAL_MS, LoadSamples
from sim.spec.batching import BatchRule

STARTING, WARM, DRAINING, STOPPED = "starting", "warm", "draining", "stopped"
TIMELINE_COLUMNS = ["time_ms", "warm", "starting", "draining", "queued", "ongoing", "busy"]


@dataclass(frozen=True)
class Batches:
    """The batches of one queue in dispatch order: size, start, service time, server."""

    size: np.ndarray
    start_ms: np.ndarray
    service_ms: np.ndarray
    server: np.ndarray


class QueueWalk:
    """One FIFO queue's walk: its requests (sorted by ready time, with the SimPy clock of each arrival),
    its warm servers and the batches sent so far; `advance(stop)` runs the kernel up to a stop time."""

    def __init__(
        self, clock: np.ndarray, ready: np.ndarray, rule: BatchRule, draws: ServiceDraws, loops, done_ms=None
    ) -> None:
        self.n = n = len(clock)
        self.loops = loops
        self.rule = rule
        self.draws = draws
        self._array = loops.compiled
        self.clock_array = clock
        self.clock = clock if loops.compiled else clock.tolist()
        self.ready = ready if loops.compiled else ready.tolist()
        # When traffic ends (the last arrival at any queue: SimPy's feed then flushes every queue).
        self.done_ms = done_ms if done_ms is not None else (float(clock[-1]) if n else 0.0)
        self.heap_at = self._floats(0)
        self.heap_srv = self._ints(0)
        self.end_ms = self._floats(0)
        self.last_size = self._ints(0)
        fs = [0.0] * k.FLOAT_SLOTS
        fs[k.FLOOR] = fs[k.MAX_END] = fs[k.FIRED_FOR] = -math.inf
        fs[k.STOP] = math.inf
        fs[k.DONE] = self.done_ms
        fs[k.DELAY] = 0.0 if rule.delay_ms is None else rule.delay_ms
        fs[k.IDLE_ZERO] = -1.0
        ist = [0] * k.INT_SLOTS
        ist[k.HAS_DELAY] = int(rule.delay_ms is not None)
        self.fs = np.array(fs) if self._array else fs
        self.ist = np.array(ist, dtype=np.int64) if self._array else ist
        self.now_sizes = self._ints_of(rule.now_sizes)
        self.trigger_offset = rule.trigger - 1
        self.use_constant = draws.constant is not None
        self.constant = self._floats_of(draws.constant if draws.constant is not None else [0.0])
        self.base = self._floats(0)
        self.multiplier = self._floats_of(draws.multiplier)
        self.divisors = self._floats_of(draws.divisors)
        self.out_size, self.out_server = self._ints(n), self._ints(n)
        self.out_start, self.out_service = self._floats(n), self._floats(n)
        self.order_at_end: list[tuple[int, tuple]] = []  # (batch, SimPy's order key) of batches sent at the end
        # Requests to draw service times for at least, at a refill: a queue whose stream nothing else reads
        # may draw ahead (bulk draws equal single ones), where its length is not known in advance.
        self.draw_ahead = 0
        self.tick_queued, self.tick_in_service, self.tick_busy = self._ints(256), self._ints(256), self._ints(256)
        self.fs[k.TICK_STEP] = SAMPLE_INTERVAL_MS
        self.fs[k.TICK_END] = -math.inf
        self.speculating = False  # between `snapshot` and its end: service draws are not made then
        self._args_key: tuple | None = None
        self._args: tuple = ()

    # --- containers: numpy arrays for the compiled kernel, lists for the Python one ---------------------

    def append(self, clock_ms: float, ready_ms: float) -> None:
        """One more request at the back of the queue (routing that chooses as traffic arrives)."""
        n = self.n
        if n == len(self.clock):
            grow = max(16, 2 * n)
            if self._array:
                self.clock_array = self.clock = np.concatenate([self.clock, np.zeros(grow - n)])
                self.ready = np.concatenate([self.ready, np.zeros(grow - n)])
                self.out_size = np.concatenate([self.out_size, np.zeros(grow - n, dtype=np.int64)])
                self.out_server = np.concatenate([self.out_server, np.zeros(grow - n, dtype=np.int64)])
                self.out_start = np.concatenate([self.out_start, np.zeros(grow - n)])
                self.out_service = np.concatenate([self.out_service, np.zeros(grow - n)])
            else:
                for buffer, fill in (
                    (self.clock, 0.0),
                    (self.ready, 0.0),
                    (self.out_size, 0),
                    (self.out_server, 0),
                    (self.out_start, 0.0),
                    (self.out_service, 0.0),
                ):
                    buffer.extend([fill] * (grow - n))
        self.clock[n] = clock_ms
        self.ready[n] = ready_ms
        self.n = n + 1

    def _floats(self, size: int):
        return np.zeros(size) if self._array else [0.0] * size

    def _ints(self, size: int):
        return np.zeros(size, dtype=np.int64) if self._array else [0] * size

    def _floats_of(self, values):
        return np.asarray(values, dtype=float) if self._array else [float(v) for v in values]

    def _ints_of(self, values):
        return np.asarray(values, dtype=np.int64) if self._array else [int(v) for v in values]

    # --- state ----------------------------------------------------------------------------------------

    @property
    def head(self) -> int:
        """The first request not yet sent."""
        return int(self.ist[k.HEAD])

    @property
    def flushed(self) -> bool:
        return bool(self.ist[k.FLUSHED])

    @property
    def max_end_ms(self) -> float:
        """When the last batch sent so far ends (-inf before the first)."""
        return float(self.fs[k.MAX_END])

    def arrived_by(self, t: float) -> int:
        """Requests the feed has appended by time t."""
        if self._array:
            return int(self.clock_array[: self.n].searchsorted(t, "right"))
        return bisect_right(self.clock, t, 0, self.n)

    def free(self) -> list[tuple[float, int]]:
        """The warm servers as (free at, server), heap-ordered."""
        size = int(self.ist[k.HEAP_LEN])
        return list(zip([float(x) for x in self.heap_at[:size]], [int(x) for x in self.heap_srv[:size]]))

    def set_free(self, entries: list[tuple[float, int]]) -> None:
        heapq.heapify(entries)
        if len(entries) > len(self.heap_at):
            self.heap_at, self.heap_srv = self._floats(2 * len(entries)), self._ints(2 * len(entries))
        for i, (at, server) in enumerate(entries):
            self.heap_at[i], self.heap_srv[i] = at, server
        self.ist[k.HEAP_LEN] = len(entries)

    def first_server(self) -> int | None:
        return int(self.heap_srv[0]) if self.ist[k.HEAP_LEN] else None

    def add_servers(self, servers, free_at_ms: float) -> None:
        self.ensure_servers(max(servers) + 1)
        self.set_free(self.free() + [(free_at_ms, s) for s in servers])

    def remove_servers(self, servers) -> None:
        """Take servers out of the pull (a drained replica)."""
        gone = set(servers)
        self.set_free([entry for entry in self.free() if entry[1] not in gone])

    def ensure_servers(self, count: int) -> None:
        """Room for server ids below `count` in the per-server arrays."""
        have = len(self.end_ms)
        if count <= have:
            return
        grow = max(count, 2 * have)
        if self._array:
            self.end_ms = np.concatenate([self.end_ms, np.zeros(grow - have)])
            self.last_size = np.concatenate([self.last_size, np.zeros(grow - have, dtype=np.int64)])
        else:
            self.end_ms.extend([0.0] * (grow - have))
            self.last_size.extend([0] * (grow - have))

    def set_idle_to_zero(self, wait_ms: float | None) -> None:
        self.fs[k.IDLE_ZERO] = -1.0 if wait_ms is None else wait_ms

    # --- walking --------------------------------------------------------------------------------------

    def advance(self, stop_ms: float) -> int:
        """Send every batch that leaves before `stop_ms`; returns the kernel's status (REFILL only while
        speculating: a walk that may be taken back draws nothing, so every stream ends where SimPy's does)."""
        self.fs[k.STOP] = stop_ms
        while True:
            status = self.loops.advance(*self._arguments())
            if status != k.REFILL or self.speculating:
                return status
            self._refill(int(self.ist[k.PLANNED]))

    def _arguments(self) -> tuple:
        """The kernel's arguments; rebuilt only when a container is replaced (grown, refilled) or `n` grows."""
        key = (self.n, id(self.heap_at), id(self.end_ms), id(self.base), id(self.out_size))
        if self._args_key != key:
            self._args_key = key
            self._args = (
                self.clock,
                self.ready,
                self.n,
                self.heap_at,
                self.heap_srv,
                self.end_ms,
                self.last_size,
                self.fs,
                self.ist,
                self.now_sizes,
                self.rule.max_batch_size,
                self.trigger_offset,
                self.constant,
                self.use_constant,
                self.base,
                self.multiplier,
                self.divisors,
                self.out_size,
                self.out_start,
                self.out_service,
                self.out_server,
                self.tick_queued,
                self.tick_in_service,
                self.tick_busy,
            )
        return self._args

    def _refill(self, size: int) -> None:
        self.base = self._floats_of(self.draws.base(max(self.n - self.head, self.draw_ahead), size))
        self.ist[k.BASE_LEN] = len(self.base)
        self.ist[k.USED] = 0

    # --- tick samples and speculation ------------------------------------------------------------------

    def sample_ticks(self, first_ms: float, until_ms: float) -> None:
        """Sample the control ticks first_ms, first_ms + 1 s, ... before `until_ms` on the next walks."""
        self.fs[k.NEXT_TICK] = first_ms
        self.fs[k.TICK_END] = until_ms
        self.ist[k.TICKS] = 0
        self.ist[k.ARRIVED] = self.head

    def take_ticks(self) -> tuple[list[int], list[int], list[int]]:
        """The ticks sampled so far (queued, in service, busy warm servers); sampling stops."""
        count = int(self.ist[k.TICKS])
        self.fs[k.TICK_END] = -math.inf
        self.ist[k.TICKS] = 0
        return (
            [int(x) for x in self.tick_queued[:count]],
            [int(x) for x in self.tick_in_service[:count]],
            [int(x) for x in self.tick_busy[:count]],
        )

    def snapshot(self) -> tuple:
        """The walk's state, to walk again from here (`restore`); until `speculating` ends, no draws."""
        self.speculating = True
        copy = np.array if self._array else list
        return (
            copy(self.fs),
            copy(self.ist),
            copy(self.heap_at),
            copy(self.heap_srv),
            copy(self.end_ms),
            copy(self.last_size),
            self.base,
        )

    def restore(self, saved: tuple) -> None:
        fs, ist, heap_at, heap_srv, end_ms, last_size, base = saved
        self.fs[:] = fs
        self.ist[:] = ist
        self.heap_at[: len(heap_at)] = heap_at
        self.heap_srv[: len(heap_srv)] = heap_srv
        self.end_ms[: len(end_ms)] = end_ms
        self.last_size[: len(last_size)] = last_size
        self.base = base
        self.speculating = False

    def _draw(self, size: int) -> float:
        """The next batch's service time, as the kernel would draw it."""
        if self.use_constant:
            duration = self.constant[size]
        else:
            if self.ist[k.USED] == self.ist[k.BASE_LEN]:
                self._refill(size)
            duration = self.base[int(self.ist[k.USED])] * self.multiplier[size]
            self.ist[k.USED] += 1
        for divisor in self.divisors:
            duration = duration / divisor
        return float(duration)

    def send(self, dispatch_ms: float, size: int, server: int) -> None:
        """Send a batch on a given server (outside the kernel: the end-of-traffic instant)."""
        duration = self._draw(size)
        count = int(self.ist[k.COUNT])
        self.out_size[count], self.out_start[count] = size, dispatch_ms
        self.out_service[count], self.out_server[count] = duration, server
        self.ist[k.COUNT] = count + 1
        end = dispatch_ms + duration
        self.set_free([(end, s) if s == server else (at, s) for at, s in self.free()])
        self.end_ms[server], self.last_size[server] = end, size
        self.fs[k.MAX_END] = max(float(self.fs[k.MAX_END]), end)
        self.ist[k.HEAD] += size
        self.fs[k.PREVIOUS] = dispatch_ms

    def end_of_traffic(self, final_ranks=None, queue: int = 0) -> None:
        """The instant of the last arrival, replayed in SimPy's order. The feed appends the arrivals of that
        instant, each waking the queue's former (once its batch can leave) or else one idle server; then it
        marks traffic done and wakes, queue by queue, every idle server and the former. A former waiting on
        a queue delay resumes through a condition event, so after all of those. Each server woken takes one
        batch of what is left (a batch that can leave at once, or up to the max) or, finding nothing, stops.
        `final_ranks`: the place of this queue's final arrivals among every queue's (routed queues), so
        that `order_at_end` ranks the batches of all queues at that instant as SimPy sends them."""
        done, rule, head = self.done_ms, self.rule, self.head
        waiting = bisect_left(self.clock, done, head, self.n) - head
        final = self.n - head - waiting
        ranks = list(range(final)) if final_ranks is None else list(final_ranks)
        free = sorted(entry for entry in self.free() if entry[0] < done)
        former = free.pop(0)[1] if waiting and free else None
        idle = [server for _, server in free]
        through_condition = rule.delay_ms is not None
        woken: list[tuple[int, tuple]] = []
        late: list[tuple[int, tuple]] = []
        queued = waiting
        for rank in ranks:
            queued += 1
            if former is not None:
                if rule.batch_now(queued):
                    (late if through_condition else woken).append(
                        (former, (2, rank, 0) if through_condition else (0, rank, 0))
                    )
                    former = None
            elif idle:
                woken.append((idle.pop(0), (0, rank, 0)))
        woken.extend((server, (1, queue, p)) for p, server in enumerate(idle))
        if former is not None:
            (late if through_condition else woken).append(
                (former, (3, queue, 0) if through_condition else (1, queue, len(idle)))
            )
        for server, key in woken + late:
            remaining = self.n - self.head
            if remaining <= 0:
                break
            self.order_at_end.append((int(self.ist[k.COUNT]), key))
            self.send(done, rule.batch_now(remaining) or min(remaining, rule.max_batch_size), server)
        self.ist[k.FLUSHED] = 1

    def batches(self) -> Batches:
        count = int(self.ist[k.COUNT])
        return Batches(
            np.asarray(self.out_size[:count], dtype=np.int64),
            np.asarray(self.out_start[:count], dtype=float),
            np.asarray(self.out_service[:count], dtype=float),
            np.asarray(self.out_server[:count], dtype=np.int64),
        )


def walk_fixed(
    clock: np.ndarray,
    ready: np.ndarray,
    rule: BatchRule,
    draws: ServiceDraws,
    servers: int,
    done_ms: float,
    final_ranks=None,
    queue: int = 0,
) -> tuple[Batches, list[tuple[int, tuple]]]:
    """A fixed set of identical servers pulling from one queue: the whole walk with no event but the end of
    traffic (at `done_ms`, the last arrival at any queue). Returns the batches and the SimPy order keys of
    those sent at the end of traffic (see `QueueWalk.end_of_traffic`)."""
    walk = QueueWalk(clock, ready, rule, draws, compiled.loops(len(clock)), done_ms)
    walk.add_servers(range(servers), 0.0)
    while True:
        status = walk.advance(math.inf)
        if status == k.END_OF_TRAFFIC or (status == k.STALLED and not walk.flushed):
            walk.end_of_traffic(final_ranks, queue)
            continue
        return walk.batches(), walk.order_at_end


# --- the autoscaled fleet ------------------------------------------------------------------------------


@dataclass
class _Replica:
    index: int
    state: str
    servers: range
    cold_end_ms: float = math.inf


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


TICK, COLD_END, DRAINED = 0, 1, 2


@dataclass
class FleetRun:
    """What the autoscaled walk returns: the batches (dispatch order), the server → replica map and the
    timeline of change-points."""

    batches: Batches
    replica_of_server: np.ndarray
    instance_of_server: np.ndarray
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
        if not policy.start_replicas:
            self.zero_since = -math.inf
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
        end = max(self.last_ms, walk.max_end_ms, walk.done_ms)
        self._record(end)
        size = self.started * self.instances
        servers = np.arange(size)
        return FleetRun(
            walk.batches(),
            servers // self.instances,
            servers % self.instances,
            pd.DataFrame(self.rows, columns=TIMELINE_COLUMNS),
        )

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
                self._schedule(end + float(walk.fs[k.IDLE_ZERO]), end, 3, "zero")
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
        for j in range(len(queued)):
            now = first + j * SAMPLE_INTERVAL_MS
            extra_requests, extra_busy = self._draining_load(now) if draining else (0, 0)
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
        counts = {WARM: 0, STARTING: 0, DRAINING: 0}
        for replica in self.live:
            counts[replica.state] += 1
        return counts[WARM], counts[STARTING], counts[DRAINING]

    def _draining_load(self, now: float) -> tuple[int, int]:
        """Requests in service and busy instances at `now` on draining replicas (off the walk's heap)."""
        end_ms, sizes = self.walk.end_ms, self.walk.last_size
        requests = busy = 0
        for replica in self.live:
            if replica.state == DRAINING:
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
        replica.cold_end_ms = now + duration
        self._schedule(replica.cold_end_ms, now, COLD_END, "cold_end", replica)

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
        first = max(walk.head, walk.arrived_by(self.zero_since) if self.zero_since > -math.inf else 0)
        return float(walk.clock[first]) if first < walk.n else None

    # --- load -----------------------------------------------------------------------------------------

    def _busy(self, replica: _Replica, now: float) -> int:
        end_ms = self.walk.end_ms
        return sum(1 for s in replica.servers if end_ms[s] > now)

    def _load(self, now: float) -> tuple[int, int, int, int, int, int, int]:
        """At `now`: requests queued, requests in service, busy instances (all, and of warm replicas), and
        the replicas warm, starting and draining."""
        walk = self.walk
        end_ms, sizes = walk.end_ms, walk.last_size
        in_service = busy = busy_warm = warm = starting = draining = 0
        for replica in self.live:
            state = replica.state
            if state == STARTING:
                starting += 1
                continue
            for s in replica.servers:
                if end_ms[s] > now:
                    in_service += sizes[s]
                    busy += 1
                    if state == WARM:
                        busy_warm += 1
            if state == WARM:
                warm += 1
            else:
                draining += 1
        queued = walk.arrived_by(now) - walk.head
        return queued, int(in_service), busy, busy_warm, warm, starting, draining

    def _record(self, now: float, load: tuple | None = None) -> None:
        queued, in_service, busy, _, warm, starting, draining = load or self._load(now)
        self.rows.append((now, warm, starting, draining, queued, queued + in_service, busy))
