"""Matplotlib figures of a run, drawn from the request log or a sweep table; shared by app.py and the
compare report. Every function returns a Figure and draws nothing else (the caller shows or saves it).

Times are in ms, rates in requests/s, money in USD.
"""

from __future__ import annotations

from typing import Mapping

import matplotlib

matplotlib.use("Agg")

import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from sim.metrics.stages import _pname, measured, stage_shares  # noqa: E402,F401  (the figures' data)
from sim.present.units import fmt_ms  # noqa: E402,F401  (one formatter of milliseconds for every report)

SLO_COLOR = "#d62728"
PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C", "#CCB974", "#64B5CD"]

CDF_POINTS = 400


def _subplots(*grid: int, figsize: tuple[float, float], layout: str | None = None, **kwargs):
    """A Figure outside pyplot's global registry: safe when Streamlit draws for several sessions at once
    (the matplotlib documentation's advice for web servers), and nothing to close afterwards."""
    fig = Figure(figsize=figsize, layout=layout)
    return fig, fig.subplots(*grid, **kwargs)


def _style(ax) -> None:
    ax.grid(True, alpha=0.3, linewidth=0.6)
    ax.spines[["top", "right"]].set_visible(False)


# --- where latency lives -------------------------------------------------------------------------------


def stage_breakdown_figure(
    shares: Mapping[str, pd.DataFrame] | pd.DataFrame, title: str = "Where latency lives"
) -> Figure:
    """Horizontal stacked bars, one per (variant, percentile): the time a typical p50 and p99 request
    spends in each stage; queue waits hatched next to their stage's service."""
    if isinstance(shares, pd.DataFrame):
        shares = {"": shares}
    bars: list[tuple[str, pd.Series]] = []
    for variant, frame in shares.items():
        for percentile, row in frame.iterrows():
            bars.append((f"{variant}  {percentile}".strip(), row))
    stages = list(dict.fromkeys(c for _, row in bars for c in row.index))
    colors = _stage_colors(stages)
    fig, ax = _subplots(figsize=(8, 0.55 * len(bars) + 1.6), layout="constrained")
    labels = [label for label, _ in bars][::-1]
    for y, (_, row) in enumerate(bars[::-1]):
        left = 0.0
        total = float(row.sum())
        for stage in stages:
            width = float(row.get(stage, 0.0))
            if width <= 0:
                continue
            queue = stage.endswith("_queue")
            ax.barh(
                y,
                width,
                left=left,
                color=colors[stage],
                hatch="//" if queue else None,
                edgecolor="white",
                linewidth=0.6,
                label=stage,
            )
            if total > 0 and width / total > 0.08:
                ax.text(left + width / 2, y, f"{width:.3g}", ha="center", va="center", fontsize=8, color="white")
            left += width
        ax.text(left, y, f"  {total:.3g} ms", va="center", fontsize=9)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("time of a request at that percentile (ms)")
    ax.set_title(title, loc="left", fontsize=11)
    handles, names = ax.get_legend_handles_labels()
    unique = dict(zip(names, handles))
    ax.legend(
        unique.values(),
        [n.replace("_queue", " (queue)") for n in unique],
        ncols=min(len(unique), 4),
        loc="upper center",
        bbox_to_anchor=(0.5, -0.25 if len(bars) <= 2 else -0.12),
        frameon=False,
        fontsize=8,
    )
    ax.margins(x=0.12)
    _style(ax)
    return fig


def _stage_colors(stages: list[str]) -> dict[str, str]:
    base = [s for s in stages if not s.endswith("_queue")]
    colors = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(base)}
    for s in stages:
        if s.endswith("_queue"):
            colors[s] = colors.get(s.removesuffix("_queue"), PALETTE[len(colors) % len(PALETTE)])
    return colors


# --- latency distribution ------------------------------------------------------------------------------


