"""One number, one function: `run`, a sweep, `size`, the over-time view and the planner report the same
$/h, $ per 1M queries and utilisation for the same scenario and seed — and those equal a replica-time
integral computed here by hand from the run log, for a fixed deployment, an autoscaled one and one
priced by its measured profile."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from sim.analysis.simulate import simulate
from sim.analysis.sizing import probe
from sim.analysis.sweep.task import Task, run_task
from sim.metrics.timeline import windowed
from sim.spec.scenario import load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[1]
SEED = 5
REPLICATIONS = 2

AUTOSCALED = {
    "name": "ray-step",
    "seed": SEED,
    "workload": {"arrival": {"process": "time_varying",
                             "points": [[0, 3], [120, 3], [120.001, 30], [300, 30], [300.001, 3], [600, 3]]},
                 "duration_s": 600, "warmup_s": 30},
    "stages": [{"name": "forward", "kind": "model", "service_ms": {"dist": "exponential", "mean": 100}}],
    "deployment": {"cold_start_ms": {"dist": "constant", "value": 8000}, "hardware": {"usd_per_hour": 2.0},
                   "autoscaling": {"policy": "ray_serve", "min_replicas": 1, "max_replicas": 6,
                                   "target_ongoing_requests": 1, "upscale_delay_s": 5, "downscale_delay_s": 30}},
}  # fmt: skip


def scenarios():
    return {
        "fixed": (load_scenario(ROOT / "scenarios" / "bert-cpu.yaml"), 4000, 0.806),
        "autoscaled": (parse_scenario(AUTOSCALED), None, 2.0),
        "profile-priced": (load_scenario(ROOT / "scenarios" / "mlp-cpu.yaml"), 20000, 0.10075),
    }


def paid_replica_ms_by_hand(scenario, timeline, t0: float, t1: float) -> float:
    """∫ paid replicas dt over [t0, t1]: replicas × span when fixed, else segment by segment."""
    if timeline is None:
        return scenario.deployment.replicas * (t1 - t0)
    timeline = timeline.sort_values("time_ms", kind="stable")
    times = [*timeline["time_ms"], float("inf")]
    paid = list(timeline["warm"] + timeline["starting"] + timeline["draining"])
    assert times[0] <= t0
    return sum(value * max(min(times[i + 1], t1) - max(times[i], t0), 0.0) for i, value in enumerate(paid))


def by_hand(result, price: float) -> dict[str, float]:
    """Mean over replications of each replication's $/h, $/1M and utilisation, from the raw log: over the
    span of the measured arrivals, or for a load that follows the clock over its horizon after warmup_s."""
    scenario, log, run = result.scenario, result.log, result.run
    figures = {"usd_per_hour": [], "usd_per_1m_queries": [], "utilization": []}
    for rep in range(REPLICATIONS):
        part = log[log["replication"] == rep]
        measured = part[~part["warmup"]]
        t0, t1 = measured["arrival_ms"].min(), measured["arrival_ms"].max()
        if scenario.workload.arrival.process == "time_varying":
            t0, t1 = scenario.workload.warmup_s * 1000.0, scenario.workload.duration_s * 1000.0
        timeline = None if run.timeline is None else run.timeline[run.timeline["replication"] == rep]
        paid_ms = paid_replica_ms_by_hand(scenario, timeline, t0, t1)
        served = ((part["departure_ms"] >= t0) & (part["departure_ms"] <= t1)).sum()
        batches = part[part["forward_batch_id"] >= 0].drop_duplicates("forward_batch_id")
        start, end = batches["forward_start_ms"], batches["forward_start_ms"] + batches["forward_ms"]
        busy = (np.minimum(end, t1) - np.maximum(start, t0)).clip(lower=0).sum()
        figures["usd_per_hour"].append(price * paid_ms / (t1 - t0))
        figures["usd_per_1m_queries"].append(price * paid_ms / 3.6e6 / served * 1e6)
        figures["utilization"].append(busy / (paid_ms * scenario.deployment.instances))
    return {key: float(np.mean(values)) for key, values in figures.items()}


@pytest.fixture(scope="module", params=["fixed", "autoscaled", "profile-priced"])
def case(request):
    scenario, requests, price = scenarios()[request.param]
    result = simulate(scenario, requests=requests, seed=SEED, replications=REPLICATIONS)
    return request.param, scenario, requests, price, result


def test_run_equals_the_hand_computed_replica_time_integral(case):
    _, _, _, price, result = case
    expected = by_hand(result, price)
    cost = result.summary["cost"]
    assert cost["usd_per_hour"] == pytest.approx(expected["usd_per_hour"], rel=1e-9)
    assert cost["usd_per_1m_queries"] == pytest.approx(expected["usd_per_1m_queries"], rel=1e-9)
    assert result.summary["utilization"] == pytest.approx(expected["utilization"], rel=1e-9)
    assert 0 < result.summary["utilization"] <= 1


def test_a_sweep_task_reports_what_run_reports(case):
    _, scenario, requests, _, result = case
    metrics = ("cost.usd_per_hour", "cost.usd_per_1m_queries", "utilization")
    records = [
        run_task(Task(f"t{r}", "p", r, SEED, requests, scenario.raw, str(scenario.base_dir), metrics))
        for r in range(REPLICATIONS)
    ]
    assert all(record["status"] == "ok" for record in records), records
    summary = result.summary
    assert np.mean([r["cost.usd_per_hour"] for r in records]) == pytest.approx(
        summary["cost"]["usd_per_hour"], rel=1e-12
    )
    assert np.mean([r["cost.usd_per_1m_queries"] for r in records]) == pytest.approx(
        summary["cost"]["usd_per_1m_queries"], rel=1e-12
    )
    assert np.mean([r["utilization"] for r in records]) == pytest.approx(summary["utilization"], rel=1e-12)


def test_a_sizing_probe_reports_what_run_reports(case):
    name, scenario, requests, _, result = case
    count = scenario.deployment.autoscaling.min_replicas if name == "autoscaled" else scenario.deployment.replicas
    point = probe(
        scenario, "as written", count, 1e9, seed=SEED, replications=REPLICATIONS, requests=requests, window_s=None
    )
    assert point.usd_per_hour == result.summary["cost"]["usd_per_hour"]
    assert point.usd_per_1m_queries == result.summary["cost"]["usd_per_1m_queries"]


def test_the_over_time_view_integrates_the_same_replica_time(case):
    _, scenario, _, price, result = case
    window_s = 60.0
    table = windowed(result.run, scenario, window_s)
    for row in list(table.itertuples(index=False))[:12]:
        t0, t1 = row.start_s * 1000.0, row.start_s * 1000.0 + window_s * 1000.0
        hand = []
        for rep in range(REPLICATIONS):
            timeline = (
                None if result.run.timeline is None else result.run.timeline[result.run.timeline["replication"] == rep]
            )
            hand.append(paid_replica_ms_by_hand(scenario, timeline, t0, t1) / (t1 - t0))
        assert row.paid_replicas == pytest.approx(np.mean(hand), rel=1e-9)
        assert row.usd_per_hour == pytest.approx(price * np.mean(hand), rel=1e-9)


@pytest.mark.parametrize("name", ["bert-cpu", "mlp-cpu"])
def test_the_planner_shows_the_cost_run_computes(name):
    from streamlit.testing.v1 import AppTest

    from sim.analysis import planner

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    at.selectbox(key="scenario").select(name).run()
    assert not at.exception, [e.value for e in at.exception]
    card = next(m for m in at.metric if m.label.startswith("$ per 1M"))
    shown = float(re.search(r"[\d,]+\.\d+", card.value).group(0).replace(",", ""))
    scenario = load_scenario(ROOT / "scenarios" / f"{name}.yaml")
    summary = planner.run(scenario, planner.QUICK, seed=scenario.seed).summary
    assert shown == round(summary["cost"]["usd_per_1m_queries"], 2)
