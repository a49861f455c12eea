"""One sweep task: one replication of one point, a pure function of plain data (safe on any worker).

The task ships the scenario as a plain dict and re-validates it where it runs; its result is a flat record
(task key, status, the kept metrics), so executors need pickle nothing but dicts.
"""

from __future__ import annotations

import math
import os
import socket
import time
import traceback
from dataclasses import dataclass


from sim.analysis.sweep.spec import STAGE_STATS


@dataclass(frozen=True)
class Task:
    """Replication `replication` of point `point_id`, with the point's scenario as a plain dict."""

    key: str
    point_id: str
    replication: int
    seed: int
    requests: int | None
    raw: dict
    base_dir: str
    metrics: tuple[str, ...]


def task_key(point_id: str, replication: int) -> str:
    return f"{point_id}-r{replication}"


def run_task(task: Task) -> dict:
    """Simulate one replication and return its record; an exception becomes a record with status error."""
    started = time.perf_counter()
    record = {"key": task.key, "point_id": task.point_id, "replication": task.replication, "seed": task.seed}
    try:
        from sim.engine.run import simulate_replication
        from sim.spec.scenario import parse_scenario

        scenario = parse_scenario(task.raw, base_dir=task.base_dir)
        run = simulate_replication(scenario, task.replication, seed=task.seed, requests=task.requests)
        figures = replication_metrics(run, scenario)
        record.update(status="ok", error=None)
        record.update({name: figures.get(name, math.nan) for name in task.metrics})
    except Exception as exc:  # noqa: BLE001 - a failing point is recorded, the sweep goes on
        record.update(status="error", error=describe_exception(exc))
    record["elapsed_s"] = time.perf_counter() - started
    record["worker"] = f"{socket.gethostname()}:{os.getpid()}"  # for the record only, not the tables
    return record


def describe_exception(exc: BaseException) -> str:
    """`Type: message`, plus where it was raised unless it is a user-facing error."""
    from sim.errors import ServesimError

    text = f"{type(exc).__name__}: {exc}"
    if not isinstance(exc, ServesimError):
        frames = traceback.extract_tb(exc.__traceback__)
        if frames:
            text += f" (at {frames[-1].filename}:{frames[-1].lineno})"
    return text


def replication_metrics(run, scenario) -> dict[str, float]:
    """The figures of one replication, named as in the `servesim run --json` contract (flattened with
    dots): warm-up excluded, the same figures (cost and utilisation included) as `run` computes for a
    replication, from the same function."""
    from sim.metrics.summary import replication_figures, stage_breakdown

    figures = replication_figures(run, scenario)
    out: dict[str, float] = {
        "requests": float(figures["requests"]),
        "served": float(figures["served"]),
        "throughput_rps": figures["throughput_rps"],
        "utilization": figures["utilization"],
        "rejected_fraction": figures["rejected_fraction"],
        "slo.attainment": figures["attainment"],
        "latency_ms.mean": figures["mean"],
        "cost.usd_per_hour": figures["usd_per_hour"],
        "cost.usd_per_1m_queries": figures["usd_per_1m_queries"],
        "cost.mean_replicas": figures["mean_replicas"],
    }
    for key in ("p50", "p90", "p95", "p99", "p999"):
        out[f"latency_ms.{key}"] = figures[key]
    for stage, stats in stage_breakdown(run.requests, scenario).items():
        for stat in STAGE_STATS:
            out[f"stages.{stage}.{stat}"] = stats[stat]
    return {k: float(v) for k, v in out.items()}
