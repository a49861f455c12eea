"""The advisor's report: text for the terminal, Markdown with two figures (the p99 stage budget as a
waterfall before and after the recommended stack; p99 against $/1M queries for every evaluated stack,
with the Pareto front). Figures are returned, never shown; the caller saves them.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from sim.analysis.advise import Advice, Row, verdict_table
from sim.present.plots import PALETTE, SLO_COLOR, _stage_colors, _style, _subplots

TABLE_ROWS = 12


def profile_text(advice: Advice) -> list[str]:
    prof = advice.profile
    lines = [
        f"Profile of {advice.base.name} ({advice.replications} replications × "
        f"{advice.base.workload.requests} requests, seed {advice.seed})"
    ]
    for at in ("p50", "p99"):
        row = prof.by_stage.loc[at]
        total = float(row.sum())
        parts = ", ".join(f"{name} {ms:.3g} ms ({ms / total:.0%})" for name, ms in row.items() if ms > 0)
        lines.append(f"  {at} budget ({prof.latency_ms[at]:.3g} ms): {parts}")
    lines.append(f"  dominant: {prof.sentence}")
    loads = ", ".join(f"{name} {rho:.2f}" for name, rho in prof.offered_load.items())
    lines.append(f"  offered load per resource (ρ at the most efficient batch; not the measured busy share): {loads}")
    if prof.slo_key:
        gap = prof.slo_gap_ms
        verdict = f"missed by {gap:.3g} ms" if gap > 0 else f"met with {-gap:.3g} ms to spare"
        lines.append(f"  SLO {prof.slo_key} ≤ {prof.slo_ms:g} ms: {prof.latency_ms[prof.slo_key]:.3g} ms, {verdict}")
    else:
        lines.append("  no SLO given (--slo-p99-ms): stacks ranked by p99, then cost")
    return lines


def _fmt(value, digits: str = ".3g") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return format(value, digits)


def table_text(advice: Advice, limit: int = TABLE_ROWS) -> list[str]:
    table = verdict_table(advice, limit)
    header = f"{'#':>3}  {'stack':<58} {'p50':>14} {'p95':>14} {'p99':>14} {'p99 Δ CI95 ms':>16} {'rps':>7} {'$/1M':>14} {'accuracy':>14} {'SLO':>5}"
    lines = [header, "-" * len(header)]
    for rec in table.to_dict("records"):
        slo = {True: "met", False: "miss", None: "-"}[rec["slo_met"]]
        lines.append(
            f"{rec['rank']:>3}  {rec['stack'][:58]:<58} "
            f"{_fmt(rec['p50_ms']) + ' ' + rec['p50_change'] if rec['stack'] != 'as is' else _fmt(rec['p50_ms']):>14} "
            f"{_fmt(rec['p95_ms']) + ' ' + rec['p95_change'] if rec['stack'] != 'as is' else _fmt(rec['p95_ms']):>14} "
            f"{_fmt(rec['p99_ms']) + ' ' + rec['p99_change'] if rec['stack'] != 'as is' else _fmt(rec['p99_ms']):>14} "
            f"{rec['p99_change_ci95_ms']:>16} {_fmt(rec['throughput_rps'], '.1f'):>7} "
            f"{_fmt(rec['usd_per_1m'], '.3g') + (' ' + rec['cost_change'] if rec['stack'] != 'as is' else ''):>14} "
            f"{rec['accuracy']:>14} {slo:>5}"
        )
    return lines


def text_report(advice: Advice, limit: int = TABLE_ROWS) -> str:
    lines = profile_text(advice) + [""]
    lines.append(
        f"Ranked stacks ({len(advice.rows) - 1} evaluated on common random numbers; top {min(limit, len(advice.rows))}):"
    )
    lines += table_text(advice, limit)
    warned = [row for row in advice.rows[:limit] if row.warnings]
    if warned:
        lines += ["", "Warnings:"]
        for row in warned:
            lines += [f"  #{row.rank} {row.label}: {w}" for w in row.warnings]
    if advice.notes:
        lines += ["", "Notes:"] + [f"  {note}" for note in advice.notes]
    if advice.skipped:
        lines += ["", "Skipped:"] + [f"  {name}: {why}" for name, why in advice.skipped]
    if advice.not_offered:
        lines += ["", "Not offered:"] + [f"  {name}: {why}" for name, why in advice.not_offered]
    lines += [
        "",
        "Assumptions: lever speed-ups at the conservative end of sim/spec/levers.py; GPU decode and cache hit "
        "rates are planning assumptions (sim/analysis/advise_levers.py); other hardware runs at its datasheet "
        "roofline ratio (sim/analysis/hardware_options.py). Measure before deciding.",
        "",
        f"Recommendation: {advice.recommendation}",
    ]
    return "\n".join(lines)


def waterfall_figure(advice: Advice, after: Row | None = None, at: str = "p99") -> Figure:
    """The latency budget of a request at `at` as a waterfall, stage by stage (queue waits hatched), for
    the scenario as it is and after the recommended stack."""
    after = after or advice.rows[0]
    pairs = [("as is", advice.baseline)] + ([(f"after: {after.label}", after)] if after.levers else [])
    columns = list(dict.fromkeys(c for _, row in pairs for c in row.shares_ms.columns))
    colors = _stage_colors(columns)
    fig, axes = _subplots(
        1, len(pairs), figsize=(5.2 * len(pairs), 3.8), layout="constrained", sharey=True, squeeze=False
    )
    for ax, (title, row) in zip(axes[0], pairs):
        values = row.shares_ms.loc[at].reindex(columns).fillna(0.0)
        bottom = 0.0
        for i, (column, value) in enumerate(values.items()):
            ax.bar(
                i,
                value,
                bottom=bottom,
                color=colors[column],
                hatch="//" if column.endswith("_queue") else None,
                edgecolor="white",
            )
            if value > 0.04 * values.sum():
                ax.text(i, bottom + value / 2, f"{value:.3g}", ha="center", va="center", fontsize=7, color="white")
            bottom += value
        ax.bar(len(values), bottom, color="#444444")
        ax.text(len(values), bottom, f"{bottom:.3g} ms", ha="center", va="bottom", fontsize=8)
        ax.set_xticks(
            range(len(values) + 1),
            [c.replace("_queue", " queue") for c in values.index] + ["total"],
            rotation=45,
            ha="right",
            fontsize=8,
        )
        ax.set_title(title if len(title) < 60 else title[:57] + "...", loc="left", fontsize=9)
        if advice.profile.slo_ms and advice.profile.slo_key == at:
            ax.axhline(advice.profile.slo_ms, color=SLO_COLOR, linestyle="--", linewidth=1)
        _style(ax)
    axes[0][0].set_ylabel(f"time of a request at {at} (ms)")
    return fig


def pareto_figure(advice: Advice) -> Figure:
    """p99 against $/1M queries for every evaluated stack; the Pareto front joined; the best few named."""
    rows = [r for r in advice.rows if r.cost is not None and math.isfinite(r.latency("p99"))]
    fig, ax = _subplots(figsize=(7.5, 4.6), layout="constrained")
    if not rows:
        ax.text(
            0.5,
            0.5,
            "no cost: the scenario has no deployment.hardware.usd_per_hour",
            ha="center",
            transform=ax.transAxes,
        )
        return fig
    by_size = {0: PALETTE[7], 1: PALETTE[0], 2: PALETTE[1], 3: PALETTE[2]}
    for size in sorted({len(r.levers) for r in rows}):
        chosen = [r for r in rows if len(r.levers) == size]
        ax.scatter(
            [r.cost for r in chosen],
            [r.latency("p99") for r in chosen],
            s=28,
            color=by_size.get(size, "k"),
            label="as is" if size == 0 else f"{size} lever{'s' if size > 1 else ''}",
            zorder=3,
        )
    front, best = [], math.inf
    for r in sorted(rows, key=lambda r: (r.cost, r.latency("p99"))):
        if r.latency("p99") < best:
            front.append(r)
            best = r.latency("p99")
    ax.plot(
        [r.cost for r in front],
        [r.latency("p99") for r in front],
        color="#333333",
        linewidth=1,
        zorder=2,
        label="Pareto front",
    )
    for r in rows[:3]:
        ax.annotate(f"#{r.rank}", (r.cost, r.latency("p99")), xytext=(4, 4), textcoords="offset points", fontsize=8)
    if advice.profile.slo_key == "p99":
        ax.axhline(advice.profile.slo_ms, color=SLO_COLOR, linestyle="--", linewidth=1, label="SLO")
    if advice.budget_usd_per_1m:
        ax.axvline(advice.budget_usd_per_1m, color=SLO_COLOR, linestyle=":", linewidth=1, label="budget")
    ax.set_xlabel("cost (USD per 1M queries)")
    ax.set_ylabel("p99 latency (ms)")
    ax.set_title("Evaluated stacks: p99 against cost", loc="left", fontsize=11)
    ax.legend(fontsize=8, frameon=False)
    _style(ax)
    return fig


def write_report(advice: Advice, out_dir: str | Path) -> Path:
    """advice.md, waterfall.png, pareto.png and the recommended scenario (recommended.yaml) in `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    waterfall_figure(advice).savefig(out / "waterfall.png", dpi=110)
    pareto_figure(advice).savefig(out / "pareto.png", dpi=110)
    (out / "recommended.yaml").write_text(advice.rows[0].scenario.to_yaml(), encoding="utf-8")
    table = verdict_table(advice)
    md = [f"# Advisor: {advice.base.name}", "", f"**Recommendation:** {advice.recommendation}", "", "## Profile", ""]
    md += [f"- {line.strip()}" for line in profile_text(advice)[1:]]
    md += [
        "",
        "![stage budget before and after](waterfall.png)",
        "",
        "## Ranked stacks",
        "",
        _markdown_table(table),
        "",
        "![p99 against cost](pareto.png)",
        "",
    ]
    warned = [row for row in advice.rows if row.warnings]
    if warned:
        md += ["## Warnings", ""] + [f"- #{row.rank} {row.label}: {w}" for row in warned for w in row.warnings] + [""]
    if advice.notes:
        md += ["## Notes", ""] + [f"- {n}" for n in advice.notes] + [""]
    if advice.skipped:
        md += ["## Skipped", ""] + [f"- {n}: {w}" for n, w in advice.skipped] + [""]
    if advice.not_offered:
        md += ["## Not offered", ""] + [f"- {n}: {w}" for n, w in advice.not_offered] + [""]
    md += ["## Levers", ""] + [
        f"- {lever.name}: {lever.reason}; accuracy: {lever.accuracy_cost}"
        for lever in {lever.name: lever for r in advice.rows for lever in r.levers}.values()
    ]
    md += [
        "",
        f"Run: seed {advice.seed}, {advice.replications} replications × {advice.base.workload.requests} "
        "requests per stack, common random numbers. `recommended.yaml` reproduces row 1 with `servesim run`.",
    ]
    path = out / "advice.md"
    path.write_text("\n".join(md) + "\n", encoding="utf-8")
    return path


def _markdown_table(table: pd.DataFrame) -> str:
    def cell(value) -> str:
        if isinstance(value, float):
            return _fmt(value, ".4g")
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in rec) + " |" for rec in table.itertuples(index=False)]
    return "\n".join(lines)
