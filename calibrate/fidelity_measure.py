"""The live measurements of `make fidelity`: per configuration, start its server(s); per utilisation,
calibrate just before, optionally serve the co-load phase, then serve the measured runs."""

from __future__ import annotations

import os

import numpy as np

from calibrate.fidelity_clients import BatchingServer, LiveServer, SharedQueueServer
from calibrate.fidelity_path import path_samples
from calibrate.fidelity_scenarios import capacity_rps
from calibrate.fidelity_servers import _cpus, _pin
from calibrate.fidelity_settings import CONFIGS, PERCENTILES


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
    busy times are the kernel's cost beside the client, the reply path and the siblings, and whose requests
    that found a worker idle time the serving path around it, calibrate/fidelity_path.py) and serve `runs`
    times back to back; calibrate once more after the last cell (calibrate/fidelity_drift.py); stop. With `pin` and two CPUs or more, a single server
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
                calibration["co_load_path_ms"] = path_samples(config, server.requests)
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
        if cells:  # so that the last cell, too, has a calibration after its runs: its host-drift band
            cells[-1]["_calibration_after"] = _calibrate(config, server, calibration_n)
    finally:
        if alone and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, affinity)
        server.close()
    return cells
