"""Sizing a disaggregated LLM stage: the fewest prefill and decode replicas that meet the TTFT and TPOT p99
budgets with confidence, and the colocated fleet that meets the same budgets, side by side.

The two pools are searched one after the other, each with the gallop-then-bisect `Search` of `size`:
- **Prefill pool** on the TTFT budget. A request's first token leaves when its KV transfer ends
  (sim/engine/llm/disaggregated.py), so TTFT depends on the prefill pool and the link only: the decode pool
  is held at the scenario's count while the prefill pool is searched.
- **Decode pool** on every budget (TPOT and any end-to-end one), with the prefill pool at the count found:
  the decode pool's arrivals are the prefill pool's departures.
The pair found is re-checked on fresh seeds, with one fewer in each pool, and the colocated stage (every
replica running both phases on the stage's own profile and price) is sized by `size` on the same budgets,
so the answer reads "colocated 7 or 4 prefill + 2 decode", each with its $ per 1M output tokens.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from sim.analysis.sizing import (
    FRESH_SEED_OFFSET,
    SEARCH_SPAN,
    Budgets,
    Candidate,
    Probe,
    SizingResult,
    probe,
    size,
)
from sim.analysis.sizing_search import Meter, Search, SearchRange, ceiling_note, monotone_note, smallest_meeting
from sim.errors import ServesimError
from sim.spec.scenario import Scenario
from sim.spec.transforms import colocated, split_stage, with_split


@dataclass
class SplitSizing:
    """A disaggregated sizing and its evidence: each pool's probes (`prefill` on TTFT with the decode pool as
    written, `decode` on every budget with the prefill count found), the pair chosen, its fresh-seed re-check
    and those of one fewer in each pool, the colocated sizing on the same budgets (None when not asked), and
    notes."""

    budgets: Budgets
    stage: str
    prefill: list[Probe] = field(default_factory=list)
    decode: list[Probe] = field(default_factory=list)
    chosen: Probe | None = None  # its `replicas`: prefill + decode
    chosen_pools: tuple[int, int] | None = None  # (prefill, decode)
    chosen_scenario: Scenario | None = None
    recheck: Probe | None = None
    fewer_prefill: Probe | None = None
    fewer_decode: Probe | None = None
    colocated: SizingResult | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def cheaper(self) -> str | None:
        """ "disaggregated" or "colocated": which meets the budgets for less per 1M output tokens (None when
        neither meets, or colocated was not sized); a tie goes to colocated, the simpler fleet."""
        split = self.chosen.usd_per_unit if self.chosen is not None else math.inf
        together = (
            self.colocated.chosen.usd_per_unit
            if self.colocated is not None and self.colocated.chosen is not None
            else math.inf
        )
        if not (math.isfinite(split) or math.isfinite(together)):
            return None
        return "colocated" if together <= split else "disaggregated"


def split_budgets(budgets: Budgets, stage: str) -> Budgets:
    """The prefill pool's budget (TTFT alone). A split is sized on both TTFT and TPOT: without a TTFT budget
    one prefill replica would do however long the prompts wait, without a TPOT one a decode replica."""
    if budgets.ttft_p99_ms is None or budgets.tpot_p99_ms is None:
        raise ServesimError(
            f"stages.{stage}.disaggregated: sizing the prefill and decode pools needs a TTFT and a TPOT p99 budget "
            "(slo.ttft_ms and slo.tpot_ms, or --ttft-p99-ms and --tpot-p99-ms)"
        )
    return Budgets(ttft_p99_ms=budgets.ttft_p99_ms)


def size_split(
    scenario: Scenario,
    budgets: Budgets,
    *,
    replications: int = 5,
    requests: int | None = None,
    seed: int | None = None,
    with_colocated: bool = True,
    on_probe: Callable[[str, Probe], None] | None = None,
    on_progress=None,
    workers: int = 1,
    clock: Callable[[], float] = time.monotonic,
) -> SplitSizing:
    """The fewest prefill replicas meeting TTFT, then the fewest decode replicas meeting every budget beside
    them (see the module docstring); `on_probe(pool, probe)` hears each probe, pool "prefill", "decode",
    "re-check" or "colocated". `with_colocated`: also size the colocated fleet on the same budgets."""
    stage = split_stage(scenario)
    if stage is None:
        raise ServesimError("stages: no LLM stage has disaggregated prefill and decode pools to size")
    if scenario.deployment.autoscaling is not None:
        raise ServesimError(f"stages.{stage}.disaggregated: pools with autoscaling are not modelled; size fixed pools")
    prefill_budget = split_budgets(budgets, stage)
    seed = scenario.seed if seed is None else seed
    pools = scenario.stage(stage).disaggregated
    result = SplitSizing(budgets, stage)
    searches: list[Search] = []

    def probes_left() -> tuple[int, float]:
        return sum(s.left() for s in searches) + 3, sum(s.expected_left() for s in searches) + 3

    meter = Meter(replications, clock, on_progress, probes_left)
    checks = dict(replications=replications, requests=requests, window_s=None, on_replication=meter.replication)

    def search(pool: str, pair: Callable[[int], tuple[int, int]], judged: Budgets, found: list[Probe]) -> Probe | None:
        span = SearchRange(1, SEARCH_SPAN)
        plan = Search(span, on_record=meter.probe_done)
        searches.append(plan)
        while (count := plan.next_count()) is not None:
            p, d = pair(count)
            fleet = lambda s, _count, p=p, d=d: with_split(s, p, d)  # noqa: E731
            point = probe(
                scenario, f"{p} prefill + {d} decode", count, judged, seed=seed, fleet=fleet, workers=workers, **checks
            )
            found.append(point)
            if on_probe:
                on_probe(pool, point)
            plan.record(point)
        found.sort(key=lambda p: p.replicas)
        chosen = smallest_meeting(found, span.start)
        note = monotone_note(f"{pool} pool", "replicas", found, judged)
        if note:
            result.notes.append(note)
        if chosen is None:
            result.notes.append(ceiling_note(f"{pool} pool", "replicas", found, judged))
        return chosen

    held = pools.decode.replicas
    met = search("prefill", lambda p: (p, held), prefill_budget, result.prefill)
    if met is not None:
        prefill = met.replicas
        met = search("decode", lambda d: (prefill, d), budgets, result.decode)
    if met is not None:
        decode = met.replicas
        result.chosen_pools = (prefill, decode)
        result.chosen = replace(met, hardware=f"{prefill} prefill + {decode} decode", replicas=prefill + decode)
        result.chosen_scenario = with_split(scenario, prefill, decode).with_overrides(budgets.overrides())
        _recheck(scenario, result, budgets, seed + FRESH_SEED_OFFSET, checks, workers, on_probe, meter)
    if with_colocated:
        together = colocated(scenario)
        hardware = together.deployment.hardware
        result.colocated = size(
            together,
            budgets.p99_ms,
            [Candidate(hardware.name or "as written", hardware.usd_per_hour, own=True)],
            ttft_p99_ms=budgets.ttft_p99_ms,
            tpot_p99_ms=budgets.tpot_p99_ms,
            slo_p95_ms=budgets.p95_ms,
            slo_p50_ms=budgets.p50_ms,
            replications=replications,
            requests=requests,
            window_s=0,
            seed=seed,
            on_probe=(lambda point: on_probe("colocated", point)) if on_probe else None,
            workers=workers,
            clock=clock,
        )
    return result


def _recheck(scenario, result: SplitSizing, budgets, fresh: int, checks, workers, on_probe, meter) -> None:
    """The pair chosen and one fewer in each pool, on fresh seeds; notes where they disagree with the search."""
    prefill, decode = result.chosen_pools
    pairs = {
        "re-check": (prefill, decode),
        "fewer prefill": (prefill - 1, decode),
        "fewer decode": (prefill, decode - 1),
    }
    for label, (p, d) in pairs.items():
        if p < 1 or d < 1:
            continue
        point = probe(
            scenario,
            f"{p} prefill + {d} decode",
            p + d,
            budgets,
            seed=fresh,
            workers=workers,
            fleet=lambda s, _count, p=p, d=d: with_split(s, p, d),
            **checks,
        )
        meter.probe_done()
        if on_probe:
            on_probe("re-check", point)
        if label == "re-check":
            result.recheck = point
            if point.verdict != "meets":
                result.notes.append(
                    f"{prefill} prefill + {decode} decode does not meet the budgets on fresh seeds ({point.verdict}): "
                    "the choice is within noise (more replications or requests sharpen it)"
                )
        else:
            setattr(result, label.replace(" ", "_"), point)
            if point.verdict == "meets":
                result.notes.append(
                    f"{p} prefill + {d} decode ({label}) meets the budgets on fresh seeds: the searches' probes are "
                    "within noise of the boundary (more replications or requests sharpen it)"
                )
