"""Measure a kernel alone and beside the rest of its serving path on this host, and its slowdown there.

What runs beside the measured ONNX Runtime session (the kernel):

- a **client**: a load generator in its own process sending small requests at `client_rps` (Poisson) over
  a pipe, and reading the replies, as a load tester or a co-located front end would;
- the **reply path**: a thread in the kernel's process that reads each request and writes its reply, as a
  server's reader / reply threads do;
- `siblings` other sessions of the same model running back to back (sibling instances or models).

Alone and loaded runs are interleaved over `rounds` passes, so a drift of the host's speed touches both.
The slowdown at a batch size is the loaded median over the median alone; `co_load_rows` gives the rows a
profile carries as `co_load` (sim/spec/profile.py), which a model stage with `host:` runs at.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from calibrate.measure import MeasureError, _run_concurrently, _session, make_inputs


@dataclass(frozen=True)
class CoLoadSettings:
    client_rps: tuple[float, ...] = (100.0,)
    siblings: tuple[int, ...] = (0,)
    batch_sizes: tuple[int, ...] = (1,)
    warmup: int = 10
    repeats: int = 60
    threads: int = 1
    rounds: int = 3
    payload_bytes: int = 256


def _load_generator(requests, replies, rate_rps: float, payload_bytes: int, seed: int) -> None:
    """The client process: Poisson sends until told to stop (a reply of None), reading every reply."""
    rng = np.random.default_rng(seed)
    payload = bytes(payload_bytes)
    stop = threading.Event()

    def receive() -> None:
        while replies.recv() is not None:
            pass
        stop.set()

    receiver = threading.Thread(target=receive, daemon=True)
    receiver.start()
    requests.send("ready")
    due = time.perf_counter()
    while not stop.is_set():
        due += rng.exponential(1.0 / rate_rps)
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        if not stop.is_set():
            requests.send(payload)
    requests.send(None)
    receiver.join(timeout=5)


class ClientLoad:
    """A load generator process at `rate_rps` and this process's reply thread, running while in `with`."""

    def __init__(self, rate_rps: float, payload_bytes: int = 256, seed: int = 0) -> None:
        context = mp.get_context("spawn")
        self._requests_recv, requests_send = context.Pipe(duplex=False)
        replies_recv, self._replies_send = context.Pipe(duplex=False)
        self.process = context.Process(
            target=_load_generator, args=(requests_send, replies_recv, rate_rps, payload_bytes, seed), daemon=True
        )
        self.served = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._reply, daemon=True)

    def _reply(self) -> None:
        while True:
            message = self._requests_recv.recv()
            if message is None:
                return
            if not self._stop.is_set():
                self._replies_send.send(message)
                self.served += 1

    def __enter__(self) -> "ClientLoad":
        self.process.start()
        if not self._requests_recv.poll(60) or self._requests_recv.recv() != "ready":
            self.process.terminate()
            raise MeasureError("co-load: the load generator process did not start")
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._replies_send.send(None)  # the client stops sending, then says so
        self._thread.join(timeout=10)
        self.process.join(timeout=10)
        if self.process.is_alive():  # pragma: no cover - a client that did not stop
            self.process.terminate()


def measure_co_load(
    model: bytes | str | Path, settings: CoLoadSettings = CoLoadSettings(), seed: int = 0
) -> pd.DataFrame:
    """The kernel's timed runs alone (client_rps 0, siblings 0) and beside each (client rate, siblings):
    one row per run (batch_size, client_rps, siblings, latency_ms, cpu_ms, replies_per_s)."""
    if isinstance(model, Path):
        model = str(model)
    if settings.repeats < 1 or not settings.batch_sizes or any(r <= 0 for r in settings.client_rps):
        raise MeasureError("co-load: repeats >= 1, at least one batch size, client rates > 0")
    if any(k < 0 for k in settings.siblings):
        raise MeasureError("co-load: siblings >= 0")
    rng = np.random.default_rng(seed)
    k_max = max(settings.siblings, default=0)
    sessions = [_session(model, settings.threads) for _ in range(k_max + 1)]
    feeds = {b: [make_inputs(s, b, rng) for s in sessions] for b in settings.batch_sizes}
    rounds = max(1, min(settings.rounds, settings.repeats))
    per_round = [settings.repeats // rounds + (1 if r < settings.repeats % rounds else 0) for r in range(rounds)]
    rows: list[tuple] = []

    def timed(b: int, k: int, count: int, warm: int) -> list[tuple[float, float]]:
        return _run_concurrently(sessions[: k + 1], feeds[b][: k + 1], warm, count)[0]  # session 0: the kernel

    levels = [(0.0, k) for k in settings.siblings if k > 0] + [
        (r, k) for r in settings.client_rps for k in settings.siblings
    ]
    for r, count in enumerate(per_round):
        warm = settings.warmup if r == 0 else min(2, settings.warmup)
        for b in settings.batch_sizes:
            rows += [(b, 0.0, 0, wall, cpu, 0.0) for wall, cpu in timed(b, 0, count, warm)]
        for rps, k in levels:
            if rps == 0:
                for b in settings.batch_sizes:
                    rows += [(b, 0.0, k, wall, cpu, 0.0) for wall, cpu in timed(b, k, count, warm)]
                continue
            with ClientLoad(rps, settings.payload_bytes, seed=seed + r) as load:
                time.sleep(0.2)  # the client sending before the timed runs
                began, served = time.perf_counter(), load.served
                runs = {b: timed(b, k, count, warm) for b in settings.batch_sizes}
                achieved = (load.served - served) / max(time.perf_counter() - began, 1e-9)
            for b, got in runs.items():
                rows += [(b, rps, k, wall, cpu, achieved) for wall, cpu in got]
    return pd.DataFrame(rows, columns=["batch_size", "client_rps", "siblings", "latency_ms", "cpu_ms", "replies_per_s"])


def co_load_rows(frame: pd.DataFrame, column: str = "latency_ms") -> list[dict]:
    """A profile's `co_load` rows: per (batch size, client rate, siblings) beside something, the median
    and its slowdown over the median alone at that batch size."""
    alone = frame[(frame["client_rps"] == 0) & (frame["siblings"] == 0)].groupby("batch_size")[column].median()
    rows = []
    loaded = frame[(frame["client_rps"] > 0) | (frame["siblings"] > 0)]
    for (b, rps, k), group in loaded.groupby(["batch_size", "client_rps", "siblings"]):
        if b not in alone.index:
            raise MeasureError(f"co-load: batch size {b} has no runs alone to compare with")
        median = float(group[column].median())
        rows.append(
            {
                "batch_size": int(b),
                "client_rps": float(rps),
                "siblings": int(k),
                "n": int(len(group)),
                "p50_ms": round(median, 5),
                "slowdown": round(median / float(alone[b]), 5),
            }
        )
    return rows
