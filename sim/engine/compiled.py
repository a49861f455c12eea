"""Optional compiled loops (numba, the `fast` extra) for the two per-request recursions that dominate a
run: the FCFS pool and the one-queue batch walk. Each gives bit-identical results to its pure-Python
twin (same float operations in the same order); without numba, or with SERVESIM_NO_NUMBA=1, `AVAILABLE`
is False and callers use the Python loops.
"""

from __future__ import annotations

import os

import numpy as np

try:  # numba is optional: `pip install servesim[fast]`
    if os.environ.get("SERVESIM_NO_NUMBA"):
        raise ImportError("disabled by SERVESIM_NO_NUMBA")
    from numba import njit
except ImportError:  # pragma: no cover - depends on the environment
    njit = None

AVAILABLE = njit is not None


def _heap_fcfs_start(ready: np.ndarray, service: np.ndarray, servers: int) -> np.ndarray:
    """Start times of FCFS requests in ready order on `servers` servers (a binary min-heap of free times)."""
    n = ready.shape[0]
    start = np.empty(n)
    free = np.zeros(servers)
    for i in range(n):
        t = ready[i]
        if t < free[0]:
            t = free[0]
        start[i] = t
        value = t + service[i]
        # heapreplace: sift the new root down
        k = 0
        while True:
            child = 2 * k + 1
            if child >= servers:
                break
            if child + 1 < servers and free[child + 1] < free[child]:
                child += 1
            if free[child] < value:
                free[k] = free[child]
                k = child
            else:
                break
        free[k] = value
    return start


def _batch_walk(
    clock,
    ready,
    free_at,
    free_server,
    head,
    previous,
    done_ms,
    delay_ms,
    has_delay,
    max_batch,
    now_sizes,
    trigger_offset,
    constant,
    use_constant,
    base,
    used,
    multiplier,
    out_size,
    out_start,
    out_service,
    out_server,
    out_count,
):
    """The one-queue batch walk of sim/engine/batch_recursion.py (`_walk_one_queue`), up to the end of
    traffic or until the base draws run out. Returns (head, previous, used, out_count, finished)."""
    n = clock.shape[0]
    servers = free_at.shape[0]
    while head < n:
        f0 = free_at[0]
        server = free_server[0]
        t0 = previous if previous > f0 else f0
        if clock[head] > t0:
            t0 = clock[head]
        if t0 >= done_ms:
            return head, previous, used, out_count, True
        hi = head + max_batch if head + max_batch < n else n
        queued = 0
        while head + queued < hi and clock[head + queued] <= t0:
            queued += 1
        size = max_batch if queued >= max_batch else now_sizes[queued]
        if size:
            d = t0
        else:
            deadline = ready[head] + delay_ms
            if has_delay and deadline <= t0:
                d = t0
                size = queued
            else:
                d = done_ms
                j = head + trigger_offset
                if j < n and clock[j] <= d:
                    d = clock[j]
                if has_delay:
                    wake = t0 + (deadline - t0)
                    if wake < deadline:
                        wake = deadline
                    if wake < d:
                        d = wake
                if d >= done_ms:
                    return head, previous, used, out_count, True
                queued = 0
                while head + queued < hi and clock[head + queued] <= d:
                    queued += 1
                size = max_batch if queued >= max_batch else now_sizes[queued]
                if size == 0:
                    size = queued
        if use_constant:
            duration = constant[size]
        else:
            if used == base.shape[0]:
                return head, previous, used, out_count, False
            duration = base[used] * multiplier[size]
            used += 1
        out_size[out_count] = size
        out_start[out_count] = d
        out_service[out_count] = duration
        out_server[out_count] = server
        out_count += 1
        # heapreplace on (free_at, server) pairs, ordered lexicographically as Python tuples are
        value = d + duration
        k = 0
        while True:
            child = 2 * k + 1
            if child >= servers:
                break
            if child + 1 < servers and (
                free_at[child + 1] < free_at[child]
                or (free_at[child + 1] == free_at[child] and free_server[child + 1] < free_server[child])
            ):
                child += 1
            if free_at[child] < value or (free_at[child] == value and free_server[child] < server):
                free_at[k] = free_at[child]
                free_server[k] = free_server[child]
                k = child
            else:
                break
        free_at[k] = value
        free_server[k] = server
        head += size
        previous = d
    return head, previous, used, out_count, True


if AVAILABLE:
    heap_fcfs_start = njit(cache=True, nogil=True)(_heap_fcfs_start)
    batch_walk = njit(cache=True, nogil=True)(_batch_walk)
else:
    heap_fcfs_start = None
    batch_walk = None
