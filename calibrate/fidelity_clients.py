"""The client side of `make fidelity`: each server configuration behind one class that starts its
process(es) (calibrate/fidelity_servers.py), calibrates it closed loop and serves open-loop Poisson
traffic, logging every request (calibrate/fidelity_log.py)."""

from __future__ import annotations

import multiprocessing as mp
import threading
import time

import numpy as np

from calibrate.fidelity_servers import _batching_server, _fifo_server, _shared_worker
from calibrate.fidelity_settings import MAX_BATCH_SIZE, MAX_QUEUE_DELAY_MS


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
