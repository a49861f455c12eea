"""The lever advisor: profile the scenario first, then rank stacks of one to three levers by tail latency,
cost and accuracy.

1. Profile: the latency budget by stage of the requests at p50 and p99 (sim/metrics/stages.stage_shares), the
   dominant stage in words, the offered load of every resource, and the gap to the SLO.
2. Candidates: the levers of sim/analysis/advise_levers.py that apply (the others are listed with the reason);
   a lever acting only on stages that hold under CRITICAL_SHARE of p99 is skipped, with the reason.
3. Stacks: single levers, then pairs and triples built from the best BEAM singles / pairs (one lever per
   group), all run on common random numbers (same seed) with replication CIs, plus a paired CI of the
   p99 change against the scenario as it is.
4. Verdict: ranked rows, warnings and the recommendation sentence.

Ranking. With an SLO: stacks that meet it first, and among those the cheapest ($/1M queries, within
COST_TIE), then the smallest accuracy cost, then the fewest levers, then the lowest p99; stacks that miss
it follow by p99. Without an SLO: by p99, then cost, then accuracy. A $/1M budget puts stacks over it last.
Times in ms, rates in requests/s, money in USD.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from sim.analysis.advise_levers import QUANTISATION, Lever, candidate_levers, stack_accuracy
from sim.analysis.simulate import simulate
from sim.errors import ServesimError
from sim.metrics.groups import measurement_groups
from sim.metrics.summary import ci95, stage_columns
from sim.metrics.stages import stage_shares
from sim.spec import transforms
from sim.spec.scenario import Scenario

CRITICAL_SHARE = 0.05  # a lever whose stages hold less of p99 than this is off the critical path
NON_DOMINANT_SHARE = 0.5  # warn when a lever's stages hold under this fraction of the dominant stage's share
COST_TIE = 0.02  # costs within 2% of each other rank as equal
BEAM = 5
DEFAULT_REQUESTS = 3000
DEFAULT_REPLICATIONS = 3


class AdviceError(ServesimError):
    """An advisor option that cannot work (an SLO that is not positive, a stack size out of range)."""


@dataclass
class Profile:
    """Where the time goes in the scenario as it is."""

    shares_ms: pd.DataFrame  # rows p50 / p99, columns stage_shares names (queue waits apart), ms
    by_stage: pd.DataFrame  # rows p50 / p99, one column per stage (its queue wait included), ms
    dominant: str
    sentence: str
    offered_load: dict[str, float]
    slo_key: str | None
    slo_ms: float | None
    latency_ms: dict[str, float]

    def share(self, columns: list[str], at: str = "p99") -> float:
        row = self.shares_ms.loc[at]
        total = float(row.sum())
        return float(sum(row.get(c, 0.0) for c in columns) / total) if total > 0 else 0.0

    @property
    def slo_gap_ms(self) -> float | None:
        if self.slo_key is None:
            return None
        return self.latency_ms[self.slo_key] - self.slo_ms


@dataclass
class Row:
    """One evaluated stack (the empty stack is the scenario as it is)."""

    levers: tuple[Lever, ...]
    overrides: dict[str, Any]
    scenario: Scenario
    summary: dict
    shares_ms: pd.DataFrame
    p99_change_ci95: tuple[float, float]  # paired over replications, ms
    per_replication_p99: np.ndarray = field(default_factory=lambda: np.array([]))
    warnings: list[str] = field(default_factory=list)
    rank: int = 0

    @property
    def label(self) -> str:
        return " + ".join(lever.name for lever in self.levers) or "as is"

    @property
    def accuracy_pct(self) -> float:
        return stack_accuracy(self.levers)

    @property
    def accuracy(self) -> str:
        pct = self.accuracy_pct
        return "none expected" if pct == 0 else f"~{pct:.2g}%"

    def latency(self, key: str) -> float:
        return self.summary["latency_ms"][key]

    @property
    def cost(self) -> float | None:
        return self.summary["cost"]["usd_per_1m_queries"]

    @property
    def throughput_rps(self) -> float:
        return self.summary["throughput_rps"]

    @property
    def slo_met(self) -> bool | None:
        return self.summary["slo"]["met"]


@dataclass
class Advice:
    base: Scenario  # the scenario as evaluated (SLO and run length set); rows' overrides apply to it
    seed: int
    replications: int
    profile: Profile
    rows: list[Row]  # ranked, the scenario as it is included
    baseline: Row
    not_offered: list[tuple[str, str]]
    skipped: list[tuple[str, str]]
    notes: list[str]
    recommendation: str
    budget_usd_per_1m: float | None = None


def prepare(
    scenario: Scenario,
    slo_p99_ms: float | None = None,
    slo_p95_ms: float | None = None,
    requests: int = DEFAULT_REQUESTS,
) -> Scenario:
    """The scenario the advisor evaluates: the SLO of the options (if any), and a run of `requests` per
    replication with the scenario's warm-up share (trace or duration-based workloads cut to that length)."""
    if slo_p99_ms is not None and slo_p95_ms is not None:
        raise AdviceError("give --slo-p99-ms or --slo-p95-ms, not both")
    for name, value in (("--slo-p99-ms", slo_p99_ms), ("--slo-p95-ms", slo_p95_ms)):
        if value is not None and not value > 0:
            raise AdviceError(f"{name} must be positive (got {value})")
    if requests < 200:
        raise AdviceError(f"--requests must be at least 200 (got {requests})")
    scenario = transforms.with_run_length(scenario, requests)
    if slo_p99_ms is not None or slo_p95_ms is not None:
        slo = {"p99_ms": slo_p99_ms} if slo_p99_ms is not None else {"p95_ms": slo_p95_ms}
        scenario = scenario.with_overrides({"slo": slo})
    return scenario


