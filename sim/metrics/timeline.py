"""Metrics over time, from the request log and the replica timeline: traffic, windowed p50 / p99,
rejections, replicas (warm / starting) and cost per window — what a capacity planner watches through a
daily curve, a spike and its cold starts."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.metrics.summary import replicas_paid, time_weighted_mean
from sim.spec.scenario import Scenario


def windowed(log: pd.DataFrame, scenario: Scenario, window_s: float = 60.0) -> pd.DataFrame:
    """One row per window of arrival time, pooled over replications (warm-up included: it is a timeline)."""
    window_ms = window_s * 1000.0
    replications = max(int(log["replication"].nunique()), 1)
    index = (log["arrival_ms"].to_numpy() // window_ms).astype(np.int64)
    frame = pd.DataFrame({
        "window": index,
        "latency_ms": log["latency_ms"].to_numpy(),
        "rejected": log["rejected"].to_numpy(),
    })
    grouped = frame.groupby("window")
    out = pd.DataFrame({
        "start_s": grouped.size().index.to_numpy() * window_s,
        "arrival_rps": grouped.size().to_numpy() / window_s / replications,
        "p50_ms": grouped["latency_ms"].quantile(0.50).to_numpy(),
        "p99_ms": grouped["latency_ms"].quantile(0.99).to_numpy(),
        "rejected_fraction": grouped["rejected"].mean().to_numpy(),
    })
    timeline = log.attrs.get("timeline")
    if timeline is not None:
        warm, paid = [], []
        for start_s in out["start_s"]:
            t0, t1 = start_s * 1000.0, start_s * 1000.0 + window_ms
            warm.append(_mean_over_replications(timeline, "warm", t0, t1))
            paid.append(_mean_over_replications(timeline, None, t0, t1))
        out["warm_replicas"] = warm
        out["paid_replicas"] = paid
    else:
        out["paid_replicas"] = float(scenario.deployment.replicas)
    price = scenario.deployment.hardware.usd_per_hour
    if price is not None:
        out["usd_per_hour"] = out["paid_replicas"] * price
    return out


def _mean_over_replications(timeline: pd.DataFrame, column: str | None, t0: float, t1: float) -> float:
    values = []
    for _, part in timeline.groupby("replication"):
        part = part.sort_values("time_ms", kind="stable")
        series = replicas_paid(part) if column is None else part[column]
        before = part["time_ms"].to_numpy() <= t0
        # The value in force at t0 is the last change-point before it.
        first = int(np.flatnonzero(before)[-1]) if before.any() else 0
        times = np.concatenate([[t0], part["time_ms"].to_numpy()[first + 1:]])
        vals = np.concatenate([[series.to_numpy()[first]], series.to_numpy()[first + 1:]])
        keep = times < t1
        values.append(time_weighted_mean(times[keep], vals[keep], t0, t1))
    return float(np.mean(values)) if values else float("nan")


def timeline_figure(log: pd.DataFrame, scenario: Scenario, window_s: float = 60.0):
    """Three panels sharing time: traffic and replicas, windowed p50/p99 against the SLO, rejections."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = windowed(log, scenario, window_s)
    minutes = data["start_s"] / 60.0
    fig, axes = plt.subplots(3, 1, figsize=(10, 8), sharex=True, constrained_layout=True)
    ax = axes[0]
    ax.plot(minutes, data["arrival_rps"], color="tab:blue", label="arrivals (req/s)")
    ax.set_ylabel("req/s")
    twin = ax.twinx()
    twin.step(minutes, data["paid_replicas"], where="post", color="tab:orange", label="replicas (paid)")
    if "warm_replicas" in data:
        twin.step(minutes, data["warm_replicas"], where="post", color="tab:green", linestyle="--", label="warm")
    twin.set_ylabel("replicas")
    lines = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    labels = ax.get_legend_handles_labels()[1] + twin.get_legend_handles_labels()[1]
    ax.legend(lines, labels, loc="upper left", fontsize=8)
    ax.set_title(f"{scenario.name}: traffic and replicas ({window_s:g} s windows)")

    ax = axes[1]
    ax.plot(minutes, data["p50_ms"], label="p50")
    ax.plot(minutes, data["p99_ms"], label="p99")
    if scenario.slo.p99_ms:
        ax.axhline(scenario.slo.p99_ms, color="red", linestyle=":", label=f"SLO p99 {scenario.slo.p99_ms:g} ms")
    ax.set_yscale("log")
    ax.set_ylabel("latency (ms)")
    ax.legend(loc="upper left", fontsize=8)

    ax = axes[2]
    ax.plot(minutes, 100 * data["rejected_fraction"], color="tab:red")
    ax.set_ylabel("rejected (%)")
    ax.set_xlabel("time (min)")
    return fig
