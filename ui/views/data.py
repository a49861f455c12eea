"""The Data & downloads tab: the scenario, the request log, the run log and the summary as the CLI gives it."""

from __future__ import annotations

import streamlit as st

from sim.analysis import planner
from sim.analysis.simulate import run_log_zip
from ui.runs import Context
from ui.text import as_text


def view_data(ctx: Context) -> None:
    st.caption(f"Shown: {as_text(planner.describe(ctx.scenario, ctx.size))}, seed {ctx.seed}.")
    cols = st.columns(3)
    cols[0].download_button(
        "Scenario (YAML)", ctx.scenario.to_yaml(), file_name=f"{ctx.scenario.name}.yaml", mime="text/yaml"
    )
    log = ctx.result.log
    cols[1].download_button(
        "Request log (CSV)",
        lambda: log.to_csv(index=False),
        file_name=f"{ctx.scenario.name}-log.csv",
        mime="text/csv",
        on_click="ignore",
        help="one row per request; the full run log is the zip",
    )
    cols[2].download_button(
        "Run log (Parquet frames + scenario, .zip)",
        lambda: run_log_zip(ctx.result),
        file_name=f"{ctx.scenario.name}-run.zip",
        mime="application/zip",
        on_click="ignore",
        help="`servesim summarize FOLDER` recomputes this page's summary from the unzipped folder",
    )
    with st.expander("Summary (the `servesim run --json` contract)"):
        st.json(ctx.summary.to_dict())
    st.dataframe(ctx.result.log.head(200), width="stretch")
