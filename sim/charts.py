"""Interactive (Vega-Lite, via Altair) versions of the planner's two always-visible figures.

The browser draws them, so a knob change costs the server a few hundred data points instead of a
matplotlib render (0.3–0.6 s each on the 2-core reference machine). The data come from the same
functions as the PNG figures of sim/plots.py, so the app and the report show the same numbers.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from sim.plots import CDF_POINTS, PALETTE, SLO_COLOR, measured


def stage_breakdown_chart(shares: pd.DataFrame) -> alt.Chart:
    """Stacked horizontal bars: the time of a typical p50 and p99 request per stage (queue waits lighter)."""
    tidy = shares.reset_index(names="percentile").melt("percentile", var_name="stage", value_name="ms")
    order = list(shares.columns)
    tidy["order"] = tidy["stage"].map({name: i for i, name in enumerate(order)})
    tidy["queue"] = tidy["stage"].str.endswith("_queue")
    tidy["stage"] = tidy["stage"].str.replace("_queue", " (queue)", regex=False)
    names = [name.replace("_queue", " (queue)") for name in order]
    base = [n for n in order if not n.endswith("_queue")]
    colors = []
    for name in order:
        color = PALETTE[base.index(name.removesuffix("_queue")) % len(PALETTE)] if name.removesuffix("_queue") in base else "#999999"
        colors.append(color)
    totals = pd.DataFrame({"percentile": shares.index, "total": shares.sum(axis=1).to_numpy()})
    bars = alt.Chart(tidy).mark_bar(stroke="white", strokeWidth=0.5).encode(
        x=alt.X("sum(ms):Q", title="time of a request at that percentile (ms)"),
        y=alt.Y("percentile:N", title=None, sort=list(shares.index)),
        color=alt.Color("stage:N", scale=alt.Scale(domain=names, range=colors), sort=names,
                        legend=alt.Legend(orient="bottom", columns=4, title=None)),
        opacity=alt.condition("datum.queue", alt.value(0.55), alt.value(1.0)),
        order=alt.Order("order:Q"),
        tooltip=["percentile", "stage", alt.Tooltip("ms:Q", format=".2f")],
    )
    labels = alt.Chart(totals).mark_text(align="left", dx=4, fontSize=12).encode(
        x="total:Q", y=alt.Y("percentile:N", sort=list(shares.index)), text=alt.Text("total:Q", format=",.1f"))
    return (bars + labels).properties(height=150)


def cdf_points(log: pd.DataFrame, points: int = CDF_POINTS) -> pd.DataFrame:
    """Latency at evenly spaced quantiles of the served, measured requests: columns latency_ms, share."""
    values = measured(log)["latency_ms"].to_numpy()
    grid = np.linspace(0, 1, points)
    return pd.DataFrame({"latency_ms": np.quantile(values, grid) if len(values) else np.full(points, np.nan), "share": grid})


def cdf_chart(log: pd.DataFrame, slo_ms: float | None = None) -> alt.Chart:
    """Empirical CDF of end-to-end latency with the p99 SLO as a dashed rule."""
    data = cdf_points(log)
    line = alt.Chart(data).mark_line(color=PALETTE[0], strokeWidth=2).encode(
        x=alt.X("latency_ms:Q", title="end-to-end latency (ms)"),
        y=alt.Y("share:Q", title="share of requests ≤ latency", scale=alt.Scale(domain=[0, 1])),
        tooltip=[alt.Tooltip("latency_ms:Q", format=",.1f", title="latency (ms)"), alt.Tooltip("share:Q", format=".1%")],
    )
    layers = [line]
    p99 = data.loc[(data["share"] - 0.99).abs().idxmin()]
    layers.append(alt.Chart(pd.DataFrame([p99])).mark_point(filled=True, size=60, color=PALETTE[0]).encode(
        x="latency_ms:Q", y="share:Q", tooltip=[alt.Tooltip("latency_ms:Q", format=",.1f", title="p99 (ms)")]))
    if slo_ms:
        layers.append(alt.Chart(pd.DataFrame({"slo": [slo_ms]})).mark_rule(color=SLO_COLOR, strokeDash=[6, 4], strokeWidth=1.5)
                      .encode(x="slo:Q", tooltip=[alt.Tooltip("slo:Q", title="p99 SLO (ms)")]))
    return alt.layer(*layers).properties(height=260)
