"""Interactive (Vega-Lite, via Altair) versions of the planner's two always-visible figures.

The browser draws them, so a knob change costs the server a few hundred data points instead of a
matplotlib render (0.3–0.6 s each on the 2-core reference machine). The data come from the same
functions as the PNG figures of sim/present/plots.py, so the app and the report show the same numbers.
"""

from __future__ import annotations

from typing import Mapping

import altair as alt
import numpy as np
import pandas as pd

from sim.present.plots import CDF_POINTS, PALETTE, SLO_COLOR, measured, wide_range


def stage_breakdown_chart(shares: pd.DataFrame | Mapping[str, pd.DataFrame]) -> alt.Chart:
    """Stacked horizontal bars: the time of a typical p50 and p99 request per stage (queue waits lighter);
    one pair of bars per variant when given a mapping variant -> shares."""
    if isinstance(shares, pd.DataFrame):
        shares = {"": shares}
    frames = []
    for variant, frame in shares.items():
        frame = frame.copy()
        frame.index = [f"{variant}  {p}".strip() for p in frame.index]
        frames.append(frame)
    table = pd.concat(frames).fillna(0.0)
    rows = list(table.index)
    order = list(table.columns)
    tidy = table.reset_index(names="percentile").melt("percentile", var_name="stage", value_name="ms")
    tidy["order"] = tidy["stage"].map({name: i for i, name in enumerate(order)})
    tidy["queue"] = tidy["stage"].str.endswith("_queue")
    tidy["stage"] = tidy["stage"].str.replace("_queue", " (queue)", regex=False)
    names = [name.replace("_queue", " (queue)") for name in order]
    base = [n for n in order if not n.endswith("_queue")]
    colors = []
    for n in order:
        color = (
            PALETTE[base.index(n.removesuffix("_queue")) % len(PALETTE)]
            if n.removesuffix("_queue") in base
            else "#999999"
        )
        colors.append(_lighter(color) if n.endswith("_queue") else color)
    totals = pd.DataFrame({"percentile": rows, "total": table.sum(axis=1).to_numpy()})
    y = alt.Y("percentile:N", title=None, sort=rows, axis=alt.Axis(labelLimit=240))
    bars = (
        alt.Chart(tidy)
        .mark_bar(stroke="white", strokeWidth=0.5)
        .encode(
            x=alt.X(
                "sum(ms):Q",
                title="time of a request at that percentile (ms)",
                scale=alt.Scale(domain=[0, 1.15 * float(totals["total"].max() or 1.0)], nice=False),
            ),
            y=y,
            color=alt.Color(
                "stage:N",
                scale=alt.Scale(domain=names, range=colors),
                sort=names,
                legend=alt.Legend(
                    orient="top", columns=3, title=None, symbolType="square", labelLimit=120, columnPadding=8
                ),
            ),
            order=alt.Order("order:Q"),
            tooltip=["percentile", "stage", alt.Tooltip("ms:Q", format=".2f")],
        )
    )
    labels = (
        alt.Chart(totals)
        .mark_text(align="left", dx=4, fontSize=12)
        .encode(x="total:Q", y=y, text=alt.Text("total:Q", format=",.1f"))
    )
    # Streamlit fits the whole chart (axes and legend included) into this height.
    return (bars + labels).properties(height=max(230, 110 + 48 * len(rows)))


def _lighter(hex_color: str, amount: float = 0.5) -> str:
    """`hex_color` blended with white: queue waits drawn as a pale version of their stage's colour."""
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return "#" + "".join(f"{round(c + (255 - c) * amount):02x}" for c in (r, g, b))


def cdf_points(log: pd.DataFrame, points: int = CDF_POINTS) -> pd.DataFrame:
    """Latency at evenly spaced quantiles of the served, measured requests: columns latency_ms, share."""
    values = measured(log)["latency_ms"].to_numpy()
    grid = np.linspace(0, 1, points)
    return pd.DataFrame(
        {"latency_ms": np.quantile(values, grid) if len(values) else np.full(points, np.nan), "share": grid}
    )


def cdf_chart(
    logs: pd.DataFrame | Mapping[str, pd.DataFrame],
    slo_ms: float | None = None,
    p99_ms: float | Mapping[str, float] | None = None,
) -> alt.Chart:
    """Empirical CDF of end-to-end latency (one line per variant), p99 dots, the p99 SLO as a dashed rule.
    `p99_ms` (per variant for several): the p99 the dots mark, the run summary's (the page shows one p99);
    else the pooled curve's."""
    if isinstance(logs, pd.DataFrame):
        logs = {"": logs}
    if p99_ms is not None and not isinstance(p99_ms, Mapping):
        p99_ms = {name: p99_ms for name in logs}
    data = pd.concat([cdf_points(log).assign(variant=name) for name, log in logs.items()], ignore_index=True)
    names = list(logs)
    color = (
        alt.Color(
            "variant:N",
            scale=alt.Scale(domain=names, range=PALETTE[: len(names)]),
            legend=alt.Legend(orient="bottom", title=None),
        )
        if len(names) > 1
        else alt.value(PALETTE[0])
    )
    wide = wide_range(logs)
    x = alt.X(
        "latency_ms:Q",
        title="end-to-end latency (ms" + (", log scale)" if wide else ")"),
        scale=alt.Scale(type="log") if wide else alt.Undefined,
    )
    data = data[data["latency_ms"] > 0] if wide else data
    line = (
        alt.Chart(data)
        .mark_line(strokeWidth=2)
        .encode(
            x=x,
            y=alt.Y("share:Q", title="share of requests ≤ latency", scale=alt.Scale(domain=[0, 1])),
            color=color,
            tooltip=[
                "variant",
                alt.Tooltip("latency_ms:Q", format=",.1f", title="latency (ms)"),
                alt.Tooltip("share:Q", format=".1%"),
            ],
        )
    )
    p99 = data.loc[np.isclose(data["share"], data["share"].iloc[(data["share"] - 0.99).abs().argmin()])]
    if p99_ms is not None:
        p99 = pd.DataFrame({"latency_ms": [p99_ms[n] for n in names], "share": 0.99, "variant": names})
    dots = (
        alt.Chart(p99)
        .mark_point(filled=True, size=60)
        .encode(
            x=x,
            y="share:Q",
            color=color,
            tooltip=["variant", alt.Tooltip("latency_ms:Q", format=",.1f", title="p99 (ms)")],
        )
    )
    layers = [line, dots]
    if slo_ms:
        layers.append(
            alt.Chart(pd.DataFrame({"slo": [slo_ms]}))
            .mark_rule(color=SLO_COLOR, strokeDash=[6, 4], strokeWidth=1.5)
            .encode(x="slo:Q", tooltip=[alt.Tooltip("slo:Q", title="p99 SLO (ms)")])
        )
    return alt.layer(*layers).properties(height=320 if len(logs) == 1 else 360)
