"""The verdict above the tabs: headline cards, the SLO sentence, where latency lives."""

from __future__ import annotations


import pandas as pd
import streamlit as st

from sim.analysis import planner
from sim.metrics.summary import stage_columns
from sim.metrics.summary_view import Summary
from sim.present import charts, plots
from sim.metrics.busy import busiest, busy_shares
from sim.present import headline
from sim.present.units import fmt_interval, fmt_ms, horizon_cost_text
from sim.present.windows import window_verdict
from sim.spec.scenario import time_dependent
from ui.runs import Context
from ui.state import identity
from ui.text import as_text


def ci_text(summary: Summary | dict, key: str) -> str:
    """The 95% CI of latency `key` as '[low, high]' (ms), or 'n/a' where the run gives none."""
    return fmt_interval(Summary.of(summary).latency_ms_ci95.at(key), lambda v: f"{v:,.{_decimals(v)}f}")


def _decimals(value: float) -> int:
    return 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2


# Warnings shown beside the verdict rather than folded into the run's notes.
LOUD_WARNINGS = ("unstable", "no confidence intervals")


def show_verdict(ctx: Context) -> None:
    """The headline: an LLM scenario's TTFT / TPOT cards and verdict, else the end-to-end cards and
    verdict; then the per-window sentence and the run's warnings."""
    if "llm" in ctx.summary:
        show_llm_headline(ctx)
    else:
        show_latency_headline(ctx)
    show_warnings(ctx)


def show_card(column, card: headline.Card) -> None:
    """A headline card; its note is red when the figure misses its budget, green when it meets it."""
    colour = {"misses": "inverse", "too close": "off", "meets": "normal"}.get(card.verdict or "", "off")
    column.metric(
        card.label,
        card.value,
        card.note,
        delta_color=colour,
        delta_arrow="auto" if card.verdict in ("meets", "misses") else "off",
        border=True,
        help=card.help or None,
    )


def show_llm_headline(ctx: Context) -> None:
    slo = ctx.scenario.slo
    cards = headline.llm_cards(ctx.summary, slo.ttft_ms, slo.tpot_ms)
    for row in (cards[:4], cards[4:]):
        for column, card in zip(st.columns(4), row):
            show_card(column, card)
    verdict, sentence = headline.llm_verdict_sentence(ctx.summary, slo.ttft_ms, slo.tpot_ms)
    {"meets": st.success, "too close": st.warning, "misses": st.error}.get(verdict, st.info)(sentence)
    if ctx.slo_ms is not None:
        show_latency_sentence(ctx)


def show_latency_headline(ctx: Context) -> None:
    summary = ctx.summary
    budgets = summary.slo.budgets or {}
    latency = headline.page_latency(summary)
    cards = st.columns(6)
    for card, key in zip(cards, ("p50", "p95", "p99")):
        value = latency.at(key)
        interval = ci_text(summary, key)
        budget = budgets.get(f"{key}_ms")
        card.metric(
            f"{key} latency {interval if interval != 'n/a' else '[CI n/a]'}",
            f"{value:,.1f} ms",
            f"{value - budget:+,.1f} ms" if budget else None,
            delta_color="inverse",
            border=True,
            help=f"[low, high] is the 95% confidence interval (ms) over {summary.replications} replication(s)"
            + (" (sections of one run: batch means)" if summary.replications == 1 else "")
            + "; n/a where the run gives no honest interval (see the warning)"
            + (f"; the delta is the distance to the {key} SLO of {budget:g} ms" if budget else ""),
        )
    offered = ctx.scenario.workload.arrival.mean_rate_rps
    rejected_text, rejected_colour = headline.rejected_note(summary.rejected_fraction)
    cards[3].metric(
        "Throughput",
        f"{summary.throughput_rps:,.1f}/s",
        border=True,
        delta=rejected_text,
        delta_color=rejected_colour,
        help=f"requests served per second; offered {offered:,.1f} req/s",
    )
    cost = summary.cost
    per_1m = cost.usd_per_1m_queries
    per_hour = cost.usd_per_hour
    beside = [f"${per_hour:,.2f}/h"] if per_hour else []
    horizon = horizon_cost_text(cost)  # the CLI table's words for the same figure
    cards[4].metric(
        "$ per 1M queries",
        f"${per_1m:,.2f}" if per_1m is not None else "–",
        border=True,
        delta=" · ".join(beside + ([horizon] if horizon else [])) or None,
        delta_color="off",
        delta_arrow="off",
        help="hardware $/hour × replicas ÷ queries served per hour"
        + ("; a day's (or the measured horizon's) replica-hours × $/hour" if horizon else ""),
    )
    top = busiest(busy_shares(ctx.result.run, ctx.scenario))
    if top is not None:
        name, share = top
        cards[5].metric(
            "Busiest stage",
            f"{share:.0%} busy",
            name,
            delta_color="off",
            delta_arrow="off",
            border=True,
            help="measured busy share: the stage's busy server-time over the server-time there was, across the "
            "measured horizon (sim/metrics/busy.py)",
        )
    show_latency_sentence(ctx)


