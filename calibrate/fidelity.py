"""Fidelity check, end to end on this machine: serve a live ONNX Runtime model in separate processes, drive
it with open-loop Poisson traffic from another, and compare the measured p50 / p95 / p99 with what servesim
predicts from a calibration taken just before, for three serving configurations at two utilisations, with
two back-to-back measurements per cell so that the run-to-run noise stands beside the prediction's error.

Configurations (each server in its own process(es), the client in this one):

- `fifo1`: one worker process, FIFO over a pipe;
- `shared2`: two worker processes taking requests from ONE shared queue (a multiprocessing SimpleQueue both
  `get` from), replies on a shared reply queue;
- `dynamic1`: one worker process with a Triton-style dynamic batcher (a batch leaves at once when
  `max_batch_size` requests are queued, otherwise when the oldest has waited `max_queue_delay_ms`, with
  whatever is queued; the rule is `batch_decision`, the same one servesim's engine applies).

A single server runs on a CPU of its own and the client on another (`--no-pin`: wherever the OS puts them);
shared2's two workers each on one CPU, the client wherever it fits (on a 2-CPU host it shares with them).

Per configuration and utilisation ρ ("cell"):

1. calibrate just before (closed loop): service time per request as the server reports it (the forward
   pass plus sending its reply, which holds the server), and the round trip's rest (inter-process
   transport, a delay stage); for `shared2` also the service time with both workers busy (two requests
   outstanding: co-located workers slow each other); for `dynamic1` the forward pass timed at every batch
   size 1..max in the server process, and how late the batcher leaves after its delay runs out (its
   timer's overshoot);
   then (`--co-load N`) N requests served open loop at the cell's rate: the kernel beside the client, the
   reply path and the sibling worker; their logged busy times over the calibration's are its co-load factor;
2. serve at ρ of the calibrated capacity (fifo1: 1 / mean service; shared2: 2 / mean service with both
   busy; dynamic1: the best batch size's batch / mean batch time), `runs` open-loop runs back to back;
   latency from each request's *scheduled* send time (no coordinated omission); every request's times are
   written to OUT/requests/ (calibrate/fidelity_log.py);
3. predict from the calibration alone: servesim with replications, p50 / p95 / p99 and their 95% CIs, as
   calibrated (isolated) and × the co-load factor (fifo1 also from the service times the server logged
   during the runs, replayed in order: in situ).

`--predict-only DIR [DIR ...]` serves nothing: it predicts saved runs again (calibrate/fidelity_offline.py).

A percentile of a cell is judged only when its runs agree within NOISE_LIMIT_PCT; then it is "ok" when the
prediction is within ERROR_LIMIT_PCT of the runs' mean, else "miss"; otherwise "noisy" (not judged).

    python -m calibrate.fidelity [--configs fifo1,shared2,dynamic1] [--utilisations 0.5,0.8] [--runs 2]
                                 [--requests 2000] [--co-load 300] [--no-pin] [--out fidelity/]
    python -m calibrate.fidelity --predict-only DIR [DIR ...] [--out FOLDER]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import tempfile
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np

PERCENTILES = (50.0, 95.0, 99.0)
CONFIGS = ("fifo1", "shared2", "dynamic1")
MAX_BATCH_SIZE = 8
MAX_QUEUE_DELAY_MS = 2.0
NOISE_LIMIT_PCT = 5.0  # the runs of a cell must agree this well for its prediction to be judged
ERROR_LIMIT_PCT = {"p50": 5.0, "p95": 10.0, "p99": 10.0}  # the issue: p50 within 5%, p99 within 10%
REPLICATIONS = 10
# ~3.5 ms per request on a 2-core EPYC VM: long against IPC and timer granularity, short enough for a few
# CPU seconds a run; batches of 8 cost ~1.3x a batch of 1 (weights streamed from memory once per batch).
MODEL_HIDDEN = (2048, 2048, 2048, 2048)


def _now_ms() -> float:
    return time.perf_counter() * 1e3


def _pin(cpu: int | None) -> None:
    """Run the calling thread (and the threads it starts) on one CPU, where the OS allows it."""
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})


def _cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


# --------------------------------------------------------------------------- the dynamic batcher's rule
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


# --------------------------------------------------------------------------- server processes
# The servers report their busy time per request (per batch when batched) as the forward pass plus the
# time it took to send the *previous* reply: sending a reply holds the server (on this 2-vCPU VM ~0.1 ms,
# waking the client's thread on the other vCPU), so under load it is service time, not transport; it is
# only known once sent, so it travels with the next reply (statistically the same, one request later).
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


# Kept under its old name: the single-worker server of earlier versions.
_server = _fifo_server


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


# --------------------------------------------------------------------------- client side
class _Client:
    """Open-loop traffic against a server: subclasses say how a request is sent and a reply received."""

    log: list[tuple[list[int], float, object]]

    def _submit(self, i: int) -> None:
        raise NotImplementedError

    def _reply_timed(self) -> tuple[list[int], float, object, dict]:
        """(request ids, busy ms, extra, when) of the next reply; `when`: the server's clock readings in ms
        (perf_counter, system-wide on Linux): `start_ms` / `end_ms` of the forward pass, `worker`, and for
        a batcher `arrival_ms` per request (when its reader thread took it)."""
        raise NotImplementedError

    def _reply(self) -> tuple[list[int], float, object]:
        """(request ids, busy ms, extra) of the next reply."""
        return self._reply_timed()[:3]

    def serve(self, rate_rps: float, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Open-loop Poisson run: (latency_ms from each scheduled send, sender lateness_ms, the server's
        busy ms per reply in the order served — its in-situ service-time log; per request unless batched).
        The replies themselves are kept in `self.log`: (request ids, busy ms, extra) in arrival order, and
        one row per request in `self.requests` (see calibrate/fidelity_log.py)."""
        from calibrate.fidelity_log import request_frame

        scheduled = np.cumsum(rng.exponential(1.0 / rate_rps, n))  # s after the start
        received = np.empty(n)
        sent = np.empty(n)
        lateness = np.empty(n)
        log: list[tuple[list[int], float, object]] = []
        timing: list[dict] = []

        def receive() -> None:
            got = 0
            while got < n:
                ids, busy, extra, when = self._reply_timed()
                at = time.perf_counter()
                for i in ids:
                    received[i] = at
                got += len(ids)
                log.append((ids, busy, extra))
                timing.append(when)

        receiver = threading.Thread(target=receive)
        receiver.start()
        start = time.perf_counter() + 0.05
        for i, at in enumerate(scheduled):
            wait = start + at - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            sent[i] = time.perf_counter()
            lateness[i] = (sent[i] - start - at) * 1e3
            self._submit(i)
        receiver.join()
        self.log = log
        self.requests = request_frame(start * 1e3, scheduled * 1e3, sent * 1e3, received * 1e3, log, timing)
        return (received - start - scheduled) * 1e3, lateness, np.array([busy for _, busy, _ in log])

    def _one_at_a_time(self, n: int) -> tuple[list, np.ndarray]:
        """`n` requests each sent when the previous reply came back: (replies, round trip ms)."""
        replies, rtt = [], np.empty(n)
        for i in range(n):
            begin = time.perf_counter()
            self._submit(i)
            replies.append(self._reply())
            rtt[i] = (time.perf_counter() - begin) * 1e3
        return replies, rtt


