"""Validate a prediction against a load test, and the round trip measurements → profile → simulator:
at very low load the simulated per-batch service times reproduce the measured median and p99."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sim.cli.main import main as calibrate_main
from calibrate.profile import fit_measurements
from calibrate.validate import compare, measured_percentiles, predicted_percentiles
from sim.errors import DataFileError

HEADER = (
    "Concurrency,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,Server Compute Input,"
    "Server Compute Infer,Server Compute Output,Client Recv,p50 latency,p90 latency,p95 latency,p99 latency\n"
)


def skewed_measurements(sizes=(1, 2, 4, 8), repeats=300, seed=0) -> pd.DataFrame:
    """Latencies with a floor and a right tail: (1 + 0.4 n) ms plus gamma noise (mean 10% of it)."""
    rng = np.random.default_rng(seed)
    rows = [(n, 1, float(x)) for n in sizes for x in (1.0 + 0.4 * n) * (1 + rng.gamma(4.0, 0.025, size=repeats))]
    return pd.DataFrame(rows, columns=["batch_size", "instances", "latency_ms"])


def scenario_text(profile_path, batching: str, rate_rps: float, requests: int) -> str:
    return f"""name: round-trip
seed: 11
workload:
  arrival: {{process: poisson, rate_rps: {rate_rps}}}
  requests: {requests}
  warmup_requests: 200
stages:
  - name: forward
    kind: model
    profile: {profile_path}
    batching: {batching}
deployment:
  replicas: 1
"""


@pytest.fixture(scope="module")
def profile_and_measurements(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rt")
    frame = skewed_measurements()
    fit_measurements(frame, folder / "skewed.yaml", plot=False, name="skewed")
    return folder, frame


@pytest.mark.parametrize("batch", [1, 4])
def test_round_trip_through_the_simulator_at_low_load(profile_and_measurements, batch):
    """Static batches of `batch` at 1 rps against ~3 ms batches: no queueing, so each batch's time in the
    model stage is one draw of the profile; its median and p99 must match the measured ones."""
    from sim.analysis.simulate import simulate
    from sim.spec.scenario import load_scenario

    folder, frame = profile_and_measurements
    path = folder / f"s{batch}.yaml"
    path.write_text(
        scenario_text(folder / "skewed.yaml", f"{{policy: static, batch_size: {batch}}}", 1.0, 15_000 * batch)
    )
    log = simulate(load_scenario(path)).log
    log = log[~log["warmup"]]
    per_batch = log.groupby("forward_batch_id")["forward_ms"].first()
    assert (log["forward_batch_size"] == batch).all()
    measured = frame[frame.batch_size == batch]["latency_ms"]
    assert per_batch.median() == pytest.approx(measured.median(), rel=0.02)
    assert np.percentile(per_batch, 99) == pytest.approx(np.percentile(measured, 99), rel=0.03)


def test_validate_cli_compares_percentiles(profile_and_measurements, tmp_path, capsys):
    folder, frame = profile_and_measurements
    scenario = folder / "s.yaml"  # beside its profile: a scenario names files in its own folder only
    scenario.write_text(scenario_text(folder / "skewed.yaml", "{policy: none}", 5.0, 20_000))
    measured = tmp_path / "load_test.csv"
    pd.DataFrame({"latency_ms": frame[frame.batch_size == 1]["latency_ms"]}).to_csv(measured, index=False)
    code = calibrate_main(["validate", str(scenario), str(measured), "--tolerance-pct", "10"])
    out = capsys.readouterr().out
    assert "p50" in out and "p95" in out and "p99" in out and "300 measured requests" in out and "bootstrap" in out
    assert code == 0, out
    # a load test twice as slow is far outside 10%
    # exit 4: answered, but outside the tolerance (README, "Exit codes")
    pd.DataFrame({"latency_ms": 2 * frame[frame.batch_size == 1]["latency_ms"]}).to_csv(measured, index=False)
    assert calibrate_main(["validate", str(scenario), str(measured), "--tolerance-pct", "10"]) == 4


def test_compare_errors_are_relative_to_the_measured_value():
    table = compare({50.0: 11.0, 95.0: 20.0, 99.0: 27.0}, {50.0: 10.0, 95.0: 20.0, 99.0: 30.0})
    assert table["error_pct"].tolist() == pytest.approx([10.0, 0.0, -10.0])
    assert table["error_ms"].tolist() == pytest.approx([1.0, 0.0, -3.0])


def test_predicted_percentiles_skip_warmup_and_rejected():
    log = pd.DataFrame(
        {
            "latency_ms": [1000.0, 1.0, 2.0, 3.0, 500.0],
            "warmup": [True, False, False, False, False],
            "rejected": [False, False, False, False, True],
        }
    )
    assert predicted_percentiles(log)[50.0] == 2.0


def test_measured_latency_units_and_perf_analyzer_levels(tmp_path):
    us = tmp_path / "us.csv"
    us.write_text("latency_us\n1000\n2000\n3000\n")
    assert measured_percentiles(us)[0][50.0] == pytest.approx(2.0)
    pa = tmp_path / "pa.csv"
    pa.write_text(
        HEADER + "1,500,20,300,30,50,1500,20,5,2000,2100,2200,2500\n4,900,20,300,30,50,1500,20,5,6000,7000,7500,9000\n"
    )
    with pytest.raises(DataFileError, match="choose one with --level"):
        measured_percentiles(pa)
    found, what = measured_percentiles(pa, level=4)
    assert found == {50.0: 6.0, 95.0: 7.5, 99.0: 9.0} and "Concurrency 4" in what
    with pytest.raises(DataFileError, match="no Concurrency 2"):
        measured_percentiles(pa, level=2)


@pytest.mark.parametrize(
    "text, message",
    [
        ("a,b\n1,2\n", "no column latency_ms"),
        ("latency_ms\n1\nslow\n", "not a number"),
        ("latency_ms\n1\n-2\n", "is negative"),
    ],
)
def test_bad_measured_files(tmp_path, text, message):
    path = tmp_path / "m.csv"
    path.write_text(text)
    with pytest.raises(DataFileError, match=message):
        measured_percentiles(path)


def test_interference_reaches_the_simulator(tmp_path):
    """A profile measured at 10 ms alone and 20 ms with two instances busy: at 1 rps batches run alone,
    past saturation both instances are always busy, so the model stage's service times follow."""
    import yaml

    from sim.analysis.simulate import simulate
    from sim.spec.scenario import load_scenario

    profile = {
        "kind": "batch",
        "name": "two-level",
        "hardware": "t4",
        "provenance": {"source": "test", "date": "2026-11-29"},
        "curve": {"family": "affine", "base_ms": 10.0, "per_item_ms": 0.0},
        "latency": [
            {"batch_size": 1, "instances": 1, "p50_ms": 10.0},
            {"batch_size": 1, "instances": 2, "p50_ms": 20.0},
        ],
    }
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(profile))
    medians, loads = {}, {}
    for rate in (1.0, 150.0):
        text = scenario_text(tmp_path / "p.yaml", "{policy: none}", rate, 1200).replace(
            "replicas: 1", "replicas: 1\n  instances: 2"
        )
        (tmp_path / "s.yaml").write_text(text)
        run = simulate(load_scenario(tmp_path / "s.yaml"), replications=1)
        medians[rate] = float(run.log[~run.log["warmup"]]["forward_ms"].median())
        loads[rate] = run.summary["offered_load"]["forward"]
    assert medians[1.0] == pytest.approx(10.0)
    assert medians[150.0] == pytest.approx(20.0)
    # Offered load counts both instances busy (20 ms each): 150 rps × 20 ms / 2 instances = 1.5, not 0.75.
    assert loads[1.0] == pytest.approx(1.0 * 0.020 / 2)
    assert loads[150.0] == pytest.approx(150.0 * 0.020 / 2)


