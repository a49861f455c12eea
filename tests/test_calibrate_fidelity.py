"""`make fidelity`: the live serving harness (three configurations), the batching rule, the prediction
scenarios and the verdicts they are compared with."""

from __future__ import annotations

import math

import numpy as np
import pytest

from calibrate.fidelity import (
    BatchingServer,
    LiveServer,
    SharedQueueServer,
    batch_decision,
    capacity_rps,
    form_batches,
    format_report,
    judge,
    main,
    predict,
    scenario_for,
    simulate_percentiles,
)


def test_prediction_at_light_load_is_transport_plus_service():
    service, transport = np.full(200, 2.0), np.full(200, 0.5)
    for ordered in (False, True):
        predicted = predict(service, transport, rate_rps=1.0, requests=2000, replications=3, ordered=ordered)
        assert predicted["p50"]["ms"] == pytest.approx(2.5)  # queueing at 0.2% utilisation is rare


def test_live_server_reports_service_times_inside_each_latency():
    pytest.importorskip("onnxruntime")
    from calibrate.networks import build_mlp

    server = LiveServer(build_mlp(hidden=(64,)), warmup=5)
    try:
        service, transport = server.calibrate(20)
        latency, lateness, busy = server.serve(rate_rps=200.0, n=50, rng=np.random.default_rng(0))
        sending = np.array([extra for _, _, extra in server.log])  # the previous reply's send, in `busy`
        frame = server.requests
    finally:
        server.close()
    check_request_log(frame, latency, max_batch=1)
    assert (service > 0).all() and (transport >= 0).all()
    assert [ids for ids, _, _ in server.log] == [[i] for i in range(50)]  # served in send order
    assert len(busy) == 50 and (latency >= busy - sending).all()  # request i is the i-th served
    assert (lateness > -1e-6).all()


def check_request_log(frame, latency: np.ndarray, max_batch: int) -> None:
    """A run's per-request log (calibrate/fidelity_log.py): every request once, its times in causal order on
    one clock, its latency the one the run measured, each batch one size, one busy time, one start."""
    from calibrate.fidelity_log import COLUMNS

    assert list(frame.columns) == list(COLUMNS) and list(frame["request"]) == list(range(len(latency)))
    assert np.allclose(frame["latency_ms"], latency)
    eps = 1e-3  # ms: clock readings rounded
    assert (frame["sent_ms"] >= frame["scheduled_ms"] - eps).all()
    assert (frame["server_arrival_ms"] >= frame["sent_ms"] - eps).all()  # one clock for client and server
    assert (frame["service_start_ms"] >= frame["server_arrival_ms"] - eps).all()
    assert (frame["service_end_ms"] > frame["service_start_ms"]).all()
    assert (frame["received_ms"] >= frame["service_end_ms"] - eps).all()
    assert (frame["busy_ms"] >= frame["service_end_ms"] - frame["service_start_ms"] - eps).all()  # + reply send
    batches = frame.groupby("batch_id")
    assert (batches["batch_size"].nunique() == 1).all() and (batches["service_start_ms"].nunique() == 1).all()
    assert (batches.size() == batches["batch_size"].first()).all() and frame["batch_size"].max() <= max_batch


# --------------------------------------------------------------------------- the dynamic batcher's rule
def test_batch_decision_sends_a_full_batch_at_once_and_a_partial_one_at_its_deadline():
    assert batch_decision(0, None, 5.0, max_batch=4, delay_ms=2.0) == (0, None)  # nothing queued: wait
    assert batch_decision(4, 4.9, 5.0, max_batch=4, delay_ms=2.0) == (4, None)  # full: at once
    assert batch_decision(9, 4.9, 5.0, max_batch=4, delay_ms=2.0) == (4, None)  # never more than the max
    assert batch_decision(3, 4.0, 5.0, max_batch=4, delay_ms=2.0) == (0, 6.0)  # partial: wait to the deadline
    assert batch_decision(3, 3.0, 5.0, max_batch=4, delay_ms=2.0) == (3, None)  # deadline reached: what is queued
    assert batch_decision(1, 5.0, 5.0, max_batch=4, delay_ms=0.0) == (1, None)  # no delay: at once


def test_form_batches_on_a_scripted_arrival_sequence():
    arrivals = [0.0, 0.5, 1.0, 1.2, 10.0, 20.0, 30.0, 30.1, 30.2, 30.3]
    batches = form_batches(np.array(arrivals), lambda n: 5.0, max_batch=3, delay_ms=2.0)
    expected = [
        (1.0, [0, 1, 2]),  # the third arrival fills the batch before the first's deadline (2.0)
        (6.0, [3]),  # queued during that batch, past its deadline when the server frees: at once
        (12.0, [4]),  # alone: waits the full delay
        (22.0, [5]),
        (30.2, [6, 7, 8]),  # full at once
        (35.2, [9]),  # waited past its deadline behind the previous batch
    ]
    assert [(pytest.approx(t), ids) for t, ids in batches] == expected