def profile(row: Row) -> Profile:
    """The latency budget of the scenario as it is, the dominant stage in words, loads and the SLO gap."""
    scenario = row.scenario
    shares = row.shares_ms
    by_stage = pd.DataFrame(
        {s.name: shares.get(s.name, 0.0) + shares.get(f"{s.name}_queue", 0.0) for s in scenario.stages},
        index=shares.index,
    )
    lookups = [c for c in shares.columns if c.endswith("_lookup")]
    if lookups:
        by_stage["cache lookups"] = shares[lookups].sum(axis=1)
    p99 = by_stage.loc["p99"]
    total = float(p99.sum())
    ordered = p99.sort_values(ascending=False)
    dominant = str(ordered.index[0])
    parts = [
        f"{stage_words(scenario, name)} is {value / total:.0%} of p99 ({value:.3g} ms" + _queue_part(shares, name) + ")"
        for name, value in ordered.items()
        if value > 0
    ][:3]
    forward = next((s.name for s in scenario.stages if s.kind in ("model", "llm")), None)
    if forward and forward not in ordered.index[:3] and total > 0:
        parts.append(f"the forward pass ({forward}) {p99[forward] / total:.0%}")
    budgets = scenario.slo.budgets()
    slo_key, slo_ms = None, None
    if budgets:
        q = max(budgets)
        slo_key, slo_ms = f"p{round(q * 100)}", budgets[q]
    return Profile(
        shares_ms=shares,
        by_stage=by_stage,
        dominant=dominant,
        sentence="; ".join(parts),
        offered_load=row.summary["offered_load"],
        slo_key=slo_key,
        slo_ms=slo_ms,
        latency_ms=row.summary["latency_ms"],
    )


