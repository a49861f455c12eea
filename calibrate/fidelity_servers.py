"""The model server processes `make fidelity` serves from: FIFO over a pipe (`fifo1`), workers on one
shared queue (`shared2`) and a dynamic batcher (`dynamic1`). Each reports its busy time per request (per
batch when batched) with its replies; calibrate/fidelity_clients.py drives them.

The servers report their busy time as the forward pass plus the time it took to send the *previous*
reply: sending a reply holds the server (on a 2-vCPU VM ~0.1 ms, waking the client's thread on the other
vCPU), so under load it is service time, not transport; it is only known once sent, so it travels with the
next reply (statistically the same, one request later).
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque

import numpy as np

from calibrate.fidelity_batcher import batch_decision


def _now_ms() -> float:
    return time.perf_counter() * 1e3


def _pin(cpu: int | None) -> None:
    """Run the calling thread (and the threads it starts) on one CPU, where the OS allows it."""
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})


def _cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


def _fifo_server(requests, replies, model: bytes, warmup: int, cpu: int | None = None) -> None:
    """The model server: FCFS over the request pipe; reports its busy time per request (ms)."""
    from calibrate.measure import _session, make_inputs

    _pin(cpu)
    session = _session(model, threads=1)
    feeds = make_inputs(session, 1, np.random.default_rng(0))
    for _ in range(warmup):
        session.run(None, feeds)
    replies.send("ready")
    sending = 0.0  # ms the previous reply took to send
    while True:
        message = requests.recv()
        begin = time.perf_counter()
        if message is None:
            return
        session.run(None, feeds)
        end = time.perf_counter()
        replies.send((message, (end - begin) * 1e3 + sending, sending, begin * 1e3, end * 1e3))
        sending = (time.perf_counter() - end) * 1e3


def _shared_worker(requests, replies, model: bytes, warmup: int, index: int, cpu: int | None = None) -> None:
    """One of several workers taking requests from one shared queue; replies (request, busy ms, worker)."""
    from calibrate.measure import _session, make_inputs

    _pin(cpu)
    session = _session(model, threads=1)
    feeds = make_inputs(session, 1, np.random.default_rng(index))
    for _ in range(warmup):
        session.run(None, feeds)
    replies.put(("ready", index))
    sending = 0.0  # ms the previous reply took to write to the queue
    while True:
        message = requests.get()
        begin = time.perf_counter()
        if message is None:
            return
        session.run(None, feeds)
        end = time.perf_counter()
        replies.put((message, (end - begin) * 1e3 + sending, index, begin * 1e3, end * 1e3))
        sending = (time.perf_counter() - end) * 1e3


def _batching_server(
    requests, replies, model: bytes, warmup: int, max_batch: int, delay_ms: float, cpu: int | None = None
) -> None:
    """A dynamic batcher: a reader thread stamps each request's arrival and queues it; the batching thread
    applies `batch_decision` and runs the session on a batch of that size. Replies per batch: (request ids,
    busy ms, each request's ms from arrival to dispatch, the previous reply's send ms). A message ("time", repeats) instead times the
    forward pass `repeats` times at every batch size 1..max (spread over rounds), in this process."""
    from calibrate.measure import _session, make_inputs

    _pin(cpu)  # the reader thread, started below, inherits it
    session = _session(model, threads=1)
    rng = np.random.default_rng(0)
    feeds = {b: make_inputs(session, b, rng) for b in range(1, max_batch + 1)}
    for b in feeds:
        for _ in range(max(2, warmup // max_batch)):
            session.run(None, feeds[b])
    queue: deque[tuple[int, float]] = deque()
    controls: deque = deque()
    closed = [False]
    ready = threading.Condition()

    def read() -> None:
        while True:
            message = requests.recv()
            at = _now_ms()
            with ready:
                if message is None:
                    closed[0] = True
                elif isinstance(message, tuple):
                    controls.append(message)
                else:
                    queue.append((message, at))
                ready.notify()
            if message is None:
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    replies.send("ready")
    sending = 0.0  # ms the previous reply took to send
    while True:
        with ready:
            while True:
                if controls:
                    control = controls.popleft()
                    batch = None
                    break
                now = _now_ms()
                take, deadline = batch_decision(len(queue), queue[0][1] if queue else None, now, max_batch, delay_ms)
                if take:
                    batch = [queue.popleft() for _ in range(take)]
                    break
                if closed[0] and not queue:
                    return
                ready.wait(None if deadline is None else max(deadline - now, 0.0) / 1e3)
        if batch is None:
            replies.send(_time_batches(session, feeds, int(control[1])))
            continue
        dispatch = _now_ms()
        session.run(None, feeds[len(batch)])
        end = _now_ms()
        replies.send(
            (
                [i for i, _ in batch],
                end - dispatch + sending,
                [dispatch - at for _, at in batch],
                sending,
                dispatch,
                end,
            )
        )
        sending = _now_ms() - end


def _time_batches(session, feeds: dict, repeats: int, rounds: int = 5) -> dict[int, list[float]]:
    """ms of `repeats` forward passes at each batch size, the repeats spread over `rounds` passes through all
    sizes (a burst of load from elsewhere touches every size a little rather than one a lot)."""
    times: dict[int, list[float]] = {b: [] for b in feeds}
    per_round = [repeats // rounds + (1 if r < repeats % rounds else 0) for r in range(rounds)]
    for count in per_round:
        for b, feed in feeds.items():
            session.run(None, feed)  # untimed: the previous size's buffers out of the way
            for _ in range(count):
                begin = time.perf_counter()
                session.run(None, feed)
                times[b].append((time.perf_counter() - begin) * 1e3)
    return times
