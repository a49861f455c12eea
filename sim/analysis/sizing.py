"""SLO-driven sizing: the smallest replica count (or autoscaling `min_replicas`) whose p99 meets the SLO
with confidence, on each candidate hardware, and the cheapest of them.

"Meets" means the upper end of the p99's 95% CI is within the SLO; a point estimate under the SLO with
an upper bound over it is "too close to call" and is not chosen. Every probe runs in-process, over
replications, on common random numbers (the same seed for every probe), and the choice is re-checked on
fresh seeds. The search brackets and bisects rather than scanning up one by one: O(log n) probes.

An LLM scenario is judged on what its users feel, the TTFT and TPOT p99 (each within its budget, CI upper
end and point alike), and its hardware is priced per million output tokens, the unit LLM serving is sold in.
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
from sim.spec.scenario import LLMStage, ModelStage, Scenario, time_dependent

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
    own: bool = False  # the scenario's own hardware, kept as written (it may name none)

    def apply(self, scenario: Scenario) -> Scenario:
        overrides: dict = {}
        if not self.own:
            overrides["deployment.hardware"] = {"name": self.name, "usd_per_hour": self.usd_per_hour}
        for stage in scenario.stages:
            if isinstance(stage, ModelStage):
                if self.profile is not None:
                    overrides[f"stages.{stage.name}"] = {
                        **{
                            k: v
                            for k, v in scenario.raw_stage(stage.name).items()
                            if k not in ("service_ms", "batch_cost", "per_item")
                        },
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
        return [Candidate(hardware.name or "as written", hardware.usd_per_hour, own=True)]
    candidates = []
    for item in (part.strip() for part in text.split(",") if part.strip()):
        match = CANDIDATE.match(item)
        if not match:
            raise ServesimError(f"--hardware {item!r}: expected NAME, NAME@SPEEDUP or NAME=PROFILE")
        name = match["name"]
        if name not in catalogue:
            raise ServesimError(
                f"--hardware {name!r}: not in the hardware catalogue (have: {', '.join(sorted(catalogue))})"
            )
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
    # LLM stages (None elsewhere): the p99 of time to first token and of time per output token, and the
    # price of a million output tokens at the throughput measured.
    ttft_p99_ms: float | None = None
    ttft_ci95: tuple[float, float] | None = None
    tpot_p99_ms: float | None = None
    tpot_ci95: tuple[float, float] | None = None
    usd_per_1m_tokens: float | None = None
    # End-to-end p95 and p50 with their CIs (judged when a budget on them is given).
    p95_ms: float | None = None
    p95_ci95: tuple[float, float] | None = None
    p50_ms: float | None = None
    p50_ci95: tuple[float, float] | None = None

    @property
    def usd_per_unit(self) -> float:
        """What candidates are ranked by: $ per 1M output tokens for an LLM, else per 1M queries."""
        value = self.usd_per_1m_tokens if self.usd_per_1m_tokens is not None else self.usd_per_1m_queries
        return math.inf if value is None else value


@dataclass(frozen=True)
class Budgets:
    """The budgets (ms) a probe is judged on; None: not judged. End-to-end p99 (and optionally p95, p50),
    and for an LLM stage the TTFT and TPOT p99."""

    p99_ms: float | None = None
    ttft_p99_ms: float | None = None
    tpot_p99_ms: float | None = None
    p95_ms: float | None = None
    p50_ms: float | None = None

    @property
    def llm(self) -> bool:
        return self.ttft_p99_ms is not None or self.tpot_p99_ms is not None

    def measures(self, point: Probe) -> list[tuple[str, float, tuple[float, float] | None, float]]:
        """(label, p99, its CI, budget) for every budget given, end-to-end first. A p99 not measured (no
        request completed) is infinite: it meets no budget."""
        given = [
            ("p99", point.p99_ms, point.p99_ci95, self.p99_ms),
            ("TTFT p99", point.ttft_p99_ms, point.ttft_ci95, self.ttft_p99_ms),
            ("TPOT p99", point.tpot_p99_ms, point.tpot_ci95, self.tpot_p99_ms),
            ("p95", point.p95_ms, point.p95_ci95, self.p95_ms),
            ("p50", point.p50_ms, point.p50_ci95, self.p50_ms),
        ]
        return [
            (label, math.inf if value is None else value, ci, budget)
            for label, value, ci, budget in given
            if budget is not None
        ]

    def overrides(self) -> dict:
        """The scenario's `slo` fields that say these budgets, so a sized scenario keeps what it was sized for."""
        fields = {
            "slo.p99_ms": self.p99_ms,
            "slo.p95_ms": self.p95_ms,
            "slo.p50_ms": self.p50_ms,
            "slo.ttft_ms": self.ttft_p99_ms,
            "slo.tpot_ms": self.tpot_p99_ms,
        }
        return {path: value for path, value in fields.items() if value is not None}


