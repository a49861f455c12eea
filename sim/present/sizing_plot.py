"""The sizing frontier: p99 (with its CI) and cost per 1M queries against the replica count, per hardware;
and the range each hardware was searched over, in words (the CLI report and the planner's Sizing tab)."""

from __future__ import annotations

from pathlib import Path


def frontier_plot(frontier, slo: float, knob: str, path: Path) -> None:
    """p99 with its CI (and the worst window's p99 where windows were judged) and $ per 1M queries by count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for hardware, part in frontier.groupby("hardware", sort=False):
        low = part["p99_ms"] - part["p99_ci95"].map(lambda ci: ci[0])
        high = part["p99_ci95"].map(lambda ci: ci[1]) - part["p99_ms"]
        left.errorbar(
            part["replicas"],
            part["p99_ms"],
            yerr=[low.clip(lower=0), high.clip(lower=0)],
            marker="o",
            capsize=3,
            label=hardware,
        )
        if part["worst_window_p99_ms"].notna().any():
            left.plot(
                part["replicas"],
                part["worst_window_p99_ms"],
                marker="x",
                linestyle="--",
                label=f"{hardware} worst window",
            )
        right.plot(part["replicas"], part["usd_per_1m_queries"], marker="o", label=hardware)
    left.axhline(slo, color="red", linestyle=":", label=f"SLO {slo:g} ms")
    left.set_yscale("log")
    left.set_xlabel(knob)
    left.set_ylabel("p99 latency (ms)")
    left.legend(fontsize=8)
    right.set_xlabel(knob)
    right.set_ylabel("$ per 1M queries")
    right.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def searched_text(ranges: dict, knob: str) -> str:
    """'Searched l4: min_replicas 0–39 (max_replicas 16, raised with min_replicas above it)', per hardware."""
    parts = []
    for hardware, span in ranges.items():
        text = f"{hardware}: {knob} {span.start}–{span.ceiling}"
        if span.max_replicas is not None:
            text += (
                f" (max_replicas {span.max_replicas}, raised with min_replicas above it)"
                if span.ceiling > span.max_replicas
                else f" (to max_replicas {span.max_replicas})"
            )
        parts.append(text)
    return "Searched " + "; ".join(parts) + ", galloping up to the ceiling unless a count meets, then bisecting"
