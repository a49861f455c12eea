"""Model profiles: the spread matches the measured quantiles, sampling reproduces the measured per-batch
distribution (median and p99 within a few %), interference and limits behave, files fail cleanly, and the
shipped profiles carry their provenance."""

from __future__ import annotations

import math
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest
import yaml

from calibrate.fit import fit_curve, summarise
from calibrate.profile import build_profile, check_profile, dump_profile, fit_measurements, write_profile
from sim.errors import DataFileError
from sim.spec.hardware import load_catalogue
from sim.spec.profile import load_profile, profile_from_dict, spread_shape

ROOT = Path(__file__).resolve().parent.parent
Z90, Z99 = NormalDist().inv_cdf(0.9), NormalDist().inv_cdf(0.99)


def gamma_measurements(sizes=(1, 2, 4, 8, 16), repeats=400, seed=0, slowdown=None) -> pd.DataFrame:
    """Right-skewed latencies: 1 ms + 0.4 ms/item fixed part plus a gamma(shape 4) part with mean 10% of it."""
    rng = np.random.default_rng(seed)
    rows = []
    for k, factor in [(1, 1.0)] + list((slowdown or {}).items()):
        for n in sizes:
            base = (1.0 + 0.4 * n) * factor
            for x in base + rng.gamma(4.0, 0.1 * base / 4.0, size=repeats):
                rows.append((n, k, float(x)))
    return pd.DataFrame(rows, columns=["batch_size", "instances", "latency_ms"])


def test_shifted_lognormal_matches_three_quantiles_exactly():
    p50, p90, p99 = 10.0, 11.0, 13.0
    s, sigma = spread_shape(p50, p90, p99)
    assert 0 < s < 1
    q = lambda z: p50 * (s + (1 - s) * math.exp(sigma * z))  # noqa: E731
    assert q(0.0) == pytest.approx(p50)
    assert q(Z90) == pytest.approx(p90, rel=1e-9)
    assert q(Z99) == pytest.approx(p99, rel=1e-9)


def test_light_tail_falls_back_to_lognormal_matching_p50_and_p99():
    # (p99 - p50) / (p90 - p50) = 1.2 < z99 / z90: no lognormal, shifted or not, has such a light tail.
    s, sigma = spread_shape(10.0, 10.5, 10.6)
    assert s == 0.0
    assert sigma == pytest.approx(math.log(1.06) / Z99)


def test_no_spread_is_a_constant():
    assert spread_shape(5.0, None, None) == (0.0, 0.0)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    frame = gamma_measurements(slowdown={2: 1.6})
    out = tmp_path_factory.mktemp("p") / "g.yaml"
    data, report, png = fit_measurements(frame, out, name="g", hardware="t4")
    return frame, load_profile(out), data, png


def test_round_trip_sampling_reproduces_measured_median_and_p99(fitted):
    frame, profile, _, _ = fitted
    rng = np.random.default_rng(1)
    for n in (1, 2, 4, 8, 16):
        measured = frame[(frame.batch_size == n) & (frame.instances == 1)]["latency_ms"]
        draws = profile.sample_many_ms(n, rng, 40_000)
        assert np.median(draws) == pytest.approx(measured.median(), rel=0.02)
        assert np.percentile(draws, 99) == pytest.approx(np.percentile(measured, 99), rel=0.03)


def test_scalar_sampling_has_the_same_distribution_as_vectorised(fitted):
    _, profile, _, _ = fitted
    rng = np.random.default_rng(2)
    one_by_one = np.array([profile.sample_ms(4, rng) for _ in range(20_000)])
    assert np.median(one_by_one) == pytest.approx(profile.quantile_ms(4, 0.5), rel=0.01)
    assert np.percentile(one_by_one, 99) == pytest.approx(profile.quantile_ms(4, 0.99), rel=0.02)


def test_mean_is_the_shifted_lognormal_mean(fitted):
    _, profile, _, _ = fitted
    draws = profile.sample_many_ms(8, np.random.default_rng(3), 200_000)
    assert draws.mean() == pytest.approx(profile.mean_ms(8), rel=0.005)


def test_interference_scales_with_busy_instances_and_caps_at_the_highest_measured(fitted):
    frame, profile, _, _ = fitted
    assert profile.max_instances == 2
    busy = frame[(frame.batch_size == 4) & (frame.instances == 2)]["latency_ms"]
    assert profile.median_ms(4, busy_instances=2) == pytest.approx(busy.median(), rel=0.02)
    assert profile.median_ms(4, busy_instances=5) == profile.median_ms(4, busy_instances=2)
    # Between measured batch sizes the slowdown is interpolated, so batch 3 at 2 busy is 1.6x batch 3 alone.
    assert profile.median_ms(3, 2) / profile.median_ms(3, 1) == pytest.approx(1.6, rel=0.03)


