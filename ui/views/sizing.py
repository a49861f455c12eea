"""The Sizing tab: `servesim size` in the planner — the answer in one line, then its evidence."""

from __future__ import annotations

import math
import os

import pandas as pd
import streamlit as st

from sim.analysis import planner
from sim.errors import ServesimError
from sim.present.headline import sizing_answer
from sim.present.units import fmt_ms
from sim.spec.scenario import Scenario
from ui.runs import Context
from ui.state import finish_work, keep_result, kept_result, note_work, start_work, stopped_work, tab_input
from ui.text import as_text


def view_sizing(ctx: Context) -> None:
    """`servesim size` in the planner: the smallest replicas (min_replicas when autoscaled) and the cheapest
    hardware meeting a p99 SLO at a target rate, by the same search (sim.analysis.sizing.size)."""
    from sim.analysis.hardware_options import hardware_options, preselected
    from sim.analysis.sizing import size
    from sim.spec.hardware import load_catalogue
    from sim.spec.transforms import split_stage

    scenario = ctx.scenario
    if split_stage(scenario) is not None:  # prefill and decode pools: each sized on its own budget
        from ui.views.sizing_split import view_split_sizing

        return view_split_sizing(ctx)
    knob = "min_replicas" if scenario.deployment.autoscaling is not None else "replicas"
    mean_rps = scenario.workload.arrival.mean_rate_rps
    llm = any(stage.kind == "llm" for stage in scenario.stages)
    cols = st.columns([1, 1, 1, 1], vertical_alignment="bottom")
    target = tab_input(
        cols[0].number_input,
        "size.rate",
        shown_rate(mean_rps),
        "Target rate (req/s, mean)",
        min_value=min(0.01, mean_rps),
        format="%g",
        help="The scenario's traffic scaled to this mean rate",
    )
    if llm:  # what an LLM's users feel: sized on TTFT and TPOT p99 (as `servesim size --ttft-ms --tpot-ms`)
        ttft = tab_input(
            cols[1].number_input, "size.ttft", float(scenario.slo.ttft_ms or 0.0), "TTFT p99 (ms)", min_value=0.0
        )
        tpot = tab_input(
            cols[2].number_input, "size.tpot", float(scenario.slo.tpot_ms or 0.0), "TPOT p99 (ms)", min_value=0.0
        )
        slo = p95 = 0.0
    else:
        ttft = tpot = 0.0
        slo = tab_input(
            cols[1].number_input, "size.slo", float(ctx.slo_ms or 0.0), "p99 SLO (ms)", min_value=0.0, step=5.0
        )
        p95 = tab_input(
            cols[2].number_input,
            "size.p95",
            float(scenario.slo.p95_ms or 0.0),
            "p95 SLO (ms)",
            min_value=0.0,
            step=5.0,
            help="Optional (0: none): judged beside the p99",
        )
    catalogue = load_catalogue()
    options = {option.name: option for option in hardware_options(scenario, catalogue)}
    names = [OWN, *options]
    chosen = tab_input(
        st.multiselect,
        "size.candidates",
        [OWN, *(option.name for option in preselected(list(options.values())))],
        "Hardware candidates",
        names,
        format_func=lambda name: option_label(name, options, scenario),
        valid=lambda value: isinstance(value, list) and all(name in names for name in value),
        help="From the hardware catalogue (models/hardware.yaml), each with its speed relative to the scenario's "
        "own hardware, stated and sourced below. Preselected: measured ones first, then the lowest $/h per unit of "
        "speed, among the own vendor's hardware at catalogue list prices within 4× the own replica's price.",
    )
    go = cols[3].button("Size", type="primary", key="size.run")
    stopped = None if go else stopped_work("sizing")  # a click reran the page during the last sizing
    if stopped is not None:
        st.warning(as_text(stopped_text("Sizing", stopped[1], "probe")))
    with st.expander("Candidates: where each speed comes from; your own speed-up"):
        st.markdown(as_text(sources_text([options[name] for name in chosen if name in options])))
        extra = tab_input(
            st.text_input,
            "size.hardware",
            "",
            "More candidates, your own speed-up (advanced)",
            help="NAME[@SPEEDUP],... from the catalogue (the `servesim size --hardware` syntax); @2 = a forward pass "
            "twice as fast. A factor you give is yours: nothing here sources it.",
        )
    if not (slo or p95 or ttft or tpot):
        st.info("Set a TTFT or TPOT budget to size against." if llm else "Set a p99 (or p95) SLO to size against.")
        return
    if not chosen and not extra.strip():
        st.info("Choose at least one hardware candidate.")
        return
    budget = budget_text(slo, p95, ttft, tpot)
    try:
        candidates = sizing_candidates(
            scenario, catalogue, [n for n in chosen if n != OWN], options, OWN in chosen, extra
        )
    except ServesimError as exc:
        st.error(as_text(exc))
        return
    hardware = (tuple(chosen), extra.strip())
    sized = (
        scenario
        if math.isclose(target, shown_rate(mean_rps))
        else scenario.with_overrides(planner.scale_load(scenario, target / mean_rps))
    )
    run_plan = planner.plan(sized, planner.QUICK)
    replications = max(2, run_plan.replications)  # sizing judges by the CI's upper end: it needs two at least
    key = (sized.to_yaml(), slo, p95, ttft, tpot, hardware, ctx.seed)
    if go:

        def search(shown, progress):
            return size(
                sized,
                slo or None,
                candidates,
                slo_p95_ms=p95 or None,
                ttft_p99_ms=ttft or None,
                tpot_p99_ms=tpot or None,
                replications=replications,
                requests=run_plan.requests,
                seed=ctx.seed,
                on_probe=shown,
                on_progress=progress,
                workers=min(2, os.cpu_count() or 1),  # each probe's replications side by side (same answer)
            )

        result = sized_with_progress(
            key,
            f"Sizing {knob} for {budget} at {target:,.4g} req/s…",
            search,
            lambda probe: (
                f": {probe.hardware}, {knob} = {probe.replicas}: p99 {fmt_ms(probe.p99_ms)} → {probe.verdict}"
            ),
        )
        if result is None:
            return
        keep_result("sizing", key, result)
    stored = kept_result("sizing", key)
    if stored is None:
        windows = " and every window's p99 (the load changes over time)" if planner.time_dependent(sized) else ""
        st.info(
            f"Press *Size* to search {knob} on each candidate, galloping up (+1, +2, +4, …) to its ceiling until "
            f"the 95% CI upper end{windows} is within {budget}, then bisecting "
            f"({describe_probe(sized, run_plan, replications)} per probe); then re-check on fresh seeds."
        )
        return
    show_sizing(stored, knob, budget, slo, p95)


