"""The answer as the headline: the cards above the planner's tabs as data (label, value, a note, the
verdict), built from the summary alone, so the page and its tests read one function per figure.

An LLM scenario leads with what its users feel — TTFT and TPOT p50 / p99 against the scenario's budgets,
goodput, output tokens/s and $ per 1M output tokens (vLLM `bench serve` vocabulary); end-to-end latency
follows. Every end-to-end percentile on a page is `page_latency(summary)`: the cards, the LLM table's
end-to-end row and the stage bars' totals read it, so the page shows one p99.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from sim.analysis.planner import slo_verdict
from sim.metrics.cost import usd_per_1m_output_tokens as per_1m_tokens
from sim.metrics.summary_view import Llm, Percentiles, Summary
from sim.present.units import fmt_ms

LLM_ROWS = {"ttft_ms": "TTFT", "tpot_ms": "TPOT", "itl_ms": "ITL"}
PERCENTILE_COLUMNS = ("mean", "p50", "p90", "p95", "p99")


@dataclass(frozen=True)
class Card:
    """One headline card: `verdict` is slo_verdict's word against a budget (None: no budget)."""

    label: str
    value: str
    note: str | None = None
    verdict: str | None = None
    help: str = ""


def page_latency(summary: Summary | dict) -> Percentiles:
    """The end-to-end percentiles (ms) every part of the page shows: the summary's own, never recomputed."""
    return Summary.of(summary).latency_ms


def usd_per_1m_output_tokens(summary: Summary | dict) -> float | None:
    """Dollars per million output tokens of a run (sim.metrics.cost.usd_per_1m_output_tokens)."""
    summary = Summary.of(summary)
    tokens_per_s = summary.llm.output_tokens_per_s if summary.llm is not None else None
    return per_1m_tokens(summary.cost.usd_per_hour, tokens_per_s)


def budget_note(value: float | None, budget_ms: float | None) -> str | None:
    """'+369 ms over 1,000 ms' / '631 ms under 1,000 ms': short enough for a card's note line."""
    if budget_ms is None or value is None:
        return None
    gap = value - budget_ms
    if gap > 0:
        return f"+{fmt_ms(gap)} over {budget_ms:,.0f} ms"
    return f"{fmt_ms(-gap)} under {budget_ms:,.0f} ms"


def _llm(summary: Summary) -> Llm:
    return summary.llm if summary.llm is not None else Llm()


def llm_budgets(
    summary: Summary | dict, ttft_ms: float | None, tpot_ms: float | None
) -> list[tuple[str, float, str | None]]:
    """(name, budget, verdict) for each LLM budget set, the p99 judged by slo_verdict on its 95% CI."""
    llm = _llm(Summary.of(summary))
    out = []
    for key, budget in (("ttft_ms", ttft_ms), ("tpot_ms", tpot_ms)):
        if budget is None:
            continue
        p99 = getattr(llm, key).p99
        out.append((LLM_ROWS[key], budget, slo_verdict(p99, llm.interval(key, "p99"), budget)))
    return out


def llm_cards(summary: Summary | dict, ttft_ms: float | None, tpot_ms: float | None) -> list[Card]:
    """TTFT p50 / p99, TPOT p50 / p99 (p99 against its budget), goodput, output tokens/s, $ per 1M output
    tokens and the end-to-end p99 — in that order."""
    summary = Summary.of(summary)
    llm = _llm(summary)
    cards = []
    for key, budget in (("ttft_ms", ttft_ms), ("tpot_ms", tpot_ms)):
        figures: Percentiles = getattr(llm, key)
        name = LLM_ROWS[key]
        cards.append(Card(f"{name} p50", fmt_ms(figures.p50), help=f"median {name} of the measured requests"))
        ci = llm.interval(key, "p99")
        cards.append(
            Card(
                f"{name} p99",
                fmt_ms(figures.p99),
                budget_note(figures.p99, budget),
                slo_verdict(figures.p99, ci, budget),
                f"95% CI {fmt_ms(ci[0])} – {fmt_ms(ci[1])}" if ci else "no confidence interval on this run",
            )
        )
    goodput = llm.goodput
    cards.append(
        Card(
            "Goodput",
            f"{goodput.requests_per_s:,.2f} req/s" if goodput and goodput.requests_per_s is not None else "–",
            f"{goodput.attainment:.1%} of requests" if goodput and goodput.attainment is not None else None,
            help="requests per second meeting both the TTFT and the TPOT budget"
            if goodput
            else "no TTFT / TPOT budget set",
        )
    )
    tokens = llm.output_tokens_per_s
    cards.append(Card("Output tokens/s", f"{tokens:,.0f}" if tokens is not None else "–"))
    per_1m = usd_per_1m_output_tokens(summary)
    per_hour = summary.cost.usd_per_hour
    cards.append(
        Card(
            "$ per 1M output tokens",
            f"${per_1m:,.2f}" if per_1m is not None else "–",
            f"${per_hour:,.2f}/h" if per_hour else None,
            help="the fleet's $/hour ÷ output tokens per hour × 1M",
        )
    )
    latency = page_latency(summary)
    cards.append(Card("End-to-end p99", fmt_ms(latency.p99), f"p50 {fmt_ms(latency.p50)}"))
    return cards