def test_batch_above_the_limit_is_refused_by_name(fitted):
    _, profile, _, _ = fitted
    assert profile.max_batch_size == 16
    with pytest.raises(DataFileError, match="batch size 17"):
        profile.sample_ms(17, np.random.default_rng(0))


def test_fit_writes_a_png_and_the_price_from_the_catalogue(fitted):
    _, profile, data, png = fitted
    assert png.is_file() and png.stat().st_size > 10_000
    assert profile.usd_per_hour == load_catalogue()["t4"].usd_per_hour
    assert "price_source" in data["provenance"]


def affine_profile(**extra) -> dict:
    summary = summarise(gamma_measurements(sizes=(1, 2, 4, 8), repeats=50))
    data = build_profile(summary, fit_curve(summary, family="affine"), name="a")
    data.update(extra)
    return data


def test_extrapolation_up_to_twice_the_measured_range_warns():
    profile = profile_from_dict(affine_profile(max_batch_size=16))
    assert profile.max_batch_size == 16
    assert any("extrapolated" in w for w in profile.warnings)
    expected = profile.curve_params["base_ms"] + profile.curve_params["per_item_ms"] * 16
    assert profile.median_ms(16) == pytest.approx(expected, rel=1e-9)


def test_extrapolation_beyond_twice_the_measured_range_is_refused():
    with pytest.raises(DataFileError, match="refusing to extrapolate"):
        profile_from_dict(affine_profile(max_batch_size=17))


def test_overhead_is_added_once_per_batch():
    plain = profile_from_dict(affine_profile())
    with_overhead = profile_from_dict(affine_profile(overhead_ms=0.25))
    assert with_overhead.per_request_overhead_ms == 0.25
    assert with_overhead.mean_ms(4) - plain.mean_ms(4) == pytest.approx(0.25)
    a = plain.sample_many_ms(4, np.random.default_rng(5), 10)
    b = with_overhead.sample_many_ms(4, np.random.default_rng(5), 10)
    np.testing.assert_allclose(b - a, 0.25)


def test_written_yaml_loads_to_the_same_profile(tmp_path):
    data = affine_profile()
    write_profile(data, tmp_path / "a.yaml")
    assert yaml.safe_load(dump_profile(data)) == yaml.safe_load((tmp_path / "a.yaml").read_text())
    assert load_profile(tmp_path / "a.yaml").median_ms(3) == check_profile(data, "a").median_ms(3)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("curve"), "curve: Field required"),
        (lambda d: d["latency"][0].update(p50_ms=-1), "latency.0.p50_ms"),
        (lambda d: d["latency"][0].update(p99_ms=d["latency"][0]["p50_ms"] / 2), "p99_ms .* is below"),
        (lambda d: d["latency"].append(dict(d["latency"][0])), r"more than one row for \(batch_size, instances\)"),
        (lambda d: d.update(kind="llm"), "kind 'llm' is not a batch-cost profile"),
        (lambda d: d["curve"].pop("per_item_ms"), "affine curve needs per_item_ms"),
        (lambda d: d["latency"][0].update(p50_ms="fast"), "latency.0.p50_ms"),
    ],
)
def test_bad_profiles_give_a_clear_message(mutate, message):
    data = affine_profile()
    mutate(data)
    with pytest.raises(DataFileError, match=message):
        profile_from_dict(data, where="profile x.yaml")


def test_missing_empty_and_non_yaml_files(tmp_path):
    with pytest.raises(DataFileError, match="not found"):
        load_profile(tmp_path / "none.yaml")
    (tmp_path / "e.yaml").write_text("")
    with pytest.raises(DataFileError, match="is empty"):
        load_profile(tmp_path / "e.yaml")
    (tmp_path / "b.yaml").write_text("kind: [unclosed")
    with pytest.raises(DataFileError, match="not valid YAML"):
        load_profile(tmp_path / "b.yaml")