class LiveServer(_Client):
    """`fifo1`: a model server process with one pipe each way (on CPU `cpu` if given)."""

    def __init__(self, model: bytes, warmup: int = 200, cpu: int | None = None) -> None:
        context = mp.get_context("spawn")
        requests_recv, self._send = context.Pipe(duplex=False)
        self._recv, replies_send = context.Pipe(duplex=False)
        self.process = context.Process(
            target=_fifo_server, args=(requests_recv, replies_send, model, warmup, cpu), daemon=True
        )
        self.process.start()
        if self._recv.recv() != "ready":  # pragma: no cover - the server failed to start
            raise RuntimeError("model server did not start")

    def _submit(self, i: int) -> None:
        self._send.send(i)

    def _reply_timed(self) -> tuple[list[int], float, object, dict]:
        i, busy, sending, start, end = self._recv.recv()
        return [i], busy, sending, {"start_ms": start, "end_ms": end, "worker": 0}

    def calibrate(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(service_ms, transport_ms) of `n` requests sent one at a time."""
        replies, rtt = self._one_at_a_time(n)
        service = np.array([busy for _, busy, _ in replies])
        return service, np.maximum(rtt - service, 0.0)

    def close(self) -> None:
        self._send.send(None)
        self.process.join(timeout=10)


class SharedQueueServer(_Client):
    """`shared2`: `workers` model server processes that all take requests from one shared queue (worker k on
    CPU `cpus[k]` if given). The queues are multiprocessing SimpleQueues (a pipe and a lock): a worker
    writes its reply itself, where a Queue would leave it to a feeder thread, one more thread competing for
    the CPUs with the workers and the client."""

    def __init__(self, model: bytes, workers: int = 2, warmup: int = 200, cpus: list[int] | None = None) -> None:
        context = mp.get_context("spawn")
        self._requests, self._replies = context.SimpleQueue(), context.SimpleQueue()
        self.processes = [
            context.Process(
                target=_shared_worker,
                args=(self._requests, self._replies, model, warmup, k, cpus[k % len(cpus)] if cpus else None),
                daemon=True,
            )
            for k in range(workers)
        ]
        for process in self.processes:
            process.start()
        started = set()
        deadline = time.monotonic() + 120
        while len(started) < workers:
            if self._replies.empty():
                if time.monotonic() > deadline or not all(p.is_alive() for p in self.processes):
                    raise RuntimeError("model workers did not start")  # pragma: no cover
                time.sleep(0.02)
                continue
            started.add(self._replies.get())
        if started != {("ready", k) for k in range(workers)}:  # pragma: no cover - a worker failed to start
            raise RuntimeError("model workers did not start")

    def _submit(self, i: int) -> None:
        self._requests.put(i)

    def _reply_timed(self) -> tuple[list[int], float, object, dict]:
        i, busy, worker, start, end = self._replies.get()
        return [i], busy, worker, {"start_ms": start, "end_ms": end, "worker": worker}

    def calibrate(self, n: int) -> dict[str, np.ndarray]:
        """`n` requests one at a time (service alone, transport), then `n` with every worker kept busy (as
        many requests outstanding as workers: the service time when co-located workers run together). The
        round trip's rest with every worker busy (`transport_busy_ms`: the client then waits for a CPU too)
        is kept to show; the prediction's transport is the one-at-a-time one."""
        replies, rtt = self._one_at_a_time(n)
        alone = np.array([busy for _, busy, _ in replies])
        workers = len(self.processes)
        sent = np.empty(n)
        for i in range(min(workers, n)):
            sent[i] = time.perf_counter()
            self._submit(i)
        together, transport_busy = np.empty(n), np.empty(n)
        for k in range(n):
            ids, together[k], _ = self._reply()
            transport_busy[k] = (time.perf_counter() - sent[ids[0]]) * 1e3 - together[k]
            if k + workers < n:
                sent[k + workers] = time.perf_counter()
                self._submit(k + workers)
        return {
            "service_ms": alone,
            "transport_ms": np.maximum(rtt - alone, 0.0),
            "service_busy_ms": together,
            "transport_busy_ms": np.maximum(transport_busy, 0.0),
        }

    def close(self) -> None:
        for _ in self.processes:
            self._requests.put(None)
        for process in self.processes:
            process.join(timeout=10)


class BatchingServer(_Client):
    """`dynamic1`: one model server process behind a dynamic batcher (see `_batching_server`), on CPU `cpu`
    if given."""

    def __init__(
        self,
        model: bytes,
        max_batch: int = MAX_BATCH_SIZE,
        delay_ms: float = MAX_QUEUE_DELAY_MS,
        warmup: int = 200,
        cpu: int | None = None,
    ) -> None:
        context = mp.get_context("spawn")
        requests_recv, self._send = context.Pipe(duplex=False)
        self._recv, replies_send = context.Pipe(duplex=False)
        self.max_batch, self.delay_ms = max_batch, delay_ms
        self.process = context.Process(
            target=_batching_server,
            args=(requests_recv, replies_send, model, warmup, max_batch, delay_ms, cpu),
            daemon=True,
        )
        self.process.start()
        if self._recv.recv() != "ready":  # pragma: no cover - the server failed to start
            raise RuntimeError("model server did not start")

    def _submit(self, i: int) -> None:
        self._send.send(i)

    def _reply_timed(self) -> tuple[list[int], float, object, dict]:
        ids, busy, queued, sending, dispatch, end = self._recv.recv()
        arrival = [dispatch - q for q in queued]
        return ids, busy, (queued, sending), {"start_ms": dispatch, "end_ms": end, "worker": 0, "arrival_ms": arrival}

    def calibrate(self, n: int, repeats: int, seed: int = 0) -> dict:
        """The forward pass timed `repeats` times at every batch size (in the server process, closed loop);
        then `n` requests one at a time through the batcher: each waits out the delay alone, so the rest
        of its round trip is transport and its wait past the delay is the batcher's timer overshoot. A
        batch's busy time is its forward pass plus sending its reply (as the server reports it under
        load): each timed pass is paired with a reply-send time drawn from the one-at-a-time phase."""
        self._send.send(("time", repeats))
        forward_ms = {int(b): np.asarray(v) for b, v in self._recv.recv().items()}
        replies, rtt = self._one_at_a_time(n)
        busy = np.array([b for _, b, _ in replies])
        queued = np.array([extra[0][0] for _, _, extra in replies])
        sending = np.array([extra[1] for _, _, extra in replies][1:])  # the first follows the timings' reply
        rng = np.random.default_rng(seed)
        batch_ms = {b: v + rng.choice(sending, size=len(v)) for b, v in forward_ms.items()}
        return {
            "batch_ms": batch_ms,
            "forward_ms": forward_ms,
            "reply_send_ms": sending,
            "transport_ms": np.maximum(rtt - busy - queued, 0.0),
            "overshoot_ms": np.maximum(queued - self.delay_ms, 0.0),
            "max_batch_size": self.max_batch,
            "max_queue_delay_ms": self.delay_ms,
        }

    def close(self) -> None:
        self._send.send(None)
        self.process.join(timeout=10)


# --------------------------------------------------------------------------- predictions
def _samples(values: np.ndarray) -> list[float]:
    return np.asarray(values, dtype=float).round(5).tolist()


def _latency_rows(samples: dict[tuple[int, int], np.ndarray]) -> list[dict]:
    rows = []
    for (batch, instances), values in sorted(samples.items()):
        p50, p90, p95, p99 = (float(np.percentile(values, q)) for q in (50, 90, 95, 99))
        rows.append(
            {
                "batch_size": batch,
                "instances": instances,
                "n": len(values),
                "p50_ms": p50,
                "p90_ms": p90,
                "p95_ms": p95,
                "p99_ms": p99,
                "mean_ms": float(np.mean(values)),
            }
        )
    return rows


def profile_from_samples(name: str, samples: dict[tuple[int, int], np.ndarray]) -> dict:
    """A servesim batch-cost profile (sim/spec/profile.py) carrying the measured times themselves:
    `samples` (batch size, busy instances) → ms; servesim resamples them (>= 30 per size)."""
    alone = sorted((b, float(np.median(v))) for (b, k), v in samples.items() if k == 1)
    if len(alone) >= 2:
        curve = {"family": "piecewise_linear", "points": [[b, m] for b, m in alone]}
    else:  # one batch size: the median through batch 1
        curve = {"family": "affine", "base_ms": 0.0, "per_item_ms": alone[0][1]}
    return {
        "kind": "batch",
        "name": name,
        "model": f"servesim MLP {MODEL_HIDDEN}",
        "hardware": "this host",
        "serving_stack": "ONNX Runtime CPU, 1 intra-op thread",
        "provenance": {"source": "calibrate.fidelity, measured just before serving"},
        "curve": curve,
        "latency": _latency_rows(samples),
        "samples": [{"batch_size": b, "instances": k, "ms": _samples(v)} for (b, k), v in sorted(samples.items())],
    }


def _workload(rate_rps: float, requests: int) -> dict:
    return {
        "arrival": {"process": "poisson", "rate_rps": rate_rps},
        "requests": requests,
        "warmup_requests": requests // 20,
    }


def scenario_for(
    config: str, calibration: dict, rate_rps: float, requests: int, replications: int, seed: int = 1
) -> tuple[dict, dict[str, dict]]:
    """The servesim scenario (a dict) predicting `config` at `rate_rps` from its calibration alone, and the
    profile files it names (file name → profile dict; they must lie beside the scenario)."""
    transport = {
        "name": "transport",
        "kind": "delay",
        "service_ms": {"dist": "empirical", "samples": _samples(calibration["transport_ms"])},
    }
    profiles: dict[str, dict] = {}
    deployment: dict = {"replicas": 1}
    if config == "fifo1":
        forward = {
            "name": "forward",
            "kind": "model",
            "batching": {"policy": "none"},
            "service_ms": {"dist": "empirical", "samples": _samples(calibration["service_ms"])},
        }
    elif config == "shared2":
        # Two workers on one queue sharing one host = one replica with `instances: 2` (Triton's instance
        # group): its instances pull from the replica's one queue and slow each other (the profile's
        # instances: 2 samples, measured with both busy). Two replicas would not interfere in the model.
        profiles["shared2.yaml"] = profile_from_samples(
            "fidelity-shared2", {(1, 1): calibration["service_ms"], (1, 2): calibration["service_busy_ms"]}
        )
        forward = {"name": "forward", "kind": "model", "batching": {"policy": "none"}, "profile": "shared2.yaml"}
        deployment = {"replicas": 1, "instances": 2, "routing": "shared_queue"}
    elif config == "dynamic1":
        profiles["dynamic1.yaml"] = profile_from_samples(
            "fidelity-dynamic1", {(b, 1): v for b, v in calibration["batch_ms"].items()}
        )
        forward = {
            "name": "forward",
            "kind": "model",
            "profile": "dynamic1.yaml",
            "batching": {
                "policy": "dynamic",
                "max_batch_size": int(calibration["max_batch_size"]),
                "max_queue_delay_ms": float(calibration["max_queue_delay_ms"]),
                "dispatch_overshoot_ms": {"dist": "empirical", "samples": _samples(calibration["overshoot_ms"])},
            },
        }
    else:
        raise ValueError(f"unknown configuration {config!r} (choose from {', '.join(CONFIGS)})")
    scenario = {
        "name": f"fidelity-{config}",
        "seed": seed,
        "replications": replications,
        "workload": _workload(rate_rps, requests),
        "stages": [transport, forward],
        "deployment": deployment,
    }
    return scenario, profiles


def simulate_percentiles(scenario: dict, profiles: dict[str, dict] | None = None) -> dict:
    """servesim's p50 / p95 / p99 (and 95% CIs) of a scenario dict, its profiles written beside it, and the
    mean size of the model stage's batches."""
    from sim.analysis.simulate import simulate
    from sim.spec.scenario import parse_scenario

    with tempfile.TemporaryDirectory(prefix="fidelity-") as folder:
        for name, profile in (profiles or {}).items():
            (Path(folder) / name).write_text(json.dumps(profile), encoding="utf-8")  # JSON is YAML
        result = simulate(parse_scenario(scenario, base_dir=folder))
    summary = result.summary
    out = {
        f"p{p:g}": {"ms": summary["latency_ms"][f"p{p:g}"], "ci95": summary["latency_ms_ci95"][f"p{p:g}"]}
        for p in PERCENTILES
    }
    frame = result.run.requests
    if "forward_batch_size" in frame:
        batches = frame.drop_duplicates(["replication", "forward_batch_id"])
        out["mean_batch_size"] = float(batches["forward_batch_size"].mean())
        out["mean_service_ms"] = float(batches["forward_ms"].mean())  # per batch, as the servers log it
    else:
        out["mean_service_ms"] = float(frame["forward_ms"].mean())
    return out


def predict(
    service_ms: np.ndarray,
    transport_ms: np.ndarray,
    rate_rps: float,
    requests: int,
    replications: int,
    ordered: bool = False,
) -> dict:
    """fifo1: servesim's p50 / p95 / p99 (and 95% CIs) for the calibrated scenario: service times drawn
    independently from `service_ms`, or (`ordered`) replayed in the order logged."""
    scenario, profiles = scenario_for(
        "fifo1", {"service_ms": service_ms, "transport_ms": transport_ms}, rate_rps, requests, replications
    )
    if ordered:
        scenario["stages"][1]["service_ms"] = {"dist": "constant", "value": float(np.median(service_ms))}
        scenario["stages"][1]["replay"] = {"samples": _samples(service_ms)}
    predicted = simulate_percentiles(scenario, profiles)
    return {key: predicted[key] for key in (f"p{p:g}" for p in PERCENTILES)}


# --------------------------------------------------------------------------- the matrix
def capacity_rps(config: str, calibration: dict) -> tuple[float, str]:
    """The calibrated capacity of a configuration (requests per second) and what it is."""
    if config == "fifo1":
        return 1000.0 / float(np.mean(calibration["service_ms"])), "1 / mean service"
    if config == "shared2":
        return 2000.0 / float(np.mean(calibration["service_busy_ms"])), "2 / mean service with both busy"
    if config == "dynamic1":
        rates = {b: 1000.0 * b / float(np.mean(v)) for b, v in calibration["batch_ms"].items()}
        best = max(rates, key=rates.get)
        return rates[best], f"batch of {best} / its mean time"
    raise ValueError(f"unknown configuration {config!r}")


def judge(runs_ms: list[float], predicted_ms: float, percentile: str) -> dict:
    """Noise (the runs' spread over their mean, %), the prediction's error against their mean (%), and the
    verdict: "noisy" when the runs disagree by more than NOISE_LIMIT_PCT (not judged; also with a single
    run, which shows no noise), else "ok" within ERROR_LIMIT_PCT, else "miss"."""
    values = np.asarray(runs_ms, dtype=float)
    mean = float(values.mean())
    noise = 100.0 * float(values.max() - values.min()) / mean if len(values) > 1 else float("nan")
    error = 100.0 * (predicted_ms - mean) / mean
    if not noise <= NOISE_LIMIT_PCT:  # nan (one run) is not judged either
        verdict = "noisy"
    else:
        verdict = "ok" if abs(error) <= ERROR_LIMIT_PCT[percentile] else "miss"
    return {"measured_mean_ms": mean, "noise_pct": noise, "error_pct": error, "verdict": verdict}


def _calibration_summary(config: str, calibration: dict) -> dict:
    out = {"transport_ms_median": float(np.median(calibration["transport_ms"]))}
    if config in ("fifo1", "shared2"):
        out["service_ms_mean"] = float(np.mean(calibration["service_ms"]))
        out["service_ms_p99"] = float(np.percentile(calibration["service_ms"], 99))
    if config == "shared2":
        out["service_busy_ms_mean"] = float(np.mean(calibration["service_busy_ms"]))
        out["service_busy_ms_p99"] = float(np.percentile(calibration["service_busy_ms"], 99))
        out["transport_busy_ms_median"] = float(np.median(calibration["transport_busy_ms"]))
    if config == "dynamic1":
        out["batch_ms_mean"] = {int(b): float(np.mean(v)) for b, v in calibration["batch_ms"].items()}
        out["batch_ms_p99"] = {int(b): float(np.percentile(v, 99)) for b, v in calibration["batch_ms"].items()}
        out["overshoot_ms_median"] = float(np.median(calibration["overshoot_ms"]))
        out["reply_send_ms_median"] = float(np.median(calibration["reply_send_ms"]))
        out["max_batch_size"] = calibration["max_batch_size"]
        out["max_queue_delay_ms"] = calibration["max_queue_delay_ms"]
    return out


def _calibrate(config: str, server, n: int) -> dict:
    if config == "fifo1":
        service, transport = server.calibrate(n)
        return {"service_ms": service, "transport_ms": transport}
    if config == "shared2":
        return server.calibrate(n)
    return server.calibrate(n, repeats=200)


def _measure_config(
    config: str,
    model: bytes,
    utilisations,
    runs: int,
    requests: int,
    calibration_n: int,
    rng,
    pin: bool = True,
    co_load: int = 0,
) -> list[dict]:
    """Start the server(s); per utilisation, calibrate (just before: this host's speed drifts over
    seconds; with `co_load`, also that many requests served open loop at the cell's rate, whose logged
    busy times are the kernel's cost beside the client, the reply path and the siblings) and serve `runs`
    times back to back; stop. With `pin` and two CPUs or more, a single server
    runs on the last CPU and the client on the first (the scheduler then cannot put them on one CPU, which
    delays replies by up to a service time); shared2's workers on CPUs of their own, the client anywhere."""
    cpus = _cpus() if pin else []
    alone = len(cpus) >= 2 and config != "shared2"
    if config == "fifo1":
        server = LiveServer(model, cpu=cpus[-1] if alone else None)
    elif config == "shared2":
        server = SharedQueueServer(model, workers=2, cpus=cpus if len(cpus) >= 2 else None)
    elif config == "dynamic1":
        server = BatchingServer(model, cpu=cpus[-1] if alone else None)
    else:
        raise ValueError(f"unknown configuration {config!r} (choose from {', '.join(CONFIGS)})")
    keep = slice(requests // 20, None)  # the same warm-up share as the prediction drops
    cells = []
    affinity = _cpus()
    try:
        if alone:
            _pin(cpus[0])  # this thread and the receiver threads it starts
        for rho in utilisations:
            calibration = _calibrate(config, server, calibration_n)
            capacity, what = capacity_rps(config, calibration)
            rate = rho * capacity
            if co_load:  # the kernel under the serving path's load, before (and apart from) the measured runs
                server.serve(rate, co_load, rng)
                frame = server.requests.drop_duplicates("batch_id")
                calibration["co_load_busy_ms"] = frame["busy_ms"].to_numpy()
                calibration["co_load_batch_size"] = frame["batch_size"].to_numpy()
            measured, lateness, logs, frames = [], [], [], []
            for _ in range(runs):
                latency, late, busy = server.serve(rate, requests, rng)
                measured.append({f"p{p:g}": float(np.percentile(latency[keep], p)) for p in PERCENTILES})
                lateness.append({"p50": float(np.percentile(late, 50)), "p99": float(np.percentile(late, 99))})
                logs.append((busy, server.log))
                frames.append(server.requests)
            cells.append(
                {
                    "config": config,
                    "utilisation": rho,
                    "rate_rps": rate,
                    "calibration": {
                        **_calibration_summary(config, calibration),
                        "capacity_rps": capacity,
                        "capacity": what,
                    },
                    "measured": measured,
                    "lateness": lateness,
                    "_calibration": calibration,
                    "_logs": logs,
                    "_requests": frames,
                }
            )
    finally:
        if alone and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, affinity)
        server.close()
    return cells


def _predict_cell(cell: dict, requests: int) -> dict:
    """Fill a measured cell with servesim's prediction, the verdicts and (fifo1) the in-situ replay; return
    its calibration (samples as lists)."""
    config, calibration = cell["config"], cell.pop("_calibration")
    scenario, profiles = scenario_for(config, calibration, cell["rate_rps"], requests, REPLICATIONS)
    predicted = simulate_percentiles(scenario, profiles)
    logs = cell.pop("_logs")
    replayed = None
    if config == "fifo1":  # in situ: the service times logged under load, replayed in order
        in_situ = np.concatenate([busy for busy, _ in logs])
        replayed = predict(in_situ, calibration["transport_ms"], cell["rate_rps"], requests, REPLICATIONS, True)
        cell["service_ms_mean_in_situ"] = float(in_situ.mean())
        cell["service_lag1_autocorrelation_in_situ"] = _lag1(in_situ)
    if config == "shared2":
        cell["service_ms_mean_in_situ"] = float(np.concatenate([busy for busy, _ in logs]).mean())
        cell["worker_share"] = [
            float(np.mean([extra == 0 for _, _, extra in log])) for _, log in logs
        ]  # share of requests worker 0 served, per run
    if config == "dynamic1":
        cell["mean_batch_size_measured"] = [float(np.mean([len(ids) for ids, _, _ in log])) for _, log in logs]
        cell["mean_batch_size_predicted"] = predicted.get("mean_batch_size")
    co_loaded = None
    if "co_load_busy_ms" in calibration:  # the kernel's slowdown beside the serving path, from its calibration
        from calibrate.fidelity_offline import scaled, slowdown

        factor = slowdown(
            config, calibration, calibration["co_load_busy_ms"], calibration["co_load_batch_size"], predicted
        )
        cell["co_load_factor"] = factor
        scenario, profiles = scenario_for(config, scaled(calibration, factor), cell["rate_rps"], requests, REPLICATIONS)
        co_loaded = simulate_percentiles(scenario, profiles)
    rows = []
    for p in PERCENTILES:
        key = f"p{p:g}"
        runs_ms = [m[key] for m in cell["measured"]]
        row = {
            "percentile": key,
            "measured_runs_ms": runs_ms,
            "predicted_ms": predicted[key]["ms"],
            "predicted_ci95": predicted[key]["ci95"],
            **judge(runs_ms, predicted[key]["ms"], key),
        }
        if co_loaded is not None:
            verdict = judge(runs_ms, co_loaded[key]["ms"], key)
            row.update(co_load_ms=co_loaded[key]["ms"], co_load_error_pct=verdict["error_pct"])
            row["co_load_verdict"] = verdict["verdict"]
        if replayed is not None:
            row["in_situ_replay_ms"] = replayed[key]["ms"]
            row["in_situ_error_pct"] = 100 * (replayed[key]["ms"] - row["measured_mean_ms"]) / row["measured_mean_ms"]
        rows.append(row)
    cell["table"] = rows
    return _jsonable(calibration)


def run_fidelity(
    requests: int,
    runs: int,
    utilisations=(0.5, 0.8),
    calibration: int = 500,
    configs=CONFIGS,
    seed: int = 0,
    pin: bool = True,
    co_load: int = 300,
    out: Path | None = None,
) -> dict:
    """Measure every configuration (servers stopped before any prediction runs), then predict each cell;
    with `out`, each run's per-request log is written under it (calibrate/fidelity_log.py)."""
    from calibrate.fidelity_log import write_request_logs

    from calibrate.networks import build_mlp

    model = build_mlp(hidden=MODEL_HIDDEN)
    rng = np.random.default_rng(seed)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    cells = []
    for config in configs:
        cells += _measure_config(config, model, utilisations, runs, requests, calibration, rng, pin, co_load)
    measured_s = time.perf_counter() - started
    load_after = os.getloadavg()[0]
    for cell in cells:
        frames = cell.pop("_requests")
        if out is not None:
            cell["request_logs"] = write_request_logs(out, cell, frames)
    samples = [_predict_cell(cell, requests) for cell in cells]
    return {
        "machine": f"{os.cpu_count()} logical CPUs, 1-min load average {load_before:.2f} before / "
        f"{load_after:.2f} after the measurements ({measured_s:.0f} s)",
        "load_average_1min": [load_before, load_after],
        "requests_per_run": requests,
        "runs": runs,
        "pinned": pin,
        "noise_limit_pct": NOISE_LIMIT_PCT,
        "error_limit_pct": ERROR_LIMIT_PCT,
        "cells": cells,
        "calibration_samples": samples,  # per cell, to predict again
    }


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return _samples(value)
    return value


def _lag1(x: np.ndarray) -> float:
    from calibrate.regimes import lag1

    return lag1(x)


def _calibration_text(cal: dict) -> str:
    text = f"transport median {cal['transport_ms_median']:.3f} ms"
    if "service_ms_mean" in cal:
        text += f", service mean {cal['service_ms_mean']:.3f} ms (p99 {cal['service_ms_p99']:.3f})"
    if "service_busy_ms_mean" in cal:
        text += (
            f", with both busy {cal['service_busy_ms_mean']:.3f} (p99 {cal['service_busy_ms_p99']:.3f}; transport "
            f"median then {cal['transport_busy_ms_median']:.3f}, not used)"
        )
    if "batch_ms_mean" in cal:
        text += ", batch mean ms " + " ".join(f"{b}:{m:.2f}" for b, m in cal["batch_ms_mean"].items())
        text += (
            f" (reply send median {cal['reply_send_ms_median']:.3f} ms included), timer overshoot median "
            f"{cal['overshoot_ms_median']:.3f} ms"
        )
    return text + f"; capacity {cal['capacity_rps']:.0f} req/s ({cal['capacity']})"


def format_report(result: dict) -> str:
    lines = [
        f"machine: {result['machine']}",
        f"ONNX Runtime MLP {MODEL_HIDDEN}, 1 intra-op thread; dynamic1: max_batch_size {MAX_BATCH_SIZE}, "
        f"max_queue_delay_ms {MAX_QUEUE_DELAY_MS:g}; server and client pinned to separate CPUs: "
        f"{'yes' if result.get('pinned') else 'no'}",
        f"{result['runs']} runs of {result['requests_per_run']} requests per cell (first 5% dropped); judged where "
        f"the runs agree within {result['noise_limit_pct']:g}%: ok when the prediction is within "
        + " / ".join(f"{v:g}% ({k})" for k, v in result["error_limit_pct"].items()),
    ]
    runs = result["runs"]
    header = (
        f"{'config':<9}{'rho':>4} {'req/s':>6} {'pct':>4} "
        + "".join(f"{f'run{k + 1} ms':>9}" for k in range(runs))
        + f"{'noise%':>8} {'predicted ms [95% CI]':>25} {'error%':>7}  verdict   co-load (error%, verdict)"
        + "  in-situ replay (error%)"
    )
    lines.append(header)
    for cell in result["cells"]:
        for row in cell["table"]:
            lo, hi = row["predicted_ci95"]
            noise = "—" if np.isnan(row["noise_pct"]) else f"{row['noise_pct']:.1f}"
            line = (
                f"{cell['config']:<9}{cell['utilisation']:>4g} {cell['rate_rps']:>6.0f} {row['percentile']:>4} "
                + "".join(f"{v:>9.2f}" for v in row["measured_runs_ms"])
                + f"{noise:>8} {row['predicted_ms']:>8.2f} [{lo:6.2f}, {hi:6.2f}] "
                f"{row['error_pct']:>+7.1f}  {row['verdict']:<8}"
            )
            if "co_load_ms" in row:
                line += f"  {row['co_load_ms']:.2f} ({row['co_load_error_pct']:+.1f}, {row['co_load_verdict']})"
            if "in_situ_replay_ms" in row:
                line += f"  {row['in_situ_replay_ms']:.2f} ({row['in_situ_error_pct']:+.1f})"
            lines.append(line.rstrip())
        lines.append("    calibrated just before: " + _calibration_text(cell["calibration"]))
        notes = ["sender lateness p50/p99 ms " + ", ".join(f"{x['p50']:.2f}/{x['p99']:.2f}" for x in cell["lateness"])]
        if "mean_batch_size_measured" in cell:
            notes.append(
                "mean batch "
                + ", ".join(f"{x:.2f}" for x in cell["mean_batch_size_measured"])
                + f" measured, {cell['mean_batch_size_predicted']:.2f} predicted"
            )
        if "worker_share" in cell:
            notes.append("worker 0 served " + ", ".join(f"{100 * x:.0f}%" for x in cell["worker_share"]))
        if "service_ms_mean_in_situ" in cell:
            notes.append(f"in situ service mean {cell['service_ms_mean_in_situ']:.3f} ms")
        if "service_lag1_autocorrelation_in_situ" in cell:
            notes.append(f"lag-1 autocorrelation {cell['service_lag1_autocorrelation_in_situ']:.2f}")
        if "co_load_factor" in cell:
            notes.append(f"co-load calibration: kernel {cell['co_load_factor']:.3f}x its time alone")
        lines.append("    " + "; ".join(notes))
    verdicts = [
        (c["config"], c["utilisation"], r["percentile"], r["verdict"]) for c in result["cells"] for r in c["table"]
    ]
    judged = [v for v in verdicts if v[3] != "noisy"]
    ok = [v for v in judged if v[3] == "ok"]
    lines.append(
        f"judged {len(judged)} of {len(verdicts)} percentiles (the rest noisy); {len(ok)} of them ok"
        + (
            ": misses " + ", ".join(f"{c} {u:g} {p}" for c, u, p, v in judged if v == "miss")
            if len(ok) < len(judged)
            else ""
        )
    )
    co_load = [r["co_load_verdict"] for c in result["cells"] for r in c["table"] if "co_load_verdict" in r]
    if co_load:
        judged_co = [v for v in co_load if v != "noisy"]
        lines.append(f"co-load calibration: {sum(v == 'ok' for v in judged_co)} of {len(judged_co)} judged ok")
    return "\n".join(lines)


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip())