def llm_budgets(
    scenario: Scenario,
    slo_p99_ms: float | None,
    ttft_p99_ms: float | None,
    tpot_p99_ms: float | None,
    p95_ms: float | None = None,
    p50_ms: float | None = None,
) -> Budgets:
    """The budgets of a sizing: those given, and for an LLM scenario sized on no end-to-end p99, the
    scenario's own slo.ttft_ms / slo.tpot_ms for the ones not given (a chat user waits for the first token
    and reads at the token rate; the end-to-end time grows with the answer's length and is no SLO).
    `p95_ms` / `p50_ms`: end-to-end budgets judged beside the p99 (or alone)."""
    has_llm = any(isinstance(stage, LLMStage) for stage in scenario.stages)
    if (ttft_p99_ms is not None or tpot_p99_ms is not None) and not has_llm:
        raise ServesimError("--ttft-p99-ms / --tpot-p99-ms: TTFT and TPOT budgets need a scenario with an LLM stage")
    if has_llm and slo_p99_ms is None:
        ttft_p99_ms = scenario.slo.ttft_ms if ttft_p99_ms is None else ttft_p99_ms
        tpot_p99_ms = scenario.slo.tpot_ms if tpot_p99_ms is None else tpot_p99_ms
    budgets = Budgets(slo_p99_ms, ttft_p99_ms, tpot_p99_ms, p95_ms, p50_ms)
    if budgets.p99_ms is None and budgets.p95_ms is None and budgets.p50_ms is None and not budgets.llm:
        raise ServesimError(
            "no SLO to size for: give --slo-p99-ms (or --slo-p95-ms / --slo-p50-ms) or slo.p99_ms in the scenario "
            "(an LLM stage: --ttft-p99-ms / --tpot-p99-ms or slo.ttft_ms / slo.tpot_ms)"
        )
    return budgets


@dataclass
class SizingResult:
    slo_p99_ms: float | None
    knob: str  # "replicas" or "min_replicas"
    probes: list[Probe] = field(default_factory=list)
    chosen: Probe | None = None
    chosen_scenario: Scenario | None = None
    recheck: Probe | None = None
    one_fewer_recheck: Probe | None = None
    notes: list[str] = field(default_factory=list)
    budgets: Budgets | None = None

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


def probe(
    scenario: Scenario,
    hardware: str,
    count: int,
    slo: float | Budgets | None,
    *,
    seed: int,
    replications: int,
    requests: int | None,
    window_s: float | None,
    per_window: bool = False,
    on_replication=None,
    workers: int = 1,
) -> Probe:
    """One count on one candidate, judged on every budget of `slo` (a p99 in ms, or Budgets). `per_window`:
    the worst judged window's p99 must meet the end-to-end budget too (sim.metrics.windows: the windows of
    `servesim run`, `window_s` long or its default when None; windows too thin for a p99 are not judged)."""
    budgets = slo if isinstance(slo, Budgets) else Budgets(slo)
    result = simulate(
        with_replicas(scenario, count),
        seed=seed,
        replications=replications,
        requests=requests,
        on_replication=on_replication,
        workers=workers,
        keep_log=per_window,  # only the windows read the log; otherwise memory is one replication's
    )
    summary = result.summary
    worst = None
    if per_window and budgets.p99_ms is not None:
        windows = slo_windows(result.run, scenario, window_s, budgets={0.99: budgets.p99_ms})
        worst = windows["worst_ms"] if windows else None
    cost = summary["cost"]
    point = Probe(
        hardware,
        count,
        summary["latency_ms"]["p99"],
        tuple(summary["latency_ms_ci95"]["p99"]),
        cost["usd_per_hour"],
        cost["usd_per_1m_queries"],
        worst,
        "",
        **_llm_fields(summary, cost),
        **{f"{q}{suffix}": value for q in ("p95", "p50") for suffix, value in _figure(summary, q).items()},
    )
    point.verdict = verdict(point, budgets)
    return point