def llm_verdict_sentence(
    summary: Summary | dict, ttft_ms: float | None, tpot_ms: float | None
) -> tuple[str | None, str]:
    """The overall word (the worst of the budgets') and one sentence naming each budget's p99."""
    summary = Summary.of(summary)
    judged = llm_budgets(summary, ttft_ms, tpot_ms)
    if not judged:
        return None, "No TTFT / TPOT budget set: set them in the sidebar to get a verdict."
    llm = _llm(summary)
    words = [verdict for _, _, verdict in judged]
    overall = "misses" if "misses" in words else "too close" if "too close" in words else "meets"
    parts = []
    for name, budget, verdict in judged:
        p99 = (llm.ttft_ms if name == "TTFT" else llm.tpot_ms).p99
        sign = "≤" if p99 is not None and p99 <= budget else ">"
        parts.append(f"{name} p99 {fmt_ms(p99)} {sign} {budget:,.0f} ms ({verdict})")
    head = {"meets": "Meets", "too close": "Too close to call on", "misses": "Misses"}[overall]
    return overall, f"**{head} the LLM budgets**: " + "; ".join(parts) + "."


def llm_percentile_table(summary: Summary | dict) -> pd.DataFrame:
    """TTFT / TPOT / ITL percentiles from the LLM stage, and the end-to-end row from `page_latency` (the
    cards' p99), in ms."""
    summary = Summary.of(summary)
    llm = summary.llm
    rows = {
        label: getattr(llm, key) for key, label in LLM_ROWS.items() if llm is not None and key in llm.model_fields_set
    }
    rows["end-to-end"] = page_latency(summary)
    table = pd.DataFrame({name: {c: figures.at(c) for c in PERCENTILE_COLUMNS} for name, figures in rows.items()}).T
    return table.rename(columns=lambda c: f"{c} (ms)")


POOL_COLUMNS = ("replicas", "busy", "KV cache use (mean / max)", "batch (mean / max)")


def pools_table(summary: Summary | dict) -> pd.DataFrame | None:
    """A disaggregated LLM stage's pools side by side (rows prefill, decode): replicas, busy share, KV-cache
    use and batch size, each over the pool's own replicas and KV blocks (sim/metrics/llm.py
    `pool_figures`); None for a colocated stage. The stage-wide KV and batch figures are the decode pool's."""
    summary = Summary.of(summary)
    pools = summary.llm.pools if summary.llm is not None else None
    if pools is None:
        return None
    rows = {}
    for name, pool in (("prefill", pools.prefill), ("decode", pools.decode)):
        kv, batch = pool.kv_cache_utilization, pool.batch_size
        rows[name] = {
            "replicas": f"{pool.replicas}",
            "busy": f"{pool.busy_fraction:.0%}" if pool.busy_fraction is not None else "–",
            "KV cache use (mean / max)": f"{kv.mean:.1%} / {kv.max:.1%}" if kv.mean is not None else "–",
            "batch (mean / max)": f"{batch.mean:.1f} / {batch.max}" if batch.mean is not None else "–",
        }
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(POOL_COLUMNS))


