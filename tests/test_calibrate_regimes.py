"""Correlated slowdowns on shared hosts: a two-state regime fitted from a log's lag-1 autocorrelation,
ordered replay of a measured sequence, and the dynamic batcher's dispatch overshoot."""

from __future__ import annotations

import numpy as np
import pytest

from sim.cli.main import main as calibrate_main
from calibrate.regimes import fit_regimes, lag1
from sim.engine.run import simulate_replication
from sim.errors import ScenarioError
from sim.spec.batch_cost import AffineCost, AffineSpec
from sim.spec.correlated import RegimeCost, RegimeSpec, ReplayCost, ReplaySpec
from tests.helpers import model_scenario

SHARE, FACTOR, PERSISTENCE = 0.3, 3.0, 0.9


def regime_log(rng: np.random.Generator, n: int) -> np.ndarray:
    """Service times from a discrete two-state chain: per batch, stay with probability λ, else draw the
    state afresh from its stationary share (so the states' lag-1 autocorrelation is exactly λ)."""
    slow = np.empty(n, dtype=bool)
    slow[0] = rng.random() < SHARE
    for i in range(1, n):
        slow[i] = slow[i - 1] if rng.random() < PERSISTENCE else rng.random() < SHARE
    return rng.gamma(100, 0.01, n) * np.where(slow, FACTOR, 1.0)  # ~1 ms, cv 0.1; slow ×3


def test_fit_recovers_share_factor_and_visit_length():
    x = regime_log(np.random.default_rng(1), 20_000)
    fit = fit_regimes(x)
    # Back to back, 30% of batches are slow and take 3x as long: 0.9 / (0.9 + 0.7) of the time is slow.
    assert fit.spec.slow_share == pytest.approx(SHARE * FACTOR / (SHARE * FACTOR + 1 - SHARE), abs=0.02)
    assert fit.spec.slow_factor == pytest.approx(FACTOR, rel=0.03)
    assert fit.per_batch_persistence == pytest.approx(PERSISTENCE, abs=0.03)
    assert fit.state_lag1_autocorrelation == pytest.approx(PERSISTENCE, abs=0.03)
    # A slow visit ends with probability (1 − λ)(1 − π) per batch of ~3 ms (gamma mean 1 ms × 3).
    expected_s = FACTOR * 1.0 / ((1 - PERSISTENCE) * (1 - SHARE)) / 1000
    assert fit.spec.mean_slow_s == pytest.approx(expected_s, rel=0.15)


def test_fitted_regime_reproduces_the_lag1_autocorrelation_independent_draws_lose():
    x = regime_log(np.random.default_rng(2), 20_000)
    fit = fit_regimes(x)
    normal = AffineCost(AffineSpec(base_ms=float(x[x <= fit.threshold_ms].mean()), per_item_ms=0.0, cv=0.1))
    draws = RegimeCost(normal, fit.spec).for_run().sample_many_ms(1, np.random.default_rng(3), 20_000)
    assert lag1(x) > 0.5
    assert lag1(draws) == pytest.approx(lag1(x), abs=0.06)
    assert draws.mean() == pytest.approx(x.mean(), rel=0.05)
    assert abs(lag1(np.random.default_rng(4).permutation(x))) < 0.05  # the same values, independent order


def test_regime_slowdown_in_a_scenario_correlates_successive_batches():
    def run(**stage):
        scenario = model_scenario(
            arrival={"process": "poisson", "rate_rps": 50.0},
            service_ms={"dist": "constant", "value": 5.0},
            requests=20_000,
            warmup=0,
            replications=1,
        )
        data = scenario.model_dump(by_alias=True)
        data["stages"][0].update(stage)
        from sim.spec.scenario import parse_scenario

        return simulate_replication(parse_scenario(data), 0, seed=1).requests

    slowed = run(slowdown={"slow_factor": 4.0, "slow_share": 0.2, "mean_slow_s": 5.0})
    service = slowed.sort_values("forward_start_ms").forward_ms.to_numpy()
    assert set(np.round(np.unique(service), 9)) == {5.0, 20.0}
    assert lag1(service) > 0.8  # visits of 5 s hold ~250 requests each at 50/s
    assert np.mean(service == 20.0) == pytest.approx(0.2, abs=0.08)
    again = run(slowdown={"slow_factor": 4.0, "slow_share": 0.2, "mean_slow_s": 5.0})
    assert again.forward_ms.equals(slowed.forward_ms)  # same seed, same run
    with pytest.raises(ScenarioError, match="slowdown or replay, not both"):
        run(slowdown={"slow_factor": 2.0, "slow_share": 0.1, "mean_slow_s": 1.0}, replay={"samples": [1.0, 2.0]})


def test_ordered_replay_follows_the_measured_sequence():
    measured = [1.0, 2.0, 3.0, 4.0, 10.0]  # median 3
    cost = ReplayCost(AffineCost(AffineSpec(base_ms=6.0, per_item_ms=0.0)), ReplaySpec(samples=measured)).for_run()
    draws = cost.sample_many_ms(1, np.random.default_rng(0), 12)
    relative = draws / 6.0 * 3.0
    start = measured.index(relative[0])
    assert relative.tolist() == pytest.approx([measured[(start + i) % 5] for i in range(12)])


def test_dispatch_overshoot_delays_a_batch_that_leaves_on_its_deadline():
    def first_start(**batching):
        scenario = model_scenario(
            arrival={"process": "constant", "rate_rps": 10.0},
            service_ms={"dist": "constant", "value": 1.0},
            batching={"policy": "dynamic", "max_batch_size": 4, "max_queue_delay_ms": 5.0, **batching},
            requests=4,
            warmup=0,
            replications=1,
        )
        return simulate_replication(scenario, 0, seed=1).requests.forward_start_ms.tolist()[
            :3
        ]  # the last: flushed at the end

    assert first_start() == pytest.approx([105.0, 205.0, 305.0])  # arrivals every 100 ms, each alone
    assert first_start(dispatch_overshoot_ms={"dist": "constant", "value": 0.4}) == pytest.approx([105.4, 205.4, 305.4])


def test_cli_regimes_prints_the_scenario_snippet(tmp_path, capsys):
    csv = tmp_path / "log.csv"
    x = regime_log(np.random.default_rng(5), 2_000)
    csv.write_text("service_ms\n" + "\n".join(f"{v:.5f}" for v in x))
    assert calibrate_main(["calibrate", "regimes", str(csv)]) == 0
    out = capsys.readouterr().out
    assert "slowdown: {slow_factor:" in out and "lag-1 autocorrelation" in out


def test_regime_spec_mean_visits_balance_the_share():
    spec = RegimeSpec(slow_factor=2.0, slow_share=0.25, mean_slow_s=3.0)
    assert spec.mean_normal_s == pytest.approx(9.0)  # 3 / (3 + 9) = 0.25