def test_bootstrap_interval_of_the_median_covers_the_truth_about_95_percent_of_the_time():
    from calibrate.validate import bootstrap_intervals

    rng = np.random.default_rng(0)
    true_median = np.log(2.0)  # exponential, mean 1
    covered = 0
    for trial in range(100):
        low, high = bootstrap_intervals(rng.exponential(1.0, 400), (50.0,), resamples=400, seed=trial)[50.0]
        covered += low <= true_median <= high
    assert 85 <= covered <= 100


def test_block_bootstrap_widens_the_interval_when_slow_periods_cluster():
    from calibrate.validate import bootstrap_intervals

    rng = np.random.default_rng(1)
    slow = np.repeat(rng.random(100) < 0.2, 50)  # slow periods of 50 requests
    values = rng.gamma(20, 0.05, 5000) * np.where(slow, 3.0, 1.0)
    blocked = bootstrap_intervals(values, (95.0,), resamples=400, block=100)[95.0]
    independent = bootstrap_intervals(values, (95.0,), resamples=400, block=1)[95.0]
    assert blocked[1] - blocked[0] > 2 * (independent[1] - independent[0])


def test_agreement_is_judged_against_both_intervals():
    predicted, measured = {50.0: 10.0, 95.0: 20.0, 99.0: 30.0}, {50.0: 11.0, 95.0: 20.0, 99.0: 40.0}
    table = compare(
        predicted,
        measured,
        {50.0: (9.5, 10.5), 95.0: (19.0, 21.0), 99.0: (28.0, 32.0)},
        {50.0: (10.4, 11.6), 95.0: (19.5, 20.5), 99.0: (35.0, 45.0)},
    )
    assert table["agrees"].tolist() == [1.0, 1.0, 0.0]  # p50 10% off, yet within what the measurement can tell
    assert compare(predicted, measured)["agrees"].isna().all()  # perf_analyzer: no interval, no verdict