def _predict_only(directories: list[str], out: str | None) -> int:
    """`--predict-only`: every cell of the saved runs predicted again, printed (and saved under `out`)."""
    import sys

    from calibrate.fidelity_offline import format_repredicted, repredict
    from sim.errors import ServesimError

    try:
        runs = repredict(directories)
    except ServesimError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = format_repredicted(runs)
    if out:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "repredicted.txt").write_text(report + "\n", encoding="utf-8")
        (folder / "repredicted.json").write_text(json.dumps(_jsonable(runs), indent=2, default=str), encoding="utf-8")
    print(report)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated, of {', '.join(CONFIGS)}")
    parser.add_argument("--utilisations", default="0.5,0.8", help="of each configuration's calibrated capacity")
    parser.add_argument("--runs", type=int, default=2, help="back-to-back measurements per cell")
    parser.add_argument("--requests", type=int, default=2000, help="per run")
    parser.add_argument("--calibration", type=int, default=500, help="closed-loop requests per configuration")
    parser.add_argument(
        "--co-load",
        type=int,
        default=300,
        help="requests served open loop at each cell's rate before its runs, to calibrate the kernel under the "
        "serving path's load (0: none)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-pin", action="store_true", help="let the OS place server and client processes")
    parser.add_argument(
        "--out", default=None, help="folder for the results (default fidelity/; none with --predict-only)"
    )
    parser.add_argument(
        "--predict-only",
        nargs="+",
        metavar="DIR",
        help="re-predict saved runs (DIR/fidelity.json) with the current model; serves nothing",
    )
    args = parser.parse_args(argv)
    if args.predict_only:
        return _predict_only(args.predict_only, args.out)
    configs = tuple(c.strip() for c in args.configs.split(",") if c.strip())
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        parser.error(f"unknown configuration(s) {', '.join(unknown)} (choose from {', '.join(CONFIGS)})")
    utilisations = _floats(args.utilisations)
    if not utilisations or any(not 0 < u < 1 for u in utilisations):
        parser.error("--utilisations: values between 0 and 1 (exclusive)")
    if args.runs < 1 or args.requests < 100 or args.calibration < 30 or not (args.co_load == 0 or args.co_load >= 30):
        parser.error("--runs >= 1, --requests >= 100, --calibration >= 30, --co-load 0 or >= 30")
    out = Path(args.out or "fidelity")
    out.mkdir(parents=True, exist_ok=True)
    result = run_fidelity(
        args.requests,
        args.runs,
        utilisations,
        args.calibration,
        configs,
        args.seed,
        pin=not args.no_pin,
        co_load=args.co_load,
        out=out,
    )
    (out / "fidelity.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    report = format_report(result)
    (out / "fidelity.txt").write_text(report + "\n", encoding="utf-8")
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
