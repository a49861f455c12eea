"""Small builders for test scenarios and per-replication statistics taken from the request log."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.metrics.summary import ci95
from sim.spec.scenario import Scenario, parse_scenario


def model_scenario(
    *,
    arrival: dict,
    service_ms: dict | float | None = None,
    replicas: int = 1,
    batching: dict | None = None,
    requests: int = 50_000,
    warmup: int | None = None,
    seed: int = 1,
    replications: int = 5,
    **deployment,
) -> Scenario:
    """A one-stage scenario (a model stage) with the given arrival process and deployment."""
    stage = {"name": "forward", "kind": "model", "batching": batching or {"policy": "none"}}
    if isinstance(service_ms, dict) and "base_ms" in service_ms:
        stage["batch_cost"] = service_ms
    else:
        stage["service_ms"] = service_ms
        if "per_item" in deployment:
            stage["per_item"] = deployment.pop("per_item")
    return parse_scenario(
        {
            "name": "test",
            "seed": seed,
            "replications": replications,
            "workload": {
                "arrival": arrival,
                "requests": requests,
                "warmup_requests": requests // 10 if warmup is None else warmup,
            },
            "stages": [stage],
            "deployment": {"replicas": replicas, **deployment},
        }
    )


def per_replication(log: pd.DataFrame, column: str, statistic) -> np.ndarray:
    """`statistic(values)` of a log column over the measured, served requests of each replication."""
    measured = log[~log["warmup"] & ~log["rejected"]]
    return np.array([statistic(group[column].to_numpy()) for _, group in measured.groupby("replication")])


def estimate_and_ci(values: np.ndarray) -> tuple[float, tuple[float, float]]:
    return float(np.mean(values)), ci95(values)


def covers(ci: tuple[float, float], exact: float) -> bool:
    return ci[0] <= exact <= ci[1]
