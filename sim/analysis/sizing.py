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
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import pandas as pd

from sim.analysis.hardware_options import roofline_ratio
from sim.analysis.simulate import simulate
from sim.analysis.sizing_search import (
    Meter,
    Search,
    SearchRange,
    SizingProgress,
    ceiling_note,
    monotone_note,
    smallest_meeting,
)
from sim.errors import ServesimError
from sim.metrics.cost import replica_usd_per_hour, usd_per_1m_output_tokens
from sim.metrics.load import offered_load
from sim.spec import transforms
from sim.metrics.windows import slo_windows
from sim.spec.budget import check_whole_horizon
from sim.spec.scenario import LLMStage, ModelStage, Scenario, _load_profile, time_dependent

# Counts a search may reach above its smallest: the ceiling is start + SEARCH_SPAN - 1 (or an autoscaler's
# max_replicas, where that is higher).
SEARCH_SPAN = 40
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
    # The catalogue name where `name` is a label ("h200 (estimated)": an LLM profile transferred to
    # hardware it was not measured on, calibrate/transfer.py).
    hardware: str | None = None

    def apply(self, scenario: Scenario) -> Scenario:
        overrides: dict = {}
        if not self.own:
            name = self.hardware or self.name
            # Unpriced hardware (specifications but no price in the catalogue) runs unnamed: its cost is unknown.
            overrides["deployment.hardware"] = (
                {"name": name, "usd_per_hour": self.usd_per_hour} if self.usd_per_hour is not None else {}
            )
        for stage in scenario.stages:
            if isinstance(stage, LLMStage) and self.profile is not None:
                overrides[f"stages.{stage.name}.profile"] = self.profile
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
        if name not in catalogue and not (match["profile"] and name in _specified()):
            raise ServesimError(
                f"--hardware {name!r}: not in the hardware catalogue (have: {', '.join(sorted(catalogue))})"
            )
        speedup = float(match["speedup"]) if match["speedup"] else 1.0
        if speedup <= 0:
            raise ServesimError(f"--hardware {item!r}: speedup must be positive")
        _check_llm_candidate(item, name, speedup, match["profile"], scenario)
        roofline = None
        if not match["speedup"] and not match["profile"]:  # a bare NAME: the Sizing tab's roofline speed
            try:
                roofline = roofline_ratio(scenario, name, catalogue)
            except ServesimError as exc:
                raise ServesimError(f"--hardware {item!r}: {exc}; or {name}=PROFILE") from None
            speedup = roofline
        # Priced per replica (catalogue unit price × the GPUs a replica of the candidate holds), as `run` does.
        with_profile = Candidate(name, None, profile=match["profile"]).apply(scenario)
        price = replica_usd_per_hour(with_profile, name, catalogue) if name in catalogue else None
        llm_profiles = [stage.cost.profile for stage in with_profile.stages if isinstance(stage, LLMStage)]
        if match["profile"] and any(profile.hardware != name for profile in llm_profiles):
            raise ServesimError(
                f"--hardware {item!r}: the LLM profile was measured on {llm_profiles[0].hardware}, not {name} "
                f"(its hardware field); `servesim calibrate transfer PROFILE --to {name}` estimates one for {name}"
            )
        model_profiles = [
            _load_profile(s.profile) for s in with_profile.stages if isinstance(s, ModelStage) and s.profile
        ]
        estimated = [profile for profile in (*llm_profiles, *model_profiles) if profile.estimated]
        edge = estimated[0].estimate.get("band_edge") if estimated else None  # an interval end (`--band`)
        label = f"{name} (estimated{', ' + edge if edge else ''})" if estimated else name
        if roofline is not None and roofline != 1.0:
            label = f"{name} (roofline ×{roofline:.2g})"
        candidates.append(Candidate(label, price, speedup, match["profile"], hardware=name))
    return candidates


def _specified() -> set[str]:
    """Hardware with specifications in the catalogue (priced or not)."""
    from sim.spec.hardware import load_specifications

    return set(load_specifications())


