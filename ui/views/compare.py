"""The Compare tab: variants of the scenario on the same traffic and seed, beside the scenario as
configured (sim/present/comparison.py builds the table, as for `servesim compare`)."""

from __future__ import annotations

import streamlit as st

from sim.analysis import compare, planner
from sim.errors import ServesimError
from sim.metrics.summary import stage_columns
from sim.present import charts, plots
from sim.present.comparison import baseline_note, comparison_cells, identical_pairs, identical_text, winner_text
from ui.runs import Context, run_cached
from ui.state import (
    cancel_work,
    cancelled_work,
    finish_work,
    keep_result,
    kept_result,
    note_work,
    start_work,
    stopped_work,
    tab_input,
)
from ui.views.sizing import stopped_text
from ui.text import as_text


def view_compare(ctx: Context) -> None:
    stage = planner.model_stage_name(ctx.scenario)
    default = (
        "\n".join(
            [
                "no batching: batching=none",
                "static 8: batching=static(batch_size=8,timeout_ms=20)",
                "dynamic 8/2ms: batching=dynamic(max_batch_size=8,max_queue_delay_ms=2)",
                "dynamic 32/5ms: batching=dynamic(max_batch_size=32,max_queue_delay_ms=5)",
            ]
        )
        if stage
        else "\n".join(
            f"{n} replicas: replicas={n}"
            for n in (ctx.scenario.deployment.replicas, ctx.scenario.deployment.replicas + 1)
        )
    )
    st.caption(
        "Two to four variants of the scenario shown above, on the same traffic and seed, beside the scenario "
        "as configured. One per line, `NAME: SETTING, ...` — the syntax of `servesim compare --variant`."
    )
    text = tab_input(st.text_area, "compare.variants", default, "Variants", height=120)
    lines = [line for line in text.splitlines() if line.strip()]
    if not 2 <= len(lines) <= 4:
        st.warning("Give two to four variants, one per line.")
        return
    try:
        variants = compare.with_current(compare.parse_variants(lines, ctx.scenario))
    except ServesimError as exc:
        st.error(as_text(exc))
        return
    names = [variant.name for variant in variants]
    choices = [*names, "none"]
    baseline = tab_input(
        st.selectbox,
        "compare.baseline",
        names[0],
        "Baseline (deltas are against it)",
        choices,
        valid=lambda value: value in choices,  # a kept name may be gone once the variants are edited
    )
    baseline = None if baseline not in names else baseline
    key = (ctx.scenario.to_yaml(), tuple(v.spec for v in variants), ctx.seed)
    comparison = run_with_cancel(ctx, variants, key)
    if comparison is None:
        return
    at_slo = None
    if ctx.slo_ms:
        key = (*key, ctx.slo_ms)
        if st.button(
            f"Cost at equal SLO: size each variant to p99 ≤ {ctx.slo_ms:g} ms",
            key="compare.at_slo",
            help="The fewest replicas meeting the SLO at the 95% CI's upper end for each variant, by the Sizing "
            "tab's search (a few short runs per variant), and their $ per 1M queries",
        ):
            with st.spinner(f"Sizing {len(variants)} variants to p99 ≤ {ctx.slo_ms:g} ms…", show_time=True):
                keep_result("at_slo", key, compare.cost_at_slo(comparison, ctx.slo_ms))
        at_slo = kept_result("at_slo", key)
    cells = comparison_cells(comparison, baseline, at_slo)
    # Variant names head the columns: escaped as text (markdown_table escapes the `|` itself).
    cells.columns = [as_text(name).replace("\\|", "|") for name in cells.columns]
    st.markdown(compare.markdown_table(cells))
    note = baseline_note(comparison, baseline)
    if note:
        st.info(as_text(note))
    winner = winner_text(comparison)
    if winner:
        st.markdown(as_text(winner))
    same = identical_text(identical_pairs(comparison), comparison)
    if same:
        st.info(as_text(same))
    deltas = (
        f"Δ is the difference from **{as_text(baseline)}**, ✱ significant at 5% (Welch's t-test on the "
        "per-replication values, or non-overlapping 95% CIs for a single replication), n.s. not; "
        if baseline and not note
        else ""
    )
    st.caption(
        f"★ best per metric among the stable variants (ties within {compare.TIE_RELATIVE:.0%}); [low, high] is the "
        f"95% CI; {deltas}a variant meets the SLO when its p99's 95% CI upper end is within it (as in Sizing); "
        f"{planner.describe(ctx.scenario, planner.QUICK)} per variant."
    )
    shaky = [r.variant.name for r in comparison.results if planner.unstable(r.summary)]
    for name in shaky:
        st.warning(
            f"**{as_text(name)}** is unstable: a queue grows without bound, so its latencies depend only on how long "
            "the run is. It is left out of the charts and of the stars."
        )
    drawn = [r for r in comparison.results if r.variant.name not in shaky]
    if drawn:
        left, right = st.columns(2)
        with left:
            st.markdown("**Latency CDF by variant**")
            p99 = {r.variant.name: r.view.latency_ms.p99 for r in drawn}
            st.altair_chart(
                charts.cdf_chart({r.variant.name: r.result.log for r in drawn}, ctx.slo_ms, p99_ms=p99),
                width="stretch",
            )
        with right:
            st.markdown("**Where latency lives, by variant**")
            shares = {
                r.variant.name: plots.stage_shares(
                    r.result.log, stage_columns(r.scenario), totals=r.view.latency_ms.to_dict()
                )
                for r in drawn
            }
            st.altair_chart(charts.stage_breakdown_chart(shares), width="stretch")
    from sim.present.report import report_zip

    # Deferred: the PNGs of the report are drawn only when the button is clicked.
    st.download_button(
        "Download the comparison report (Markdown + PNGs, .zip)",
        lambda: report_zip(comparison),
        file_name=f"{ctx.scenario.name}-compare.zip",
        mime="application/zip",
        on_click="ignore",
        key="compare.download",
    )


def run_with_cancel(ctx: Context, variants: list, key: tuple) -> compare.Comparison | None:
    """Run the variants (each a cached run) under a progress bar with a Cancel button; None when cancelled.
    Any click reruns the page and stops the run under way; a Cancel click also keeps it stopped (the page
    would otherwise start it again) until *Run the comparison*. The variants finished before are cached, so
    it resumes where it stopped."""
    done = cancelled_work("compare", key)
    if done is not None:
        st.info(
            as_text(stopped_text("The comparison", done, "variant", "Its finished variants are kept.", cancelled=True))
        )
        if not st.button("Run the comparison", key="compare.resume", type="primary"):
            return None
    stopped = stopped_work("compare")  # begun in the run a click stopped
    slot = st.empty()
    if slot.button("Cancel", key="compare.cancel", help="Stops the comparison (finished variants are kept)"):
        start_work("compare", key)
        for note in stopped[1] if stopped is not None else []:
            note_work("compare", note)
        cancel_work("compare")
        st.rerun()
    bar = st.progress(0.0, text=f"Running {len(variants)} variants on seed {ctx.seed}…")
    start_work("compare", key)
    names = [variant.name for variant in variants]

    def progress(finished: int, total: int) -> None:
        note_work("compare", names[finished - 1])
        bar.progress(finished / total, text=f"{finished} of {total} variants run")

    comparison = compare.run_comparison(
        ctx.scenario,
        variants,
        size=planner.QUICK,
        seed=ctx.seed,
        progress=progress,
        runner=lambda s, size, seed: run_cached(s, size, seed),
    )
    finish_work("compare")
    slot.empty()
    bar.empty()
    return comparison
