"""Autoscaling min-replica sizing, the planner's third question: `servesim size
scenarios/autoscale-diurnal.yaml --replications 2 --workers 2` (every probe the whole day, every 5-minute
window judged, the default for a load that changes over time; each probe's two replications in parallel on
the machine's 2 cores), run in-process through the function the CLI calls: wall time against the
performance issue's target of 3 minutes, with the answer and the probes it took; and how good its ETA was,
the time still to go it predicted after the first probe and halfway against the time in fact still to go
(target: within 2x; the ETA is the plan's average over where the answer may lie, its bound beside it, and
after the first probe it carries that probe's start-up, the process pool's). Quick: the day's curve compressed into 20
minutes (a speed figure, not the day's answer; a count of requests would cut the day short, which sizing
refuses)."""

from __future__ import annotations

import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 180.0
QUICK_HORIZON_S = 1200.0


def compressed(scenario, horizon_s: float = QUICK_HORIZON_S):
    """The scenario's time profile (its points, spikes and warm-up) squeezed into `horizon_s`."""
    raw = scenario.raw["workload"]
    scale = horizon_s / raw["arrival"]["period_s"]
    return scenario.with_overrides(
        {
            "workload.arrival.period_s": horizon_s,
            "workload.arrival.points": [[t * scale, rate] for t, rate in raw["arrival"]["points"]],
            "workload.arrival.spikes": [
                {**spike, "at_s": spike["at_s"] * scale, "duration_s": spike["duration_s"] * scale}
                for spike in raw["arrival"].get("spikes", [])
            ],
            "workload.duration_s": horizon_s,
            "workload.warmup_s": raw["warmup_s"] * scale,
        }
    )


def run(quick: bool = False) -> list[dict]:
    from sim.analysis.sizing import parse_candidates, size
    from sim.spec.scenario import load_scenario

    scenario = load_scenario(ROOT / "scenarios/autoscale-diurnal.yaml")
    if quick:
        scenario = compressed(scenario)
    states = []
    started, cpu = time.perf_counter(), time.process_time()
    result = size(
        scenario,
        scenario.slo.p99_ms,
        parse_candidates(None, scenario, {}),
        replications=2,
        workers=2,
        on_progress=states.append,
    )
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    chosen = result.chosen
    answer = f"{chosen.hardware}, min_replicas {chosen.replicas}" if chosen else "no count met"
    label = f"the day compressed into {QUICK_HORIZON_S / 60:g} minutes" if quick else "the whole day"
    probes = max(s.probes_done for s in states)
    rows = [
        {
            "name": f"size autoscale-diurnal, every window, 2 replications, 2 workers ({label}): wall",
            "value": wall,
            "unit": "s",
            "baseline": TARGET_S,
            "ratio": wall / TARGET_S,
            "note": f"CPU of this process {cpu:.0f} s (pool workers' not counted); {probes} probes with the "
            f"re-checks; {answer}; target ≤ 180 s (ratio ≤ 1)",
        }
    ]
    for after in sorted({1, (probes + 1) // 2}):
        state = next(s for s in states if s.probes_done == after)
        still_to_go = wall - state.elapsed_s
        eta_ratio = state.expected_eta_s / still_to_go
        rows.append(
            {
                "name": f"size autoscale-diurnal ({label}): ETA after probe {after} of {probes} / time in fact still to go",
                "value": eta_ratio,
                "unit": "×",
                "baseline": 2.0,
                "ratio": max(eta_ratio, 1 / eta_ratio) / 2.0,
                "note": f"predicted about {state.expected_eta_s:.0f} s ({state.probes_expected:.1f} probes on "
                f"average), at most {state.eta_s:.0f} s ({state.probes_left} probes); took {still_to_go:.0f} s; "
                "target within 2x either way (ratio ≤ 1)",
            }
        )
    return rows


if __name__ == "__main__":
    for row in run(quick=True):
        print(row)
