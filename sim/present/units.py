"""Numbers as the tables and sentences print them (no plotting imports: the CLI starts fast)."""

from __future__ import annotations

import math

from sim.metrics.summary_view import Cost


def fmt_ms(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    if value >= 10_000:
        return f"{value / 1000:,.1f} s"
    if value >= 100:
        return f"{value:,.0f} ms"
    if value >= 10:
        return f"{value:.1f} ms"
    return f"{value:.2f} ms"


def fmt_interval(interval, fmt=fmt_ms) -> str:
    """A 95% CI as '[low, high]' (never '± half-width': a symmetric half-width can imply a bound the
    figure cannot take); 'n/a' where the run gives no honest interval."""
    if not interval or len(interval) != 2:
        return "n/a"
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in interval):
        return "n/a"
    return f"[{fmt(interval[0])}, {fmt(interval[1])}]"


def fmt_duration(seconds: float) -> str:
    """86400 -> '24 h', 1140 -> '19 min', 90 -> '90 s'."""
    if seconds >= 3600:
        return f"{seconds / 3600:,.3g} h"
    if seconds >= 120:
        return f"{seconds / 60:,.3g} min"
    return f"{seconds:,.3g} s"


def horizon_cost_text(cost: Cost | dict) -> str | None:
    """The cost of a run's horizon (sim.metrics.cost.horizon_cost, read from the summary's `cost`):
    '$19.20/day', or '$0.63 for the 19 min measured' for a horizon shorter than a day; None without one."""
    cost = Cost.of(cost)
    per_day = cost.usd_per_day
    if per_day is not None and math.isfinite(per_day):
        return f"${per_day:,.2f}/day"
    usd, horizon_s = cost.usd_for_horizon, cost.horizon_s
    if usd is not None and horizon_s is not None and math.isfinite(usd):
        return f"${usd:,.2f} for the {fmt_duration(horizon_s)} measured"
    return None
