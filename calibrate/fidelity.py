"""Fidelity check, end to end on this machine: serve a live ONNX Runtime model in a separate process,
drive it with open-loop Poisson traffic from another, and compare the measured p50 / p95 / p99 with what
servesim predicts from a calibration taken just before — over several serving runs, so that the
run-to-run noise of the measurement stands beside the prediction's error.

1. calibrate: closed-loop requests one at a time; the server reports how long it was busy with each
   (service time), the client its round trip (the rest is inter-process transport, a delay stage);
2. serve: `runs` open-loop runs at `utilisation` of the calibrated service rate; latency is measured
   from each request's *scheduled* send time (no coordinated omission), the sender's lateness reported;
3. predict: the scenario (transport delay → FCFS model stage, both from the calibration samples) run by
   servesim with replications, p50 / p95 / p99 and their 95% CIs; and again from the service times the
   server logged *during* the runs, replayed in order (in-situ calibration, correlated slow periods).

    python -m calibrate.fidelity [--requests 2000] [--runs 3] [--utilisation 0.3] [--out fidelity/]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import threading
import time
from pathlib import Path

import numpy as np

PERCENTILES = (50.0, 95.0, 99.0)


def _server(requests, replies, model: bytes, warmup: int) -> None:
    """The model server: FCFS over the request pipe; reports its busy time per request (ms)."""
    from calibrate.measure import _session, make_inputs

    session = _session(model, threads=1)
    feeds = make_inputs(session, 1, np.random.default_rng(0))
    for _ in range(warmup):
        session.run(None, feeds)
    replies.send("ready")
    while True:
        message = requests.recv()
        begin = time.perf_counter()
        if message is None:
            return
        session.run(None, feeds)
        replies.send((message, (time.perf_counter() - begin) * 1e3))


class LiveServer:
    """A model server process with one pipe each way."""

    def __init__(self, model: bytes, warmup: int = 200) -> None:
        context = mp.get_context("spawn")
        requests_recv, self._send = context.Pipe(duplex=False)
        self._recv, replies_send = context.Pipe(duplex=False)
        self.process = context.Process(target=_server, args=(requests_recv, replies_send, model, warmup), daemon=True)
        self.process.start()
        if self._recv.recv() != "ready":  # pragma: no cover - the server failed to start
            raise RuntimeError("model server did not start")

    def calibrate(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(service_ms, transport_ms) of `n` requests sent one at a time."""
        service, transport = np.empty(n), np.empty(n)
        for i in range(n):
            begin = time.perf_counter()
            self._send.send(i)
            _, busy_ms = self._recv.recv()
            rtt_ms = (time.perf_counter() - begin) * 1e3
            service[i], transport[i] = busy_ms, max(rtt_ms - busy_ms, 0.0)
        return service, transport

    def serve(self, rate_rps: float, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Open-loop Poisson run: (latency_ms from each scheduled send, sender lateness_ms, the server's
        busy ms per request in the order served — its in-situ service-time log)."""
        scheduled = np.cumsum(rng.exponential(1.0 / rate_rps, n))  # s after the start
        received = np.empty(n)
        lateness = np.empty(n)
        busy = np.empty(n)

        def receive() -> None:
            for k in range(n):
                i, busy[k] = self._recv.recv()
                received[i] = time.perf_counter()

        receiver = threading.Thread(target=receive)
        receiver.start()
        start = time.perf_counter() + 0.05
        for i, at in enumerate(scheduled):
            wait = start + at - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            lateness[i] = (time.perf_counter() - start - at) * 1e3
            self._send.send(i)
        receiver.join()
        return (received - start - scheduled) * 1e3, lateness, busy

    def close(self) -> None:
        self._send.send(None)
        self.process.join(timeout=10)


def predict(
    service_ms: np.ndarray,
    transport_ms: np.ndarray,
    rate_rps: float,
    requests: int,
    replications: int,
    ordered: bool = False,
) -> dict:
    """servesim's p50 / p95 / p99 (and 95% CIs) for the calibrated scenario: service times drawn
    independently from `service_ms`, or (`ordered`) replayed in the order logged."""
    from sim.analysis.simulate import simulate
    from sim.spec.scenario import parse_scenario

    scenario = parse_scenario(
        {
            "name": "fidelity",
            "seed": 1,
            "replications": replications,
            "workload": {
                "arrival": {"process": "poisson", "rate_rps": rate_rps},
                "requests": requests,
                "warmup_requests": requests // 20,
            },
            "stages": [
                {
                    "name": "transport",
                    "kind": "delay",
                    "service_ms": {"dist": "empirical", "samples": transport_ms.round(5).tolist()},
                },
                {
                    "name": "forward",
                    "kind": "model",
                    "batching": {"policy": "none"},
                    **(
                        {
                            "service_ms": {"dist": "constant", "value": float(np.median(service_ms))},
                            "replay": {"samples": service_ms.round(5).tolist()},
                        }
                        if ordered
                        else {"service_ms": {"dist": "empirical", "samples": service_ms.round(5).tolist()}}
                    ),
                },
            ],
            "deployment": {"replicas": 1},
        }
    )
    summary = simulate(scenario).summary
    return {
        f"p{p:g}": {"ms": summary["latency_ms"][f"p{p:g}"], "ci95": summary["latency_ms_ci95"][f"p{p:g}"]}
        for p in PERCENTILES
    }


def run_fidelity(requests: int, runs: int, utilisation: float, calibration: int, seed: int = 0) -> dict:
    from calibrate.networks import build_mlp

    # ~2 ms per request: long against IPC and timer granularity, short enough for a few CPU seconds a run.
    server = LiveServer(build_mlp(hidden=(2048, 2048, 2048, 2048)))
    try:
        service, transport = server.calibrate(calibration)
        rate = utilisation * 1000.0 / service.mean()
        rng = np.random.default_rng(seed)
        measured, lateness, in_situ = [], [], []
        for _ in range(runs):
            latency, late, busy = server.serve(rate, requests, rng)
            keep = slice(requests // 20, None)  # the same warm-up share as the prediction drops
            measured.append({f"p{p:g}": float(np.percentile(latency[keep], p)) for p in PERCENTILES})
            lateness.append({"p50": float(np.percentile(late, 50)), "p99": float(np.percentile(late, 99))})
            in_situ.append(busy)
    finally:
        server.close()
    predicted = predict(service, transport, rate, requests, replications=10)
    # In situ: the service times the server logged under load, replayed in order (correlated slow periods).
    replayed = predict(np.concatenate(in_situ), transport, rate, requests, replications=10, ordered=True)
    table = []
    for key in predicted:
        values = np.array([m[key] for m in measured])
        mean, spread = float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0
        table.append(
            {
                "percentile": key,
                "predicted_ms": predicted[key]["ms"],
                "predicted_ci95": predicted[key]["ci95"],
                "in_situ_replay_ms": replayed[key]["ms"],
                "in_situ_replay_ci95": replayed[key]["ci95"],
                "measured_mean_ms": mean,
                "measured_runs_ms": values.tolist(),
                "measured_sd_ms": spread,
                "error_pct": 100 * (predicted[key]["ms"] - mean) / mean,
                "in_situ_error_pct": 100 * (replayed[key]["ms"] - mean) / mean,
            }
        )
    service_in_situ = np.concatenate(in_situ)
    return {
        "machine": f"{os.cpu_count()} logical CPUs, 1-min load average {os.getloadavg()[0]:.2f} (shared: figures are noisy)",
        "calibration": {
            "requests": calibration,
            "service_ms_mean": float(service.mean()),
            "service_ms_p99": float(np.percentile(service, 99)),
            "transport_ms_median": float(np.median(transport)),
        },
        "serving": {
            "rate_rps": rate,
            "utilisation": utilisation,
            "requests_per_run": requests,
            "runs": runs,
            "sender_lateness_ms": lateness,
            "service_ms_mean_in_situ": float(service_in_situ.mean()),
            "service_lag1_autocorrelation_in_situ": _lag1(service_in_situ),
        },
        "table": table,
    }


def _lag1(x: np.ndarray) -> float:
    from calibrate.regimes import lag1

    return lag1(x)


def format_report(result: dict) -> str:
    lines = [
        f"machine: {result['machine']}",
        f"calibration: service mean {result['calibration']['service_ms_mean']:.3f} ms (p99 "
        f"{result['calibration']['service_ms_p99']:.3f}), transport median {result['calibration']['transport_ms_median']:.3f} ms",
        f"serving: {result['serving']['rate_rps']:.0f} req/s (utilisation {result['serving']['utilisation']:g}), "
        f"{result['serving']['runs']} runs of {result['serving']['requests_per_run']}",
        "sender lateness ms (p50 / p99 per run): "
        + ", ".join(f"{x['p50']:.2f} / {x['p99']:.2f}" for x in result["serving"]["sender_lateness_ms"]),
        f"in situ (under load): service mean {result['serving']['service_ms_mean_in_situ']:.3f} ms, lag-1 "
        f"autocorrelation {result['serving']['service_lag1_autocorrelation_in_situ']:.2f}",
        "percentile  calibrated, independent [95% CI]  in-situ, replayed [95% CI]  measured (mean ± sd over runs)  "
        "errors %",
    ]
    for row in result["table"]:
        lo, hi = row["predicted_ci95"]
        rlo, rhi = row["in_situ_replay_ci95"]
        lines.append(
            f"{row['percentile']:<10} {row['predicted_ms']:9.2f} [{lo:.2f}, {hi:.2f}]        "
            f"{row['in_situ_replay_ms']:9.2f} [{rlo:.2f}, {rhi:.2f}]   "
            f"{row['measured_mean_ms']:9.2f} ± {row['measured_sd_ms']:.2f}      "
            f"{row['error_pct']:+7.1f} / {row['in_situ_error_pct']:+7.1f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--utilisation", type=float, default=0.3)
    parser.add_argument("--calibration", type=int, default=500)
    parser.add_argument("--out", default="fidelity")
    args = parser.parse_args(argv)
    result = run_fidelity(args.requests, args.runs, args.utilisation, args.calibration)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fidelity.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    report = format_report(result)
    (out / "fidelity.txt").write_text(report + "\n", encoding="utf-8")
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
