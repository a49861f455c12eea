"""Fitting batch-cost curves: known parameters recovered from noisy synthetic measurements, the right
family chosen for data generated from each family, and clear messages for bad measurement files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from calibrate.fit import (
    check_measurements,
    fit_curve,
    load_measurements,
    non_decreasing,
    summarise,
    throughput_knee,
)
from sim.errors import DataFileError
from sim.spec.profile import curve_ms

SIZES = (1, 2, 4, 8, 16, 32, 64)


def synthetic(cost, sizes=SIZES, repeats=60, noise_sigma=0.05, seed=0) -> pd.DataFrame:
    """Repeats of `cost(n)` × lognormal noise with median 1 (so the true median of each batch size is cost(n))."""
    rng = np.random.default_rng(seed)
    rows = [(n, 1, cost(n) * float(np.exp(noise_sigma * rng.standard_normal()))) for n in sizes for _ in range(repeats)]
    return pd.DataFrame(rows, columns=["batch_size", "instances", "latency_ms"])


def affine(n):
    return 2.0 + 0.5 * n


def roofline(n):
    return 5.0 + 0.1 * min(n, 8) + 1.0 * max(n - 8, 0)


def concave(n):
    return 3.0 * n**0.6


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_affine_parameters_recovered(seed):
    fit = fit_curve(summarise(synthetic(affine, seed=seed)))
    assert fit.family == "affine"
    assert fit.params["base_ms"] == pytest.approx(2.0, rel=0.05)
    assert fit.params["per_item_ms"] == pytest.approx(0.5, rel=0.03)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roofline_knee_recovered(seed):
    fit = fit_curve(summarise(synthetic(roofline, seed=seed)))
    assert fit.family == "roofline"
    assert fit.params["knee_batch"] == pytest.approx(8.0, rel=0.15)
    assert fit.params["per_item_above_ms"] == pytest.approx(1.0, rel=0.05)
    assert fit.params["base_ms"] == pytest.approx(5.0, rel=0.05)


def test_curved_data_falls_back_to_piecewise_linear_through_the_medians():
    summary = summarise(synthetic(concave))
    fit = fit_curve(summary)
    assert fit.family == "piecewise_linear"
    assert fit.candidates["affine"]["accepted"] is False
    assert fit.candidates["roofline"]["accepted"] is False
    points = np.array(fit.params["points"])
    np.testing.assert_allclose(points[:, 1], summary["p50_ms"], rtol=1e-3)


def test_quality_figures_are_those_of_the_fitted_curve():
    summary = summarise(synthetic(affine))
    fit = fit_curve(summary, family="affine")
    y = summary["p50_ms"].to_numpy()
    f = curve_ms("affine", fit.params, summary["batch_size"].to_numpy())
    assert fit.quality["mape_pct"] == pytest.approx(np.mean(np.abs(f - y) / y) * 100, abs=1e-3)
    assert fit.quality["r2"] == pytest.approx(1 - ((y - f) ** 2).sum() / ((y - y.mean()) ** 2).sum(), abs=1e-4)
    assert [p["batch_size"] for p in fit.quality["per_batch"]] == list(SIZES)


def test_family_can_be_forced_and_roofline_needs_five_sizes():
    summary = summarise(synthetic(affine, sizes=(1, 2, 4, 8)))
    assert fit_curve(summary, family="piecewise_linear").family == "piecewise_linear"
    with pytest.raises(DataFileError, match="at least 5 batch sizes"):
        fit_curve(summary, family="roofline")


def test_pooled_adjacent_violators_gives_least_squares_monotone_sequence():
    # [1, 3, 2, 4]: the violating pair (3, 2) pools to its mean 2.5.
    np.testing.assert_allclose(non_decreasing(np.array([1.0, 3.0, 2.0, 4.0])), [1.0, 2.5, 2.5, 4.0])
    np.testing.assert_allclose(non_decreasing(np.array([3.0, 2.0, 1.0])), [2.0, 2.0, 2.0])


def test_throughput_knee_is_where_per_item_cost_stops_falling():
    summary = summarise(synthetic(roofline, noise_sigma=0.0, repeats=3))
    # per item: 5.1, 2.6, 1.35, 0.725, then 13.8/16 = 0.86 > 0.725: no more gain after 8.
    assert throughput_knee(summary) == 8


def test_interference_rows_are_kept_in_the_summary():
    frame = synthetic(affine)
    busy = frame.assign(instances=2, latency_ms=frame["latency_ms"] * 1.5)
    summary = summarise(pd.concat([frame, busy]))
    assert sorted(summary["instances"].unique()) == [1, 2]
    ratio = summary[summary.instances == 2]["p50_ms"].to_numpy() / summary[summary.instances == 1]["p50_ms"].to_numpy()
    np.testing.assert_allclose(ratio, 1.5)


# --------------------------------------------------------------------------- bad inputs
def write(tmp_path, text: str):
    path = tmp_path / "m.csv"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text, message",
    [
        ("batch_size,latency\n1,2.0\n2,3.0\n", "missing column.*latency_ms"),
        ("batch_size,latency_ms\n1,2.0\n2,-3.0\n", "row 3 must be positive"),
        ("batch_size,latency_ms\n1,2.0\n2,0\n", "row 3 must be positive"),
        ("batch_size,latency_ms\n4,2.0\n4,2.1\n", "only one batch size"),
        ("batch_size,latency_ms\n1,2.0\n2,fast\n", "row 3 is not a number$"),
        ("batch_size,latency_ms\n1.5,2.0\n2,3\n", "whole number"),
        ("", "is empty"),
        ("batch_size,latency_ms\n", "no rows"),
        ("batch_size,latency_ms,tokens\n1,2,10\n2,3,20\n", "tokens"),
        ("batch_size,latency_ms,instances\n1,2,2\n2,3,2\n", "instances = 1"),
    ],
)
def test_bad_measurement_files_give_a_clear_message(tmp_path, text, message):
    with pytest.raises(DataFileError, match=message):
        load_measurements(write(tmp_path, text))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataFileError, match="not found"):
        load_measurements(tmp_path / "nope.csv")


def test_clean_measurements_pass_with_default_instances():
    frame = check_measurements(pd.DataFrame({"batch_size": [1, 2], "latency_ms": [1.0, 2.0]}), "t")
    assert frame["instances"].tolist() == [1, 1]


def test_another_latency_column_can_be_fitted(tmp_path):
    path = write(tmp_path, "batch_size,latency_ms,cpu_ms\n1,9.0,1.0\n2,9.0,2.0\n")
    assert load_measurements(path, latency_column="cpu_ms")["latency_ms"].tolist() == [1.0, 2.0]
    with pytest.raises(DataFileError, match="no column 'gpu_ms'"):
        load_measurements(path, latency_column="gpu_ms")
