"""Each arrival process against its own rate and CV; each service distribution against its moments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import TypeAdapter

from sim.spec.arrivals import ArrivalProcess
from sim.spec.distributions import Distribution

ARRIVAL = TypeAdapter(ArrivalProcess)
DIST = TypeAdapter(Distribution)


def gaps_s(spec: dict, n: int = 200_000, seed: int = 0, context=None) -> np.ndarray:
    process = ARRIVAL.validate_python(spec, context=context)
    times = process.generate(np.random.default_rng(seed), n, None).times_ms
    return np.diff(times) / 1000.0


@pytest.mark.parametrize(
    "spec, rate, cv",
    [
        ({"process": "poisson", "rate_rps": 50}, 50, 1.0),
        ({"process": "gamma", "rate_rps": 20, "cv": 3.0}, 20, 3.0),
        ({"process": "gamma", "rate_rps": 20, "cv": 0.5}, 20, 0.5),
        ({"process": "constant", "rate_rps": 10}, 10, 0.0),
    ],
)
def test_renewal_processes_have_their_rate_and_cv(spec, rate, cv):
    gaps = gaps_s(spec)
    assert 1 / gaps.mean() == pytest.approx(rate, rel=0.02)
    assert gaps.std() / gaps.mean() == pytest.approx(cv, abs=0.05)


def test_on_off_mean_rate_and_burstiness():
    spec = {"process": "on_off", "rate_on_rps": 100, "rate_off_rps": 10, "mean_on_s": 5, "mean_off_s": 15}
    process = ARRIVAL.validate_python(spec)
    assert process.mean_rate_rps == pytest.approx(0.25 * 100 + 0.75 * 10)
    gaps = gaps_s(spec, n=400_000)
    assert 1 / gaps.mean() == pytest.approx(process.mean_rate_rps, rel=0.05)
    assert gaps.std() / gaps.mean() > 1.5  # an MMPP is burstier than Poisson


def test_duration_gives_every_arrival_before_the_horizon():
    process = ARRIVAL.validate_python({"process": "poisson", "rate_rps": 100})
    times = process.generate(np.random.default_rng(1), None, 60_000.0).times_ms
    assert times.max() < 60_000 and len(times) == pytest.approx(6000, rel=0.05)


def test_time_varying_rate_follows_its_profile():
    spec = {
        "process": "time_varying",
        "points": [[0, 10], [50, 100], [100, 10]],
        "period_s": 100,
        "spikes": [{"at_s": 120, "duration_s": 10, "multiplier": 5}],
    }
    process = ARRIVAL.validate_python(spec)
    times_s = process.generate(np.random.default_rng(2), None, 200_000.0).times_ms / 1000
    counts, _ = np.histogram(times_s, bins=np.arange(0, 201, 10))
    expected = np.array([process.rate_rps_at(np.linspace(a, a + 10, 101)).mean() * 10 for a in range(0, 200, 10)])
    # Poisson counts: within 4 standard deviations in every 10-second bin.
    assert np.all(np.abs(counts - expected) < 4 * np.sqrt(expected) + 1)
    assert counts[12] > 3 * counts[2]  # the spike at 120-130 s (rate 5 x ~33)


def test_trace_replays_times_and_carries_columns(tmp_path: Path):
    trace = tmp_path / "t.csv"
    trace.write_text("arrived_at,tokens\n0.0,5\n0.5,7\n2.0,9\n")
    process = ARRIVAL.validate_python(
        {"process": "trace", "file": str(trace), "rate_scale": 2.0}, context={"base_dir": tmp_path}
    )
    arrivals = process.generate(np.random.default_rng(0), None, 10_000.0)
    assert arrivals.times_ms.tolist() == [0.0, 250.0, 1000.0]
    assert arrivals.columns["tokens"].tolist() == [5, 7, 9]


def test_unsorted_trace_is_refused(tmp_path: Path):
    from sim.errors import DataFileError

    trace = tmp_path / "t.csv"
    trace.write_text("arrived_at\n1.0\n0.5\n")
    process = ARRIVAL.validate_python({"process": "trace", "file": str(trace)}, context={"base_dir": tmp_path})
    with pytest.raises(DataFileError, match="not sorted"):
        process.generate(np.random.default_rng(0), 2, None)


def test_non_numeric_trace_names_the_row(tmp_path: Path):
    from sim.errors import DataFileError

    trace = tmp_path / "t.csv"
    trace.write_text("arrived_at\n0.0\nsoon\n")
    process = ARRIVAL.validate_python({"process": "trace", "file": str(trace)}, context={"base_dir": tmp_path})
    with pytest.raises(DataFileError, match="row 3 is not a number"):
        process.generate(np.random.default_rng(0), 2, None)


@pytest.mark.parametrize(
    "spec",
    [
        {"dist": "constant", "value": 3.0},
        {"dist": "exponential", "mean": 5.0},
        {"dist": "lognormal", "median": 10.0, "p99": 40.0},
        {"dist": "lognormal", "mean": 10.0, "cv": 0.8},
        {"dist": "gamma", "mean": 4.0, "cv": 2.0},
        {"dist": "uniform", "low": 30.0, "high": 50.0},
        {"dist": "empirical", "samples": [1.0, 2.0, 2.0, 7.0]},
    ],
)
def test_distribution_samples_match_their_moments(spec):
    dist = DIST.validate_python(spec)
    samples = dist.sample(np.random.default_rng(3), 400_000)
    assert samples.min() >= 0
    assert samples.mean() == pytest.approx(dist.mean, rel=0.02)
    assert np.mean(samples**2) == pytest.approx(dist.second_moment, rel=0.05)


def test_lognormal_by_quantiles_hits_its_quantiles():
    dist = DIST.validate_python({"dist": "lognormal", "median": 45.0, "p99": 90.0})
    samples = dist.sample(np.random.default_rng(4), 400_000)
    assert np.median(samples) == pytest.approx(45.0, rel=0.01)
    assert np.quantile(samples, 0.99) == pytest.approx(90.0, rel=0.02)


def test_a_bare_number_is_a_constant():
    assert DIST.validate_python(12).mean == 12.0


def test_empirical_from_file(tmp_path: Path):
    path = tmp_path / "lat.csv"
    path.write_text("latency_ms\n1\n3\n")
    dist = DIST.validate_python({"dist": "empirical", "file": str(path)}, context={"base_dir": tmp_path})
    assert dist.mean == 2.0