def stage_words(scenario: Scenario, name: str) -> str:
    """A stage named for a reader: 'preprocessing (preprocess, CPU pool)', 'the forward pass (forward)'."""
    try:
        stage = scenario.stage(name)
    except KeyError:
        return name
    if stage.kind in ("model", "llm"):
        return f"the forward pass ({name})"
    lowered = name.lower()
    if stage.kind == "pool":
        what = "preprocessing" if "pre" in lowered or "decode" in lowered else name.replace("_", " ")
        return (
            f"{what} ({name}, pool of {stage.workers})"
            if what != name.replace("_", " ")
            else f"{what} (pool of {stage.workers})"
        )
    return "the network" if "network" in lowered else f"{name.replace('_', ' ')} (delay)"


def _queue_part(shares: pd.DataFrame, name: str) -> str:
    queue = f"{name}_queue"
    if queue in shares.columns and shares.loc["p99", queue] > 0.05 * max(shares.loc["p99", name], 1e-9):
        return f", {shares.loc['p99', queue]:.3g} of it queueing"
    return ""


def apply_stack(base: Scenario, levers: tuple[Lever, ...]) -> tuple[Scenario, dict[str, Any]]:
    """The scenario with each lever applied in turn, and the merged overrides that give it from `base`."""
    scenario, merged = base, {}
    for lever in sorted(levers, key=lambda lever: lever.apply_last):  # stable: the given order otherwise
        overrides = lever.overrides(scenario)
        scenario = scenario.with_overrides(overrides)
        merged.update(overrides)
    return scenario, merged


def evaluate(
    base: Scenario, levers: tuple[Lever, ...], seed: int, replications: int, baseline: Row | None = None
) -> Row:
    """Run one stack on the common random numbers of `seed`; the paired p99 change is against `baseline`."""
    scenario, overrides = apply_stack(base, levers)
    result = simulate(scenario, seed=seed, replications=replications)
    shares = stage_shares(result.log, stage_columns(scenario), (0.50, 0.99))
    per_rep = _per_replication_p99(result.log)
    row = Row(
        levers=levers,
        overrides=overrides,
        scenario=scenario,
        summary=result.summary,
        shares_ms=shares,
        p99_change_ci95=(0.0, 0.0),
        per_replication_p99=per_rep,
    )
    if baseline is not None:
        base_rep = baseline.per_replication_p99
        diff = per_rep - base_rep if len(per_rep) == len(base_rep) else np.array([])
        row.p99_change_ci95 = ci95(diff) if len(diff) > 1 else (math.nan, math.nan)
    return row


def _per_replication_p99(log: pd.DataFrame) -> np.ndarray:
    values = []
    for group in measurement_groups(log):
        latency = group.loc[~group["rejected"].to_numpy(), "latency_ms"].to_numpy()
        values.append(float(np.quantile(latency, 0.99)) if len(latency) else math.nan)
    return np.asarray(values)


def rank_key(row: Row, baseline: Row, budget: float | None) -> tuple:
    """Sort key of a row (smaller ranks higher); see the module docstring."""
    met = row.slo_met
    over_budget = budget is not None and row.cost is not None and row.cost > budget
    p99 = row.latency("p99")
    p99 = p99 if math.isfinite(p99) else math.inf
    cost = row.cost if row.cost is not None and math.isfinite(row.cost) else 0.0
    base_cost = baseline.cost if baseline.cost else 1.0
    cost_bucket = round(math.log(max(cost, 1e-12) / base_cost) / math.log1p(COST_TIE)) if cost > 0 else 0
    accuracy = round(row.accuracy_pct * 2) / 2
    exact = row.accuracy_pct  # last: between equal p99s, the smaller accuracy cost
    if met:
        return (over_budget, 0, cost_bucket, accuracy, len(row.levers), p99, exact)
    if met is False:
        return (over_budget, 1, p99, cost_bucket, accuracy, len(row.levers), exact)
    return (over_budget, 0, p99, cost_bucket, accuracy, len(row.levers), exact)


