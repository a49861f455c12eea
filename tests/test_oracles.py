"""The engine against closed-form queueing theory (sim/theory.py, each formula with its source).

Each test states one claim: the 95% CI from independent replications covers the exact value, and the
point estimate is within a few percent of it.
"""

from __future__ import annotations

import numpy as np
import pytest

from sim import theory
from sim.analysis.simulate import simulate
from tests.helpers import covers, estimate_and_ci, model_scenario, per_replication

pytestmark = pytest.mark.slow


def quantile(q):
    return lambda values: np.quantile(values, q)


def test_mm3_sojourn_quantiles_match_erlang_c():
    scenario = model_scenario(
        arrival={"process": "poisson", "rate_rps": 2.5},
        service_ms={"dist": "exponential", "mean": 1000},
        replicas=3,
        requests=100_000,
        replications=10,
        seed=7,
    )
    log = simulate(scenario).log
    for q in (0.50, 0.95, 0.99):
        exact_ms = theory.mmc_sojourn_quantile(q, 3, 2.5, 1.0) * 1000
        estimate, ci = estimate_and_ci(per_replication(log, "latency_ms", quantile(q)))
        assert covers(ci, exact_ms), (q, ci, exact_ms)
        assert estimate == pytest.approx(exact_ms, rel=0.03)


def test_mm3_exact_values_are_the_published_ones():
    # DESIGN.md / issue 2: p50 1.8191 s, p95 6.6500 s, p99 9.8856 s.
    assert [round(theory.mmc_sojourn_quantile(q, 3, 2.5, 1.0), 4) for q in (0.5, 0.95, 0.99)] == [1.8191, 6.65, 9.8856]


def test_mm1_mean_wait_matches_erlang_c_with_one_server():
    scenario = model_scenario(
        arrival={"process": "poisson", "rate_rps": 0.8},
        service_ms={"dist": "exponential", "mean": 1000},
        requests=100_000,
        replications=8,
        seed=3,
    )
    log = simulate(scenario).log
    exact_ms = theory.mmc_wait_mean(1, 0.8, 1.0) * 1000  # rho / (mu - lambda) = 4 s
    estimate, ci = estimate_and_ci(per_replication(log, "forward_queue_ms", np.mean))
    assert covers(ci, exact_ms)
    assert estimate == pytest.approx(exact_ms, rel=0.05)


def test_md1_mean_wait_is_pollaczek_khinchine_and_p99_is_erlangs_formula():
    service_ms = 10.0
    scenario = model_scenario(
        arrival={"process": "poisson", "rate_rps": 80.0},
        service_ms={"dist": "constant", "value": service_ms},
        requests=200_000,
        replications=8,
        seed=11,
    )
    log = simulate(scenario).log
    mean, mean_ci = estimate_and_ci(per_replication(log, "forward_queue_ms", np.mean))
    exact_mean = theory.md1_mean_wait(0.8, service_ms)
    assert exact_mean == pytest.approx(2.0 * service_ms)
    assert covers(mean_ci, exact_mean) and mean == pytest.approx(exact_mean, rel=0.04)
    p99, p99_ci = estimate_and_ci(per_replication(log, "forward_queue_ms", quantile(0.99)))
    exact_p99 = theory.md1_wait_quantile(0.99, 0.8, service_ms)
    assert exact_p99 == pytest.approx(10.3559 * service_ms, rel=1e-4)
    assert covers(p99_ci, exact_p99) and p99 == pytest.approx(exact_p99, rel=0.04)


def test_mg1_lognormal_mean_wait_matches_pollaczek_khinchine():
    scenario = model_scenario(
        arrival={"process": "poisson", "rate_rps": 70.0},
        service_ms={"dist": "lognormal", "mean": 10.0, "cv": 1.5},
        requests=200_000,
        replications=10,
        seed=5,
    )
    service = scenario.stage("forward").service_ms
    log = simulate(scenario).log
    exact_ms = theory.pk_mean_wait(70.0 / 1000, service.mean, service.second_moment)
    estimate, ci = estimate_and_ci(per_replication(log, "forward_queue_ms", np.mean))
    assert covers(ci, exact_ms)
    assert estimate == pytest.approx(exact_ms, rel=0.06)


