"""The llm tab."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from sim.metrics.llm import stage_results
from sim.present import plots
from ui.runs import (
    Context,
)
from ui.text import as_text

LLM_METRICS = {"ttft_ms": "TTFT", "tpot_ms": "TPOT", "itl_ms": "ITL", "e2el_ms": "end-to-end"}


def view_llm(ctx: Context) -> None:
    """TTFT / TPOT / ITL (vLLM `bench serve` vocabulary), tokens/s and goodput from the summary's `llm` key;
    distributions and the batch / KV-cache timeline when the run kept the LLM stage's own log."""
    llm = ctx.summary.get("llm") or {}
    cols = st.columns(4)
    for card, key in zip(cols, ("ttft_ms", "tpot_ms")):
        p99 = (llm.get(key) or {}).get("p99")
        card.metric(f"{LLM_METRICS[key]} p99", plots.fmt_ms(p99), border=True)
    tokens = llm.get("output_tokens_per_s")
    cols[2].metric("Output tokens/s", f"{tokens:,.0f}" if tokens is not None else "–", border=True)
    goodput = llm.get("goodput") or {}
    cols[3].metric(
        "Goodput",
        f"{goodput['requests_per_s']:,.2f} req/s" if "requests_per_s" in goodput else "–",
        border=True,
        help="requests per second meeting both the TTFT and the TPOT SLO" if goodput else "no TTFT / TPOT SLO set",
    )
    rows = {LLM_METRICS[k]: llm[k] for k in LLM_METRICS if isinstance(llm.get(k), dict)}
    if rows:
        st.dataframe(
            pd.DataFrame(rows).T.rename(columns=lambda c: f"{c} (ms)").style.format(precision=1), width="stretch"
        )
    stage = next((s for s in ctx.scenario.stages if s.name == llm.get("stage")), None) if ctx.scenario else None
    runs = stage_results(ctx.result.run, stage) if stage is not None else []
    if runs:
        from sim.present import llm_charts

        results = {"": runs[0][1]}
        left, right = st.columns(2)
        left.altair_chart(llm_charts.distributions_chart(results, "ttft_ms"), width="stretch")
        right.altair_chart(llm_charts.distributions_chart(results, "tpot_ms"), width="stretch")
        st.altair_chart(llm_charts.timeseries_chart(results), width="stretch")
    for warning in llm.get("warnings") or []:
        st.warning(as_text(warning))
