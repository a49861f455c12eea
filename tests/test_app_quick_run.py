"""The planner's quick run (issue 12): a scenario whose horizon is a time or whose traffic changes over
time is simulated over its whole horizon (fewer replications, never fewer arrivals), a quick run is never
longer than the scenario itself, and the page says what was simulated."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.analysis import planner
from sim.spec.scenario import load_scenario, parse_scenario_text

ROOT = Path(__file__).resolve().parent.parent

# An hour at 20 req/s on one replica (load 0.2) with a 5-minute burst at 10x from minute 50 (load 2: the
# queue grows by 100 requests a second). The first 6,000 arrivals end five minutes in, long before it.
LATE_BURST = """
name: late-burst
seed: 4
replications: 3
workload:
  arrival: {process: time_varying, points: [[0, 20], [3600, 20]], spikes: [{at_s: 3000, duration_s: 300, multiplier: 10}]}
  duration_s: 3600
stages:
  - name: forward
    kind: model
    service_ms: {dist: exponential, mean: 10}
deployment:
  replicas: 1
slo: {p99_ms: 500}
"""


def late_burst():
    return parse_scenario_text(LATE_BURST, base_dir=ROOT / "scenarios")


def test_a_long_time_varying_horizon_is_kept_whole_with_fewer_replications():
    scenario = late_burst()
    expected = 20 * 3600 + 20 * 9 * 300  # requests in the hour, burst included
    run_plan = planner.plan(scenario, planner.QUICK)
    assert run_plan.requests is None and run_plan.whole_horizon
    assert run_plan.expected_requests == pytest.approx(expected, rel=0.01)
    assert run_plan.replications == 1  # 126,000 requests exceed the quick budget of 60,000 in all


def test_the_quick_run_sees_the_late_burst_and_misses_the_slo():
    scenario = late_burst()
    result = planner.run(scenario, planner.QUICK, seed=scenario.seed)
    log = result.log
    horizon_ms = 3600 * 1000.0
    assert log["arrival_ms"].max() > 0.99 * horizon_ms
    # Poisson count over the hour: 126,000 expected, sd 355; 6 sd either side.
    assert abs(len(log) - 126_000) < 6 * 355
    # In the burst the queue grows ~100 requests/s for 300 s: 3.6% of the hour's requests wait seconds.
    assert result.summary["latency_ms"]["p99"] > 10 * 500
    assert result.summary["slo"]["met"] is False


def test_a_short_count_based_scenario_is_never_lengthened_nor_given_more_replications():
    scenario = parse_scenario_text(
        LATE_BURST.replace(
            "{process: time_varying, points: [[0, 20], [3600, 20]], spikes: [{at_s: 3000, duration_s: 300, multiplier: 10}]}\n"
            "  duration_s: 3600",
            "{process: poisson, rate_rps: 20}\n  requests: 1500",
        ).replace("replications: 3", "replications: 2"),
        base_dir=ROOT / "scenarios",
    )
    run_plan = planner.plan(scenario, planner.QUICK)
    assert run_plan == planner.RunPlan(None, 2, 1500.0, True)
    result = planner.run(scenario, planner.QUICK)
    assert result.log["replication"].nunique() == 2
    assert len(result.log) == 2 * 1500


def test_a_long_stationary_count_based_scenario_runs_the_quick_length():
    scenario = load_scenario(ROOT / "scenarios" / "mm3.yaml")
    assert planner.plan(scenario, planner.QUICK) == planner.RunPlan(
        planner.QUICK_REQUESTS, 3, planner.QUICK_REQUESTS, False
    )


def test_shipped_duration_and_time_varying_scenarios_keep_their_horizon():
    for name in ("autoscale-diurnal", "recsys-caches", "llm-chat-continuous"):
        scenario = load_scenario(ROOT / "scenarios" / f"{name}.yaml")
        run_plan = planner.plan(scenario, planner.QUICK)
        assert run_plan.requests is None, name
        assert 1 <= run_plan.replications <= scenario.replications, name
    diurnal = load_scenario(ROOT / "scenarios" / "autoscale-diurnal.yaml")
    text = planner.describe(diurnal, planner.QUICK)
    assert "24 h horizon, whole" in text and "× 1 replication" in text and "never a shorter horizon" in text


def test_a_cache_flushed_by_a_deploy_counts_as_changing_over_time():
    assert planner.time_dependent(load_scenario(ROOT / "scenarios" / "recsys-caches.yaml"))
    assert not planner.time_dependent(load_scenario(ROOT / "scenarios" / "vision-a100.yaml"))


def test_the_page_says_what_the_quick_run_simulated():
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.run()
    at.file_uploader(key="upload").upload("late.yaml", LATE_BURST.encode(), "application/x-yaml").run()
    assert not at.exception, [e.value for e in at.exception]
    captions = [c.value for c in at.caption]
    assert any("1 h horizon, whole" in c and "× 1 replication" in c for c in captions), captions
    assert any(e.value.startswith("**Misses the SLO**") for e in at.error), [e.value for e in at.error]


def test_a_long_sweep_waits_until_asked_for():
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.run()
    at.file_uploader(key="upload").upload("late.yaml", LATE_BURST.encode(), "application/x-yaml").run()
    at.session_state["view"] = "Load curve"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    # Seven whole-hour runs (126,000 requests each at full load), timed at the speed the page measured on
    # the quick run it showed (this machine's, not a default): a sweep over 10 s waits to be asked for.
    speed = at.session_state["_speed"][late_burst().to_yaml()]
    expected_s = planner.estimated_seconds(late_burst(), planner.SWEEP, speed) * 7
    boxes = [box for box in at.checkbox if box.label.startswith("Run this sweep")]
    if expected_s > 10:
        assert len(boxes) == 1 and f"about {expected_s:,.0f} s" in boxes[0].label
        assert not any(m.label == "Saturation rate" for m in at.metric)
    else:
        assert not boxes and any(m.label == "Saturation rate" for m in at.metric)


def test_time_estimates_use_the_measured_speed():
    """At a measured speed the estimate is the simulated requests over it; without one, the default."""
    scenario = late_burst()
    requests = planner.simulated_requests(scenario, planner.SWEEP)
    assert planner.estimated_seconds(scenario, planner.SWEEP, 50_000.0) == pytest.approx(requests / 50_000.0)
    default = planner.estimated_seconds(scenario, planner.SWEEP)
    assert default == pytest.approx(requests / planner.REQUESTS_PER_S)