def advise(
    scenario: Scenario,
    *,
    slo_p99_ms: float | None = None,
    slo_p95_ms: float | None = None,
    budget_usd_per_1m: float | None = None,
    requests: int = DEFAULT_REQUESTS,
    replications: int = DEFAULT_REPLICATIONS,
    max_stack: int = 3,
    seed: int | None = None,
    cache_hit_rate: float = 0.3,
    beam: int = BEAM,
    on_progress: Callable[[str], None] | None = None,
) -> Advice:
    """Profile `scenario`, evaluate lever stacks of 1..max_stack on common random numbers, rank them."""
    if not 1 <= max_stack <= 3:
        raise AdviceError(f"--max-stack must be 1, 2 or 3 (got {max_stack})")
    if replications < 2:
        raise AdviceError(f"--replications must be at least 2 for confidence intervals (got {replications})")
    if not 0 < cache_hit_rate < 1:
        raise AdviceError(f"cache hit rate must be between 0 and 1 (got {cache_hit_rate})")
    base = prepare(scenario, slo_p99_ms, slo_p95_ms, requests)
    seed = base.seed if seed is None else seed
    progress = on_progress or (lambda _: None)
    progress("profiling the scenario as it is")
    baseline = evaluate(base, (), seed, replications)
    prof = profile(baseline)

    offered, not_offered, skipped = [], [], []
    for lever in candidate_levers(base, cache_hit_rate):
        why = lever.applies(base)
        if why is not None:
            not_offered.append((lever.name, why))
            continue
        share = prof.share(lever.columns(base))
        if lever.columns(base) and share < CRITICAL_SHARE and not lever.cuts_cost(base):
            where = ", ".join(c.replace("_queue", " queue wait") for c in lever.columns(base)[:3])
            skipped.append((lever.name, f"not on the critical path: {where} take {share:.1%} of p99"))
            continue
        offered.append(lever)

    evaluated: dict[frozenset, Row] = {}

    def run(stack: tuple[Lever, ...]) -> Row | None:
        key = frozenset(lever.name for lever in stack)
        if key in evaluated:
            return evaluated[key]
        progress(" + ".join(lever.name for lever in stack))
        try:
            row = evaluate(base, stack, seed, replications, baseline)
        except ServesimError as exc:  # a transform the schema refuses (e.g. a profile's batch limit)
            skipped.append(
                (" + ".join(lever.name for lever in stack), f"invalid scenario: {str(exc).splitlines()[-1].strip()}")
            )
            return None
        evaluated[key] = row
        return row

    def ranked(rows: list[Row]) -> list[Row]:
        return sorted(rows, key=lambda r: rank_key(r, baseline, budget_usd_per_1m))

    singles = [r for r in (run((lever,)) for lever in offered) if r is not None]
    improving = [
        r
        for r in ranked(singles)
        if rank_key(r, baseline, budget_usd_per_1m) < rank_key(baseline, baseline, budget_usd_per_1m)
        or r.latency("p99") < baseline.latency("p99")
    ]
    layer = improving[:beam]
    for size in range(2, max_stack + 1):
        grown = []
        for row in layer:
            for single in improving[:beam]:
                lever = single.levers[0]
                if any(existing.group == lever.group for existing in row.levers):
                    continue
                stack = tuple(sorted(row.levers + (lever,), key=lambda lever: offered.index(lever)))
                new = run(stack)
                if new is not None and len(new.levers) == size:
                    grown.append(new)
        layer = ranked(list({id(r): r for r in grown}.values()))[:beam]

    rows = ranked([baseline, *evaluated.values()])
    for i, row in enumerate(rows, start=1):
        row.rank = i
        row.warnings = row_warnings(row, baseline, prof)
    notes = profile_notes(rows, prof, base)
    count, horizon_ms = scenario.workload.length()
    changing = (
        scenario.workload.arrival.process in ("on_off", "time_varying", "trace")
        or scenario.deployment.autoscaling is not None
        or any(c.keys is not None for c in scenario.caches)
    )
    if changing and (horizon_ms is not None or (count is not None and count > requests)):
        whole = f"{horizon_ms / 1000:g} s" if horizon_ms is not None else f"{count} requests"
        notes.append(
            f"each stack ran the first {requests} requests of the workload ({whole} as written): for "
            "time-varying traffic or cold starts, raise --requests to cover the period that matters"
        )
    advice = Advice(
        base=base,
        seed=seed,
        replications=replications,
        profile=prof,
        rows=rows,
        baseline=baseline,
        not_offered=not_offered,
        skipped=skipped,
        notes=notes,
        recommendation="",
        budget_usd_per_1m=budget_usd_per_1m,
    )
    advice.recommendation = recommendation(advice)
    return advice