def _figure(summary: dict, key: str) -> dict:
    """An end-to-end percentile and its CI, as Probe fields' suffixes."""
    ci = summary["latency_ms_ci95"].get(key)
    return {"_ms": summary["latency_ms"][key], "_ci95": tuple(ci) if ci is not None else None}


def _llm_fields(summary: dict, cost: dict) -> dict:
    """TTFT / TPOT p99 with their CIs and $ per 1M output tokens, from the summary's `llm` key (if any)."""
    llm = summary.get("llm")
    if not llm:
        return {}
    cis = llm.get("ci95", {})
    tokens_per_s = llm.get("output_tokens_per_s") or 0.0
    per_hour = cost["usd_per_hour"]
    return {
        "ttft_p99_ms": llm["ttft_ms"]["p99"],
        "ttft_ci95": _ci(cis.get("ttft_ms", {}).get("p99")),
        "tpot_p99_ms": llm["tpot_ms"]["p99"],
        "tpot_ci95": _ci(cis.get("tpot_ms", {}).get("p99")),
        "usd_per_1m_tokens": None if per_hour is None or tokens_per_s <= 0 else per_hour / (tokens_per_s * 3600) * 1e6,
    }


def _ci(pair) -> tuple[float, float] | None:
    return None if pair is None else (float(pair[0]), float(pair[1]))


def verdict(point: Probe, budgets: Budgets) -> str:
    """ "meets" when every budget holds at the CI's upper end, "misses" when a point estimate is over its
    budget, else "too close". The end-to-end p99 folds in the worst window; an LLM p99 is judged by the
    larger of its CI's upper end and its point, since its batch-means CI (from sections of the run) can
    end below the whole run's p99, and a count whose p99 is over the budget does not meet it."""
    meets, point_within = True, True
    for label, value, ci, budget in budgets.measures(point):
        upper = ci[1] if ci is not None and math.isfinite(ci[1]) else value
        if label == "p99":
            if point.worst_window_p99_ms is not None:
                upper, value = max(upper, point.worst_window_p99_ms), max(value, point.worst_window_p99_ms)
        else:
            upper = max(upper, value)
        meets &= upper <= budget
        point_within &= value <= budget
    return "meets" if meets else ("too close" if point_within else "misses")


def judged_by_window(scenario: Scenario, window_s: float | None) -> bool:
    """Whether every probe is judged window by window: `window_s` 0 says no, a length says yes, and by
    default a load that changes over time is (a spike must not average away)."""
    return bool(window_s) if window_s is not None else time_dependent(scenario)


