"""SLO-driven sizing: the smallest replica count (or autoscaling `min_replicas`) whose p99 meets the SLO
with confidence, on each candidate hardware, and the cheapest of them.

"Meets" means the upper end of the p99's 95% CI is within the SLO; a point estimate under the SLO with
an upper bound over it is "too close to call" and is not chosen. Every probe runs in-process, over
replications, on common random numbers (the same seed for every probe), and the choice is re-checked on
fresh seeds. The search brackets and bisects rather than scanning up one by one: O(log n) probes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace

import pandas as pd

from sim.analysis.simulate import simulate
from sim.errors import ServesimError
from sim.metrics.load import offered_load
from sim.spec import transforms
from sim.metrics.windows import slo_windows
from sim.spec.scenario import ModelStage, Scenario, time_dependent

MAX_PROBES_PER_HARDWARE = 40
FRESH_SEED_OFFSET = 100_003


@dataclass(frozen=True)
class Candidate:
    """A hardware choice: its catalogue name and price, and how it changes the model stage (a forward
    `speedup` relative to the scenario as written, or another measured `profile`)."""

    name: str
    usd_per_hour: float | None
    speedup: float = 1.0
    profile: str | None = None

    def apply(self, scenario: Scenario) -> Scenario:
        overrides: dict = {"deployment.hardware": {"name": self.name, "usd_per_hour": self.usd_per_hour}}
        for stage in scenario.stages:
            if isinstance(stage, ModelStage):
                if self.profile is not None:
                    overrides[f"stages.{stage.name}"] = {
                        **{k: v for k, v in scenario.raw_stage(stage.name).items()
                           if k not in ("service_ms", "batch_cost", "per_item")},
                        "profile": self.profile,
                    }
                if self.speedup != 1.0:
                    overrides[f"stages.{stage.name}.speedup"] = stage.speedup * self.speedup
        return scenario.with_overrides(overrides)


CANDIDATE = re.compile(r"^(?P<name>[A-Za-z0-9_.\-]+)(?:@(?P<speedup>[0-9.]+))?(?:=(?P<profile>.+))?$")


def parse_candidates(text: str | None, scenario: Scenario, catalogue: dict) -> list[Candidate]:
    """`l4,t4@0.5,a100-80gb=models/x.yaml` -> candidates priced from the catalogue. Empty: the scenario's own."""
    if not text:
        hardware = scenario.deployment.hardware
        return [Candidate(hardware.name or "as written", hardware.usd_per_hour)]
    candidates = []
    for item in (part.strip() for part in text.split(",") if part.strip()):
        match = CANDIDATE.match(item)
        if not match:
            raise ServesimError(f"--hardware {item!r}: expected NAME, NAME@SPEEDUP or NAME=PROFILE")
        name = match["name"]
        if name not in catalogue:
            raise ServesimError(f"--hardware {name!r}: not in the hardware catalogue (have: {', '.join(sorted(catalogue))})")
        speedup = float(match["speedup"]) if match["speedup"] else 1.0
        if speedup <= 0:
            raise ServesimError(f"--hardware {item!r}: speedup must be positive")
        candidates.append(Candidate(name, catalogue[name].usd_per_hour, speedup, match["profile"]))
    return candidates


@dataclass
class Probe:
    hardware: str
    replicas: int
    p99_ms: float
    p99_ci95: tuple[float, float]
    usd_per_hour: float | None
    usd_per_1m_queries: float | None
    worst_window_p99_ms: float | None
    verdict: str  # "meets", "too close", "misses"


@dataclass
class SizingResult:
    slo_p99_ms: float
    knob: str  # "replicas" or "min_replicas"
    probes: list[Probe] = field(default_factory=list)
    chosen: Probe | None = None
    chosen_scenario: Scenario | None = None
    recheck: Probe | None = None
    one_fewer_recheck: Probe | None = None
    notes: list[str] = field(default_factory=list)

    def frontier(self) -> pd.DataFrame:
        return pd.DataFrame([p.__dict__ for p in self.probes])