def row_warnings(row: Row, baseline: Row, prof: Profile) -> list[str]:
    """The advisor's three warnings, where they apply to this stack."""
    out: list[str] = []
    if not row.levers:
        return out
    mean0, mean1 = baseline.latency("mean"), row.latency("mean")
    p990, p991 = baseline.latency("p99"), row.latency("p99")
    if mean1 < mean0 and p991 > p990:
        out.append(
            f"helps the mean ({_pct(mean1, mean0)}) but hurts p99 ({_pct(p991, p990)})"
            + (
                ": the batching window adds wait to the tail"
                if any(lever.family == "batching" for lever in row.levers)
                else ""
            )
        )
    dominant_share = prof.share([prof.dominant, f"{prof.dominant}_queue"])
    on_dominant = any(
        prof.dominant in (lever.stage, *[c.removesuffix("_queue") for c in lever.columns(row.scenario)])
        for lever in row.levers
    )
    for lever in row.levers:
        if on_dominant or lever.family not in ("forward", "preprocessing", "batching") or lever.stage is None:
            continue
        share = prof.share(lever.columns(row.scenario))
        if share < NON_DOMINANT_SHARE * dominant_share:
            ms = float(sum(prof.shares_ms.loc["p99"].get(c, 0.0) for c in lever.columns(row.scenario)))
            out.append(
                f"{lever.name} optimises {lever.stage} ({ms:.3g} ms, {share:.0%} of p99) while "
                f"{prof.dominant} holds {dominant_share:.0%} of p99"
            )
            break
    if row.throughput_rps > 1.01 * baseline.throughput_rps and row.slo_met is False:
        broke = "broke" if baseline.slo_met else "is still missed"
        out.append(f"throughput up {_pct(row.throughput_rps, baseline.throughput_rps)} but the latency SLO {broke}")
    if row.slo_met and prof.slo_key:
        high = row.summary.get("latency_ms_ci95", {}).get(prof.slo_key, [math.nan, math.nan])[1]
        if math.isfinite(high) and high > prof.slo_ms:
            out.append(
                f"meets the SLO on the point estimate only: the {prof.slo_key} 95% CI reaches {high:.3g} ms "
                f"> {prof.slo_ms:g} ms (run more --requests before deciding)"
            )
    out += [w for w in row.summary["warnings"] if w.startswith("unstable")]
    return out


def profile_notes(rows: list[Row], prof: Profile, scenario: Scenario) -> list[str]:
    """'Profile before you optimise', said with this scenario's numbers."""
    notes = []
    single = [r for r in rows if len(r.levers) == 1]
    quant = next((r for r in single if getattr(r.levers[0], "lever", "") in QUANTISATION), None)
    dominant_levers = next((r for r in single if r.levers[0].stage == prof.dominant), None)
    dominant_kind = scenario.stage(prof.dominant).kind if prof.dominant in [s.name for s in scenario.stages] else ""
    if quant and dominant_levers and dominant_kind not in ("model", "llm") and dominant_levers.rank < quant.rank:
        notes.append(
            f"{stage_words(scenario, prof.dominant)} dominates ({prof.share([prof.dominant, prof.dominant + '_queue']):.0%} "
            f"of p99): {dominant_levers.levers[0].name} (rank {dominant_levers.rank}, p99 "
            f"{dominant_levers.latency('p99'):.3g} ms) ranks above quantisation ({quant.levers[0].name}, rank "
            f"{quant.rank}, p99 {quant.latency('p99'):.3g} ms)"
        )
    queue_share = prof.share([c for c in prof.shares_ms.columns if c.endswith("_queue")])
    if queue_share > 0.5:
        notes.append(f"queue waits are {queue_share:.0%} of p99: capacity (replicas, batching) before speed")
    return notes