# --------------------------------------------------------------------------- shipped files
SHIPPED = sorted(p for p in (ROOT / "models").glob("*.yaml") if p.name != "hardware.yaml")


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_batch_profiles_load_and_carry_provenance(path):
    raw = yaml.safe_load(path.read_text())
    if raw.get("kind", "batch") != "batch":
        pytest.skip("not a batch-cost profile")
    profile = load_profile(path)
    assert profile.provenance.get("source") and profile.provenance.get("date")
    assert profile.hardware and profile.usd_per_hour is not None
    medians = [profile.median_ms(n) for n in range(1, profile.max_batch_size + 1)]
    assert all(b >= a for a, b in zip(medians, medians[1:])), "batch cost must not fall with batch size"


def test_clockwork_profile_reproduces_the_published_medians():
    profile = load_profile(ROOT / "models" / "resnet50-v100-clockwork.yaml")
    # Gujarati et al., OSDI '20 (Clockwork): ResNet-50 batch 1: 3.3 ms, 2: 5.3, 4: 7.5, 8: 12.4.
    for n, ms in {1: 3.3, 2: 5.3, 4: 7.5, 8: 12.4}.items():
        assert profile.median_ms(n) == pytest.approx(ms, rel=1e-9)


def test_hardware_catalogue_has_the_design_prices_with_sources():
    catalogue = load_catalogue()
    # DESIGN.md: AWS us-east-1 on-demand, read 2026-11-28.
    expected = {"a100-80gb": 3.43, "h100-80gb": 6.88, "l4": 0.80, "t4": 0.526, "cpu-16vcpu": 0.806}
    for name, price in expected.items():
        assert catalogue[name].usd_per_hour == price
        assert not catalogue[name].approximate
    assert all(hw.source for hw in catalogue.values())


def test_hardware_catalogue_errors_name_the_entry(tmp_path):
    bad = tmp_path / "hw.yaml"
    bad.write_text("hardware:\n  x1: {usd_per_hour: cheap, source: me}\n")
    with pytest.raises(DataFileError, match="hardware.x1.usd_per_hour"):
        load_catalogue(bad)
    bad.write_text("hardware:\n  x1: {usd_per_hour: 1.0}\n")
    with pytest.raises(DataFileError, match="hardware.x1.source"):
        load_catalogue(bad)


def test_live_cpu_profiles_match_the_measurements_shipped_beside_them():
    """Each live-measured profile keeps its measurements CSV; its latency rows are that CSV's quantiles."""
    for path in SHIPPED:
        raw = yaml.safe_load(path.read_text())
        csv_name = raw.get("provenance", {}).get("measurements_file")
        if raw.get("kind", "batch") != "batch" or not csv_name:
            continue
        frame = pd.read_csv(path.parent / csv_name)
        column = "cpu_ms" if "thread CPU time" in raw["provenance"].get("method", "") else "latency_ms"
        for row in raw["latency"]:
            runs = frame[(frame.batch_size == row["batch_size"]) & (frame.instances == row["instances"])][column]
            assert row["n"] == len(runs)
            assert row["p50_ms"] == pytest.approx(np.percentile(runs, 50), abs=1e-4)
            assert row["p99_ms"] == pytest.approx(np.percentile(runs, 99), abs=1e-4)


def test_spread_between_measured_batch_sizes_lies_between_theirs():
    data = affine_profile()
    data["latency"] = [
        {"batch_size": 1, "instances": 1, "p50_ms": 1.0, "p90_ms": 1.02, "p99_ms": 1.05},  # tight
        {"batch_size": 8, "instances": 1, "p50_ms": 4.0, "p90_ms": 5.0, "p99_ms": 8.0},  # wide tail
    ]
    data["curve"] = {"family": "piecewise_linear", "points": [[1, 1.0], [8, 4.0]]}
    profile = profile_from_dict(data)
    tails = [profile.quantile_ms(n, 0.99) / profile.median_ms(n) for n in range(1, 9)]
    assert tails[0] == pytest.approx(1.05) and tails[-1] == pytest.approx(2.0)
    assert all(b > a for a, b in zip(tails, tails[1:]))


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(
    p50=st.floats(0.01, 1e4),
    gap90=st.floats(1e-4, 2.0),
    gap99=st.floats(1e-4, 5.0),
)
def test_spread_always_reproduces_p50_and_p99_and_p90_when_shifted(p50, gap90, gap99):
    p90 = p50 * (1 + gap90)
    p99 = p90 * (1 + gap99)
    s, sigma = spread_shape(p50, p90, p99)
    assert 0 <= s < 1 and sigma > 0
    q = lambda z: p50 * (s + (1 - s) * math.exp(sigma * z))  # noqa: E731
    assert q(Z99) == pytest.approx(p99, rel=1e-6)
    if s > 0:
        assert q(Z90) == pytest.approx(p90, rel=1e-6)
