"""LLM replicas under a fixed routing (round robin, random), walked one at a time without SimPy.

When every request's replica is known before the run, replicas do not interact: each one's iterations
depend only on its own arrivals. The walk replays, per replica, what the SimPy model in
sim/engine/llm/stage.py does — the same `plan` / `finish` calls at the same clock values — and so gives the
same log, with no event queue:

- the dispatcher's clock: SimPy's dispatcher sleeps `ready − now` and wakes at `now + (ready − now)` (not
  always `ready` to the last bit); requests ready by then join the queue in the same dispatcher step, with
  no sleep between them (a *group*);
- an idle replica wakes at its next arrival's dispatch time, after the whole group has been queued;
- a busy replica sees, at the end of an iteration (`now + duration`), every arrival dispatched before it;
- a policy waiting for a fuller batch wakes at the first arrival dispatched before its deadline
  (`now + max(wait_until − now, 0)`), else at the deadline.

Where an arrival is dispatched at exactly the clock value at which its replica acts, SimPy's order of
events decides which comes first; the walk does not guess it: it raises `SimultaneousEvents` and the
caller runs the SimPy model instead (a measure-zero case for measured traces).
"""

from __future__ import annotations

import numpy as np

from sim.engine.llm.scheduler import LLMScheduler


class SimultaneousEvents(Exception):
    """An arrival and its replica's own event fall on the same clock value: leave it to SimPy."""


def dispatch_clock(ready_ms: np.ndarray) -> tuple[list[float], list[int]]:
    """(the SimPy dispatcher's clock when each request is queued, its dispatcher step), for requests in
    ready order."""
    clock_ms: list[float] = []
    group: list[int] = []
    now, step = 0, 0  # SimPy's clock starts at the int 0 (the log keeps its type where a run stays at 0)
    for ready in ready_ms.tolist():
        delay = ready - now
        if delay > 0:
            now += delay
            step += 1
        clock_ms.append(now)
        group.append(step)
    return clock_ms, group


def walk_replica(scheduler: LLMScheduler, requests: list[int], clock_ms: list[float], group: list[int]) -> None:
    """Run one replica over its `requests` (in dispatch order) queued at `clock_ms` in dispatcher steps
    `group` (aligned with `requests`), until it has no work left."""
    k, count = 0, len(requests)
    cursor = scheduler.arrivals

    def queue_until(before_ms: float) -> None:
        """Queue the arrivals dispatched before `before_ms`; one dispatched at it is a tie."""
        nonlocal k
        while k < count and clock_ms[k] < before_ms:
            scheduler.enqueue(requests[k])
            cursor.position += 1
            k += 1
        if k < count and clock_ms[k] == before_ms:
            raise SimultaneousEvents

    def queue_group() -> float:
        """Wake at the next arrival: queue its whole dispatcher step; return the clock."""
        nonlocal k
        now, step = clock_ms[k], group[k]
        while k < count and group[k] == step:
            scheduler.enqueue(requests[k])
            cursor.position += 1
            k += 1
        if k < count and clock_ms[k] == now:
            raise SimultaneousEvents
        return now

    now = 0.0
    while True:
        if not scheduler.has_work():
            if k == count:
                return
            now = queue_group()
        duration_ms = scheduler.plan(now)
        if duration_ms is None:  # the policy waits for a fuller batch, or its deadline
            deadline = now + max(scheduler.wait_until_ms - now, 0.0)
            if k < count and clock_ms[k] < deadline:
                now = queue_group()
            elif k < count and clock_ms[k] == deadline:
                raise SimultaneousEvents
            else:
                now = deadline
            continue
        end = now + duration_ms
        if k < count and clock_ms[k] <= end:  # most iterations end before the next arrival
            queue_until(end)
        now = end
        scheduler.finish(now)
