"""Altair charts of LLM runs for the planner: TTFT / TPOT / ITL / e2e distributions and tokens/s, batch size
and KV-cache use over time — one line per variant, so static and continuous batching sit side by side.
Inputs are `LLMStageResult`s (sim/engine/llm/stage.py); data come from sim/metrics/llm.py."""

from __future__ import annotations

from typing import Mapping

import altair as alt
import numpy as np
import pandas as pd

from sim.engine.llm.stage import LLMStageResult
from sim.metrics.llm import llm_timeseries

PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860"]
POINTS = 200
METRICS = {
    "ttft_ms": "time to first token (ms)",
    "tpot_ms": "time per output token (ms)",
    "itl_ms": "inter-token latency (ms)",
    "e2e_ms": "end-to-end (ms)",
}


def _values(result: LLMStageResult, metric: str) -> np.ndarray:
    if metric == "itl_ms":
        return result.itl_ms
    values = result.requests[metric].to_numpy()
    return values[np.isfinite(values)]


def distribution_points(results: Mapping[str, LLMStageResult], points: int = POINTS) -> pd.DataFrame:
    """Tidy quantile grid: variant, metric, share, value_ms — a few hundred rows per line, whatever the run size."""
    grid = np.linspace(0, 1, points)
    frames = []
    for variant, result in results.items():
        for metric in METRICS:
            values = _values(result, metric)
            if len(values):
                frames.append(
                    pd.DataFrame(
                        {"variant": variant, "metric": metric, "share": grid, "value_ms": np.quantile(values, grid)}
                    )
                )
    return pd.concat(frames, ignore_index=True)


def _color(names: list[str]):
    if len(names) == 1:
        return alt.value(PALETTE[0])
    return alt.Color(
        "variant:N",
        scale=alt.Scale(domain=names, range=PALETTE[: len(names)]),
        legend=alt.Legend(orient="bottom", title=None),
    )


def distributions_chart(results: Mapping[str, LLMStageResult], metric: str = "ttft_ms") -> alt.Chart:
    """Empirical CDF of one of TTFT, TPOT, ITL, e2e (log-scaled time axis: the tails span decades)."""
    data = distribution_points(results)
    data = data[(data.metric == metric) & (data.value_ms > 0)]
    return (
        alt.Chart(data)
        .mark_line(strokeWidth=2)
        .encode(
            x=alt.X("value_ms:Q", title=METRICS[metric], scale=alt.Scale(type="log")),
            y=alt.Y("share:Q", title="share ≤ value", scale=alt.Scale(domain=[0, 1])),
            color=_color(list(results)),
            tooltip=["variant", alt.Tooltip("value_ms:Q", format=",.1f"), alt.Tooltip("share:Q", format=".1%")],
        )
        .properties(height=260)
    )


def timeseries_chart(results: Mapping[str, LLMStageResult], bin_s: float = 30.0) -> alt.VConcatChart:
    """Decode tokens/s, mean batch size and KV-cache use per time bin, stacked, shared time axis."""
    data = pd.concat([llm_timeseries(r, bin_s).assign(variant=name) for name, r in results.items()], ignore_index=True)
    color = _color(list(results))
    panels = []
    for column, title, fmt in (
        ("decode_tokens_per_s", "decode tokens/s", ",.0f"),
        ("batch_size", "batch size (mean)", ",.1f"),
        ("kv_cache_utilization", "KV cache used", ".0%"),
    ):
        panels.append(
            alt.Chart(data)
            .mark_line(strokeWidth=1.5)
            .encode(
                x=alt.X("time_s:Q", title="time (s)"),
                y=alt.Y(f"{column}:Q", title=title, axis=alt.Axis(format=fmt)),
                color=color,
                tooltip=["variant", "time_s", alt.Tooltip(f"{column}:Q", format=fmt)],
            )
            .properties(height=140)
        )
    return alt.vconcat(*panels)
