"""The Sizing tab on a disaggregated LLM stage: the prefill pool sized on TTFT, the decode pool beside it on
TPOT, and the colocated fleet on the same budgets (sim.analysis.sizing_split, as `servesim size`) — the answer
in one line, then each pool's probes."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from sim.analysis import planner
from sim.present.headline import split_answer
from sim.present.units import fmt_ms
from ui.runs import Context
from ui.state import keep_result, kept_result, stopped_work, tab_input
from ui.text import as_text
from ui.views.sizing import budget_text, describe_probe, sized_with_progress, stopped_text


def view_split_sizing(ctx: Context) -> None:
    from sim.analysis.sizing import Budgets
    from sim.analysis.sizing_split import size_split

    scenario = ctx.scenario
    cols = st.columns([1, 1, 1, 1], vertical_alignment="bottom")
    ttft = tab_input(
        cols[0].number_input, "size.ttft", float(scenario.slo.ttft_ms or 0.0), "TTFT p99 (ms)", min_value=0.0
    )
    tpot = tab_input(
        cols[1].number_input, "size.tpot", float(scenario.slo.tpot_ms or 0.0), "TPOT p99 (ms)", min_value=0.0
    )
    colocated = tab_input(
        cols[2].checkbox,
        "size.colocated",
        True,
        "Also size colocated",
        help="Size the same stage colocated (every replica runs prefill and decode) on the same budgets, to compare",
    )
    go = cols[3].button("Size", type="primary", key="size.run")
    stopped = None if go else stopped_work("sizing")
    if stopped is not None:
        st.warning(as_text(stopped_text("Sizing", stopped[1], "probe")))
    if not (ttft and tpot):
        st.info("Set a TTFT and a TPOT budget: the prefill pool is sized on TTFT, the decode pool on TPOT.")
        return
    budgets = Budgets(ttft_p99_ms=ttft, tpot_p99_ms=tpot)
    budget = budget_text(0.0, 0.0, ttft, tpot)
    run_plan = planner.plan(scenario, planner.QUICK)
    replications = max(2, run_plan.replications)  # judged by the CI's upper end: two at least
    key = (scenario.to_yaml(), ttft, tpot, colocated, ctx.seed)
    if go:
        result = sized_with_progress(
            key,
            f"Sizing the prefill and decode pools for {budget}…",
            lambda shown, progress: size_split(
                scenario,
                budgets,
                replications=replications,
                requests=run_plan.requests,
                seed=ctx.seed,
                with_colocated=colocated,
                on_probe=shown,
                on_progress=progress,
            ),
            lambda pool, probe: (
                f" ({pool}): {probe.hardware}: TTFT p99 {fmt_ms(probe.ttft_p99_ms)}, "
                f"TPOT p99 {fmt_ms(probe.tpot_p99_ms)} → {probe.verdict}"
            ),
        )
        if result is None:
            return
        keep_result("sizing", key, result)
    stored = kept_result("sizing", key)
    if stored is None:
        st.info(
            f"Press *Size* to search the prefill pool on TTFT p99 ≤ {ttft:g} ms (the decode pool cannot move it: "
            f"the first token leaves with the KV transfer), then the decode pool beside it on {budget}, each "
            f"galloping up to its ceiling and bisecting ({describe_probe(scenario, run_plan, replications)} per "
            "probe); then re-check the pair and one fewer in each pool on fresh seeds."
        )
        return
    show_split(stored, budget)


def split_table(result) -> pd.DataFrame:
    """Every probe of a split sizing, pool by pool (prefill, decode, re-checks, colocated), one row each."""
    groups = [("prefill", result.prefill), ("decode", result.decode)]
    groups.append(("re-check", [p for p in (result.recheck, result.fewer_prefill, result.fewer_decode) if p]))
    if result.colocated is not None:
        groups.append(("colocated", result.colocated.probes))
    rows = [
        {
            "search": pool,
            "fleet": probe.hardware if pool != "colocated" else f"{probe.replicas} colocated",
            "TTFT p99 (ms)": probe.ttft_p99_ms,
            "TPOT p99 (ms)": probe.tpot_p99_ms,
            "$/h": probe.usd_per_hour,
            "$/1M output tokens": probe.usd_per_1m_tokens,
            "verdict": probe.verdict,
        }
        for pool, probes in groups
        for probe in probes
    ]
    return pd.DataFrame(rows)


def show_split(result, budget: str) -> None:
    answer = split_answer(result)
    if result.chosen is None and (result.colocated is None or result.colocated.chosen is None):
        st.error(as_text(f"Nothing meets {budget}: {answer}."))
    else:
        st.markdown(f"### {as_text(answer)}")
    chosen = result.chosen
    if chosen is not None:
        cards = st.columns(4)
        cards[0].metric("Prefill + decode", chosen.hardware.replace(" prefill", "").replace(" decode", ""), border=True)
        for card, (label, value, ci) in zip(
            cards[1:3],
            [("TTFT p99", chosen.ttft_p99_ms, chosen.ttft_ci95), ("TPOT p99", chosen.tpot_p99_ms, chosen.tpot_ci95)],
        ):
            card.metric(
                label,
                fmt_ms(value),
                f"95% CI {ci[0]:,.1f}–{ci[1]:,.1f} ms" if ci else None,
                delta_color="off",
                delta_arrow="off",
                border=True,
            )
        per_token = chosen.usd_per_1m_tokens
        cards[3].metric("$ per 1M output tokens", f"${per_token:,.2f}" if per_token is not None else "–", border=True)
    for note in result.notes + (result.colocated.notes if result.colocated is not None else []):
        st.warning(as_text(note))
    st.dataframe(split_table(result).style.format(precision=2), hide_index=True, width="stretch")
