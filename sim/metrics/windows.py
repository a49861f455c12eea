"""The SLO judged window by window. A load that changes over time (a daily curve, a spike, cold starts)
can meet its p99 over the whole run and miss it for the five minutes that matter; the run's p99 averages
that window away. Every window of arrival time (pooled over replications, warm-up and rejected requests
left out) with enough requests for its percentile is judged against the budget; misses in adjacent windows
are merged into ranges. Windows too thin to judge are counted, never judged.

One function serves `servesim run` (the `slo.windows` key), `servesim size` (a count meets only if every
judged window does) and the planner.
"""

from __future__ import annotations

import math

import numpy as np

from sim.engine.runlog import RunLog
from sim.spec.scenario import Scenario

# Readable window lengths (s), and the longest verdict window: a five-minute spike must not average away.
READABLE_WINDOWS_S = (1, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)
VERDICT_WINDOW_MAX_S = 300.0
# A percentile q is judged in a window only with this many requests beyond it (as the run's own warning).
TAIL_SAMPLES_NEEDED = 10


def readable_window_s(span_s: float, windows: int = 30) -> float:
    """The shortest readable length that cuts `span_s` into at most `windows` windows."""
    for window in READABLE_WINDOWS_S:
        if span_s / window <= windows:
            return float(window)
    return float(READABLE_WINDOWS_S[-1])


def verdict_window_s(span_s: float) -> float:
    """About 30 windows over the run, never longer than five minutes."""
    return min(readable_window_s(span_s), VERDICT_WINDOW_MAX_S)


def slo_windows(
    run: RunLog, scenario: Scenario, window_s: float | None = None, budgets: dict[float, float] | None = None
) -> dict | None:
    """Per-window verdict on the latency budgets (quantile -> ms; default the scenario's); None without a
    budget or a served request. `window_s` None: about 30 windows over the run, five minutes at most."""
    budgets = scenario.slo.budgets() if budgets is None else budgets
    return judge_windows(*window_points(run.requests), budgets, window_s)


def window_points(log) -> tuple[np.ndarray, np.ndarray]:
    """(arrival_ms, latency_ms) of the requests the windows judge: measured (not warm-up) and served."""
    keep = ~log["warmup"].to_numpy() & ~log["rejected"].to_numpy()
    return log["arrival_ms"].to_numpy()[keep], log["latency_ms"].to_numpy()[keep]


def judge_windows(
    arrival_ms: np.ndarray, latency: np.ndarray, budgets: dict[float, float], window_s: float | None = None
) -> dict | None:
    """`slo_windows` on the measured, served requests' arrival times and latencies (replications pooled)."""
    if not budgets or not len(arrival_ms):
        return None
    window_s = float(window_s or verdict_window_s(float(arrival_ms.max()) / 1000.0))
    index = (arrival_ms // (window_s * 1000.0)).astype(np.int64)
    order = np.argsort(index, kind="stable")
    windows, starts, counts = np.unique(index[order], return_index=True, return_counts=True)
    top = max(budgets)
    needed = math.ceil(TAIL_SAMPLES_NEEDED / (1 - top))
    judged, missed, worst = 0, [], -math.inf
    for window, start, count in zip(windows, starts, counts):
        if count < needed:
            continue
        values = latency[order[start : start + count]]
        judged += 1
        figures = {q: float(np.quantile(values, q)) for q in budgets}
        worst = max(worst, figures[top])
        if any(figures[q] > ms for q, ms in budgets.items()):
            begin = float(window) * window_s
            if missed and math.isclose(missed[-1]["to_s"], begin):
                missed[-1]["to_s"] = begin + window_s
                missed[-1]["worst_ms"] = max(missed[-1]["worst_ms"], figures[top])
            else:
                missed.append({"from_s": begin, "to_s": begin + window_s, "worst_ms": figures[top]})
    return {
        "window_s": window_s,
        "quantile": f"p{round(top * 100)}",
        "judged": judged,
        "too_few": int(len(windows) - judged),
        "min_requests": needed,
        "met": (not missed) if judged else None,
        "worst_ms": worst if judged else None,
        "missed": missed,
    }