def _check_llm_candidate(item: str, name: str, speedup: float, profile: str | None, scenario: Scenario) -> None:
    """An LLM stage's costs come from its profile: a speed-up cannot scale them, and other hardware
    without a profile would re-price the measured costs as that hardware's. Both are refused."""
    for stage in scenario.stages:
        if not isinstance(stage, LLMStage):
            continue
        if speedup != 1.0:
            raise ServesimError(
                f"--hardware {item!r}: a speed-up does not apply to LLM stage {stage.name!r} (its costs come from "
                f"stages.{stage.name}.profile); give a profile instead: {name}=PROFILE "
                f"(measured, or from `servesim calibrate transfer PROFILE --to {name}`)"
            )
        measured_on = stage.cost.profile.hardware
        if profile is None and name != measured_on:
            raise ServesimError(
                f"--hardware {item!r}: LLM stage {stage.name!r} has costs measured on {measured_on} "
                f"(stages.{stage.name}.profile); give a profile for {name}: {name}=PROFILE "
                f"(measured, or from `servesim calibrate transfer PROFILE --to {name}`)"
            )


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
    # The price of the run's horizon scaled to a day, where the summary gives it (a load that changes over time).
    usd_per_day: float | None = None

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
    """A sizing and its evidence: every probe (the frontier, per hardware in count order), the count chosen,
    its re-check on fresh seeds and the re-check of one fewer, the range each hardware was searched over,
    and notes (levelling off, noise, a raised max_replicas)."""

    slo_p99_ms: float | None
    knob: str  # "replicas" or "min_replicas"
    probes: list[Probe] = field(default_factory=list)
    chosen: Probe | None = None
    chosen_scenario: Scenario | None = None
    recheck: Probe | None = None
    one_fewer_recheck: Probe | None = None
    notes: list[str] = field(default_factory=list)
    budgets: Budgets | None = None
    ranges: dict[str, SearchRange] = field(default_factory=dict)  # hardware -> the counts searched

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
    fleet: Callable[[Scenario, int], Scenario] | None = None,
) -> Probe:
    """One count on one candidate, judged on every budget of `slo` (a p99 in ms, or Budgets). `fleet`: how
    the count is applied (default `with_replicas`; a disaggregated stage sizes one pool). `per_window`:
    the worst judged window's p99 must meet the end-to-end budget too (sim.metrics.windows: the windows of
    `servesim run`, `window_s` long or its default when None; windows too thin for a p99 are not judged)."""
    budgets = slo if isinstance(slo, Budgets) else Budgets(slo)
    result = simulate(
        (fleet or with_replicas)(scenario, count),
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
        usd_per_day=cost.get("usd_per_day"),  # added by the time-varying summary; absent from older ones
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
    return {
        "ttft_p99_ms": llm["ttft_ms"]["p99"],
        "ttft_ci95": _ci(cis.get("ttft_ms", {}).get("p99")),
        "tpot_p99_ms": llm["tpot_ms"]["p99"],
        "tpot_ci95": _ci(cis.get("tpot_ms", {}).get("p99")),
        "usd_per_1m_tokens": usd_per_1m_output_tokens(cost["usd_per_hour"], llm.get("output_tokens_per_s")),
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
    on_probe: Callable[[Probe], None] | None = None,
    on_progress: Callable[[SizingProgress], None] | None = None,
    workers: int = 1,
    clock: Callable[[], float] = time.monotonic,
) -> SizingResult:
    """The fewest replicas (or min_replicas) meeting the SLO with confidence on each candidate, by
    galloping up from the smallest count to the ceiling (`Search`) and bisecting, on common random numbers.
    The budgets are those of `llm_budgets`; the cheapest candidate is the one of lowest `usd_per_unit`.
    `on_progress` hears after every replication and probe, its ETA measured on `clock` (seconds)."""
    seed = scenario.seed if seed is None else seed
    budgets = llm_budgets(scenario, slo_p99_ms, ttft_p99_ms, tpot_p99_ms, slo_p95_ms, slo_p50_ms)
    check_requests(scenario, requests)
    per_window = budgets.p99_ms is not None and judged_by_window(scenario, window_s)  # windows of end-to-end p99
    window_s = window_s or None
    autoscaled = scenario.deployment.autoscaling is not None
    result = SizingResult(slo_p99_ms, "min_replicas" if autoscaled else "replicas", budgets=budgets)
    cache: dict[tuple, tuple[Probe, float | None]] = {}
    best: tuple[Probe, Scenario] | None = None
    variants = [candidate.apply(scenario) for candidate in candidates]
    rechecks_left = 2  # the chosen count and one fewer, on fresh seeds
    searches: list[Search] = []  # every candidate's; those sharing an earlier one's runs simulate nothing

    def probes_left() -> tuple[int, float]:
        """(most, expected) probes still to run, the re-checks included."""
        running = [search for search in searches if search.simulates]
        return (
            sum(search.left() for search in running) + rechecks_left,
            sum(search.expected_left() for search in running) + rechecks_left,
        )

    meter = Meter(replications, clock, on_progress, probes_left)
    # How every probe is run (the search's and the re-checks on fresh seeds).
    checks = dict(
        replications=replications,
        requests=requests,
        window_s=window_s,
        per_window=per_window,
        on_replication=meter.replication,
        workers=workers,
    )
    shared: set[tuple] = set()
    for candidate, variant in zip(candidates, variants):
        runs = (candidate.speedup, candidate.profile)
        simulates = runs not in shared
        search = Search(search_range(variant, autoscaled), simulates, meter.probe_done if simulates else None)
        searches.append(search)
        shared.add(runs)
        result.ranges[candidate.name] = search.span
    for candidate, variant, search in zip(candidates, variants, searches):

        def run(count: int, variant=variant, candidate=candidate) -> Probe:
            point = _cached_probe(cache, variant, candidate, count, budgets, seed=seed, **checks)
            result.probes.append(point)
            if on_probe:
                on_probe(point)
            return point

        first = len(result.probes)
        met = _search(variant, candidate.name, autoscaled, budgets, run, result.notes, search)
        result.probes[first:] = sorted(result.probes[first:], key=lambda p: p.replicas)  # the frontier, in order
        # Cheapest first; among candidates of one price (unpriced ones: unknown cost) the fewest replicas.
        if met is not None and (
            best is None or (met.usd_per_unit, met.replicas) < (best[0].usd_per_unit, best[0].replicas)
        ):
            best = (met, variant)
    if best is None:
        return result
    chosen, variant = best
    if not math.isfinite(chosen.usd_per_unit):
        result.notes.append(
            f"{chosen.hardware}: chosen with no price (the catalogue has none): of the candidates that meet the SLO, "
            "none is priced, so the one needing the fewest replicas is chosen"
        )
    result.chosen = chosen
    # The scenario written out carries the SLO it was sized for, so re-running it judges what was sized.
    result.chosen_scenario = with_replicas(variant, chosen.replicas).with_overrides(budgets.overrides())
    fresh = seed + FRESH_SEED_OFFSET
    lowest = result.ranges[chosen.hardware].start if autoscaled else 1
    rechecks_left = 2 if chosen.replicas - 1 >= lowest else 1
    result.recheck = probe(variant, chosen.hardware, chosen.replicas, budgets, seed=fresh, **checks)
    rechecks_left -= 1
    meter.probe_done()
    if result.recheck.verdict != "meets":
        result.notes.append(
            f"{chosen.hardware}: {result.knob} {chosen.replicas} does not meet the SLO on fresh seeds "
            f"({result.recheck.verdict}): the choice is within noise (more replications sharpen it)"
        )
    if rechecks_left:
        fewer = probe(variant, chosen.hardware, chosen.replicas - 1, budgets, seed=fresh, **checks)
        result.one_fewer_recheck = fewer
        rechecks_left -= 1
        meter.probe_done()
        if fewer.verdict == "meets":
            result.notes.append(
                f"{chosen.hardware}: one fewer ({result.knob} {fewer.replicas}) meets the SLO on fresh seeds: the probes "
                "are not monotone across seeds (noise); the choice is the smallest count that met on the search's "
                "seeds with one fewer failing (more replications sharpen it)"
            )
    return result


def check_requests(scenario: Scenario, requests: int | None) -> None:
    """A sizing cuts a steady load short on request, never a rate that follows the clock: every probe
    simulates the whole horizon (the shared refusal of `servesim run`, sweep and advise)."""
    if requests is not None:
        check_whole_horizon(scenario, "--requests")


def search_range(variant: Scenario, autoscaled: bool) -> SearchRange:
    """The counts searched on `variant`: from its smallest stable fleet, or its autoscaler's lowest
    min_replicas, SEARCH_SPAN counts up (an autoscaler: to its max_replicas where that is higher)."""
    if not autoscaled:
        start = smallest_stable(variant)
        return SearchRange(start, start + SEARCH_SPAN - 1)
    scaling = variant.deployment.autoscaling
    # Ray Serve and Knative can scale from zero on traffic; the HPA cannot go below one replica.
    start = int(scaling.policy == "hpa")
    return SearchRange(start, max(scaling.max_replicas, start + SEARCH_SPAN - 1), scaling.max_replicas)


def _search(
    variant: Scenario,
    name: str,
    autoscaled: bool,
    slo: float | Budgets,
    run,
    notes: list[str],
    search: Search | None = None,
) -> Probe | None:
    """Smallest count that meets, assuming latency falls as replicas are added (common random numbers keep
    the comparison sharp): gallop up (+1, +2, +4, ...) to the first count that meets, or to the ceiling,
    then bisect the gap: O(log ceiling) probes. The count chosen meets and the one below it, when probed,
    does not. `slo`: a p99 in ms, or Budgets. Notes say where the probes are not monotone and, where none
    meets, what the ceiling's probe shows."""
    budgets = slo if isinstance(slo, Budgets) else Budgets(slo)
    search = search or Search(search_range(variant, autoscaled))
    span = search.span
    while (count := search.next_count()) is not None:
        search.record(run(count))
    knob = "min_replicas" if autoscaled else "replicas"
    probes = sorted(search.probes, key=lambda p: p.replicas)
    if span.max_replicas is not None and span.ceiling > span.max_replicas and probes[-1].replicas > span.max_replicas:
        notes.append(
            f"{name}: min_replicas above max_replicas ({span.max_replicas}) were probed with max_replicas raised "
            f"to match (a fleet that never scales below min_replicas), up to the search's ceiling of {span.ceiling}"
        )
    chosen = smallest_meeting(probes, span.start)
    note = monotone_note(name, knob, probes, budgets)
    if note:
        notes.append(note + ("; the choice is the smallest count that meets with one fewer failing" if chosen else ""))
    if chosen is None:
        notes.append(ceiling_note(name, knob, probes, budgets))
    return chosen


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
