"""The per-window SLO verdict in words (sim.metrics.windows): 'p99 met in all 288 five-minute windows', or
'p99 missed 12:00–12:05 (up to 812 ms)'. The CLI table and the planner print this one sentence."""

from __future__ import annotations

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


def window_verdict(windows: dict | None) -> str | None:
    """One sentence; None when there is nothing to say (no budget, or no window held enough requests)."""
    if not windows or windows.get("met") is None:
        if windows and windows.get("too_few"):
            return (
                f"{windows['quantile']} per {window_length(windows['window_s'])} window not judged: no window "
                f"holds the {windows['min_requests']:,} requests it needs (run more replications)"
            )
        return None
    key, length = windows["quantile"], window_length(windows["window_s"])
    thin = f"; {windows['too_few']} window(s) too thin to judge" if windows["too_few"] else ""
    if windows["met"]:
        return f"{key} met in every judged {length} window ({windows['judged']}; worst {fmt_ms(windows['worst_ms'])}){thin}"
    with_seconds = windows["window_s"] < 60
    ranges = ", ".join(
        f"{clock(m['from_s'], with_seconds)}–{clock(m['to_s'], with_seconds)} (up to {fmt_ms(m['worst_ms'])})"
        for m in windows["missed"][:6]
    )
    more = f" and {len(windows['missed']) - 6} more stretches" if len(windows["missed"]) > 6 else ""
    count = sum(round((m["to_s"] - m["from_s"]) / windows["window_s"]) for m in windows["missed"])
    return f"{key} missed in {count} of {windows['judged']} {length} windows: {ranges}{more}{thin}"