def cdf_figure(
    logs: Mapping[str, pd.DataFrame] | pd.DataFrame, slo_ms: float | None = None, title: str = "Latency distribution"
) -> Figure:
    """Empirical CDF (left) and tail 1 − F on a log scale (right) of end-to-end latency, one line per
    variant, with the p99 SLO as a vertical line."""
    if isinstance(logs, pd.DataFrame):
        logs = {"": logs}
    fig, (ax, tail) = _subplots(1, 2, figsize=(10, 3.6))
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.15, top=0.9, wspace=0.28)
    for i, (name, log) in enumerate(logs.items()):
        values = measured(log)["latency_ms"].to_numpy()
        if not len(values):
            continue
        color = PALETTE[i % len(PALETTE)]
        # Drawn on a quantile grid (not every request): the same curve, a fraction of the drawing time.
        grid = np.linspace(0, 1, CDF_POINTS)
        ax.plot(np.quantile(values, grid), grid, color=color, label=name or None, linewidth=1.6)
        slower = np.geomspace(1, 1 / len(values), CDF_POINTS)
        tail.plot(np.quantile(values, 1 - slower), slower, color=color, linewidth=1.4)
        p99 = float(np.quantile(values, 0.99))
        tail.plot([p99], [0.01], "o", color=color, markersize=5)
    wide = wide_range(logs)
    for axis in (ax, tail):
        if wide:
            axis.set_xscale("log")
            axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        if slo_ms:
            axis.axvline(
                slo_ms, color=SLO_COLOR, linestyle="--", linewidth=1.2, label="p99 SLO" if axis is ax else None
            )
        axis.set_xlabel("end-to-end latency (ms)")
        _style(axis)
    ax.set_ylabel("share of requests ≤ latency")
    ax.set_ylim(0, 1.01)
    tail.set_yscale("log")
    tail.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())  # minor log ticks double the drawing time
    tail.set_ylabel("share of requests slower (1 − F)")
    tail.axhline(0.01, color="grey", linewidth=0.8, linestyle=":")
    tail.text(tail.get_xlim()[0], 0.01, " p99", va="bottom", fontsize=8, color="grey")
    ax.set_title(title, loc="left", fontsize=11)
    tail.set_title("tail", loc="left", fontsize=11)
    if len(logs) > 1 or slo_ms:
        ax.legend(frameon=False, fontsize=8, loc="lower right")
    return fig


# Latencies spanning more than this factor (slowest p99 / fastest p50) are drawn on a log time axis, so
# that an unstable variant (seconds) does not flatten the stable ones (milliseconds) into one line.
WIDE_RANGE = 20.0


def wide_range(logs: Mapping[str, pd.DataFrame]) -> bool:
    p50s, p99s = [], []
    for log in logs.values():
        values = measured(log)["latency_ms"].to_numpy()
        values = values[np.isfinite(values) & (values > 0)]
        if len(values):
            p50s.append(np.quantile(values, 0.5))
            p99s.append(np.quantile(values, 0.99))
    return bool(p50s) and max(p99s) / min(p50s) > WIDE_RANGE


# --- sweeps --------------------------------------------------------------------------------------------


def load_curve_figure(
    curves: Mapping[str, pd.DataFrame] | pd.DataFrame,
    slo_ms: float | None = None,
    knees: Mapping[str, int | None] | None = None,
    current_rps: float | None = None,
    title: str = "p99 latency vs load",
) -> Figure:
    """p99 (with its 95% CI band) against the request rate, the SLO as a horizontal line, each curve's
    knee marked; `current_rps` marks the scenario's own rate."""
    if isinstance(curves, pd.DataFrame):
        curves = {"": curves}
    knees = knees or {}
    fig, ax = _subplots(figsize=(8, 4), layout="constrained")
    for i, (name, curve) in enumerate(curves.items()):
        if curve.empty:
            continue
        color = PALETTE[i % len(PALETTE)]
        x = curve["rate_rps"].to_numpy(dtype=float)
        ax.plot(x, curve["p99"], "o-", color=color, label=f"{name} p99".strip(), linewidth=1.6, markersize=4)
        if {"p99_low", "p99_high"} <= set(curve):
            ax.fill_between(x, curve["p99_low"], curve["p99_high"], color=color, alpha=0.15, linewidth=0)
        ax.plot(x, curve["p50"], ":", color=color, linewidth=1.2, label=f"{name} p50".strip())
        knee = knees.get(name)
        if knee is not None:
            kx, ky = float(curve["rate_rps"].iloc[knee]), float(curve["p99"].iloc[knee])
            ax.plot([kx], [ky], marker="D", markersize=9, markerfacecolor="none", markeredgecolor="black")
            ax.annotate(
                f"knee ≈ {kx:,.0f} req/s",
                (kx, ky),
                textcoords="offset points",
                xytext=(-10, 12),
                ha="right",
                fontsize=8,
            )
    if slo_ms:
        ax.axhline(slo_ms, color=SLO_COLOR, linestyle="--", linewidth=1.2, label=f"p99 SLO {slo_ms:g} ms")
    if current_rps:
        ax.axvline(current_rps, color="grey", linewidth=0.8, linestyle=":", label=f"scenario {current_rps:,.0f} req/s")
    ax.set_xlabel("offered request rate (req/s)")
    ax.set_ylabel("latency (ms)")
    ax.set_title(title, loc="left", fontsize=11)
    ax.set_ylim(bottom=0)
    ax.legend(frameon=False, fontsize=8, loc="upper left")
    _style(ax)
    return fig


