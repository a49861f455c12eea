"""Cold starts and autoscalers: Welch's M/M/1 with setup times, and replica trajectories after a traffic step."""

from __future__ import annotations

import numpy as np
import pytest

from sim import theory
from sim.analysis.simulate import simulate
from sim.engine.run import simulate_replication
from sim.spec.scenario import parse_scenario
from tests.helpers import covers, estimate_and_ci, per_replication


def scenario_with(
    autoscaling: dict,
    arrival: dict,
    *,
    cold_start_ms: float = 10_000,
    service_ms: dict | None = None,
    duration_s: float | None = None,
    requests: int | None = None,
    replications: int = 1,
    seed: int = 1,
    warmup: dict | None = None,
):
    workload = {"arrival": arrival, **({"duration_s": duration_s} if duration_s else {"requests": requests})}
    workload.update(warmup or {"warmup_requests": 0})
    return parse_scenario(
        {
            "name": "autoscaled",
            "seed": seed,
            "replications": replications,
            "workload": workload,
            "stages": [
                {"name": "forward", "kind": "model", "service_ms": service_ms or {"dist": "constant", "value": 100}}
            ],
            "deployment": {
                "cold_start_ms": {"dist": "constant", "value": cold_start_ms},
                "autoscaling": autoscaling,
                "hardware": {"usd_per_hour": 2.0},
            },
        }
    )


# 0.3 Erlangs of work (100 ms each at 3/s), a step to 3 Erlangs from 120 s to 400 s, then back.
STEP = {"process": "time_varying", "points": [[0, 3], [120, 3], [120.001, 30], [400, 30], [400.001, 3], [900, 3]]}


def timeline_of(run):
    timeline = run.timeline.sort_values("time_ms", kind="stable").reset_index(drop=True)
    return timeline, timeline["warm"] + timeline["starting"] + timeline["draining"]


def paid_replica_ms_by_hand(timeline, t0, t1):
    """∫ paid replicas dt over [t0, t1], segment by segment between change-points."""
    times = [*timeline["time_ms"], float("inf")]
    paid = list(timeline["warm"] + timeline["starting"] + timeline["draining"])
    assert times[0] <= t0
    return sum(value * max(min(times[i + 1], t1) - max(times[i], t0), 0.0) for i, value in enumerate(paid))


@pytest.mark.slow
def test_scale_to_zero_with_setup_time_is_welchs_mm1_with_setup():
    # lambda = 0.5/s, Exp(1 s) service, a fixed 2 s setup whenever the empty server is woken: Wq = 2.5 s.
    exact_ms = theory.mm1_setup_mean_wait(0.5, 1.0, 2.0, 4.0) * 1000
    assert exact_ms == pytest.approx(2500.0)
    scenario = scenario_with(
        {"policy": "knative", "min_scale": 0, "max_scale": 1, "stable_window_s": 0, "scale_to_zero_grace_period_s": 0},
        {"process": "poisson", "rate_rps": 0.5},
        cold_start_ms=2000,
        service_ms={"dist": "exponential", "mean": 1000},
        requests=25_000,
        replications=5,
        seed=3,
        warmup={"warmup_requests": 500},
    )
    result = simulate(scenario)
    estimate, ci = estimate_and_ci(per_replication(result.log, "forward_queue_ms", np.mean))
    assert covers(ci, exact_ms) and estimate == pytest.approx(exact_ms, rel=0.04)
    # The server is paid while busy or setting up: (rho + lambda * setup) / (1 + lambda * setup) = 0.75.
    assert result.summary["autoscaling"]["mean_replicas"] == pytest.approx(0.75, rel=0.02)


def test_ray_serve_scales_up_only_after_the_upscale_delay_and_down_after_the_downscale_delay():
    policy = {
        "policy": "ray_serve",
        "min_replicas": 1,
        "max_replicas": 4,
        "target_ongoing_requests": 1,
        "upscale_delay_s": 30,
        "downscale_delay_s": 120,
        "look_back_period_s": 10,
    }
    log = simulate_replication(scenario_with(policy, STEP, duration_s=900), 0, seed=2)
    timeline, paid = timeline_of(log)
    t_s = timeline["time_ms"].to_numpy() / 1000
    first_start = t_s[timeline["starting"].to_numpy() > 0].min()
    assert first_start >= 120 + 30  # the step, then the full upscale delay
    assert first_start < 120 + 30 + 15
    warm_after_start = timeline.loc[t_s >= first_start + 10, "warm"]
    assert warm_after_start.max() >= 3  # 3 Erlangs of work at target 1 ongoing each
    assert paid.max() <= 4 and paid.min() >= 1  # never beyond max, never below min
    # Traffic falls at 400 s: no replica leaves before 400 + the downscale delay.
    falls = t_s[(np.diff(paid.to_numpy(), prepend=paid.iloc[0]) < 0)]
    assert falls.min() >= 400 + 120
    assert timeline["warm"].iloc[-1] <= 2