def kv_transfer_text(summary: Summary | dict) -> str | None:
    """'KV transfer after each prefill: p50 0.021 ms, p99 0.085 ms (mean 0.024 ms)' — the time each request
    waited for its KV cache to reach the decode pool (exposed after overlap); None for a colocated stage."""
    summary = Summary.of(summary)
    transfer = summary.llm.kv_transfer_ms if summary.llm is not None else None
    if transfer is None:
        return None

    def ms(value: float | None) -> str:
        return fmt_ms(value) if value is None or value >= 1 else f"{value:.2g} ms"

    return f"KV transfer after each prefill: p50 {ms(transfer.p50)}, p99 {ms(transfer.p99)} (mean {ms(transfer.mean)})"


# Rejections below this share are shown as "<0.1%", in grey: a rounding to "0.0%" in red says nothing.
REJECTED_VISIBLE = 0.001


def rejected_note(fraction: float | None) -> tuple[str | None, str]:
    """The throughput card's note on rejections and its colour: none, a grey '<0.1% rejected', or red."""
    if not fraction:
        return None, "off"
    if fraction < REJECTED_VISIBLE:
        return "<0.1% rejected", "off"
    return f"{fraction:.1%} rejected", "inverse"


def sizing_answer(result) -> str | None:
    """A sizing's answer in one line, what the Sizing tab leads with: '3 × l4 (min_replicas 3): $57.60/day,
    $2.40/h, $28.00 per 1M queries; one fewer misses (worst window p99 612 ms)'. None when no candidate
    meets the budgets. `result`: a sim.analysis.sizing.SizingResult."""
    chosen = result.chosen
    if chosen is None:
        return None
    knob = f" ({result.knob} {chosen.replicas})" if result.knob != "replicas" else ""
    money = [
        f"${chosen.usd_per_day:,.2f}/day" if chosen.usd_per_day is not None else None,
        f"${chosen.usd_per_hour:,.2f}/h" if chosen.usd_per_hour is not None else None,
        f"${chosen.usd_per_1m_tokens:,.2f} per 1M output tokens" if chosen.usd_per_1m_tokens is not None else None,
        f"${chosen.usd_per_1m_queries:,.2f} per 1M queries"
        if chosen.usd_per_1m_tokens is None and chosen.usd_per_1m_queries is not None
        else None,
    ]
    text = f"{chosen.replicas} × {chosen.hardware}{knob}"
    shown = [m for m in money if m]
    if shown:
        text += ": " + ", ".join(shown)
    fewer = result.one_fewer_recheck
    if fewer is not None:
        worst = (
            f" (worst window p99 {fmt_ms(fewer.worst_window_p99_ms)})" if fewer.worst_window_p99_ms is not None else ""
        )
        word = {"misses": "misses", "too close": "is too close to call", "meets": "also meets"}.get(
            fewer.verdict, fewer.verdict
        )
        text += f"; one fewer {word}{worst}"
    return text


def split_answer(result) -> str:
    """A disaggregated sizing's answer in one line, what `servesim size` and the Sizing tab lead with:
    '4 prefill + 2 decode: $82.32/h, $23.53 per 1M output tokens; colocated needs 15: $205.80/h, $58.64 per 1M
    output tokens — disaggregated is cheaper'. `result`: a sim.analysis.sizing_split.SplitSizing."""

    def priced(probe) -> str:
        money = [
            f"${probe.usd_per_hour:,.2f}/h" if probe.usd_per_hour is not None else None,
            f"${probe.usd_per_1m_tokens:,.2f} per 1M output tokens" if probe.usd_per_1m_tokens is not None else None,
        ]
        shown = [m for m in money if m]
        return ": " + ", ".join(shown) if shown else ""

    split = result.chosen
    text = (
        f"{split.hardware}{priced(split)}"
        if split is not None
        else "no prefill + decode split up to the search's ceiling meets the budgets"
    )
    together = result.colocated
    if together is not None:
        chosen = together.chosen
        text += (
            f"; colocated needs {chosen.replicas}{priced(chosen)}"
            if chosen is not None
            else "; no colocated fleet up to the search's ceiling meets them"
        )
        if result.cheaper is not None:
            text += f" — {result.cheaper} is cheaper"
    return text
