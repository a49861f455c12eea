"""servesim's prediction of a `make fidelity` cell: the scenario (and batch-cost profile) each
configuration is modelled by, built from a calibration alone, and its simulated percentiles."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from calibrate.fidelity_settings import CONFIGS, MODEL_HIDDEN, PERCENTILES, REPLICATIONS


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


def scaled(calibration: dict, factor: float) -> dict:
    """The calibration with every kernel service time × `factor` (transport, timer overshoot unchanged)."""
    out = dict(calibration)
    for name in ("service_ms", "service_busy_ms"):
        if name in out:
            out[name] = out[name] * factor
    if "batch_ms" in out:
        out["batch_ms"] = {b: v * factor for b, v in out["batch_ms"].items()}
    return out


def run_spread_pct(frame) -> dict[str, float]:
    """How much one run of this length moves a percentile by chance alone: the standard deviation of each
    replication's p50 / p95 / p99 (warm-up excluded) over their mean, in %. A steady host's two runs differ
    by about sqrt(2) times this; NaN with a single replication."""
    kept = frame[~frame["warmup"].astype(bool) & ~frame["rejected"].astype(bool)]
    values = np.array([np.percentile(group["latency_ms"], PERCENTILES) for _, group in kept.groupby("replication")])
    if len(values) < 2:
        return {f"p{p:g}": float("nan") for p in PERCENTILES}
    sd = 100.0 * values.std(axis=0, ddof=1) / values.mean(axis=0)
    return {f"p{p:g}": float(x) for p, x in zip(PERCENTILES, sd)}


MIN_PATH_SAMPLES = 30  # fewer requests of a co-load phase found a worker idle: its closed-loop transport stays


def under_load(calibration: dict) -> dict:
    """The calibration as the co-load phase saw the serving path: its path samples (sender lateness, the trip
    to the server, the reply's trip back, calibrate/fidelity_path.py) in place of the closed-loop transport,
    where the phase measured enough of them; else the calibration as it is."""
    path = calibration.get("co_load_path_ms")
    if path is None or len(path) < MIN_PATH_SAMPLES:
        return calibration
    return {**calibration, "transport_ms": np.asarray(path, dtype=float)}


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
    spread = run_spread_pct(frame)
    for key, sd in spread.items():
        out[key]["run_sd_pct"] = sd
    if "forward_batch_size" in frame:
        batches = frame.drop_duplicates(["replication", "forward_batch_id"])
        out["mean_batch_size"] = float(batches["forward_batch_size"].mean())
        out["mean_service_ms"] = float(batches["forward_ms"].mean())  # per batch, as the servers log it
    else:
        out["mean_service_ms"] = float(frame["forward_ms"].mean())
    return out


def simulate_cell(
    config: str,
    calibration: dict,
    rate_rps: float,
    requests: int,
    factor: float = 1.0,
    replay: np.ndarray | None = None,
    replications: int = REPLICATIONS,
) -> dict:
    """`simulate_percentiles` of a cell from its calibration with every kernel time x `factor`, or with a
    service-time sequence `replay`ed in order (per request; dynamic1: per batch, relative to the
    calibrated median at its size, calibrate/fidelity_offline.py's `replay_values`)."""
    scenario, profiles = scenario_for(config, scaled(calibration, factor), rate_rps, requests, replications)
    if replay is not None:
        forward = scenario["stages"][1]
        if config == "dynamic1":
            forward["replay"] = {"samples": _samples(replay)}
        else:  # both shared2 workers draw from the one sequence in the order they start
            forward.pop("profile", None)
            forward["service_ms"] = {"dist": "constant", "value": float(np.median(replay))}
            forward["replay"] = {"samples": _samples(replay)}
    return simulate_percentiles(scenario, profiles)


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
