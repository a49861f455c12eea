"""Non-parametric batch costs: profiles that carry measured samples resample them (and interpolate the
quantile function between measured batch sizes); two-peaked samples are named in the profile's warnings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from calibrate.levers import derive
from calibrate.profile import fit_measurements
from sim.spec.measured_samples import MIN_SAMPLES, two_peak_test
from sim.spec.profile import profile_from_dict


def _profile(samples: dict[int, list[float]], **extra) -> dict:
    sizes = sorted(samples)
    return {
        "kind": "batch",
        "name": "sampled",
        "curve": {"family": "piecewise_linear", "points": [[b, float(np.median(samples[b]))] for b in sizes]},
        "latency": [{"batch_size": b, "p50_ms": float(np.median(samples[b]))} for b in sizes],
        "samples": [{"batch_size": b, "ms": list(map(float, samples[b]))} for b in sizes],
        **extra,
    }


def _two_peaked(rng: np.random.Generator, n: int) -> np.ndarray:
    """A shared host: 80% of runs at ~1 ms, 20% delayed by a ~5 ms time slice."""
    return np.r_[rng.normal(1.0, 0.03, int(0.8 * n)), rng.normal(6.0, 0.2, n - int(0.8 * n))]


def test_resampling_reproduces_a_two_peaked_measurement_that_the_lognormal_cannot():
    rng = np.random.default_rng(1)
    measured = _two_peaked(rng, 400)
    profile = profile_from_dict(_profile({1: measured, 8: 2 * measured}))
    draws = profile.sample_many_ms(1, np.random.default_rng(2), 100_000)
    assert set(np.unique(draws)) <= set(measured)  # plain resampling at a measured size
    assert np.mean(draws > 3.0) == pytest.approx(0.2, abs=0.01)  # the slow peak keeps its share
    assert profile.quantile_ms(1, 0.9) == pytest.approx(np.quantile(measured, 0.9))
    assert profile.mean_ms(1) == pytest.approx(measured.mean())
    # The same quantiles without samples (shifted lognormal through p50 / p90 / p99) put mass in the gap.
    p50, p90, p99 = np.quantile(measured, [0.5, 0.9, 0.99])
    parametric = profile_from_dict(
        {
            **_profile({1: measured, 8: 2 * measured}),
            "samples": None,
            "latency": [
                {"batch_size": 1, "p50_ms": p50, "p90_ms": p90, "p99_ms": p99},
                {"batch_size": 8, "p50_ms": 2 * p50, "p90_ms": 2 * p90, "p99_ms": 2 * p99},
            ],
        }
    )
    lognormal = parametric.sample_many_ms(1, np.random.default_rng(2), 100_000)
    in_gap = lambda x: np.mean((x > 1.5) & (x < 5.0))  # noqa: E731
    assert in_gap(draws) == 0.0 and in_gap(lognormal) > 0.05


def test_between_measured_sizes_the_quantile_functions_are_interpolated():
    base = np.arange(1.0, 101.0)  # 100 samples: 1..100 ms
    profile = profile_from_dict(_profile({2: base, 6: 3 * base}))
    # Batch 4 is halfway: Q(u) = 0.5·Q_2(u) + 0.5·Q_6(u) = 2·Q_2(u) for every u.
    for q in (0.1, 0.5, 0.99):
        assert profile.quantile_ms(4, q) == pytest.approx(2 * np.quantile(base, q))
    assert profile.mean_ms(4) == pytest.approx(2 * base.mean())
    draws = profile.sample_many_ms(4, np.random.default_rng(0), 200_000)
    assert draws.mean() == pytest.approx(2 * base.mean(), rel=0.01)
    # Batch 3 is a quarter of the way: 0.75·Q_2 + 0.25·Q_6 = 1.5·Q_2.
    assert profile.quantile_ms(3, 0.5) == pytest.approx(1.5 * np.quantile(base, 0.5))


def test_too_few_samples_or_outside_the_sampled_sizes_fall_back_to_the_fitted_spread():
    rng = np.random.default_rng(3)
    profile = profile_from_dict(
        _profile(
            {1: rng.gamma(20, 0.05, MIN_SAMPLES - 1), 4: rng.gamma(20, 0.1, 200), 8: rng.gamma(20, 0.2, 200)},
            max_batch_size=12,
        )
    )
    assert profile.measured_samples(1) is None and profile.measured_samples(2) is None
    assert profile.measured_samples(4) is not None and profile.measured_samples(6) is not None
    assert profile.measured_samples(12) is None  # beyond the largest sampled size: the curve
    assert profile.sample_many_ms(12, rng, 5).shape == (5,)


def test_two_peak_test_flags_mixtures_and_not_skewed_single_peaks():
    rng = np.random.default_rng(4)
    for _ in range(20):
        assert two_peak_test(_two_peaked(rng, 300)).two_peaked
        for single in (
            rng.lognormal(0, 0.5, 300),
            rng.gamma(4, 1, 300),
            0.6 + rng.lognormal(-3, 1, 300),
            rng.normal(10, 1, 300),
            rng.exponential(1, 300),
        ):
            assert not two_peak_test(single).two_peaked
    assert two_peak_test(rng.normal(1, 0.1, 50)) is None  # too few to say


def test_profile_warns_about_two_peaked_samples():
    rng = np.random.default_rng(5)
    profile = profile_from_dict(_profile({1: _two_peaked(rng, 300), 8: rng.gamma(30, 0.1, 300)}))
    assert len(profile.warnings) == 1
    assert (
        "batch 1 " in profile.warnings[0]
        and "two-peaked" in profile.warnings[0]
        and "80% near 0.998 ms" in profile.warnings[0]
    )


def test_calibrate_fit_keeps_samples_and_a_lever_scales_them(tmp_path):
    rng = np.random.default_rng(6)
    frame = pd.DataFrame(
        {
            "batch_size": np.repeat([1, 4, 16], [200, 200, 10]),
            "instances": 1,
            "latency_ms": np.r_[_two_peaked(rng, 200), rng.gamma(30, 0.1, 200), rng.gamma(30, 0.3, 10)],
        }
    )
    data, _, _ = fit_measurements(frame, tmp_path / "p.yaml", plot=False)
    assert [row["batch_size"] for row in data["samples"]] == [1, 4]  # 10 repeats at 16: too few to resample
    assert data["samples"][0]["ms"] == pytest.approx(frame.latency_ms[:200].round(4).tolist())
    faster = profile_from_dict(derive(data, "int8", speedup=2.0))
    assert faster.mean_ms(4) == pytest.approx(profile_from_dict(data).mean_ms(4) / 2, rel=1e-3)


def test_bad_samples_are_named():
    from sim.errors import DataFileError

    with pytest.raises(DataFileError, match=r"samples\.0: .*must be > 0"):
        profile_from_dict(_profile({1: [1.0] * 40 + [-1.0], 2: [2.0] * 40}))
