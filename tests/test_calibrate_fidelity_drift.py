"""Host drift as an interval on a `make fidelity` prediction (calibrate/fidelity_drift.py): predicted at the
calibration before a cell and at the next one's level, the measurement judged against the band between."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from calibrate.fidelity import _predict_cell, format_report
from calibrate.fidelity_drift import drift_ratios, judge_band
from calibrate.fidelity_offline import calibration_arrays, drift_after, load_saved_run
from calibrate.fidelity_report import judge
from calibrate.fidelity_settings import ERROR_LIMIT_PCT

DATA = Path(__file__).parent / "data" / "realserver-quiet-2026-12-02"


def test_a_measurement_inside_the_band_has_no_error_and_outside_it_the_distance_to_the_nearer_end():
    runs = [10.0, 10.2]  # mean 10.1, noise 2%: judged
    inside = judge_band(runs, 9.0, 11.0, "p95")
    assert inside["error_pct"] == 0.0 and inside["verdict"] == "ok"
    assert (inside["low_ms"], inside["high_ms"]) == (9.0, 11.0)
    below = judge_band(runs, 7.0, 8.0, "p95")  # the band lies below: the error is its top's
    assert below["error_pct"] == pytest.approx(judge(runs, 8.0, "p95")["error_pct"]) and below["verdict"] == "miss"
    above = judge_band(runs, 12.0, 10.5, "p95")  # ends in either order; the band lies above: its bottom's
    assert above["error_pct"] == pytest.approx(100 * (10.5 - 10.1) / 10.1) and above["verdict"] == "ok"
    assert judge_band(runs, 10.1 * (1 - ERROR_LIMIT_PCT["p50"] / 100) - 0.01, 9.0, "p50")["verdict"] == "miss"
    noisy = judge_band([10.0, 12.0], 5.0, 6.0, "p99")  # runs disagree: not judged, error still shown
    assert noisy["verdict"] == "noisy" and noisy["error_pct"] < 0


def test_drift_is_the_next_calibration_of_the_same_server_else_the_one_after_its_last_cell():
    fifo = [{"service_ms": np.array([5.0])}, {"service_ms": np.array([6.0])}]
    shared = {"service_ms": np.ones(2), "service_busy_ms": np.array([4.0])}
    after_shared = {"service_ms": np.ones(2), "service_busy_ms": np.array([5.0])}
    ratios = drift_ratios(["fifo1", "shared2", "fifo1"], [fifo[0], shared, fifo[1]], [None, after_shared, None])
    assert ratios == [pytest.approx(1.2), pytest.approx(1.25), None]


def test_a_saved_calibration_after_the_last_cell_gives_that_cell_its_drift(tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(DATA / "run1", folder)
    data = json.loads((folder / "fidelity.json").read_text())
    last_fifo = data["calibration_samples"][1]
    last_fifo["after"] = {**last_fifo, "service_ms": [1.1 * x for x in last_fifo["service_ms"]]}
    (folder / "fidelity.json").write_text(json.dumps(data))
    saved = load_saved_run(folder)
    entries = []
    for cell, samples in zip(saved.cells, saved.calibration_samples):
        entry = {"cell": cell, "calibration": calibration_arrays(samples)}
        if samples.after is not None:
            entry["calibration_after"] = calibration_arrays(samples.after)
        entries.append(entry)
    ratios = drift_after(entries)
    assert ratios[1] == pytest.approx(1.1)
    assert ratios[3] is None and ratios[5] is None  # the runs saved no calibration after the other configs


def _fifo_cell(rate_rps: float, ratio: float | None) -> dict:
    busy = 2.0 * (1 + 1e-3 * np.random.default_rng(0).random(100))
    calibration = {"service_ms": busy.copy(), "transport_ms": np.full(100, 0.5)}
    return {
        "config": "fifo1",
        "utilisation": 0.6,
        "rate_rps": rate_rps,
        "calibration": {
            "transport_ms_median": 0.5,
            "service_ms_mean": 2.0,
            "service_ms_p99": 2.0,
            "capacity_rps": 500.0,
            "capacity": "1 / mean service",
        },
        "measured": [{"p50": 3.0, "p95": 6.0, "p99": 8.0}] * 2,
        "lateness": [{"p50": 0.1, "p99": 0.2}] * 2,
        "next_calibration_ratio": ratio,
        "_calibration": calibration,
        "_calibration_after": {"service_ms": 1.5 * busy, "transport_ms": np.full(100, 0.5)},
        "_logs": [(busy, [([i], b, 0.0) for i, b in enumerate(busy)])],
    }


def test_the_live_harness_predicts_at_both_ends_of_the_drift_and_keeps_the_later_calibration():
    cell = _fifo_cell(rate_rps=1.0, ratio=1.5)
    saved = _predict_cell(cell, 2000)
    low, high = cell["table"][0]["drift_band_ms"]
    assert low == pytest.approx(0.5 + 2.0, rel=0.01)  # light load: transport + the kernel as calibrated
    assert high == pytest.approx(0.5 + 3.0, rel=0.01)  # ... and 1.5x slower, as the next calibration found it
    assert cell["table"][0]["drift_band_error_pct"] == 0.0  # the runs' 3.0 ms lies inside
    assert len(saved["after"]["service_ms"]) == 100  # saved, to predict again offline
    report = format_report(
        {
            "machine": "2 logical CPUs",
            "requests_per_run": 2000,
            "runs": 2,
            "noise_limit_pct": 5.0,
            "error_limit_pct": ERROR_LIMIT_PCT,
            "cells": [cell],
        }
    )
    assert "[2.50, 3.50]" in report and "next calibration 1.500x" in report and "drift band: " in report


def test_without_a_later_calibration_the_live_cell_has_no_band():
    cell = _fifo_cell(rate_rps=1.0, ratio=None)
    cell.pop("_calibration_after")
    saved = _predict_cell(cell, 2000)
    assert "drift_band_ms" not in cell["table"][0] and "after" not in saved


def test_the_co_load_phase_is_also_replayed_in_order_live_and_offline(tmp_path):
    """The co-load phase's busy times, served at the cell's rate just before its runs, replayed in the
    order logged (correlated service under co-load): at light load, transport + the loaded kernel."""
    cell = _fifo_cell(rate_rps=1.0, ratio=None)
    cell["_calibration"].update(co_load_busy_ms=np.full(100, 2.4), co_load_batch_size=np.ones(100, dtype=int))
    saved = _predict_cell(cell, 2000)
    assert cell["table"][0]["co_load_replay_ms"] == pytest.approx(0.5 + 2.4, rel=0.01)
    assert "co_load_replay_verdict" in cell["table"][0]

    from calibrate.fidelity_offline import repredict
    from calibrate.fidelity_offline_report import format_repredicted

    folder = tmp_path / "run"
    folder.mkdir()
    data = json.loads((DATA / "run1" / "fidelity.json").read_text())
    data["cells"], data["calibration_samples"] = data["cells"][:1], data["calibration_samples"][:1]
    samples = data["calibration_samples"][0]
    samples.update(co_load_busy_ms=[1.2 * x for x in samples["service_ms"]], co_load_batch_size=[1.0] * 500)
    (folder / "fidelity.json").write_text(json.dumps(data))
    run = repredict([folder])
    row = run[0]["cells"][0]["table"][0]
    assert row["co_load_replay"]["ms"] > row["isolated"]["ms"]  # the kernel 1.2x slower, in its own order
    assert "co-load replayed" in format_repredicted(run)
    assert set(saved) >= {"co_load_busy_ms", "co_load_batch_size"}