OWN = "as configured"  # the scenario's own hardware, as written


def option_label(name: str, options: dict, scenario: Scenario) -> str:
    """A candidate as the list shows it: the own hardware, or a catalogue option with its speed."""
    if name == OWN:
        hardware = scenario.deployment.hardware
        price = f", ${hardware.usd_per_hour:,.2f}/h a replica" if hardware.usd_per_hour is not None else ""
        return f"{hardware.name or 'own hardware'} (as configured{price})"
    return options[name].label


def sources_text(options: list) -> str:
    """One line per chosen catalogue option: its speed, how it was obtained and the source."""
    if not options:
        return "No catalogue candidate chosen: only the scenario's own hardware (and any you add below)."
    lines = [
        f"- **{o.name}{' (estimated)' if o.estimated else ''}**: {o.speed}"
        + (f" ({o.interval})" if o.interval else "")
        + f" — {o.basis}; source: {o.source}"
        for o in options
    ]
    return "\n".join(lines)


def sizing_candidates(scenario: Scenario, catalogue: dict, names: list[str], options: dict, own: bool, extra: str):
    """The sizing candidates: the own hardware (when chosen), the catalogue options by their `spec`
    (labelled with their estimated speed where it is a datasheet ratio), then the user's NAME@X items."""
    from dataclasses import replace

    from sim.analysis.sizing import parse_candidates

    candidates = parse_candidates(None, scenario, catalogue) if own else []
    for name in names:
        option = options[name]
        (candidate,) = parse_candidates(option.spec, scenario, catalogue)
        if candidate.speedup != 1.0:  # a datasheet ratio: say so in every row it heads
            candidate = replace(candidate, name=f"{name} (estimated ×{candidate.speedup:.2g})", hardware=name)
        candidates.append(candidate)
    if extra.strip():
        candidates += parse_candidates(extra.strip(), scenario, catalogue)
    return candidates


def sized_with_progress(key, label: str, search, describe):
    """Run `search(shown, progress)` (a sizing) under a progress bar, a Cancel button and a status line naming
    each probe ('Probe 3' + `describe(*what on_probe hears)`); the result, or None after an error it shows.
    A click reruns the page, which stops the sizing at its next progress update (the page says where)."""
    probes: list[str] = []
    start_work("sizing", key)
    bar = st.progress(0.0, text="First probe…")
    cancel = st.empty()
    cancel.button("Cancel", key="size.cancel", help="Stops the sizing (the page says how far it got)")
    with st.status(label, expanded=False) as status:

        def shown(*heard) -> None:
            probes.append(f"Probe {len(probes) + 1}{describe(*heard)}")
            note_work("sizing", probes[-1])

        def progress(state) -> None:
            text = " · ".join([*probes[-1:], sizing_eta(state)])
            status.update(label=text)
            bar.progress(sizing_fraction(state), text=text)

        try:
            result = search(shown, progress)
        except ServesimError as exc:
            result = None
            st.error(as_text(exc))
        finish_work("sizing")
        bar.empty()
        cancel.empty()
        if result is None:
            status.update(label="Not sized", state="error")
        else:
            status.update(label=f"Sized: {count(len(probes), 'probe')}", state="complete")
    return result


