"""The human-readable result: rich tables of the summary (latency with CIs, where latency lives, cost, SLO)."""

from __future__ import annotations

import math

from rich.console import Console
from rich.table import Table

from sim.metrics.summary_view import Summary
from sim.present.units import fmt_interval, fmt_ms, horizon_cost_text
from sim.present.windows import window_verdict


def fmt_ci(ci: list | None) -> str:
    """[low, high], or n/a where the run gives no interval (the warnings say why)."""
    return fmt_interval(ci)


def summary_tables(summary: Summary | dict) -> list:
    """Renderables, in reading order: verdict, latency, stage breakdown, extra sections, warnings."""
    summary = Summary.of(summary)
    out: list = []
    slo, cost = summary.slo, summary.cost
    verdict = Table(title=f"servesim · {summary.scenario or ''}", show_header=False, box=None)
    verdict.add_column(style="bold")
    verdict.add_column()
    verdict.add_row("requests measured", f"{summary.requests:,} over {summary.replications} replication(s)")
    verdict.add_row("throughput", f"{summary.throughput_rps:,.2f} req/s")
    verdict.add_row("utilisation", _pct(summary.utilization))
    verdict.add_row("rejected", _pct(summary.rejected_fraction))
    if cost.usd_per_hour is not None:
        per_1m = cost.usd_per_1m_queries
        horizon = horizon_cost_text(cost)
        verdict.add_row(
            "cost",
            f"${cost.usd_per_hour:,.2f}/h · "
            + (f"${per_1m:,.2f} per 1M queries" if per_1m else "—")
            + (f" · {horizon}" if horizon else ""),
        )
    if slo.met is not None:
        budgets = ", ".join(f"{k.removesuffix('_ms')} ≤ {fmt_ms(v)}" for k, v in (slo.budgets or {}).items())
        mark = "[green]MET[/green]" if slo.met else "[red]MISSED[/red]"
        attain = f" · {_pct(slo.attainment)} within p99 budget" if slo.attainment is not None else ""
        verdict.add_row("SLO", f"{mark} ({budgets}){attain}")
        per_window = window_verdict(slo.windows)
        if per_window:
            verdict.add_row("SLO per window", ("[red]" if slo.windows.met is False else "") + per_window)
    out.append(verdict)

    latency = Table(title="end-to-end latency")
    for column in ("", "estimate", "95% CI"):
        latency.add_column(column, justify="right" if column else "left")
    for key in ("mean", "p50", "p90", "p95", "p99", "p999"):
        latency.add_row(key, fmt_ms(summary.latency_ms.at(key)), fmt_ci(summary.latency_ms_ci95.at(key)))
    out.append(latency)

    stages = {name: figures.to_dict() for name, figures in summary.stages.items()}
    if stages:
        table = Table(title="where latency lives (per stage)")
        for column in ("stage", "mean", "p50", "p95", "p99", "share of mean"):
            table.add_column(column, justify="left" if column == "stage" else "right")
        total_mean = sum(s["mean"] for s in stages.values()) or 1.0
        for name, s in stages.items():
            table.add_row(
                name,
                fmt_ms(s["mean"]),
                fmt_ms(s["p50"]),
                fmt_ms(s["p95"]),
                fmt_ms(s["p99"]),
                _pct(s["mean"] / total_mean),
            )
        out.append(table)

    for key, section in summary.to_dict().items():  # later capabilities' sections, as they come
        if key == "llm" and isinstance(section, dict):
            from sim.present.llm_table import llm_table

            out.append(llm_table(section))
        elif isinstance(section, dict) and key not in {
            "latency_ms",
            "latency_ms_ci95",
            "stages",
            "cost",
            "slo",
            "offered_load",
        }:
            out.append(_section_table(key, section))
    warnings = summary.warnings
    if warnings:
        out.append("\n".join(f"[yellow]warning:[/yellow] {w}" for w in warnings))
    return out


def _section_table(title: str, section: dict) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for key, value in section.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={_num(v)}" for k, v in value.items() if not isinstance(v, (dict, list)))
        elif isinstance(value, list):
            continue
        table.add_row(str(key), _num(value))
    return table


def _num(value) -> str:
    if isinstance(value, float):
        return "—" if not math.isfinite(value) else f"{value:,.4g}"
    return str(value)


def _pct(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.1%}"


def print_summary(summary: dict, console: Console | None = None) -> None:
    console = console or Console()
    for renderable in summary_tables(summary):
        console.print(renderable)


def print_over_time(windows, console: Console | None = None) -> None:
    """The windowed view: traffic, replicas, p50 / p99 and rejections per window."""
    console = console or Console()
    table = Table(title="over time")
    columns = [
        ("start_s", "from", lambda v: f"{v / 60:,.0f} min"),
        ("arrival_rps", "req/s", lambda v: f"{v:,.1f}"),
        ("warm_replicas", "warm", lambda v: f"{v:.1f}"),
        ("paid_replicas", "paid replicas", lambda v: f"{v:.1f}"),
        ("p50_ms", "p50", fmt_ms),
        ("p99_ms", "p99", fmt_ms),
        ("rejected_fraction", "rejected", _pct),
        ("usd_per_hour", "$/h", lambda v: f"{v:,.2f}"),
    ]
    present = [(key, title, fmt) for key, title, fmt in columns if key in windows]
    for _, title, _ in present:
        table.add_column(title, justify="right")
    for _, row in windows.iterrows():
        table.add_row(*(fmt(row[key]) for key, _, fmt in present))
    console.print(table)
