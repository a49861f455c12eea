"""Triton's dynamic batching rule, as `make fidelity`'s batching server applies it live and as servesim's
engine simulates it; `form_batches` replays it in virtual time (tests pin the two equal)."""

from __future__ import annotations

from collections import deque

import numpy as np


def batch_decision(
    queued: int, oldest_ms: float | None, now_ms: float, max_batch: int, delay_ms: float
) -> tuple[int, float | None]:
    """Triton's dynamic batcher, for a free model instance: (requests to send now, 0 = none; when to look
    again if none, None = only when a request arrives). A batch leaves at once when `max_batch` requests
    are queued; otherwise when the oldest has waited `delay_ms`, with whatever is queued."""
    if queued <= 0:
        return 0, None
    if queued >= max_batch:
        return max_batch, None
    deadline = oldest_ms + delay_ms
    if now_ms >= deadline:
        return queued, None
    return 0, deadline


def form_batches(arrival_ms: np.ndarray, batch_ms, max_batch: int, delay_ms: float) -> list[tuple[float, list[int]]]:
    """One batching server in virtual time: (dispatch ms, request indices) per batch for requests arriving at
    `arrival_ms` (ascending), a batch of n taking `batch_ms(n)`: `batch_decision` applied whenever the
    server is free and something happens (an arrival, a deadline)."""
    arrival = np.asarray(arrival_ms, dtype=float)
    n = len(arrival)
    batches: list[tuple[float, list[int]]] = []
    queue: deque[int] = deque()
    now, nxt = 0.0, 0
    while nxt < n or queue:
        while nxt < n and arrival[nxt] <= now:
            queue.append(nxt)
            nxt += 1
        if not queue:
            now = float(arrival[nxt])
            continue
        take, deadline = batch_decision(len(queue), float(arrival[queue[0]]), now, max_batch, delay_ms)
        if take:
            batch = [queue.popleft() for _ in range(take)]
            batches.append((now, batch))
            now += batch_ms(take)
            continue
        now = min(deadline, float(arrival[nxt])) if nxt < n else deadline
    return batches