def sizing_fraction(state) -> float:
    """The share of a sizing done, for its progress bar: replications run over those run and expected
    (the expected count, not the most the plan may take, so the bar moves at the pace the ETA says)."""
    total = state.replications_done + state.replications_expected
    return min(1.0, state.replications_done / total) if total > 0 else 0.0


def stopped_text(
    what: str, notes: list[str], step: str, again: str = "Press Size to start again.", cancelled: bool = False
) -> str:
    """'Sizing stopped after 3 probes (last: Probe 3: t4, replicas = 5: p99 41 ms → meets) — cancelled, or
    another click reran the page (a click stops long work). Press Size to start again.'"""
    last = f" (last: {notes[-1]})" if notes else ""
    why = "" if cancelled else " — cancelled, or another click reran the page (a click stops long work)"
    return f"{what} {'was cancelled' if cancelled else 'stopped'} after {count(len(notes), step)}{last}{why}. {again}"


def sizing_eta(state) -> str:
    """'about 4 probes left (at most 9): about 2 min (at most 4 min)' for a sizing's SizingProgress."""
    left = f"about {state.probes_expected:.0f} probes left (at most {state.probes_left})"
    if state.eta_s is None:
        return left
    return f"{left}: about {duration_text(state.expected_eta_s)} (at most {duration_text(state.eta_s)})"


def duration_text(seconds: float) -> str:
    return f"{seconds / 60:,.0f} min" if seconds >= 90 else f"{seconds:,.0f} s"


def budget_text(p99_ms: float, p95_ms: float = 0.0, ttft_ms: float = 0.0, tpot_ms: float = 0.0) -> str:
    """'p99 ≤ 100 ms and p95 ≤ 50 ms' (or 'TTFT p99 ≤ 1000 ms and TPOT p99 ≤ 100 ms') for the budgets set
    (0: none)."""
    given = (("p99", p99_ms), ("p95", p95_ms), ("TTFT p99", ttft_ms), ("TPOT p99", tpot_ms))
    return " and ".join(f"{label} ≤ {value:g} ms" for label, value in given if value)


def shown_rate(rate_rps: float) -> float:
    """A rate as the Sizing tab's input shows it by default: four significant figures (23.85, not
    23.848118510241232 — a day's mean rate); that default stands for the scenario's own traffic, unscaled."""
    return float(f"{rate_rps:.4g}")


def count(n: int, noun: str) -> str:
    """'1 probe', '3 probes'."""
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def describe_probe(scenario: Scenario, run_plan: planner.RunPlan, replications: int) -> str:
    what = f"{run_plan.requests:,} requests" if run_plan.requests is not None else "the whole horizon"
    return f"{what} × {replications} replications"


