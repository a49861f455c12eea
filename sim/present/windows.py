"""The per-window SLO verdict in words (sim.metrics.windows): 'p99 met in all 288 five-minute windows', or
'p99 missed 12:00–12:05 (up to 812 ms)'. The CLI table and the planner print this one sentence."""

from __future__ import annotations

from sim.metrics.summary_view import Windows
from sim.present.units import fmt_ms


def clock(seconds: float, with_seconds: bool) -> str:
    """Time since the run began as a clock reading: 12:05, or 0:02:30 for windows under a minute."""
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if with_seconds else f"{hours:02d}:{minutes:02d}"


def window_length(window_s: float) -> str:
    if window_s >= 60 and window_s % 60 == 0:
        return f"{int(window_s // 60)}-minute"
    return f"{window_s:g}-second"


def window_verdict(windows: Windows | dict | None) -> str | None:
    """One sentence; None when there is nothing to say (no budget, or no window held enough requests)."""
    if not windows:
        return None
    w = Windows.of(windows)
    if w.met is None:
        if w.too_few:
            return (
                f"{w.quantile} per {window_length(w.window_s)} window not judged: no window "
                f"holds the {w.min_requests:,} requests it needs (run more replications)"
            )
        return None
    key, length = w.quantile, window_length(w.window_s)
    thin = f"; {w.too_few} window(s) too thin to judge" if w.too_few else ""
    if w.met:
        return f"{key} met in every judged {length} window ({w.judged}; worst {fmt_ms(w.worst_ms)}){thin}"
    with_seconds = w.window_s < 60
    ranges = ", ".join(
        f"{clock(m.from_s, with_seconds)}–{clock(m.to_s, with_seconds)} (up to {fmt_ms(m.worst_ms)})"
        for m in w.missed[:6]
    )
    more = f" and {len(w.missed) - 6} more stretches" if len(w.missed) > 6 else ""
    count = sum(round((m.to_s - m.from_s) / w.window_s) for m in w.missed)
    return f"{key} missed in {count} of {w.judged} {length} windows: {ranges}{more}{thin}"