def test_form_batches_is_the_rule_servesim_simulates():
    """The live batcher's rule and servesim's dynamic batching agree batch for batch on random traffic
    (servesim flushes what is left once the last request has arrived: compared up to then)."""
    from sim.engine.batch_recursion import solve_batches
    from sim.spec.batch_cost import AffineCost, AffineSpec
    from sim.spec.batching import DynamicBatching

    rng = np.random.default_rng(3)
    ready = np.cumsum(rng.exponential(1000.0 / 1500.0, 3000))  # ms, ~1500 req/s
    cost = AffineCost(AffineSpec(base_ms=3.0, per_item_ms=0.25))
    policy = DynamicBatching.model_validate({"policy": "dynamic", "max_batch_size": 8, "max_queue_delay_ms": 2.0})
    solved = solve_batches(ready, cost, policy, 1, 1, "shared_queue", rng, rng)
    ours = form_batches(ready, lambda n: cost.mean_ms(n), max_batch=8, delay_ms=2.0)
    last = ready[-1]
    ours = [(t, ids) for t, ids in ours if t < last]
    assert len(ours) > 300 and len({len(ids) for _, ids in ours}) >= 4  # a mix of batch sizes
    for t, ids in ours:
        assert solved.start_ms[ids] == pytest.approx(np.full(len(ids), t))
        assert (solved.batch_size[ids] == len(ids)).all()


# --------------------------------------------------------------------------- prediction scenarios
def _near(value: float, n: int = 200, seed: int = 0) -> np.ndarray:
    """`n` service times within 0.1% of `value` (a constant, but not a degenerate sample)."""
    return value * (1 + 1e-3 * np.random.default_rng(seed).random(n))


def _calibration(config: str) -> dict:
    if config == "fifo1":
        return {"service_ms": _near(2.0), "transport_ms": _near(0.5)}
    if config == "shared2":
        return {"service_ms": _near(2.0), "service_busy_ms": _near(2.6, seed=1), "transport_ms": _near(0.5)}
    return {
        "batch_ms": {b: _near(2.0 + 0.25 * (b - 1), seed=b) for b in range(1, 9)},
        "transport_ms": _near(0.5),
        "overshoot_ms": _near(0.1),
        "max_batch_size": 8,
        "max_queue_delay_ms": 2.0,
    }


def test_scenarios_model_each_configuration():
    fifo, profiles = scenario_for("fifo1", _calibration("fifo1"), 100.0, 2000, 3)
    assert not profiles and fifo["deployment"] == {"replicas": 1}
    assert fifo["stages"][1]["batching"] == {"policy": "none"}

    shared, profiles = scenario_for("shared2", _calibration("shared2"), 100.0, 2000, 3)
    assert shared["deployment"] == {"replicas": 1, "instances": 2, "routing": "shared_queue"}
    profile = profiles[shared["stages"][1]["profile"]]
    assert {(s["batch_size"], s["instances"]) for s in profile["samples"]} == {(1, 1), (1, 2)}

    dynamic, profiles = scenario_for("dynamic1", _calibration("dynamic1"), 100.0, 2000, 3)
    batching = dynamic["stages"][1]["batching"]
    assert batching["policy"] == "dynamic" and batching["max_batch_size"] == 8
    assert batching["max_queue_delay_ms"] == 2.0 and batching["dispatch_overshoot_ms"]["dist"] == "empirical"
    profile = profiles[dynamic["stages"][1]["profile"]]
    assert [s["batch_size"] for s in profile["samples"]] == list(range(1, 9))
    assert dynamic["deployment"] == {"replicas": 1}

    with pytest.raises(ValueError, match="unknown configuration"):
        scenario_for("fifo3", _calibration("fifo1"), 100.0, 2000, 3)


@pytest.mark.parametrize(
    "config, expected_p50",
    [
        ("fifo1", 0.5 + 2.0),  # transport + service
        ("shared2", 0.5 + 2.0),  # one worker busy at a time: the service time alone
        ("dynamic1", 0.5 + 2.0 + 0.1 + 2.0),  # transport + the delay, overshot + a batch of one
    ],
)
def test_prediction_at_light_load_for_each_configuration(config, expected_p50):
    scenario, profiles = scenario_for(config, _calibration(config), 1.0, 2000, 3)
    predicted = simulate_percentiles(scenario, profiles)
    assert predicted["p50"]["ms"] == pytest.approx(expected_p50, rel=0.01)
    if config == "dynamic1":
        assert predicted["mean_batch_size"] == pytest.approx(1.0, abs=0.01)


