"""The Stage details tab: per-stage percentiles, measured busy share beside offered load, batch sizes."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from sim.metrics.busy import busy_shares
from sim.present import plots
from ui.runs import Context


def view_stages(ctx: Context) -> None:
    stages = ctx.summary.stages
    loads = ctx.summary.offered_load
    if stages:
        table = pd.DataFrame({name: figures.to_dict() for name, figures in stages.items()}).T.rename(
            columns=lambda c: f"{c} (ms)"
        )
        table.index = [name.replace("_queue", " (queue)") for name in table.index]
        busy = busy_shares(ctx.result.run, ctx.scenario)
        table["busy (measured)"] = [f"{busy[name]:.0%}" if name in busy else "" for name in table.index]
        table["offered load (best batch)"] = [f"{loads[name]:.0%}" if name in loads else "" for name in table.index]
        table.index.name = "stage"
        st.dataframe(table.style.format(precision=2), width="stretch")
    utilization = ctx.summary.utilization
    if utilization is not None and math.isfinite(utilization):
        st.caption(
            f"Model instances busy {utilization:.0%} of the time. Busy (measured): the stage's busy server-time "
            "over the server-time there was; offered load: ρ at the most efficient batch the policy allows (≥ 100%: "
            "no batching keeps up). Queue rows are waits before the stage."
        )
    log = plots.measured(ctx.result.log)
    if "batch_size" in log and (log["batch_size"] > 1).any():
        counts = log.loc[log["batch_size"] > 0, "batch_size"].value_counts(normalize=True).sort_index()
        st.markdown("**Batch sizes** (share of requests by the size of the batch they rode in)")
        st.bar_chart(counts.rename("share of requests"), height=220)
