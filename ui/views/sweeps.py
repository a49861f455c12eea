"""The sweep tabs: p99 against the request rate (Load curve), throughput against p99 per batching setting
(Trade-off), and p99 and cost against the replica count (Cost vs replicas)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import streamlit as st

from sim.analysis import compare, planner
from sim.errors import ServesimError
from sim.present import plots
from sim.spec.scenario import Scenario
from ui.runs import Context, cached_load_curve, cached_replicas_curve, cached_tradeoff, long_sweep_confirmed
from ui.state import tab_input
from ui.text import as_text


def view_load_curve(ctx: Context) -> None:
    st.caption(
        "p99 as the request rate grows towards the rate that saturates the capacity-limiting stage "
        f"({planner.describe(ctx.scenario, planner.SWEEP)} per point; shaded: 95% CI)."
    )
    if not long_sweep_confirmed(ctx, len(compare.LOAD_FRACTIONS), "load_curve"):
        return
    with st.spinner("Sweeping the request rate…", show_time=True):
        curve = cached_load_curve(*ctx.key)
    knee = compare.knee_index(curve["rate_rps"], curve["p99"])
    best = compare.max_rate_within_slo(curve, ctx.slo_ms)
    capacity = planner.capacity_rps(ctx.scenario)
    cols = st.columns(3)
    cols[0].metric("Saturation rate", f"{capacity:,.0f} req/s" if math.isfinite(capacity) else "–", border=True)
    cols[1].metric("Knee", f"{curve['rate_rps'].iloc[knee]:,.0f} req/s" if knee is not None else "–", border=True)
    cols[2].metric(
        "Max rate within SLO",
        f"{best:,.0f} req/s" if best is not None else ("–" if ctx.slo_ms is None else "none"),
        border=True,
    )
    st.pyplot(
        plots.load_curve_figure(curve, ctx.slo_ms, {"": knee}, ctx.scenario.workload.arrival.mean_rate_rps),
        clear_figure=True,
    )


def view_tradeoff(ctx: Context) -> None:
    stage = planner.model_stage_name(ctx.scenario)
    if stage is None:
        st.info("This scenario has no model stage to batch.")
        return
    options = [1, 2, 4, 8, 16, 32, 64, 128]
    sizes = tab_input(
        st.multiselect,
        "tradeoff.sizes",
        [1, 8, 32],
        "Dynamic batching: max batch sizes",
        options,
        fixed_key=True,
        valid=lambda value: isinstance(value, list) and all(size in options for size in value),
    )
    delay = tab_input(
        st.number_input,
        "tradeoff.delay",
        2.0,
        "Max queue delay (ms)",
        0.0,
        1000.0,
        step=0.5,
        fixed_key=True,
        valid=lambda value: 0.0 <= value <= 1000.0,
    )
    policies = tuple(
        (
            f"B={b}, W={delay:g} ms" if b > 1 else "no batching",
            f"{{policy: dynamic, max_batch_size: {b}, max_queue_delay_ms: {delay}}}" if b > 1 else "{policy: none}",
        )
        for b in sorted(sizes)
    )
    if not policies:
        return
    if not long_sweep_confirmed(ctx, len(policies) * len(compare.LOAD_FRACTIONS), "tradeoff"):
        return
    with st.spinner("Sweeping load for each batching setting…", show_time=True):
        try:
            curves = cached_tradeoff(*ctx.key, policies)
        except ServesimError as exc:
            st.error(as_text(exc))
            return
    st.caption(
        "Bigger batches raise the throughput a replica sustains and cost tail latency at low load; "
        "the best setting is the one whose curve stays under the SLO furthest to the right."
    )
    st.pyplot(plots.tradeoff_figure(curves, ctx.slo_ms), clear_figure=True)
    bottleneck = capacity_limiting_stage(ctx.scenario)
    if bottleneck and bottleneck != stage:
        st.info(
            f"The stage that limits capacity is **{bottleneck}**, not {stage}: past the batch size that relieves {stage}, "
            f"bigger batches cannot raise the capacity — curves that coincide say so. Add {bottleneck} capacity first."
        )


def capacity_limiting_stage(scenario: Scenario) -> str | None:
    """The stage with the highest offered load at its most efficient batch: the one no bigger batch of the
    model stage relieves (sim/metrics/load.py). Not the busiest now: that is measured (sim/metrics/busy.py)."""
    from sim.metrics.load import offered_load

    loads = offered_load(scenario)
    return max(loads, key=loads.get) if loads else None


COST_POINTS = 16  # replica counts simulated per sweep; a wider range is sampled evenly


def replica_counts(ctx: Context) -> tuple[list[int], int]:
    """The replica counts the cost sweep simulates (from one below the smallest stable count, at most
    COST_POINTS of them, no ceiling), and that smallest stable count."""
    import numpy as np

    from sim.analysis.sizing import smallest_stable

    first = smallest_stable(ctx.scenario)
    current = ctx.scenario.deployment.replicas
    upper = max(64, 4 * first, 2 * current)
    default = (max(1, first - 1), max(first + 7, math.ceil(1.5 * first), min(2 * current, upper)))
    low, high = tab_input(
        st.slider,
        "cost.range",
        default,
        "Replicas from / to",
        1,
        upper,
        help=f"The smallest count that keeps up with the load is {first}.",
        valid=lambda value: len(value) == 2 and all(isinstance(v, int) and 1 <= v <= upper for v in value),
    )
    low = max(low, first - 1, 1)  # all counts further below are unstable too: one such bar says it
    if high < low:
        st.info(f"Every count up to {high} is unstable: at least {first} replicas are needed.")
        return [], first
    counts = sorted({int(round(x)) for x in np.linspace(low, high, min(COST_POINTS, high - low + 1))})
    return counts, first


def view_cost(ctx: Context) -> None:
    counts, first = replica_counts(ctx)
    if not counts:
        return
    if not long_sweep_confirmed(ctx, len(counts), "cost"):
        return
    with st.spinner(f"Sweeping {len(counts)} replica counts…", show_time=True):
        curve = cached_replicas_curve(*ctx.key, tuple(counts))
    top = counts[-1]
    if first > 1:
        st.caption(
            f"Below {first} replica{'s' if first != 1 else ''} the offered load exceeds what the replicas serve "
            f"(unstable: the queue grows without bound); the sweep starts at {counts[0]}."
        )
    st.pyplot(plots.cost_replicas_figure(curve, ctx.slo_ms), clear_figure=True)
    stable = curve[curve["stable"]]
    if ctx.slo_ms and not stable.empty and not (stable["p99"] <= ctx.slo_ms).any():
        floor = stable["p99"].min()
        st.info(
            f"No replica count up to {top} meets the p99 SLO of {ctx.slo_ms:g} ms: p99 levels off near "
            f"{floor:,.0f} ms. Replicas remove queueing; the rest is service time — see *Where latency lives* "
            "and try the stage costs in the sidebar."
        )
    st.dataframe(cost_table(curve), hide_index=True, width="stretch")


def cost_table(curve: pd.DataFrame) -> pd.DataFrame:
    """The replicas curve as display strings: an unstable count says so instead of showing numbers."""

    def number(value: Any, spec: str) -> str:
        return "–" if value is None or pd.isna(value) else format(value, spec)

    rows = []
    for _, point in curve.iterrows():
        ok = bool(point.get("stable", True))
        met = point.get("slo_met")
        rows.append(
            {
                "replicas": int(point["replicas"]),
                "offered load (limiting stage)": number(point["offered_load"], ".0%"),
                "p50 (ms)": number(point.get("p50"), ",.1f") if ok else "unstable",
                "p99 (ms)": number(point.get("p99"), ",.1f") if ok else "unstable",
                "throughput (req/s)": number(point.get("throughput_rps"), ",.1f") if ok else "unstable",
                "$ per 1M queries": number(point.get("usd_per_1m_queries"), ",.3f") if ok else "unstable",
                "SLO met": ("yes" if met else "no" if met is not None and not pd.isna(met) else "–")
                if ok
                else "no (unstable)",
            }
        )
    return pd.DataFrame(rows)