def test_cold_start_delays_new_capacity_by_its_duration():
    policy = {
        "policy": "ray_serve",
        "min_replicas": 1,
        "max_replicas": 3,
        "target_ongoing_requests": 1,
        "upscale_delay_s": 0,
        "downscale_delay_s": 600,
        "look_back_period_s": 5,
    }
    log = simulate_replication(scenario_with(policy, STEP, duration_s=300, cold_start_ms=20_000), 0, seed=4)
    timeline, _ = timeline_of(log)
    starts = timeline[timeline["starting"] > 0]["time_ms"].min()
    warm_more = timeline[timeline["warm"] > 1]["time_ms"].min()
    assert warm_more - starts == pytest.approx(20_000, abs=1)


def test_knative_panic_mode_scales_up_faster_than_the_stable_window():
    common = {
        "policy": "knative",
        "min_scale": 1,
        "max_scale": 6,
        "target": 1,
        "target_utilization": 1.0,
        "stable_window_s": 60,
    }
    panicky = simulate_replication(scenario_with(common, STEP, duration_s=300), 0, seed=5)
    calm = simulate_replication(
        scenario_with({**common, "panic_threshold_percentage": 100000}, STEP, duration_s=300), 0, seed=5
    )

    def replicas_at(log, t_s):
        timeline, paid = timeline_of(log)
        return int(paid[timeline["time_ms"] <= t_s * 1000].iloc[-1])

    # Two seconds after the step the 6 s panic window sees the queue explode and jumps to the max; the
    # 60 s stable window has barely moved.
    assert replicas_at(panicky, 125) == 6
    assert replicas_at(calm, 125) < 6


def test_hpa_follows_utilisation():
    policy = {
        "policy": "hpa",
        "min_replicas": 1,
        "max_replicas": 8,
        "target_utilization": 0.5,
        "sync_period_s": 15,
        "scale_down_stabilization_s": 60,
    }
    log = simulate_replication(scenario_with(policy, STEP, duration_s=900, cold_start_ms=5000), 0, seed=6)
    timeline, _ = timeline_of(log)
    in_step = timeline[(timeline["time_ms"] > 250_000) & (timeline["time_ms"] < 400_000)]
    # 3 Erlangs of work at 50% target utilisation: about 6 replicas wanted.
    assert in_step["warm"].max() >= 5
    late = timeline[timeline["time_ms"] > 800_000]
    assert late["warm"].max() <= 3


def test_cost_counts_every_paid_replica_second():
    policy = {
        "policy": "ray_serve",
        "min_replicas": 2,
        "max_replicas": 4,
        "target_ongoing_requests": 1,
        "upscale_delay_s": 10,
        "downscale_delay_s": 60,
    }
    result = simulate(scenario_with(policy, STEP, duration_s=600, replications=2))
    log = result.log
    expected = []
    for rep in (0, 1):
        timeline = result.run.timeline
        part = timeline[timeline["replication"] == rep].sort_values("time_ms", kind="stable")
        # A load that follows the clock is measured over its horizon, from the end of the warm-up (here
        # warmup_requests 0: from the start).
        warmup = log[(log["replication"] == rep) & log["warmup"]]["arrival_ms"]
        t0 = float(warmup.max()) if len(warmup) else 0.0
        t1 = 600_000.0
        expected.append(paid_replica_ms_by_hand(part, t0, t1) / (t1 - t0))
    assert result.summary["autoscaling"]["mean_replicas"] == pytest.approx(np.mean(expected))
    assert result.summary["cost"]["usd_per_hour"] == pytest.approx(2.0 * np.mean(expected))
    assert 2 <= np.mean(expected) <= 4


def test_autoscaling_needs_a_shared_queue():
    from sim.errors import ScenarioError

    with pytest.raises(ScenarioError, match="autoscaling needs routing: shared_queue"):
        parse_scenario(
            {
                "name": "x",
                "workload": {"arrival": {"process": "poisson", "rate_rps": 1}},
                "stages": [{"name": "forward", "kind": "model", "service_ms": 10}],
                "deployment": {"routing": "random", "autoscaling": {"policy": "ray_serve", "max_replicas": 2}},
            }
        )


def test_min_above_max_is_refused():
    from sim.errors import ScenarioError

    with pytest.raises(ScenarioError, match=r"min_replicas \(5\) is above max_replicas \(2\)"):
        parse_scenario(
            {
                "name": "x",
                "workload": {"arrival": {"process": "poisson", "rate_rps": 1}},
                "stages": [{"name": "forward", "kind": "model", "service_ms": 10}],
                "deployment": {"autoscaling": {"policy": "ray_serve", "min_replicas": 5, "max_replicas": 2}},
            }
        )
