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
3. after a configuration's last cell, calibrate once more, so that every cell has a calibration after it;
4. predict from the calibration alone: servesim with replications, p50 / p95 / p99 and their 95% CIs, as
   calibrated (isolated), × the co-load factor, with the co-load phase's busy sequence replayed in order,
   and the co-load prediction's host-drift band: again at the next calibration's level, the runs judged
   against the band (calibrate/fidelity_drift.py); fifo1 also from the service times the server logged
   during the runs, replayed in order (in situ).

`--predict-only DIR [DIR ...]` serves nothing: it predicts saved runs again (calibrate/fidelity_offline.py).

The parts: fidelity_settings (what is served and how it is judged), fidelity_batcher (the batching rule),
fidelity_servers (the server processes), fidelity_clients (driving them: calibrate, serve), fidelity_measure
(the matrix of cells), fidelity_scenarios (servesim's model of a cell), fidelity_report (verdicts, table),
fidelity_drift (the host-drift band), fidelity_log (per-request logs); this module runs them.

A percentile of a cell is judged only when its runs agree within NOISE_LIMIT_PCT; then it is "ok" when the
prediction is within ERROR_LIMIT_PCT of the runs' mean, else "miss"; otherwise "noisy" (not judged).

    python -m calibrate.fidelity [--configs fifo1,shared2,dynamic1] [--utilisations 0.5,0.8] [--runs 2]
                                 [--requests 2000] [--co-load 300] [--no-pin] [--out fidelity/]
    python -m calibrate.fidelity --predict-only DIR [DIR ...] [--out FOLDER]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

# The harness in modules (this one runs it): the batching rule, the server processes, their clients, the
# measurements, the prediction scenarios and the report. Their public names stay importable from here.
from calibrate.fidelity_batcher import batch_decision, form_batches
from calibrate.fidelity_clients import BatchingServer, LiveServer, SharedQueueServer
from calibrate.fidelity_drift import drift_ratios, judge_band
from calibrate.fidelity_measure import _measure_config
from calibrate.fidelity_report import chance, format_report, judge
from calibrate.fidelity_scenarios import (
    _samples,
    capacity_rps,
    predict,
    profile_from_samples,
    scenario_for,
    simulate_cell,
    simulate_percentiles,
    under_load,
)
from calibrate.fidelity_settings import (
    CONFIGS,
    ERROR_LIMIT_PCT,
    MAX_BATCH_SIZE,
    MAX_QUEUE_DELAY_MS,
    MODEL_HIDDEN,
    NOISE_LIMIT_PCT,
    PERCENTILES,
    REPLICATIONS,
)

__all__ = [
    "BatchingServer",
    "CONFIGS",
    "ERROR_LIMIT_PCT",
    "LiveServer",
    "MAX_BATCH_SIZE",
    "MAX_QUEUE_DELAY_MS",
    "MODEL_HIDDEN",
    "NOISE_LIMIT_PCT",
    "PERCENTILES",
    "REPLICATIONS",
    "SharedQueueServer",
    "batch_decision",
    "capacity_rps",
    "form_batches",
    "format_report",
    "judge",
    "main",
    "predict",
    "profile_from_samples",
    "run_fidelity",
    "scenario_for",
    "simulate_percentiles",
]


def _predict_cell(cell: dict, requests: int) -> dict:
    """Fill a measured cell with servesim's prediction, the verdicts, (fifo1) the in-situ replay and, where
    calibrated so, the co-load prediction, its replay and its host-drift band; return its calibration
    (samples as lists)."""
    config, calibration = cell["config"], cell.pop("_calibration")
    rate = cell["rate_rps"]
    predicted = simulate_cell(config, calibration, rate, requests)
    logs = cell.pop("_logs")
    replayed = None
    if config == "fifo1":  # in situ: the service times logged under load, replayed in order
        in_situ = np.concatenate([busy for busy, _ in logs])
        replayed = predict(in_situ, calibration["transport_ms"], rate, requests, REPLICATIONS, True)
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
    after = cell.pop("_calibration_after", None)
    models: dict[str, dict] = {}
    factor = 1.0
    loaded = under_load(calibration)  # the serving path as the co-load phase saw it, where it did
    if "co_load_busy_ms" in calibration:  # the kernel beside the serving path: its slowdown, and in order
        from calibrate.fidelity_offline import replay_values, slowdown

        busy, sizes = calibration["co_load_busy_ms"], calibration["co_load_batch_size"]
        factor = slowdown(config, calibration, busy, sizes, predicted)
        cell["co_load_factor"] = factor
        if loaded is not calibration:
            path = calibration["co_load_path_ms"]
            cell["co_load_path_ms"] = {"median": float(np.median(path)), "p99": float(np.percentile(path, 99))}
            cell["co_load_path_samples"] = len(path)
        models["co_load"] = simulate_cell(config, loaded, rate, requests, factor)
        sequence, level = replay_values(config, calibration, busy, sizes)
        models["co_load_replay"] = simulate_cell(config, loaded, rate, requests, level, sequence)
    near, far = models.get("co_load", predicted), None  # the drift band: also at the next calibration's level
    if cell.get("next_calibration_ratio") is not None:
        far = simulate_cell(config, loaded, rate, requests, factor * cell["next_calibration_ratio"])
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
            **chance(runs_ms, predicted[key]["run_sd_pct"]),
        }
        for model, prediction in models.items():
            verdict = judge(runs_ms, prediction[key]["ms"], key)
            row.update({f"{model}_ms": prediction[key]["ms"], f"{model}_error_pct": verdict["error_pct"]})
            row[f"{model}_verdict"] = verdict["verdict"]
        if far is not None:
            band = judge_band(runs_ms, near[key]["ms"], far[key]["ms"], key)
            row.update(drift_band_ms=[band["low_ms"], band["high_ms"]], drift_band_error_pct=band["error_pct"])
            row["drift_band_verdict"] = band["verdict"]
        if replayed is not None:
            row["in_situ_replay_ms"] = replayed[key]["ms"]
            row["in_situ_error_pct"] = 100 * (replayed[key]["ms"] - row["measured_mean_ms"]) / row["measured_mean_ms"]
        rows.append(row)
    cell["table"] = rows
    return _jsonable(calibration if after is None else {**calibration, "after": after})


def run_fidelity(
    requests: int,
    runs: int,
    utilisations=(0.5, 0.8),
    calibration: int = 500,
    configs=CONFIGS,
    seed: int = 0,
    pin: bool = True,
    co_load: int = 600,
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
    ratios = drift_ratios(
        [c["config"] for c in cells], [c["_calibration"] for c in cells], [c.get("_calibration_after") for c in cells]
    )
    for cell, ratio in zip(cells, ratios):
        cell["next_calibration_ratio"] = ratio
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


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip())


def _predict_only(directories: list[str], out: str | None) -> int:
    """`--predict-only`: every cell of the saved runs predicted again, printed (and saved under `out`)."""
    import sys

    from calibrate.fidelity_offline import repredict
    from calibrate.fidelity_offline_report import format_repredicted
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
    parser.add_argument(
        "--requests",
        type=int,
        default=8000,
        help="per run (2,000: a steady host judges about half the percentiles by chance alone; 8,000: about two thirds)",
    )
    parser.add_argument("--calibration", type=int, default=500, help="closed-loop requests per configuration")
    parser.add_argument(
        "--co-load",
        type=int,
        default=600,
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
