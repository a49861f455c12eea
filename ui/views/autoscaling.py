"""The Autoscaling tab: replicas paid and warm, the peak, cold starts, and the over-time figure."""

from __future__ import annotations

import math

import streamlit as st

from ui.runs import Context


def view_autoscaling(ctx: Context) -> None:
    scaling = ctx.summary.autoscaling
    if scaling is None:
        st.info("This scenario has no autoscaling.")
        return
    cols = st.columns(4)
    cols[0].metric(
        "Mean replicas paid",
        f"{_number(scaling.mean_replicas):,.2f}",
        border=True,
        help="time-weighted: starting, warm and draining replicas all cost money",
    )
    cols[1].metric("Mean warm replicas", f"{_number(scaling.mean_warm_replicas):,.2f}", border=True)
    cols[2].metric("Peak replicas", f"{scaling.max_replicas if scaling.max_replicas is not None else '–'}", border=True)
    cols[3].metric("Cold starts per run", f"{_number(scaling.cold_starts_per_replication):,.1f}", border=True)
    timeline = ctx.result.run.timeline
    if timeline is None or timeline.empty:
        st.info("This run recorded no replica timeline.")
        return
    from sim.present.timeline import timeline_figure

    span_s = float(ctx.result.log["arrival_ms"].max()) / 1000.0
    window_s = max(1.0, round(span_s / 48.0))
    st.pyplot(timeline_figure(ctx.result.run, ctx.scenario, window_s), clear_figure=True)


def _number(value: float | None) -> float:
    return math.nan if value is None else value