def show_latency_sentence(ctx: Context) -> None:
    """The end-to-end SLO verdict, judged by the one rule (sim.analysis.planner.slo_verdict: the CI's
    upper end must be within the budget)."""
    summary = ctx.summary
    slo = summary.slo
    p99, slo_ms = headline.page_latency(summary).p99, ctx.slo_ms
    if slo.met is None:
        st.info(f"No latency budget set: p99 is {fmt_ms(p99)}. Set a p99 SLO in the sidebar to get a verdict.")
    else:
        attained = slo.attainment
        share = f" ({attained:.1%} of requests within {slo_ms:g} ms)" if attained is not None else ""
        failed = [k for k, ok in (slo.checks or {}).items() if not ok]
        ci = summary.latency_ms_ci95.p99
        verdict = planner.slo_verdict(p99, ci, slo_ms) if slo_ms is not None else None
        if failed or verdict == "misses":
            named = ", ".join(failed) or "p99"
            st.error(f"**Misses the SLO** ({named}): p99 {fmt_ms(p99)} vs {slo_ms:g} ms{share}.")
        elif verdict == "too close":
            st.warning(
                f"**Too close to call on the SLO**: p99 {fmt_ms(p99)} ≤ {slo_ms:g} ms, but its 95% CI reaches "
                f"{fmt_ms(ci[1])}{share} — run precisely."
            )
        else:
            st.success(f"**Meets the SLO**: p99 {fmt_ms(p99)} ≤ {slo_ms:g} ms at the 95% CI's upper end{share}.")
    per_window = window_verdict(slo.windows)
    if per_window:  # the same sentence as `servesim run` (sim.present.windows)
        (st.error if slo.windows.met is False else st.info)(f"**Per window:** {per_window}.")


def show_warnings(ctx: Context) -> None:
    summary = ctx.summary
    for warning in summary.warnings:
        if warning.startswith(LOUD_WARNINGS):
            text = as_text(warning)
            if warning.startswith("no confidence intervals") and ctx.scenario.replications > 1:
                text += f" (*Run precisely* runs the scenario's {ctx.scenario.replications})"
            st.warning(text)
    quiet = [w for w in summary.warnings if not w.startswith(LOUD_WARNINGS)]
    if quiet:
        with st.expander(f"{len(quiet)} note(s) on this run"):
            for warning in quiet:
                st.caption(as_text(warning))