def tradeoff_figure(
    curves: Mapping[str, pd.DataFrame],
    slo_ms: float | None = None,
    title: str = "Throughput vs tail latency, per batching policy",
) -> Figure:
    """For each batching policy, p99 against the throughput it delivered: curves further right and
    lower are better; where a curve crosses the SLO is the most that policy can serve within it."""
    fig, ax = _subplots(figsize=(8, 4), layout="constrained")
    for i, (name, curve) in enumerate(curves.items()):
        if curve.empty:
            continue
        color = PALETTE[i % len(PALETTE)]
        ax.plot(curve["throughput_rps"], curve["p99"], "o-", color=color, label=name, linewidth=1.6, markersize=4)
    if slo_ms:
        ax.axhline(slo_ms, color=SLO_COLOR, linestyle="--", linewidth=1.2, label=f"p99 SLO {slo_ms:g} ms")
    ax.set_xlabel("throughput (req/s)")
    ax.set_ylabel("p99 latency (ms)")
    ax.set_ylim(bottom=0)
    ax.set_title(title, loc="left", fontsize=11)
    ax.legend(frameon=False, fontsize=8, loc="upper left")
    _style(ax)
    return fig


def cost_replicas_figure(curve: pd.DataFrame, slo_ms: float | None = None, title: str = "Cost vs replicas") -> Figure:
    """Cost per 1M queries (bars) and p99 (line, right axis) against the replica count; replica counts
    that cannot keep up are shown as 'unstable'; the cheapest count meeting the SLO is outlined."""
    fig, ax = _subplots(figsize=(8, 4.2), layout="constrained")
    stable = curve[curve["stable"]] if "stable" in curve else curve
    x = curve["replicas"].to_numpy()
    cost = stable["usd_per_1m_queries"].astype(float) if "usd_per_1m_queries" in stable else pd.Series(dtype=float)
    best = None
    if slo_ms and not stable.empty:
        ok = stable[stable["p99"] <= slo_ms]
        if not ok.empty:
            best = int(ok["replicas"].iloc[0])
    if not stable.empty and cost.notna().any():
        colors = ["#55A868" if r == best else "#BBBBBB" for r in stable["replicas"]]
        ax.bar(stable["replicas"], cost, color=colors, width=0.6, label="$ per 1M queries")
        ax.set_ylabel("USD per 1M queries")
    for r in curve.loc[~curve["stable"], "replicas"] if "stable" in curve else []:
        ax.text(r, 0, "unstable", rotation=90, ha="center", va="bottom", fontsize=8, color="grey")
    ax.set_xlabel("replicas")
    ax.set_xticks(x)
    twin = ax.twinx()
    if not stable.empty:
        twin.plot(stable["replicas"], stable["p99"], "o-", color="#4C72B0", label="p99 latency")
        if slo_ms:
            twin.axhline(slo_ms, color=SLO_COLOR, linestyle="--", linewidth=1.2, label=f"p99 SLO {slo_ms:g} ms")
        twin.set_ylim(bottom=0)
    twin.set_ylabel("p99 latency (ms)")
    twin.spines[["top"]].set_visible(False)
    ax.spines[["top"]].set_visible(False)
    ax.grid(True, axis="y", alpha=0.3, linewidth=0.6)
    subtitle = f" — cheapest meeting the SLO: {best} replica{'s' if best != 1 else ''}" if best else ""
    ax.set_title(title + subtitle + "\n", loc="left", fontsize=11)
    handles = [h for a in (ax, twin) for h in a.get_legend_handles_labels()[0]]
    labels = [lab for a in (ax, twin) for lab in a.get_legend_handles_labels()[1]]
    fig.legend(handles, labels, frameon=False, fontsize=8, loc="upper right", ncols=len(labels))
    return fig


def batch_size_figure(log: pd.DataFrame, column: str = "batch_size", title: str = "Batch sizes") -> Figure:
    """Share of requests by the size of the batch they rode in."""
    fig, ax = _subplots(figsize=(5, 3), layout="constrained")
    sizes = measured(log)[column].to_numpy()
    sizes = sizes[sizes > 0]
    if len(sizes):
        values, counts = np.unique(sizes, return_counts=True)
        ax.bar(values, counts / counts.sum(), color=PALETTE[0], width=0.8)
    ax.set_xlabel("batch size")
    ax.set_ylabel("share of requests")
    ax.set_title(title, loc="left", fontsize=11)
    _style(ax)
    return fig


def save(fig: Figure, path, dpi: int = 120) -> None:
    """Write `fig` as PNG."""
    fig.savefig(path, dpi=dpi, format="png")


def close(fig: Figure) -> None:
    """Release a figure's drawing (figures here are not registered with pyplot, so this is all it takes)."""
    fig.clf()
