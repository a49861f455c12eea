"""The comparison table — one function for `servesim compare` (terminal and report) and the planner's
Compare tab: metric rows × variant columns of display strings.

Each cell is the value and its 95% CI as [low, high]; ★ marks the best among the stable variants; a
variant whose queue grows without bound shows "unstable" for every latency figure. Deltas (Δ, with ✱ for
a significant difference at 5%) are drawn only against a chosen, *stable* baseline: an unstable one's
figures depend on how long the run is, so a difference from them means nothing (`baseline_note` says
so). The last row judges each variant's p99 against the SLO by the one verdict rule of the planner and
of sizing (sim.analysis.planner.slo_verdict: the CI's upper end must be within the budget).
"""

from __future__ import annotations

import pandas as pd

from sim.analysis.compare import METRICS, TIE_RELATIVE, AtSlo, Comparison, format_metric, winners
from sim.analysis.planner import delta, group_values, slo_verdict, unstable
from sim.metrics.summary_view import Summary

# Rows whose values mean nothing for a run whose queue grows without bound.
LATENCY_ROWS = (
    "p50",
    "p95",
    "p99",
    "slo_attainment",
    "ttft_ms_p50",
    "ttft_ms_p99",
    "tpot_ms_p50",
    "tpot_ms_p99",
    "goodput",
)
MEETS_ROW = "meets the p99 SLO (CI upper end)"
MEETS_WORDS = {"meets": "yes", "too close": "too close to call", "misses": "no"}


def comparison_cells(
    comparison: Comparison, baseline: str | None = None, at_slo: dict[str, AtSlo] | None = None
) -> pd.DataFrame:
    """The comparison table; with `baseline` (a variant's name) and that variant stable, every other
    variant's cells carry their delta from it; with `at_slo` (sim.analysis.compare.cost_at_slo), two more
    rows: the replicas each variant needs to meet the SLO and its $ per 1M queries there (★ the cheapest)."""
    results = {r.variant.name: r for r in comparison.results}
    if baseline is not None and baseline not in results:
        raise ValueError(f"baseline {baseline!r} is not one of the variants {list(results)}")
    shaky = {name for name, r in results.items() if unstable(r.summary)}
    steady = [name for name in results if name not in shaky]
    best = winners([results[n].summary for n in steady], steady) if steady else {}
    base = results[baseline] if baseline is not None and baseline not in shaky else None
    rows: dict[str, dict[str, str]] = {}
    for metric in METRICS:
        if all(format_metric(metric, r.summary) == "–" for r in results.values()):
            continue
        row = {}
        for name, r in results.items():
            if name in shaky and metric.key in LATENCY_ROWS:
                row[name] = "unstable"
                continue
            text = format_metric(metric, r.summary, name in best.get(metric.key, []))
            if base is not None and name != baseline and text != "–" and name not in shaky:
                text += _delta_text(metric, base, r)
            row[name] = text
        rows[f"{metric.label} ({metric.unit})"] = row
    rows[MEETS_ROW] = {name: meets_text(r.summary, name in shaky) for name, r in results.items()}
    if at_slo:
        rows.update(at_slo_rows(at_slo, list(results)))
    return pd.DataFrame.from_dict(rows, orient="index")


AT_SLO_ROWS = ("replicas to meet the SLO", "cost at the SLO (USD per 1M queries)")


def at_slo_rows(at_slo: dict[str, AtSlo], names: list[str]) -> dict[str, dict[str, str]]:
    """The two equal-SLO rows: replicas needed, and $ per 1M queries at that count (★ the cheapest)."""
    costs = {n: at_slo[n].usd_per_1m_queries for n in names if n in at_slo and at_slo[n].usd_per_1m_queries}
    cheapest = min(costs.values(), default=None)
    replicas, money = {}, {}
    for name in names:
        point = at_slo.get(name)
        if point is None or point.replicas is None:
            replicas[name] = money[name] = "none meets" if point is not None else "–"
            continue
        replicas[name] = f"{point.replicas}"
        cost = point.usd_per_1m_queries
        text = "–" if cost is None else f"${cost:,.3f}"
        won = cost is not None and cheapest is not None and cost <= cheapest * (1 + TIE_RELATIVE)
        money[name] = f"**{text}** ★" if won else text
    return {AT_SLO_ROWS[0]: replicas, AT_SLO_ROWS[1]: money}