def show_where_latency_lives(ctx: Context) -> None:
    left, right = st.columns([1, 1])
    latency = headline.page_latency(ctx.summary)  # one p50 / p99 per page: the cards'
    shares = plots.stage_shares(ctx.result.log, stage_columns(ctx.scenario), totals=latency.to_dict())
    with left:
        st.markdown("#### Where latency lives")
        st.caption(dominant_stage_sentence(shares))
        st.altair_chart(charts.stage_breakdown_chart(shares), width="stretch")
    with right:
        st.markdown("#### Latency distribution")
        st.caption("CDF of end-to-end latency; the dot is p99, the dashed line the p99 SLO.")
        st.altair_chart(charts.cdf_chart(ctx.result.log, ctx.slo_ms, p99_ms=latency.p99), width="stretch")
    if time_dependent(ctx.scenario):
        show_per_window(ctx)


def show_per_window(ctx: Context) -> None:
    """The run's p99 window by window, beside the one p99 of the cards (a load that changes over time)."""
    from sim.metrics.timeline import windowed
    from sim.metrics.windows import readable_window_s

    log = ctx.result.log
    window_s = readable_window_s(float(log["arrival_ms"].max()) / 1000.0)
    st.markdown("#### Over time")
    st.caption(
        f"The p99 on the cards ({ctx.summary.latency_ms.p99:,.1f} ms) is the whole run's; here "
        f"each {planner.format_duration(window_s)} window's own (every request arriving in it, warm-up "
        "included, pooled over replications)."
    )
    st.dataframe(per_window_table(windowed(ctx.result.run, ctx.scenario, window_s)), width="stretch", hide_index=True)


def per_window_table(windows: pd.DataFrame) -> pd.DataFrame:
    """`sim.metrics.timeline.windowed` as the page shows it."""
    columns = {
        "start_s": "from",
        "arrival_rps": "req/s",
        "paid_replicas": "paid replicas",
        "p50_ms": "p50 (ms)",
        "p99_ms": "p99 (ms)",
        "rejected_fraction": "rejected",
        "usd_per_hour": "$/h",
    }
    table = windows[[c for c in columns if c in windows]].rename(columns=columns)
    table["from"] = [clock_time(s) for s in windows["start_s"]]
    return table.round(2)


def clock_time(seconds: float) -> str:
    from sim.present.windows import clock

    return clock(seconds, with_seconds=seconds % 60 != 0)


def dominant_stage_sentence(shares: pd.DataFrame) -> str:
    """'At p99, preprocess takes 71% of the time (6% of it queueing).'"""
    if shares.empty or "p99" not in shares.index:
        return ""
    row = shares.loc["p99"]
    grouped: dict[str, float] = {}
    for column, value in row.items():
        grouped[column.removesuffix("_queue")] = grouped.get(column.removesuffix("_queue"), 0.0) + value
    total = sum(grouped.values())
    if total <= 0:
        return ""
    stage = max(grouped, key=grouped.get)
    queue = row.get(f"{stage}_queue", 0.0)
    queue_note = f" ({queue / total:.0%} of the total queueing for it)" if queue / total >= 0.02 else ""
    return (
        f"At p99, **{as_text(stage)}** takes {grouped[stage] / total:.0%} of a request's {total:,.1f} ms{queue_note}."
    )


def show_report_button(ctx: Context) -> None:
    """One click: the page as a report folder (Markdown + PNGs + scenario + summary), zipped; the PNGs are
    drawn only when the button is pressed."""
    from urllib.parse import urlencode

    from sim.present.page_report import page_report_zip

    # An uploaded scenario cannot travel in a link: its report says so instead of a link that opens another.
    link = (
        "the planner's address + ?" + urlencode(dict(st.query_params))
        if st.query_params and identity().startswith("shipped:")
        else None
    )
    described = planner.describe(ctx.scenario, ctx.size) + f", seed {ctx.seed}"
    st.download_button(
        "Report of this page (Markdown + PNGs, .zip)",
        lambda: page_report_zip(ctx.result, described=described, link=link),
        file_name=f"{ctx.scenario.name}-report.zip",
        mime="application/zip",
        on_click="ignore",
        key="page_report",
    )
