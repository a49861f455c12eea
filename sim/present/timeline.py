"""The over-time figure of `servesim run --timeline` and the planner's Autoscaling tab: traffic and replicas,
windowed p50 / p99 against the SLO, rejections — drawn from sim/metrics/timeline.windowed."""

from __future__ import annotations

import pandas as pd

from sim.engine.runlog import RunLog
from sim.metrics.cost import replicas_paid
from sim.metrics.timeline import windowed
from sim.present.plots import _subplots
from sim.spec.scenario import Scenario


def peak_replication_timeline(run: RunLog) -> tuple[int, pd.DataFrame] | None:
    """The replica change-points (sorted by time) of the replication that paid the most replicas at once
    (the summary's `autoscaling.max_replicas`), and its index; None without a timeline."""
    if run.timeline is None or run.timeline.empty or "replication" not in run.timeline:
        return None
    parts = [(int(r), part.sort_values("time_ms", kind="stable")) for r, part in run.timeline.groupby("replication")]
    return max(parts, key=lambda item: replicas_paid(item[1]).max())


def timeline_figure(run: RunLog, scenario: Scenario, window_s: float = 60.0):
    """Three panels sharing time: traffic and replicas, windowed p50/p99 against the SLO, rejections."""
    data = windowed(run, scenario, window_s)
    minutes = data["start_s"] / 60.0
    fig, axes = _subplots(3, 1, figsize=(10, 8), layout="constrained", sharex=True)
    ax = axes[0]
    ax.plot(minutes, data["arrival_rps"], color="tab:blue", label="arrivals (req/s)")
    ax.set_ylabel("req/s")
    twin = ax.twinx()
    twin.step(minutes, data["paid_replicas"], where="post", color="tab:orange", label="replicas paid (window mean)")
    peak = peak_replication_timeline(run)
    if peak is not None:  # window means smooth a short peak away: the replicas paid at each instant too
        replication, timeline = peak
        twin.step(
            timeline["time_ms"] / 60_000.0,
            replicas_paid(timeline),
            where="post",
            color="tab:orange",
            alpha=0.35,
            linewidth=0.8,
            label=f"replicas paid, each instant (replication {replication + 1}, the peak's)",
        )
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