def with_replicas(scenario: Scenario, count: int) -> Scenario:
    """The scenario with `count` fixed replicas, or `count` as the autoscaler's min (max raised to fit)."""
    return transforms.with_replicas(scenario, count)


def smallest_stable(scenario: Scenario) -> int:
    """Fewest fixed replicas whose offered load on every replica-bound stage is below 1."""
    at_one = offered_load(scenario.with_overrides({"deployment.replicas": 1, "deployment.autoscaling": None}))
    model_loads = [rho for name, rho in at_one.items() if isinstance(scenario.stage(name), ModelStage)]
    return max(1, math.floor(max(model_loads, default=0.0)) + 1)


def probe(scenario: Scenario, hardware: str, count: int, slo_ms: float, *, seed: int, replications: int,
          requests: int | None, window_s: float | None, per_window: bool = False) -> Probe:
    """One count on one candidate. `per_window`: the worst judged window's p99 must meet the SLO too
    (sim.metrics.windows: the windows of `servesim run`, `window_s` long or its default when None; windows
    too thin for a p99 are not judged)."""
    result = simulate(with_replicas(scenario, count), seed=seed, replications=replications, requests=requests)
    summary = result.summary
    low, high = summary["latency_ms_ci95"]["p99"]
    p99 = summary["latency_ms"]["p99"]
    worst = None
    if per_window:
        windows = slo_windows(result.run, scenario, window_s, budgets={0.99: slo_ms})
        worst = windows["worst_ms"] if windows else None
    upper = high if math.isfinite(high) else p99
    p99_for_point = p99
    if worst is not None:
        upper, p99_for_point = max(upper, worst), max(p99, worst)
    verdict = "meets" if upper <= slo_ms else ("too close" if p99_for_point <= slo_ms else "misses")
    return Probe(hardware, count, p99, (low, high), summary["cost"]["usd_per_hour"],
                 summary["cost"]["usd_per_1m_queries"], worst, verdict)


def judged_by_window(scenario: Scenario, window_s: float | None) -> bool:
    """Whether every probe is judged window by window: `window_s` 0 says no, a length says yes, and by
    default a load that changes over time is (a spike must not average away)."""
    return bool(window_s) if window_s is not None else time_dependent(scenario)


def size(scenario: Scenario, slo_p99_ms: float, candidates: list[Candidate], *, replications: int = 5,
         requests: int | None = None, window_s: float | None = None, seed: int | None = None,
         on_probe=None) -> SizingResult:
    """The fewest replicas (or min_replicas) meeting the SLO with confidence on each candidate, by
    bracketing (doubling steps up from the smallest stable count) and bisecting, on common random numbers."""
    seed = scenario.seed if seed is None else seed
    per_window = judged_by_window(scenario, window_s)
    window_s = window_s or None
    autoscaled = scenario.deployment.autoscaling is not None
    result = SizingResult(slo_p99_ms, "min_replicas" if autoscaled else "replicas")
    cache: dict[tuple, tuple[Probe, float | None]] = {}
    best: tuple[Probe, Scenario] | None = None
    for candidate in candidates:
        variant = candidate.apply(scenario)

        def run(count: int, variant=variant, candidate=candidate) -> Probe:
            point = _cached_probe(cache, variant, candidate, count, slo_p99_ms, seed=seed,
                                  replications=replications, requests=requests, window_s=window_s,
                                  per_window=per_window)
            result.probes.append(point)
            if on_probe:
                on_probe(point)
            return point

        first = len(result.probes)
        met = _search(variant, candidate.name, autoscaled, slo_p99_ms, run, result.notes)
        result.probes[first:] = sorted(result.probes[first:], key=lambda p: p.replicas)  # the frontier, in order
        if met is None:
            continue
        cost = met.usd_per_1m_queries if met.usd_per_1m_queries is not None else math.inf
        if best is None or cost < (best[0].usd_per_1m_queries or math.inf):
            best = (met, variant)
    if best is None:
        return result
    chosen, variant = best
    result.chosen = chosen
    result.chosen_scenario = with_replicas(variant, chosen.replicas)
    fresh = seed + FRESH_SEED_OFFSET
    checks = dict(replications=replications, requests=requests, window_s=window_s, per_window=per_window)
    result.recheck = probe(variant, chosen.hardware, chosen.replicas, slo_p99_ms, seed=fresh, **checks)
    lowest = 0 if autoscaled else 1
    if chosen.replicas - 1 >= lowest:
        result.one_fewer_recheck = probe(variant, chosen.hardware, chosen.replicas - 1, slo_p99_ms, seed=fresh, **checks)
    return result


