"""The Advisor tab: `servesim advise` in the planner."""

from __future__ import annotations

import streamlit as st

from ui.runs import Context
from ui.state import keep_result, kept_result, tab_input
from ui.text import as_text


def view_advisor(ctx: Context) -> None:
    """`servesim advise` in the planner: the profile, the ranked lever stacks and the recommendation, on
    demand (it runs a few dozen short simulations: seconds)."""
    from sim.analysis.advise import advise, verdict_table
    from sim.present.advise_report import pareto_figure, profile_text, waterfall_figure

    cols = st.columns([1, 1, 1, 2], vertical_alignment="bottom")
    slo = tab_input(
        cols[0].number_input,
        "advise.slo",
        float(ctx.slo_ms or 0.0),
        "p99 SLO (ms)",
        min_value=0.0,
        step=5.0,
        help="0: no SLO, stacks ranked by p99",
    )
    stack = tab_input(
        cols[1].selectbox,
        "advise.stack",
        2,
        "Levers per stack, up to",
        [1, 2, 3],
        fixed_key=True,
        valid=lambda value: value in (1, 2, 3),
    )
    hit_rate = tab_input(
        cols[2].slider,
        "advise.hits",
        0.3,
        "Assumed cache hit rate",
        0.05,
        0.9,
        step=0.05,
        fixed_key=True,
        valid=lambda value: 0.05 <= value <= 0.9,
    )
    key = (ctx.scenario.to_yaml(), ctx.seed, slo, stack, hit_rate)
    if cols[3].button("Advise", type="primary", key="advise.run"):
        with st.spinner("Profiling, then evaluating lever stacks on common random numbers…"):
            keep_result(
                "advice",
                key,
                advise(
                    ctx.scenario,
                    slo_p99_ms=slo or None,
                    max_stack=stack,
                    seed=ctx.seed,
                    cache_hit_rate=hit_rate,
                    requests=2000,
                ),
            )
    advice = kept_result("advice", key)
    if advice is None:
        st.info(
            "Profile the scenario, then rank stacks of levers (quantisation, GPU decode, batching, caches, "
            "replicas, hardware) by p99, cost and accuracy. Press *Advise*."
        )
        return
    st.success(f"**Recommendation:** {as_text(advice.recommendation)}")
    st.markdown("\n".join(f"- {as_text(line.strip())}" for line in profile_text(advice)[1:]))
    for note in advice.notes:
        st.info(as_text(note))
    st.dataframe(verdict_table(advice, 15), hide_index=True, width="stretch")
    left, right = st.columns(2)
    left.pyplot(waterfall_figure(advice), clear_figure=True)
    right.pyplot(pareto_figure(advice), clear_figure=True)
    with st.expander("Warnings, skipped and not offered levers"):
        lines = [f"- #{row.rank} {as_text(row.label)}: {as_text(w)}" for row in advice.rows[:15] for w in row.warnings]
        lines += [f"- skipped {as_text(name)}: {as_text(why)}" for name, why in advice.skipped]
        lines += [f"- not offered {as_text(name)}: {as_text(why)}" for name, why in advice.not_offered]
        st.markdown("\n".join(lines) or "none")
