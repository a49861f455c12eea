"""Output invariants of a run summary, in one place: a result is `ok`, `unstable` or `no_service`.

A run that served nothing, or whose headline figures are not finite, must say so rather than print
plausible numbers; a summary that breaks an identity (p50 > p99, utilisation above 1, negative cost)
is a bug in the simulator, listed by `violations`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

Status = Literal["ok", "unstable", "no_service"]
EXIT_OK = 0
EXIT_UNSTABLE = 3  # the run finished but its result is unstable or served nothing (see README)
_ORDERED_QUANTILES = ("p50", "p90", "p95", "p99", "p999")
# Utilisation from busy time over a window can exceed 1 by the service still running at its edge.
_UTILISATION_SLACK = 1e-6
# sim/metrics/summary.py's words for a replication whose measured arrivals span no time.
ZERO_SPAN = (
    "measured requests arrived at one instant (a trace whose timestamps are all equal or too large to tell "
    "apart, or a single request): latency stands, throughput, utilisation and cost have no time to be over"
)
LLM_BACKLOG = "the queue grows through the run"  # the LLM metrics' words for a backlog that never drains


@dataclass(frozen=True)
class Verdict:
    """What a summary may be trusted for, with the reasons when it may not."""

    status: Status
    reasons: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.status == "ok" else EXIT_UNSTABLE


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def classify(summary: dict, scenario=None) -> Verdict:
    """`no_service` when nothing was served (the served count decides, never a figure derived from it);
    `unstable` when a stage's offered load is at or above 1 with an unbounded queue, an LLM stage's
    completions fall behind its arrivals, or a headline figure (throughput among them: a trace whose
    arrivals all fall on one instant has none) is not finite; else `ok`."""
    served = summary.get("served", summary.get("requests", 0))
    if not _finite(served) or served <= 0:
        rejected = summary.get("rejected_fraction")
        why = (
            f"no request was served (rejected fraction {rejected:.2f})"
            if _finite(rejected)
            else "no request was served"
        )
        return Verdict("no_service", (why,))
    reasons: list[str] = []
    throughput = summary.get("throughput_rps")
    if not _finite(throughput):
        zero_span = any(ZERO_SPAN in warning for warning in summary.get("warnings") or [])
        reasons.append(f"throughput is not defined: the {ZERO_SPAN}" if zero_span else "throughput is not finite")
    elif throughput <= 0:
        reasons.append(
            f"throughput is {throughput:g} for {served} requests served: none departed in the measured window"
        )
    bounded_queue = scenario is not None and scenario.deployment.max_queue_size is not None
    for stage, rho in (summary.get("offered_load") or {}).items():
        if _finite(rho) and rho >= 1 and not bounded_queue:
            reasons.append(f"offered load on stage {stage!r} is {rho:.2f} ≥ 1: the queue grows without bound")
        elif not _finite(rho) and rho is not None:
            reasons.append(f"offered load on stage {stage!r} is not finite")
    for warning in summary.get("warnings") or []:
        if LLM_BACKLOG in warning:  # sim/metrics/llm.py: completions fall behind arrivals all run long
            reasons.append(warning)
    latency = summary.get("latency_ms") or {}
    for key in ("mean", "p50", "p95", "p99"):
        if key in latency and not _finite(latency[key]):
            reasons.append(f"latency {key} is not finite")
    for key in ("usd_per_hour", "usd_per_1m_queries"):
        value = (summary.get("cost") or {}).get(key)
        if value is not None and not _finite(value):
            reasons.append(f"cost {key} is not finite")
    return Verdict("unstable", tuple(reasons)) if reasons else Verdict("ok")


def violations(summary: dict) -> list[str]:
    """Identities every summary must meet; each broken one, in words (empty when all hold)."""
    broken: list[str] = []
    latency = summary.get("latency_ms") or {}
    present = [(k, latency[k]) for k in _ORDERED_QUANTILES if _finite(latency.get(k))]
    for (k1, v1), (k2, v2) in zip(present, present[1:]):
        if v1 > v2 * (1 + 1e-9):
            broken.append(f"latency {k1} ({v1:g}) is above {k2} ({v2:g})")
    if present and present[0][1] < 0:
        broken.append(f"latency {present[0][0]} is negative ({present[0][1]:g})")
    throughput = summary.get("throughput_rps")
    if _finite(throughput) and throughput < 0:
        broken.append(f"throughput_rps is negative ({throughput:g})")
    utilisation = summary.get("utilization")
    if _finite(utilisation) and not -_UTILISATION_SLACK <= utilisation <= 1 + _UTILISATION_SLACK:
        broken.append(f"utilization {utilisation:g} is outside [0, 1]")
    rejected = summary.get("rejected_fraction")
    if _finite(rejected) and not 0 <= rejected <= 1:
        broken.append(f"rejected_fraction {rejected:g} is outside [0, 1]")
    for key, value in (summary.get("cost") or {}).items():
        if _finite(value) and value < 0:
            broken.append(f"cost {key} is negative ({value:g})")
    served, requests = summary.get("served"), summary.get("requests")
    if _finite(served) and _finite(requests) and not 0 <= served <= requests:
        broken.append(f"served ({served}) is outside 0..requests ({requests})")
    return broken


def with_status(summary: dict, scenario=None) -> dict:
    """The summary with `status` and `status_reasons` added (kept if already there)."""
    if "status" in summary:
        return summary
    verdict = classify(summary, scenario)
    return {**summary, "status": verdict.status, "status_reasons": list(verdict.reasons)}


def exit_code(summary: dict, scenario=None) -> int:
    """0 for an `ok` result, 3 for `unstable` or `no_service` (documented in the README)."""
    status = summary.get("status") or classify(summary, scenario).status
    return EXIT_OK if status == "ok" else EXIT_UNSTABLE