def recommendation(advice: Advice) -> str:
    """The recommended stack in one sentence, with its p99, cost and accuracy against the scenario as is."""
    best, base = advice.rows[0], advice.baseline
    key = advice.profile.slo_key or "p99"
    slo = ""
    if advice.profile.slo_key:
        slo = f" ({key} SLO {advice.profile.slo_ms:g} ms {'met' if best.slo_met else 'missed'})"
    if not best.levers:
        why = "it meets the SLO at the lowest cost" if base.slo_met else "no evaluated stack does better"
        text = f"Keep the scenario as it is: {why} ({key} {_ms(base.latency(key))} ms{slo.replace(' (', ', ').rstrip(')')})."

        def same_cost(row: Row) -> bool:
            return row.cost == base.cost or (
                row.cost is not None and bool(base.cost) and abs(row.cost / base.cost - 1) <= COST_TIE
            )

        faster = [r for r in advice.rows if r.levers and same_cost(r) and r.latency(key) < base.latency(key)]
        if faster:
            pick = faster[0]
            text += (
                f" For headroom at the same cost: {pick.label} ({key} {_ms(base.latency(key))} → "
                f"{_ms(pick.latency(key))} ms, {_accuracy_phrase(pick)})."
            )
        return text
    cost = ""
    if best.cost is not None and base.cost:
        same = abs(best.cost / base.cost - 1) <= COST_TIE
        cost = ", same cost" if same else f", {_pct(best.cost, base.cost)} cost"
    missed = "" if best.slo_met is not False else " — no evaluated stack meets the SLO; this one comes closest"
    caveat = next((f" ({w.split(': ', 1)[1]})" for w in best.warnings if "point estimate only" in w), "")
    return (
        f"{best.label}: {key} {_ms(base.latency(key))} → {_ms(best.latency(key))} ms{slo}{cost}, "
        f"{_accuracy_phrase(best)}{missed}{caveat}."
    )


def _ms(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _accuracy_phrase(row: Row) -> str:
    return "no accuracy cost expected" if row.accuracy_pct == 0 else f"{row.accuracy} accuracy"


def _pct(new: float, old: float) -> str:
    if not old or not math.isfinite(old) or not math.isfinite(new):
        return "n/a"
    change = (new - old) / old
    return f"{change:+.0%}".replace("-", "−")


def verdict_table(advice: Advice, limit: int | None = None) -> pd.DataFrame:
    """The ranked table: p50/p95/p99 and their change, throughput, $/1M, accuracy, SLO met, warnings."""
    base = advice.baseline
    records = []
    for row in advice.rows[:limit]:
        low, high = row.p99_change_ci95
        records.append(
            {
                "rank": row.rank,
                "stack": row.label,
                "p50_ms": row.latency("p50"),
                "p50_change": _pct(row.latency("p50"), base.latency("p50")),
                "p95_ms": row.latency("p95"),
                "p95_change": _pct(row.latency("p95"), base.latency("p95")),
                "p99_ms": row.latency("p99"),
                "p99_change": _pct(row.latency("p99"), base.latency("p99")),
                "p99_change_ci95_ms": f"[{low:+.3g}, {high:+.3g}]" if row.levers else "",
                "throughput_rps": row.throughput_rps,
                "usd_per_1m": row.cost,
                "cost_change": _pct(row.cost, base.cost) if row.cost is not None and base.cost else "n/a",
                "accuracy": row.accuracy,
                "slo_met": row.slo_met,
                "warnings": len(row.warnings),
            }
        )
    return pd.DataFrame.from_records(records)
