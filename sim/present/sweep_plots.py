"""Sweep plots: a metric (mean over replications, 95% CI) against one axis, split by a second one.

On a grid, one line per value of the `by` axis with its CI band, and one panel per combination of the
other axes (when there are at most MAX_PANELS; otherwise they are held at their first value, and the title
says so); `where` picks a slice explicitly. For sampled sweeps (random, Latin hypercube) every point is a
marker with its CI bar, coloured by `by`. Figures are drawn from the points table only.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.analysis.sweep.spec import PlotSpec, Sweep

MAX_LINES = 8
MAX_PANELS = 6


def default_plots(sweep: Sweep) -> list[PlotSpec]:
    """p99 latency (or the first metric) against the first axis, split by the second axis if any."""
    metrics = sweep.spec.metrics
    metric = "latency_ms.p99" if "latency_ms.p99" in metrics else metrics[0]
    axes = sweep.axis_paths
    return [PlotSpec(metric=metric, x=axes[0], by=axes[1] if len(axes) > 1 else None)]


def metric_figure(
    points: pd.DataFrame,
    metric: str,
    x: str,
    by: str | None = None,
    *,
    lines: bool = True,
    panels: list[str] | None = None,
    title_note: str = "",
):
    """A matplotlib Figure of `metric` against axis `x`: one series per value of `by`, one panel per
    combination of the `panels` axes."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    ok = points[np.isfinite(points[metric].to_numpy(dtype=float))]
    groups = list(ok.groupby(panels, sort=True)) if panels else [((), ok)]
    columns = min(3, len(groups))
    rows = -(-len(groups) // columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(5.2 * columns + 1.2, 3.8 * rows + 0.4), layout="constrained", sharey=True, squeeze=False
    )
    for ax in axes.flat[len(groups) :]:
        ax.set_visible(False)
    for ax, (key, panel) in zip(axes.flat, groups):
        _draw(fig, ax, panel, metric, x, by, lines)
        ax.set_xlabel(x)
        ax.grid(alpha=0.3)
        if panels:
            key = key if isinstance(key, tuple) else (key,)
            ax.set_title(", ".join(f"{_short(p)} = {v}" for p, v in zip(panels, key)), fontsize="small")
    for ax in axes[:, 0]:
        ax.set_ylabel(metric)
    fig.suptitle(f"{metric} (mean of replications, 95% CI){title_note}", fontsize="medium")
    return fig


def _draw(fig, ax, points: pd.DataFrame, metric: str, x: str, by: str | None, lines: bool) -> None:
    if by is not None and points[by].nunique() > MAX_LINES and pd.api.types.is_numeric_dtype(points[by]):
        sc = ax.scatter(points[x], points[metric], c=points[by], cmap="viridis", s=18)
        fig.colorbar(sc, ax=ax, label=by)
        return
    series = [(None, points)] if by is None else list(points.groupby(by, sort=True))
    for value, group in series:
        group = group.sort_values(x, kind="stable")
        label = None if by is None else f"{_short(by)} = {value}"
        mean = group[metric].to_numpy(dtype=float)
        low = group[f"{metric}.ci_low"].to_numpy(dtype=float)
        high = group[f"{metric}.ci_high"].to_numpy(dtype=float)
        if lines:
            (line,) = ax.plot(group[x], mean, marker="o", ms=3, label=label)
            ax.fill_between(group[x], low, high, alpha=0.2, color=line.get_color(), linewidth=0)
        else:
            err = np.vstack([mean - low, high - mean])
            ax.errorbar(group[x], mean, yerr=np.where(np.isfinite(err), err, 0), fmt="o", ms=3, capsize=2, label=label)
    if by is not None:
        ax.legend(fontsize="small")


def plot_layout(sweep: Sweep, spec: PlotSpec, points: pd.DataFrame) -> tuple[pd.DataFrame, list[str], str]:
    """The rows a plot shows, the axes it splits into panels, and a note on the axes it holds fixed."""
    if sweep.spec.sampling != "grid":
        return points, [], ""
    rows = points
    fixed: dict[str, Any] = dict(spec.where)
    others = [a for a in sweep.axis_paths if a not in (spec.x, spec.by) and a not in fixed and rows[a].nunique() > 1]
    if others and len(rows.drop_duplicates(others)) > MAX_PANELS:
        fixed.update({a: rows[a].iloc[0] for a in others})
        others = []
    for axis, value in fixed.items():
        rows = rows[rows[axis] == value]
    note = ("; " + ", ".join(f"{_short(a)} = {v}" for a, v in fixed.items())) if fixed else ""
    return rows, others, note


def write_plots(sweep: Sweep, points: pd.DataFrame, folder: Path) -> dict[str, Path]:
    """Draw the sweep's plots (or the default one) as PNG files; axes holding words are skipped."""
    import matplotlib.pyplot as plt

    files: dict[str, Path] = {}
    for spec in sweep.spec.plots or default_plots(sweep):
        rows, panels, note = plot_layout(sweep, spec, points)
        if rows.empty or not pd.api.types.is_numeric_dtype(rows[spec.x]) or rows[spec.metric].isna().all():
            continue
        lines = sweep.spec.sampling == "grid"
        fig = metric_figure(rows, spec.metric, spec.x, spec.by, lines=lines, panels=panels, title_note=note)
        folder.mkdir(parents=True, exist_ok=True)
        where = "".join(f"-{_short(a)}={v}" for a, v in spec.where.items())
        name = _slug(f"{spec.metric}-vs-{spec.x}" + (f"-by-{spec.by}" if spec.by else "") + where) + ".png"
        fig.savefig(folder / name, dpi=110)
        plt.close(fig)
        files[f"plots/{name}"] = folder / name
    return files


def _short(path: str) -> str:
    return path.rsplit(".", 1)[-1]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)