def size(
    scenario: Scenario,
    slo_p99_ms: float | None,
    candidates: list[Candidate],
    *,
    ttft_p99_ms: float | None = None,
    tpot_p99_ms: float | None = None,
    slo_p95_ms: float | None = None,
    slo_p50_ms: float | None = None,
    replications: int = 5,
    requests: int | None = None,
    window_s: float | None = None,
    seed: int | None = None,
    on_probe=None,
    on_replication=None,
    workers: int = 1,
) -> SizingResult:
    """The fewest replicas (or min_replicas) meeting the SLO with confidence on each candidate, by
    bracketing (doubling steps up from the smallest stable count) and bisecting, on common random numbers.
    The budgets are those of `llm_budgets`; the cheapest candidate is the one of lowest `usd_per_unit`."""
    seed = scenario.seed if seed is None else seed
    budgets = llm_budgets(scenario, slo_p99_ms, ttft_p99_ms, tpot_p99_ms, slo_p95_ms, slo_p50_ms)
    per_window = budgets.p99_ms is not None and judged_by_window(scenario, window_s)  # windows of end-to-end p99
    window_s = window_s or None
    autoscaled = scenario.deployment.autoscaling is not None
    result = SizingResult(slo_p99_ms, "min_replicas" if autoscaled else "replicas", budgets=budgets)
    cache: dict[tuple, tuple[Probe, float | None]] = {}
    best: tuple[Probe, Scenario] | None = None
    # How every probe is run (the search's and the re-checks on fresh seeds).
    checks = dict(
        replications=replications,
        requests=requests,
        window_s=window_s,
        per_window=per_window,
        on_replication=on_replication,
        workers=workers,
    )
    for candidate in candidates:
        variant = candidate.apply(scenario)

        def run(count: int, variant=variant, candidate=candidate) -> Probe:
            point = _cached_probe(cache, variant, candidate, count, budgets, seed=seed, **checks)
            result.probes.append(point)
            if on_probe:
                on_probe(point)
            return point

        first = len(result.probes)
        met = _search(variant, candidate.name, autoscaled, budgets, run, result.notes)
        result.probes[first:] = sorted(result.probes[first:], key=lambda p: p.replicas)  # the frontier, in order
        if met is not None and (best is None or met.usd_per_unit < best[0].usd_per_unit):
            best = (met, variant)
    if best is None:
        return result
    chosen, variant = best
    result.chosen = chosen
    # The scenario written out carries the SLO it was sized for, so re-running it judges what was sized.
    result.chosen_scenario = with_replicas(variant, chosen.replicas).with_overrides(budgets.overrides())
    fresh = seed + FRESH_SEED_OFFSET
    result.recheck = probe(variant, chosen.hardware, chosen.replicas, budgets, seed=fresh, **checks)
    lowest = 0 if autoscaled else 1
    if chosen.replicas - 1 >= lowest:
        result.one_fewer_recheck = probe(variant, chosen.hardware, chosen.replicas - 1, budgets, seed=fresh, **checks)
    return result


def _search(
    variant: Scenario, name: str, autoscaled: bool, slo: float | Budgets, run, notes: list[str]
) -> Probe | None:
    """Smallest count that meets, assuming latency falls as replicas are added (common random numbers keep
    the comparison sharp): gallop up (+1, +2, +4, ...) to the first count that meets, then bisect the gap.
    The count chosen meets and the one below it, when probed, does not. `slo`: a p99 in ms, or Budgets."""
    budgets = slo if isinstance(slo, Budgets) else Budgets(slo)
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
        label, value, low, budget = _furthest_over(point, budgets)
        if below is not None and math.isfinite(value) and value / budget >= 0.98 * _ratio(below, budgets):
            if low > budget:
                notes.append(
                    f"{name}: {label} has levelled off at {value:,.1f} ms above the SLO: more replicas "
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
                    f"{name}: {label} has levelled off at {value:,.1f} ms, within the 95% CI of the SLO: "
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


def _furthest_over(point: Probe, budgets: Budgets) -> tuple[str, float, float, float]:
    """(label, p99, its CI's lower end, budget) of the measure furthest over (or least under) its budget:
    the one that decides whether more replicas still help."""
    label, value, ci, budget = max(budgets.measures(point), key=lambda m: m[1] / m[3])
    return label, value, (ci[0] if ci is not None else value), budget


def _ratio(point: Probe, budgets: Budgets) -> float:
    _, value, _, budget = _furthest_over(point, budgets)
    return value / budget


def _cached_probe(
    cache: dict,
    variant: Scenario,
    candidate: Candidate,
    count: int,
    budgets: Budgets,
    *,
    seed: int,
    **options,
) -> Probe:
    """A probe, run once per distinct model stage: candidates that differ only in name and price share the
    run (latency is the same), with the cost scaled to their price. `options`: the rest of `probe`'s."""
    key = (candidate.speedup, candidate.profile, count, seed)
    if key in cache:
        known, price = cache[key]
        if price == candidate.usd_per_hour:
            return replace(known, hardware=candidate.name)
        if price and candidate.usd_per_hour is not None:
            ratio = candidate.usd_per_hour / price
            scaled = {
                name: None if getattr(known, name) is None else getattr(known, name) * ratio
                for name in ("usd_per_hour", "usd_per_1m_queries", "usd_per_1m_tokens")
            }
            return replace(known, hardware=candidate.name, **scaled)
    point = probe(variant, candidate.name, count, budgets, seed=seed, **options)
    cache[key] = (point, candidate.usd_per_hour)
    return point