def _search(variant: Scenario, name: str, autoscaled: bool, slo_ms: float, run, notes: list[str]) -> Probe | None:
    """Smallest count that meets, assuming p99 falls as replicas are added (common random numbers keep the
    comparison sharp): gallop up (+1, +2, +4, ...) to the first count that meets, then bisect the gap. The
    count chosen meets and the one below it, when probed, does not."""
    # Ray Serve and Knative can scale from zero on traffic; the HPA cannot go below one replica.
    start = smallest_stable(variant) if not autoscaled else int(variant.deployment.autoscaling.policy == "hpa")
    ceiling = start + MAX_PROBES_PER_HARDWARE - 1
    if autoscaled:
        ceiling = min(ceiling, max(variant.deployment.autoscaling.max_replicas, start))
    below: Probe | None = None  # the largest count probed that does not meet
    count, step = start, 1
    while True:
        point = run(count)
        if point.verdict == "meets":
            above = point
            break
        if below is not None and point.p99_ms >= 0.98 * below.p99_ms:
            if point.p99_ci95[0] > slo_ms:
                notes.append(
                    f"{name}: p99 has levelled off at {point.p99_ms:,.1f} ms above the SLO: more replicas "
                    "do not help; the floor is the service path itself (see `servesim advise`)"
                )
                return None
            if point.verdict == "too close":
                # Levelled off within the CI of the SLO: past here noise, not replicas, decides. Try the
                # counts the gallop skipped, in order, as a scan would have.
                for skipped in range(below.replicas + 1, point.replicas):
                    tried = run(skipped)
                    if tried.verdict == "meets":
                        return tried
                notes.append(
                    f"{name}: p99 has levelled off at {point.p99_ms:,.1f} ms, within the 95% CI of the SLO: "
                    "too close to call at any count (more replications or requests narrow the CI)"
                )
                return None
        below = point
        if count >= ceiling:
            if autoscaled and count >= variant.deployment.autoscaling.max_replicas:
                notes.append(f"{name}: min_replicas reached max_replicas without meeting the SLO")
            else:
                notes.append(f"{name}: no replica count up to {count} meets the SLO")
            return None
        count, step = min(count + step, ceiling), step * 2
    while below is not None and above.replicas - below.replicas > 1:
        middle = run((below.replicas + above.replicas) // 2)
        if middle.verdict == "meets":
            above = middle
        else:
            below = middle
    return above


def _cached_probe(cache: dict, variant: Scenario, candidate: Candidate, count: int, slo_ms: float, *, seed: int,
                  replications: int, requests: int | None, window_s: float | None, per_window: bool) -> Probe:
    """A probe, run once per distinct model stage: candidates that differ only in name and price share the
    run (latency is the same), with the cost scaled to their price."""
    key = (candidate.speedup, candidate.profile, count, seed)
    if key in cache:
        known, price = cache[key]
        if price == candidate.usd_per_hour:
            return replace(known, hardware=candidate.name)
        if price and candidate.usd_per_hour is not None:
            ratio = candidate.usd_per_hour / price
            return replace(
                known, hardware=candidate.name,
                usd_per_hour=None if known.usd_per_hour is None else known.usd_per_hour * ratio,
                usd_per_1m_queries=None if known.usd_per_1m_queries is None else known.usd_per_1m_queries * ratio,
            )
    point = probe(variant, candidate.name, count, slo_ms, seed=seed, replications=replications,
                  requests=requests, window_s=window_s, per_window=per_window)
    cache[key] = (point, candidate.usd_per_hour)
    return point
