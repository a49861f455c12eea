"""Sweep plots: a metric (mean over replications, 95% CI) against one axis, split by a second one.

On a grid, one line per value of the `by` axis with its CI band; for sampled sweeps (random, Latin
hypercube) markers with CI bars, coloured by `by`. Figures are drawn from the points table only.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from sim.sweep_spec import PlotSpec, Sweep

MAX_LINES = 8


def default_plots(sweep: Sweep) -> list[PlotSpec]:
    """p99 latency (or the first metric) against the first axis, split by the second axis if any."""
    metrics = sweep.spec.metrics
    metric = "latency_ms.p99" if "latency_ms.p99" in metrics else metrics[0]
    axes = sweep.axis_paths
    return [PlotSpec(metric=metric, x=axes[0], by=axes[1] if len(axes) > 1 else None)]


def metric_figure(points: pd.DataFrame, metric: str, x: str, by: str | None = None, *, lines: bool = True):
    """A matplotlib Figure of `metric` against axis `x` (one series per value of `by`)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    ok = points[np.isfinite(points[metric].to_numpy(dtype=float))]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    if by is not None and ok[by].nunique() > MAX_LINES and pd.api.types.is_numeric_dtype(ok[by]):
        sc = ax.scatter(ok[x], ok[metric], c=ok[by], cmap="viridis", s=18)
        fig.colorbar(sc, ax=ax, label=by)
    else:
        groups = [(None, ok)] if by is None else list(ok.groupby(by, sort=True))
        for value, group in groups:
            group = group.sort_values(x, kind="stable")
            label = None if by is None else f"{by.rsplit('.', 1)[-1]} = {value}"
            mean = group[metric].to_numpy(dtype=float)
            low = group[f"{metric}.ci_low"].to_numpy(dtype=float)
            high = group[f"{metric}.ci_high"].to_numpy(dtype=float)
            if lines:
                (line,) = ax.plot(group[x], mean, marker="o", ms=3, label=label)
                ax.fill_between(group[x], low, high, alpha=0.2, color=line.get_color(), linewidth=0)
            else:
                err = np.vstack([mean - low, high - mean])
                err = np.where(np.isfinite(err), err, 0)
                ax.errorbar(group[x], mean, yerr=err, fmt="o", ms=3, capsize=2, label=label)
        if by is not None:
            ax.legend(fontsize="small")
    ax.set_xlabel(x)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} (mean of replications, 95% CI)", fontsize="medium")
    ax.grid(alpha=0.3)
    return fig


def write_plots(sweep: Sweep, points: pd.DataFrame, folder: Path) -> dict[str, Path]:
    """Draw the sweep's plots (or the default one) as PNG files; axes holding words are skipped."""
    import matplotlib.pyplot as plt

    files: dict[str, Path] = {}
    for spec in sweep.spec.plots or default_plots(sweep):
        if not pd.api.types.is_numeric_dtype(points[spec.x]) or points[spec.metric].isna().all():
            continue
        fig = metric_figure(points, spec.metric, spec.x, spec.by, lines=sweep.spec.sampling == "grid")
        folder.mkdir(parents=True, exist_ok=True)
        name = _slug(f"{spec.metric}-vs-{spec.x}" + (f"-by-{spec.by}" if spec.by else "")) + ".png"
        fig.savefig(folder / name, dpi=110)
        plt.close(fig)
        files[f"plots/{name}"] = folder / name
    return files


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)