def baseline_note(comparison: Comparison, baseline: str | None) -> str | None:
    """Why the table has no deltas, when the chosen baseline is unstable."""
    chosen = next((r for r in comparison.results if r.variant.name == baseline), None)
    if chosen is None or not unstable(chosen.summary):
        return None
    return (
        f"No deltas: the baseline {baseline} is unstable (its queue grows without bound), so its figures depend "
        "only on how long the run is and a difference from them means nothing. Choose a stable baseline."
    )


def meets_text(summary: Summary | dict, is_unstable: bool = False) -> str:
    """'yes', 'too close to call' or 'no' for the p99 against the SLO, by slo_verdict on its 95% CI."""
    if is_unstable:
        return "no (unstable)"
    summary = Summary.of(summary)
    word = slo_verdict(summary.latency_ms.p99, summary.latency_ms_ci95.p99, summary.slo.p99_ms)
    return "– (no SLO)" if word is None else MEETS_WORDS[word]


def _delta_text(metric, base, other) -> str:
    change = delta(
        group_values(base.result, metric.key),
        group_values(other.result, metric.key),
        metric.ci(base.summary),
        metric.ci(other.summary),
    )
    if change is None:
        return ""
    if metric.unit == "share":
        amount = f"{change.value * 100:+.2f} pt"
    elif metric.unit == "USD":
        amount = f"{'+' if change.value >= 0 else '−'}${abs(change.value):,.3f}"
    else:
        amount = f"{change.value:+,.1f}"
    amount = amount.replace("-", "−")
    relative = (
        f", {change.relative:+.0%}".replace("-", "−") if change.relative is not None and metric.unit != "share" else ""
    )
    return f" · Δ {amount}{relative} " + ("✱" if change.significant else "n.s.")


def identical_pairs(comparison: Comparison) -> list[tuple[str, str]]:
    """Pairs of variants whose runs came out the same (every latency percentile and the throughput equal):
    two settings that act alike on this traffic — a static batch of 32 with a 5 ms timeout and a dynamic
    batch of up to 32 waiting 5 ms both send what came within 5 ms when fewer than 32 do."""

    def figures(summary: dict) -> tuple:
        view = Summary.of(summary)
        return tuple(sorted(view.latency_ms.to_dict().items())), view.throughput_rps

    results = comparison.results
    return [
        (a.variant.name, b.variant.name)
        for i, a in enumerate(results)
        for b in results[i + 1 :]
        if figures(a.summary) == figures(b.summary)
    ]


def identical_text(pairs: list[tuple[str, str]], comparison: Comparison | None = None) -> str | None:
    """The sentence under the table for `identical_pairs`: a pair that is one configuration written twice
    (a variant setting what the scenario already has) is said to be so; other pairs act alike here."""
    if not pairs:
        return None
    scenarios = {r.variant.name: r.scenario.to_yaml() for r in comparison.results} if comparison else {}
    same = [(a, b) for a, b in pairs if scenarios and scenarios[a] == scenarios[b]]
    alike = [pair for pair in pairs if pair not in same]
    sentences = [f"{b} is {a} (the same configuration)." for a, b in same]
    if alike:
        named = "; ".join(f"{a} and {b}" for a, b in alike)
        sentences.append(
            f"Identical on this traffic and seed: {named}. Their settings act the same here (for batching: no "
            "batch ever filled or waited differently), so the table cannot tell them apart; a heavier or "
            "burstier load may."
        )
    return " ".join(sentences)


def winner_text(comparison: Comparison) -> str | None:
    """The lowest-p99 stable variant against the runner-up, with the test that separates them (Welch's t
    on the per-replication p99s, or the 95% CIs of single replications): 'Lowest p99: three (41.2 ms),
    below two (55.0 ms) at 5% (Welch t, p = 0.003).' None with fewer than two stable variants."""
    from sim.analysis.compare import METRICS

    p99 = next(m for m in METRICS if m.key == "p99")
    steady = [r for r in comparison.results if not unstable(r.summary) and p99.value(r.summary) is not None]
    if len(steady) < 2:
        return None
    best, runner = sorted(steady, key=lambda r: p99.value(r.summary))[:2]
    change = delta(
        group_values(runner.result, "p99"),
        group_values(best.result, "p99"),
        p99.ci(runner.summary),
        p99.ci(best.summary),
    )
    head = (
        f"Lowest p99: {best.variant.name} ({p99.value(best.summary):,.1f} ms), "
        f"{runner.variant.name} next ({p99.value(runner.summary):,.1f} ms)"
    )
    if change is None:
        return head + "."
    verdict = "a difference significant at 5%" if change.significant else "not significantly different at 5%"
    return f"{head}: {verdict} ({change.test})."