def test_no_waiting_room_blocks_as_erlang_b():
    scenario = model_scenario(
        arrival={"process": "poisson", "rate_rps": 2.5},
        service_ms={"dist": "exponential", "mean": 1000},
        replicas=3,
        max_queue_size=0,
        requests=50_000,
        replications=8,
        seed=9,
    )
    log = simulate(scenario).log
    measured = log[~log["warmup"]]
    blocked = measured.groupby("replication")["rejected"].mean().to_numpy()
    estimate, ci = estimate_and_ci(blocked)
    exact = theory.erlang_b(3, 2.5)
    assert round(exact, 4) == 0.2822
    assert covers(ci, exact) and estimate == pytest.approx(exact, rel=0.03)


@pytest.mark.parametrize("policy", [{"policy": "dynamic", "max_batch_size": 4, "max_queue_delay_ms": 0}])
def test_dynamic_batching_without_delay_is_take_up_to_b_bulk_service(policy):
    # lambda = 3/s, batch service Exp(mean 1 s) whatever the size (per_item 0), B = 4: Wq = 2.5525 s.
    scenario = model_scenario(
        arrival={"process": "poisson", "rate_rps": 3.0},
        service_ms={"dist": "exponential", "mean": 1000},
        per_item=0.0,
        batching=policy,
        requests=60_000,
        replications=8,
        seed=13,
    )
    log = simulate(scenario).log
    exact_ms = theory.bulk_service_mean_wait(3.0, 1.0, 4) * 1000
    assert exact_ms == pytest.approx(2552.5, abs=0.1)
    estimate, ci = estimate_and_ci(per_replication(log, "forward_queue_ms", np.mean))
    assert covers(ci, exact_ms) and estimate == pytest.approx(exact_ms, rel=0.04)
    assert log["batch_size"].max() == 4


def test_no_batching_is_bulk_service_with_batches_of_one():
    scenario = model_scenario(
        arrival={"process": "poisson", "rate_rps": 0.7},
        service_ms={"dist": "exponential", "mean": 1000},
        per_item=0.0,
        batching={"policy": "none"},
        requests=60_000,
        replications=8,
        seed=17,
    )
    log = simulate(scenario).log
    exact_ms = theory.bulk_service_mean_wait(0.7, 1.0, 1) * 1000
    estimate, ci = estimate_and_ci(per_replication(log, "forward_queue_ms", np.mean))
    assert covers(ci, exact_ms) and estimate == pytest.approx(exact_ms, rel=0.05)


def test_random_routing_makes_each_replica_an_mm1_at_its_share_of_the_rate():
    scenario = model_scenario(
        arrival={"process": "poisson", "rate_rps": 2.4},
        service_ms={"dist": "exponential", "mean": 1000},
        replicas=3,
        routing="random",
        requests=90_000,
        replications=8,
        seed=19,
    )
    log = simulate(scenario).log
    exact_p95_ms = theory.mmc_sojourn_quantile(0.95, 1, 0.8, 1.0) * 1000
    for replica in range(3):
        one = log[log["replica"] == replica]
        estimate, ci = estimate_and_ci(per_replication(one, "latency_ms", quantile(0.95)))
        assert covers(ci, exact_p95_ms), (replica, ci, exact_p95_ms)
    # ... and random routing is much worse than the shared queue of an M/M/3 at the same load.
    shared_p95_ms = theory.mmc_sojourn_quantile(0.95, 3, 2.4, 1.0) * 1000
    assert shared_p95_ms < 0.6 * exact_p95_ms


def test_littles_law_holds_on_the_log():
    scenario = model_scenario(
        arrival={"process": "gamma", "rate_rps": 50.0, "cv": 2.0},
        service_ms={"base_ms": 20.0, "per_item_ms": 5.0, "cv": 0.5},
        replicas=2,
        batching={"policy": "dynamic", "max_batch_size": 8, "max_queue_delay_ms": 5},
        requests=50_000,
        replications=1,
    )
    log = simulate(scenario).log
    arrival, departure = log["arrival_ms"].to_numpy(), log["departure_ms"].to_numpy()
    t0, t1 = np.quantile(arrival, 0.1), np.quantile(arrival, 0.9)
    # L: time-average number in the system over [t0, t1], integrated from each request's stay.
    overlap = np.clip(np.minimum(departure, t1) - np.maximum(arrival, t0), 0, None)
    number_in_system = overlap.sum() / (t1 - t0)
    inside = (arrival >= t0) & (arrival < t1)
    rate_per_ms = inside.sum() / (t1 - t0)
    mean_sojourn = (departure - arrival)[inside].mean()
    assert number_in_system == pytest.approx(rate_per_ms * mean_sojourn, rel=0.02)