def test_shared_queue_prediction_uses_the_busy_service_time_when_both_work():
    """At high load both instances are mostly busy: the median service is the one measured with both busy."""
    calibration = _calibration("shared2")
    scenario, profiles = scenario_for("shared2", calibration, 0.9 * capacity_rps("shared2", calibration)[0], 4000, 2)
    predicted = simulate_percentiles(scenario, profiles)
    assert predicted["p50"]["ms"] > 0.5 + 2.6  # queueing on top of the co-located service time


def test_capacity_of_each_configuration():
    assert capacity_rps("fifo1", _calibration("fifo1"))[0] == pytest.approx(500.0, rel=1e-3)
    assert capacity_rps("shared2", _calibration("shared2"))[0] == pytest.approx(2000.0 / 2.6, rel=1e-3)
    rate, what = capacity_rps("dynamic1", _calibration("dynamic1"))
    assert rate == pytest.approx(1000.0 * 8 / 3.75, rel=1e-3) and "batch of 8" in what


# --------------------------------------------------------------------------- noise and verdicts
def test_verdicts_judge_only_where_the_runs_agree():
    ok = judge([10.0, 10.2], 10.3, "p50")
    assert ok["verdict"] == "ok" and ok["noise_pct"] == pytest.approx(100 * 0.2 / 10.1)
    assert ok["error_pct"] == pytest.approx(100 * 0.2 / 10.1)
    assert judge([10.0, 10.2], 11.0, "p50")["verdict"] == "miss"  # 8.9% off the p50 limit of 5%
    assert judge([10.0, 10.2], 11.0, "p99")["verdict"] == "ok"  # within the p99 limit of 10%
    assert judge([10.0, 10.2], 8.9, "p99")["verdict"] == "miss"
    noisy = judge([10.0, 12.0], 11.0, "p50")  # runs 18% apart: the prediction is not judged
    assert noisy["verdict"] == "noisy" and noisy["error_pct"] == pytest.approx(0.0)
    single = judge([10.0], 10.0, "p50")  # one run shows no noise: not judged either
    assert single["verdict"] == "noisy" and math.isnan(single["noise_pct"])


def test_report_prints_every_cell_with_its_verdict():
    row = {
        "percentile": "p50",
        "measured_runs_ms": [10.0, 10.2],
        "predicted_ms": 10.3,
        "predicted_ci95": [10.1, 10.5],
        **judge([10.0, 10.2], 10.3, "p50"),
    }
    noisy = {**row, "percentile": "p99", "measured_runs_ms": [20.0, 30.0], **judge([20.0, 30.0], 25.0, "p99")}
    result = {
        "machine": "2 logical CPUs, 1-min load average 0.10 before / 0.60 after the measurements (90 s)",
        "requests_per_run": 2000,
        "runs": 2,
        "noise_limit_pct": 5.0,
        "error_limit_pct": {"p50": 5.0, "p95": 10.0, "p99": 10.0},
        "cells": [
            {
                "config": "fifo1",
                "utilisation": 0.5,
                "rate_rps": 166.7,
                "calibration": {
                    "transport_ms_median": 0.25,
                    "service_ms_mean": 3.0,
                    "service_ms_p99": 4.0,
                    "capacity_rps": 333.3,
                    "capacity": "1 / mean service",
                },
                "lateness": [{"p50": 0.1, "p99": 0.5}] * 2,
                "table": [row, noisy],
            }
        ],
    }
    report = format_report(result)
    assert "load average 0.10" in report
    assert "fifo1" in report and " ok" in report and "noisy" in report
    assert "service mean 3.000 ms" in report and "capacity 333 req/s" in report
    assert "judged 1 of 2 percentiles (the rest noisy); 1 of them ok" in report


def test_cli_rejects_unknown_configurations_and_utilisations():
    with pytest.raises(SystemExit):
        main(["--configs", "fifo1,fifo3"])
    with pytest.raises(SystemExit):
        main(["--utilisations", "0.5,1.2"])


