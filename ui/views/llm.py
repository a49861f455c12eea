"""The LLM tab: TTFT / TPOT / ITL percentiles (vLLM `bench serve` vocabulary) beside the page's one
end-to-end row, the batch and KV-cache figures, and the distributions and timeline when the run kept the
LLM stage's own log. The headline cards above the tabs carry the answer (sim/present/headline.py)."""

from __future__ import annotations

import streamlit as st

from sim.metrics.llm import stage_results
from sim.metrics.summary_view import Llm
from sim.present import headline
from ui.runs import Context
from ui.text import as_text


def view_llm(ctx: Context) -> None:
    llm = ctx.summary.llm or Llm()
    st.dataframe(headline.llm_percentile_table(ctx.summary).style.format(precision=1), width="stretch")
    batch, kv = llm.batch_size, llm.kv_cache_utilization
    if batch.mean is not None and kv.mean is not None:
        st.caption(
            f"Batch size mean {batch.mean:.1f} (max {batch.max}), KV cache use mean {kv.mean:.1%} "
            f"(max {kv.max:.1%}), preemptions {llm.preemptions or 0:,}. The end-to-end row is the "
            "whole request's latency, the same figures as the cards and the stage bars."
        )
    pools = headline.pools_table(ctx.summary)
    if pools is not None:
        st.markdown("**Pools** (disaggregated prefill and decode)")
        st.dataframe(pools, width="stretch")
        st.caption(
            f"{headline.kv_transfer_text(ctx.summary)}. Busy: the share of the pool's replica-time spent in "
            "iterations; KV cache use: of the pool's own blocks. The figures above the pools (batch, KV cache) "
            "are the decode pool's."
        )
    stage = next((s for s in ctx.scenario.stages if s.name == llm.stage), None) if ctx.scenario else None
    runs = stage_results(ctx.result.run, stage) if stage is not None else []
    if runs:
        from sim.present import llm_charts

        results = {"": runs[0][1]}
        left, right = st.columns(2)
        left.altair_chart(llm_charts.distributions_chart(results, "ttft_ms"), width="stretch")
        right.altair_chart(llm_charts.distributions_chart(results, "tpot_ms"), width="stretch")
        st.altair_chart(llm_charts.timeseries_chart(results), width="stretch")
    for warning in llm.warnings:
        st.warning(as_text(warning))
