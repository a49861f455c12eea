"""The LLM part of the human table: TTFT / TPOT / ITL / e2e percentiles, throughput, goodput, KV cache."""

from __future__ import annotations

from rich.table import Table

from sim.metrics.summary_view import Llm

ROWS = (("TTFT", "ttft_ms"), ("TPOT", "tpot_ms"), ("ITL", "itl_ms"), ("e2e", "e2el_ms"))


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:,.2f} s" if value >= 10_000 else f"{value:,.1f}"


def llm_table(summary: Llm | dict, title: str = "LLM serving (ms)") -> Table:
    """Percentiles per metric, then the throughput, goodput, preemption and KV-cache figures as a caption."""
    llm = Llm.of(summary)
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    for column in ("mean", "p50", "p90", "p95", "p99"):
        table.add_column(column, justify="right")
    for label, key in ROWS:
        figures = getattr(llm, key)
        table.add_row(label, *(_ms(figures.at(c)) for c in ("mean", "p50", "p90", "p95", "p99")))
    lines = [
        f"{llm.output_tokens_per_s:,.0f} output tokens/s, {llm.requests_per_s:.2f} requests/s "
        f"({llm.completed:,} completed, {llm.rejected:,} rejected)",
    ]
    goodput = llm.goodput
    if goodput:
        slo = " and ".join(
            f"{name} ≤ {value:g} ms"
            for name, value in (("TTFT", goodput.ttft_slo_ms), ("TPOT", goodput.tpot_slo_ms))
            if value is not None
        )
        lines.append(
            f"goodput {goodput.requests_per_s:.2f} requests/s meeting {slo} ({goodput.attainment:.1%} of requests)"
        )
    kv, batch = llm.kv_cache_utilization, llm.batch_size
    lines.append(
        f"batch size mean {batch.mean:.1f} (max {batch.max}), KV cache use mean {kv.mean:.1%} (max {kv.max:.1%}), "
        f"preemptions {llm.preemptions:,}"
    )
    if llm.pools is not None:  # disaggregated: each pool over its own replicas and KV blocks
        for name, pool in (("prefill", llm.pools.prefill), ("decode", llm.pools.decode)):
            lines.append(
                f"{name} pool: {pool.replicas} replicas, busy {pool.busy_fraction:.0%}, batch mean "
                f"{pool.batch_size.mean:.1f} (max {pool.batch_size.max}), KV cache use mean "
                f"{pool.kv_cache_utilization.mean:.1%} (max {pool.kv_cache_utilization.max:.1%})"
            )
    if llm.kv_transfer_ms is not None:
        t = llm.kv_transfer_ms
        lines.append(f"KV transfer after prefill: p50 {t.p50:.3g} ms, p99 {t.p99:.3g} ms")
    table.caption = "\n".join(lines)
    table.caption_justify = "left"
    return table