# --------------------------------------------------------------------------- live servers (separate processes)
def test_shared_queue_server_serves_every_request_with_both_workers():
    pytest.importorskip("onnxruntime")
    from calibrate.networks import build_mlp

    server = SharedQueueServer(build_mlp(hidden=(512, 512)), workers=2, warmup=5)
    try:
        calibration = server.calibrate(40)
        latency, lateness, busy = server.serve(rate_rps=400.0, n=200, rng=np.random.default_rng(0))
        log = server.log
        frame = server.requests
    finally:
        server.close()
    check_request_log(frame, latency, max_batch=1)
    assert set(frame["worker"]) == {0, 1}
    assert {len(v) for v in calibration.values()} == {40}
    assert (calibration["transport_busy_ms"] >= 0).all()
    assert (calibration["service_busy_ms"] > 0).all() and (calibration["transport_ms"] >= 0).all()
    served = sorted(i for ids, _, _ in log for i in ids)
    assert served == list(range(200))  # each request answered once
    workers = [worker for _, _, worker in log]
    assert set(workers) == {0, 1} and min(workers.count(0), workers.count(1)) >= 20  # both took a share
    assert len(busy) == 200 and (latency > 0).all() and (lateness > -1e-6).all()


def test_batching_server_forms_batches_within_its_limits():
    pytest.importorskip("onnxruntime")
    from calibrate.networks import build_mlp

    server = BatchingServer(build_mlp(hidden=(512, 512)), max_batch=4, delay_ms=2.0, warmup=8, cpu=0)  # pinned
    try:
        calibration = server.calibrate(20, repeats=30)
        latency, _, busy = server.serve(rate_rps=3000.0, n=300, rng=np.random.default_rng(0))
        log = server.log
        frame = server.requests
    finally:
        server.close()
    check_request_log(frame, latency, max_batch=4)
    waited = (frame["service_start_ms"] - frame["server_arrival_ms"]).groupby(frame["batch_id"]).max()
    partial = frame.groupby("batch_id")["batch_size"].first() < 4
    assert (waited[partial] >= 2.0 - 1e-3).all()  # a partial batch's oldest waited out the delay
    assert sorted(calibration["batch_ms"]) == [1, 2, 3, 4]
    assert all(len(v) == 30 for v in calibration["batch_ms"].values())
    for b, forward in calibration["forward_ms"].items():  # a batch's busy time: its pass and its reply's send
        assert (calibration["batch_ms"][b] > forward).all()
    assert (calibration["overshoot_ms"] >= 0).all() and (calibration["transport_ms"] >= 0).all()
    served = sorted(i for ids, _, _ in log for i in ids)
    assert served == list(range(300))
    sizes = [len(ids) for ids, _, _ in log]
    assert max(sizes) == 4 and min(sizes) >= 1 and len(busy) == len(log)
    for ids, _, (queued, _) in log:  # a partial batch leaves once its oldest has waited the delay (give or take)
        assert min(queued) >= 0
        if len(ids) < 4:
            assert max(queued) >= 2.0 - 1e-6
    assert (latency > 0).all()


def test_co_load_calibration_scales_the_prediction_by_the_kernels_logged_slowdown():
    """A cell whose co-load phase logged the kernel at 1.2x its closed-loop calibration is predicted from the
    calibration x 1.2, beside the isolated prediction, and the report says so."""
    from calibrate.fidelity import _predict_cell

    calibration = {**_calibration("fifo1"), "co_load_busy_ms": _near(2.4, 100), "co_load_batch_size": np.ones(100)}
    busy = _near(2.0, 100)
    logs = [(busy, [([i], b, 0.0) for i, b in enumerate(busy)])]
    cell = {
        "config": "fifo1",
        "utilisation": 0.6,
        "rate_rps": 300.0,
        "calibration": {"transport_ms_median": 0.5, "service_ms_mean": 2.0, "service_ms_p99": 2.0},
        "measured": [{"p50": 3.0, "p95": 6.0, "p99": 8.0}] * 2,
        "lateness": [{"p50": 0.1, "p99": 0.2}] * 2,
        "_calibration": calibration,
        "_logs": logs,
    }
    saved = _predict_cell(cell, 2000)
    assert cell["co_load_factor"] == pytest.approx(1.2, rel=2e-3)
    assert len(saved["co_load_busy_ms"]) == 100  # kept with the calibration, to predict again
    for row in cell["table"]:
        assert row["co_load_ms"] > row["predicted_ms"]  # a slower kernel at 60% load: longer latencies
        assert row["co_load_error_pct"] == pytest.approx(100 * (row["co_load_ms"] / row["measured_mean_ms"] - 1))
    light = dict(cell, rate_rps=1.0, _calibration=calibration, _logs=logs)
    light.pop("table")
    _predict_cell(light, 2000)
    assert light["table"][0]["co_load_ms"] == pytest.approx(0.5 + 2.4, rel=0.01)  # transport + the loaded kernel
