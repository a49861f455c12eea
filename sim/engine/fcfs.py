"""First-come-first-served multi-server queues computed exactly without an event loop.

For a FCFS queue with c identical servers and no blocking downstream, each request starts on the server
that frees first (Kiefer-Wolfowitz recursion), so a pool stage is a heap walk over sorted ready times.
"""

from __future__ import annotations

import heapq

import numpy as np


def fcfs_servers(ready_ms: np.ndarray, service_ms: np.ndarray, servers: int) -> tuple[np.ndarray, np.ndarray]:
    """Start time and server index of each request (inputs in any order; ties served in input order)."""
    order = np.argsort(ready_ms, kind="stable")
    ready = ready_ms[order].tolist()
    service = service_ms[order].tolist()
    start = [0.0] * len(ready)
    server = [0] * len(ready)
    free = [(0.0, s) for s in range(servers)]
    heapq.heapify(free)
    heapreplace = heapq.heapreplace
    for i, t in enumerate(ready):
        free_at, s = free[0]
        begin = t if t > free_at else free_at
        start[i] = begin
        server[i] = s
        heapreplace(free, (begin + service[i], s))
    start_ms = np.empty(len(ready))
    server_idx = np.empty(len(ready), dtype=np.int64)
    start_ms[order] = start
    server_idx[order] = server
    return start_ms, server_idx
