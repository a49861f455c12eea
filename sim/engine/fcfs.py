"""First-come-first-served multi-server queues computed exactly without an event loop.

For a FCFS queue with c identical servers and no blocking downstream, each request starts on the server
that frees first (Kiefer-Wolfowitz recursion), so a pool stage is a heap walk over sorted ready times.
"""

from __future__ import annotations

import heapq

import numpy as np

from sim.engine import compiled


def fcfs_servers(ready_ms: np.ndarray, service_ms: np.ndarray, servers: int) -> tuple[np.ndarray, np.ndarray]:
    """Start time and server index of each request (inputs in any order; ties served in input order)."""
    order = np.argsort(ready_ms, kind="stable")
    free = [(0.0, s) for s in range(servers)]
    heapreplace = heapq.heapreplace
    start: list[float] = []
    server: list[int] = []
    add_start, add_server = start.append, server.append
    for t, duration in zip(ready_ms[order].tolist(), service_ms[order].tolist()):
        free_at, s = free[0]
        if t < free_at:
            t = free_at
        add_start(t)
        add_server(s)
        heapreplace(free, (t + duration, s))
    start_ms = np.empty(len(order))
    server_idx = np.empty(len(order), dtype=np.int64)
    start_ms[order] = start
    server_idx[order] = server
    return start_ms, server_idx


def fcfs_start_ms(ready_ms: np.ndarray, service_ms: np.ndarray, servers: int) -> np.ndarray:
    """Start time of each request, as `fcfs_servers` gives it; a heap of bare free times is faster when
    nobody asks which server."""
    order = np.argsort(ready_ms, kind="stable")
    loops = compiled.loops(len(order))
    if loops.compiled:  # sim/engine/compiled.py: the same loop, compiled
        start_ms = np.empty(len(order))
        start_ms[order] = loops.heap_fcfs_start(ready_ms[order], service_ms[order].astype(float), servers)
        return start_ms
    free = [0.0] * servers
    heapreplace = heapq.heapreplace
    start: list[float] = []
    add = start.append
    for t, duration in zip(ready_ms[order].tolist(), service_ms[order].tolist()):
        free_at = free[0]
        if t < free_at:
            t = free_at
        add(t)
        heapreplace(free, t + duration)
    start_ms = np.empty(len(order))
    start_ms[order] = start
    return start_ms