def show_sizing(result, knob: str, budget: str, slo: float = 0.0, p95: float = 0.0) -> None:
    import altair as alt

    from sim.present.sizing_plot import searched_text

    chosen = result.chosen
    if chosen is None:
        st.error(f"No candidate meets {budget}.")
    else:
        st.markdown(f"### {as_text(sizing_answer(result))}")
        llm = chosen.ttft_p99_ms is not None  # judged on TTFT / TPOT: those are the cards
        cards = st.columns(5 if llm else 4)
        cards[0].metric(
            f"Smallest {knob}", f"{chosen.replicas}", chosen.hardware, delta_color="off", delta_arrow="off", border=True
        )
        measures = (
            [("TTFT p99", chosen.ttft_p99_ms, chosen.ttft_ci95), ("TPOT p99", chosen.tpot_p99_ms, chosen.tpot_ci95)]
            if llm
            else [("p99", chosen.p99_ms, chosen.p99_ci95)]
        )
        for card, (label, value, ci) in zip(cards[1:], measures):
            card.metric(
                label,
                fmt_ms(value),
                f"95% CI {ci[0]:,.1f}–{ci[1]:,.1f} ms" if ci else None,
                delta_color="off",
                delta_arrow="off",
                border=True,
            )
        cards[len(measures) + 1].metric(
            "$ per hour", f"${chosen.usd_per_hour:,.2f}" if chosen.usd_per_hour is not None else "–", border=True
        )
        per_unit, unit = (
            (chosen.usd_per_1m_tokens, "$ per 1M output tokens")
            if llm
            else (chosen.usd_per_1m_queries, "$ per 1M queries")
        )
        cards[len(measures) + 2].metric(unit, f"${per_unit:,.2f}" if per_unit is not None else "–", border=True)
        recheck = result.recheck
        st.success(
            f"**{chosen.hardware}, {knob} = {chosen.replicas}** meets {budget}; re-checked on fresh seeds: "
            f"p99 {fmt_ms(recheck.p99_ms)} → {recheck.verdict}."
        )
        fewer = result.one_fewer_recheck
        if fewer is not None:
            worst = (
                f", worst window p99 {fmt_ms(fewer.worst_window_p99_ms)}"
                if fewer.worst_window_p99_ms is not None
                else ""
            )
            st.caption(
                f"One fewer ({knob} = {fewer.replicas}) on fresh seeds: p99 {fmt_ms(fewer.p99_ms)} "
                f"[{fewer.p99_ci95[0]:,.1f}, {fewer.p99_ci95[1]:,.1f}]{worst} → {fewer.verdict}."
            )
    for note in result.notes:  # the CLI's notes name CLI commands; this page has their tabs
        st.warning(as_text(note.replace("see `servesim advise`", "see the Advisor tab")))
    st.caption(searched_text(result.ranges, result.knob) + ".")
    frontier = result.frontier()
    if frontier.empty:
        return
    budgets = result.budgets
    llm = budgets is not None and budgets.llm and frontier["ttft_p99_ms"].notna().any()
    # An LLM is sized on TTFT (and TPOT): its chart is the TTFT p99 against that budget, priced per token.
    measure, ci, label, line, money, money_label = (
        (
            "ttft_p99_ms",
            "ttft_ci95",
            "TTFT p99 (ms)",
            budgets.ttft_p99_ms,
            "usd_per_1m_tokens",
            "$ per 1M output tokens",
        )
        if llm
        else ("p99_ms", "p99_ci95", "p99 latency (ms)", slo, "usd_per_1m_queries", "$ per 1M queries")
    )
    frontier = frontier.assign(
        p99_low=frontier[ci].map(lambda pair: pair[0] if pair else None),
        p99_high=frontier[ci].map(lambda pair: pair[1] if pair else None),
    )
    base = alt.Chart(frontier).encode(
        x=alt.X("replicas:Q", title=knob, scale=alt.Scale(zero=False), axis=alt.Axis(tickMinStep=1, format="d")),
        color=alt.Color("hardware:N", legend=alt.Legend(orient="bottom", title=None)),
    )
    latency = base.mark_line(point=True).encode(
        y=alt.Y(f"{measure}:Q", title=label, scale=alt.Scale(type="log"))
    ) + base.mark_errorbar().encode(y="p99_low:Q", y2="p99_high:Q")
    if line:
        latency += alt.Chart(pd.DataFrame({"slo": [line]})).mark_rule(strokeDash=[4, 3], color="red").encode(y="slo:Q")
    cost = base.mark_line(point=True).encode(y=alt.Y(f"{money}:Q", title=money_label))
    left, right = st.columns(2)
    left.altair_chart(latency.properties(title=f"{label.removesuffix(' (ms)')} by {knob}", height=260), width="stretch")
    right.altair_chart(cost.properties(title="cost by " + knob, height=260), width="stretch")
    shown = [
        "hardware",
        "replicas",
        *(["ttft_p99_ms", "tpot_p99_ms"] if llm else []),
        "p99_ms",
        *([] if llm else ["p99_low", "p99_high"]),
        *(["worst_window_p99_ms"] if frontier["worst_window_p99_ms"].notna().any() else []),
        *(["p95_ms"] if p95 else []),
        "usd_per_hour",
        *(["usd_per_day"] if frontier["usd_per_day"].notna().any() else []),
        money,
        "verdict",
    ]
    st.dataframe(
        frontier[shown]
        .rename(
            columns={
                "replicas": knob,
                "p99_ms": "end-to-end p99 (ms)" if llm else "p99 (ms)",
                "ttft_p99_ms": "TTFT p99 (ms)",
                "tpot_p99_ms": "TPOT p99 (ms)",
                "usd_per_1m_tokens": "$/1M output tokens",
                "p99_low": "CI low",
                "p99_high": "CI high",
                "worst_window_p99_ms": "worst window p99 (ms)",
                "p95_ms": "p95 (ms)",
                "usd_per_hour": "$/h",
                "usd_per_day": "$/day",
                "usd_per_1m_queries": "$/1M",
            }
        )
        .style.format(precision=2),
        hide_index=True,
        width="stretch",
    )
