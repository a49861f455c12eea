"""The sizing frontier: p99 (with its CI) and cost per 1M queries against the replica count, per hardware."""

from __future__ import annotations

from pathlib import Path


def frontier_plot(frontier, slo: float, knob: str, path: Path) -> None:
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
