"""One FIFO queue and the servers that pull from it, walked batch by batch without an event loop.

The SimPy model stage (sim/engine/model_stage.py) is the definition; this walk reproduces it exactly (same
batches, start times, servers and service draws, in the same order; tested request for request). While the
set of warm servers is fixed, each batch follows from when the previous one left, when the first server
frees and when the head request is ready (then the wait for a batch that can leave at once, the queue
delay, or the end of traffic): the inner loop (sim/engine/fleet_kernel.py, compiled for large stages) walks
those stretches and hands back where something outside the queue decides. `walk_fixed` is the whole walk
of a fixed fleet; the autoscaled fleet (sim/engine/fleet_walk.py) and load-aware routing
(sim/engine/routed_walk.py) drive a `QueueWalk` through their own events.

The instant of the last arrival, which flushes every waiting batch, is replayed in SimPy's wake-up order.
Tie rules elsewhere (tested): a server that frees at t sees every request ready at t; with requests ready
at the same instant the batches, times and draws match but which idle server takes one may differ; two
servers that free at the same instant (discrete service times can do that) take work in server order,
SimPy's in the order their batches left. Continuous times make these ties probability 0.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass

import numpy as np

from sim.engine import compiled
from sim.engine import fleet_kernel as k
from sim.engine.service_draws import ServiceDraws
from sim.spec.autoscaling import SAMPLE_INTERVAL_MS
from sim.spec.batching import BatchRule

TICK_BUFFER = 256  # control ticks sampled per kernel call at most


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
        self.tick_queued, self.tick_in_service, self.tick_busy = (self._ints(TICK_BUFFER) for _ in range(3))
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
            extra = max(16, n)
            self.clock, self.ready = self._grown(self.clock, extra, 0.0), self._grown(self.ready, extra, 0.0)
            self.out_size, self.out_server = (
                self._grown(self.out_size, extra, 0),
                self._grown(self.out_server, extra, 0),
            )
            self.out_start = self._grown(self.out_start, extra, 0.0)
            self.out_service = self._grown(self.out_service, extra, 0.0)
        self.clock[n] = clock_ms
        self.ready[n] = ready_ms
        self.n = n + 1

    def _grown(self, container, extra: int, fill: float | int):
        """`container` with `extra` more places of `fill` (zero) at its end: the same list, or a new array."""
        if self._array:
            return np.concatenate([container, np.full(extra, fill, dtype=container.dtype)])
        container.extend([fill] * extra)
        return container

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
            return int(self.clock[: self.n].searchsorted(t, "right"))
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
        if count > have:
            extra = max(count, 2 * have) - have
            self.end_ms, self.last_size = self._grown(self.end_ms, extra, 0.0), self._grown(self.last_size, extra, 0)

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
