"""The per-request loops that dominate a run, compiled with numba where it pays: the FCFS pool
(`heap_fcfs_start`) and the fleet walk (sim/engine/fleet_kernel.py `advance`). Each is one Python source;
compiled, it gives bit-identical results (same float operations in the same order).

numba is in the default install, but importing it and loading the cached kernels costs about a second of
CPU per process, more than a small run takes in pure Python. So `loops(requests)` imports it only for a
stage of at least `COMPILE_FROM_REQUESTS` requests, and once per process. SERVESIM_NO_NUMBA=1 (or `MODE`
"python") keeps every run in pure Python; `MODE` "numba" compiles whatever the size (tests compare both).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np

from sim.engine import fleet_kernel

COMPILE_FROM_REQUESTS = 500_000
MODE = "python" if os.environ.get("SERVESIM_NO_NUMBA") else "auto"  # "auto" | "python" | "numba"


@dataclass(frozen=True)
class Loops:
    """The loops a run uses, and whether they are compiled (then they take numpy arrays, else lists)."""

    compiled: bool
    advance: Callable
    heap_fcfs_start: Callable | None


PYTHON = Loops(False, fleet_kernel.advance, None)
_numba: Loops | None = None


def numba_installed() -> bool:
    return importlib.util.find_spec("numba") is not None


def _compile() -> Loops | None:
    """The numba twins, compiled (or loaded from numba's cache) once per process; None without numba."""
    global _numba
    if _numba is None and numba_installed():
        from numba import njit

        _numba = Loops(
            True,
            njit(cache=True, nogil=True)(fleet_kernel.advance),
            njit(cache=True, nogil=True)(_heap_fcfs_start),
        )
    return _numba


def _heap_fcfs_start(ready, service, servers):
    """Start times of FCFS requests in ready order on `servers` servers (a binary min-heap of free times);
    the compiled twin of sim/engine/fcfs.py's heapq loop."""
    n = ready.shape[0]
    start = np.empty(n)
    free = np.zeros(servers)
    for i in range(n):
        t = ready[i]
        if t < free[0]:
            t = free[0]
        start[i] = t
        value = t + service[i]
        k = 0  # heapreplace: sift the new root down
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


def loops(requests: int) -> Loops:
    """The loops for a stage of `requests` requests: compiled when that repays loading numba."""
    if MODE == "python" or (MODE == "auto" and requests < COMPILE_FROM_REQUESTS):
        return PYTHON
    return _compile() or PYTHON
