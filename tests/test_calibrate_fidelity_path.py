"""The serving path under co-load (calibrate/fidelity_path.py) and what chance alone does to a measured
percentile (calibrate/fidelity_report.py `chance`, calibrate/fidelity_scenarios.py `run_spread_pct`)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from calibrate.fidelity_log import COLUMNS
from calibrate.fidelity_offline import repredict
from calibrate.fidelity_path import found_idle, path_samples, reply_send_ms
from calibrate.fidelity_report import chance, noise_word, steady_host_judged
from calibrate.fidelity_scenarios import MIN_PATH_SAMPLES, scenario_for, simulate_cell, under_load
from calibrate.fidelity_settings import NOISE_LIMIT_PCT

RUN1 = Path(__file__).parent / "data" / "realserver-quiet-2026-12-02" / "run1"


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame["latency_ms"] = frame["received_ms"] - frame["scheduled_ms"]
    frame["batch_size"] = 1
    frame["batch_id"] = range(len(frame))
    frame["request"] = range(len(frame))
    return frame[list(COLUMNS)]


def _request(scheduled, sent, start, forward, received, worker=0, send=0.1):
    """One request of a one-at-a-time server: taken at `start`, its forward pass `forward` ms; the busy time
    it reports carries the previous reply's send (`send`)."""
    return {
        "scheduled_ms": scheduled,
        "sent_ms": sent,
        "server_arrival_ms": start,
        "service_start_ms": start,
        "service_end_ms": start + forward,
        "received_ms": received,
        "busy_ms": forward + send,
        "worker": worker,
    }


def test_path_counts_only_requests_that_found_the_server_idle():
    frame = _frame(
        [
            _request(0.0, 0.1, 0.3, 3.0, 3.6),  # idle server: late 0.1, to server 0.2, back 3.6 - 3.3 - 0.1
            _request(1.0, 1.05, 3.4, 3.0, 6.7),  # sent while request 0 is served: its trip hides in the wait
            _request(10.0, 10.2, 10.5, 3.0, 13.8),  # idle: 0.2 + 0.3 + (13.8 - 13.5 - 0.1)
            _request(10.3, 10.35, 13.6, 3.0, 16.9),  # server idle, but request 2 still on its way: excluded
        ]
    )
    assert reply_send_ms(frame) == pytest.approx(0.1)
    assert found_idle(frame).tolist() == [True, False, True, False]
    assert path_samples("fifo1", frame) == pytest.approx([0.5, 0.7])


def test_path_of_a_shared_queue_counts_a_request_when_either_worker_was_idle():
    frame = _frame(
        [
            _request(0.0, 0.0, 0.2, 4.0, 4.5, worker=0),
            _request(1.0, 1.0, 1.3, 4.0, 5.6, worker=1),  # worker 0 busy, worker 1 idle: counted
            _request(2.0, 2.0, 4.4, 4.0, 8.7, worker=0),  # both busy: excluded
        ]
    )
    assert found_idle(frame).tolist() == [True, True, False]
    assert path_samples("shared2", frame) == pytest.approx([0.2 + 0.2, 0.3 + 0.2])  # to server + back


def test_a_batcher_stamps_every_arrival_so_every_request_has_a_path():
    rows = [_request(0.0, 0.1, 0.3, 3.0, 3.6), _request(1.0, 1.05, 3.4, 3.0, 6.7)]
    rows[1]["server_arrival_ms"] = 1.2  # the reader thread queued it at once; the batch left at 3.4
    frame = _frame(rows)
    assert path_samples("dynamic1", frame) == pytest.approx([0.5, 0.05 + 0.15 + 0.2])


def test_under_load_replaces_the_transport_only_with_enough_path_samples():
    calibration = {"transport_ms": np.full(100, 0.2), "service_ms": np.full(100, 3.0)}
    few = {**calibration, "co_load_path_ms": np.full(MIN_PATH_SAMPLES - 1, 0.5)}
    assert under_load(calibration) is calibration and under_load(few) is few
    enough = {**calibration, "co_load_path_ms": np.full(MIN_PATH_SAMPLES, 0.5)}
    assert under_load(enough)["transport_ms"].tolist() == [0.5] * MIN_PATH_SAMPLES
    # at light load the prediction moves by the path's extra 0.3 ms, nothing else
    base = simulate_cell("fifo1", calibration, 5.0, 400, replications=2)
    loaded = simulate_cell("fifo1", under_load(enough), 5.0, 400, replications=2)
    assert loaded["p50"]["ms"] - base["p50"]["ms"] == pytest.approx(0.3, abs=0.02)


def test_saved_co_load_path_feeds_the_co_load_prediction(tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(RUN1, folder)
    data = json.loads((folder / "fidelity.json").read_text())
    for k, cell in enumerate(data["cells"]):  # one configuration keeps the run short
        if cell["config"] != "fifo1":
            data["cells"][k] = data["calibration_samples"][k] = None
    data["cells"] = [c for c in data["cells"] if c]
    data["calibration_samples"] = [c for c in data["calibration_samples"] if c]
    (folder / "fidelity.json").write_text(json.dumps(data))
    before = repredict([folder])[0]["cells"][0]
    data["calibration_samples"][0]["co_load_path_ms"] = [1.0] * 40  # rho 0.5: a slow path under load
    (folder / "fidelity.json").write_text(json.dumps(data))
    after = repredict([folder])[0]["cells"]
    assert after[0]["co_load_path_samples"] == 40 and after[1]["co_load_path_samples"] == 0
    for old, new in zip(before["table"], after[0]["table"]):
        assert new["isolated"] == old["isolated"]  # the closed-loop prediction keeps its transport
        assert new["co_load"]["ms"] > old["co_load"]["ms"]


# --------------------------------------------------------------------------- chance alone
def test_chance_gives_the_probability_that_two_steady_runs_agree():
    sd = 3.0
    out = chance([10.0, 10.1], sd)
    assert out["judged_chance"] == pytest.approx(math.erf(NOISE_LIMIT_PCT / (2 * sd)))
    rng = np.random.default_rng(0)  # the same by drawing: two runs, each off by N(0, sd%)
    a, b = 100 * (1 + rng.normal(0, sd / 100, (2, 200_000)))
    assert np.mean(200 * np.abs(a - b) / (a + b) <= NOISE_LIMIT_PCT) == pytest.approx(out["judged_chance"], abs=0.01)
    assert out["beyond_chance"] is False
    assert chance([10.0, 12.0], sd)["beyond_chance"] is True  # 18% apart against 1.96 * sqrt(2) * 3 = 8.3%
    assert math.isnan(chance([10.0, 10.1], float("nan"))["judged_chance"])
    assert chance([10.0], sd)["beyond_chance"] is None


def test_noisy_verdicts_say_whether_the_host_or_the_run_length_is_to_blame():
    assert noise_word({"verdict": "noisy", "beyond_chance": True}) == "noisy:host"
    assert noise_word({"verdict": "noisy", "beyond_chance": False}) == "noisy:chance"
    assert noise_word({"verdict": "noisy", "beyond_chance": None}) == "noisy"
    assert noise_word({"verdict": "ok", "beyond_chance": True}) == "ok"
    cells = [{"table": [{"judged_chance": 0.5}, {"judged_chance": 0.25}, {"judged_chance": float("nan")}]}]
    assert steady_host_judged(cells) == pytest.approx(0.75)


def test_run_spread_is_the_spread_of_each_replications_percentile():
    from sim.analysis.simulate import simulate
    from sim.spec.scenario import parse_scenario

    calibration = {"transport_ms": np.full(50, 0.2), "service_ms": np.random.default_rng(1).gamma(4, 1.0, 500)}
    scenario, _ = scenario_for("fifo1", calibration, 150.0, 1000, 6)
    frame = simulate(parse_scenario(scenario)).run.requests
    kept = frame[~frame["warmup"].astype(bool)]
    p95 = kept.groupby("replication")["latency_ms"].quantile(0.95).to_numpy()
    predicted = simulate_cell("fifo1", calibration, 150.0, 1000, replications=6)
    assert predicted["p95"]["run_sd_pct"] == pytest.approx(100 * p95.std(ddof=1) / p95.mean(), rel=0.02)
    assert 0 < predicted["p50"]["run_sd_pct"] < predicted["p99"]["run_sd_pct"]  # a tail moves more by chance
    assert math.isnan(simulate_cell("fifo1", calibration, 150.0, 1000, replications=1)["p50"]["run_sd_pct"])


def test_a_steady_host_is_rarely_read_as_moving():
    """Pairs of runs *simulated* on a steady host (different seeds): the runs' disagreement exceeds what
    chance explains in about 5% of percentiles, as the 95% rule says, not in most of them."""
    calibration = {"transport_ms": np.full(50, 0.2), "service_ms": np.random.default_rng(2).gamma(6, 0.6, 500)}
    spread = simulate_cell("fifo1", calibration, 300.0, 1500, replications=10)
    from sim.analysis.simulate import simulate
    from sim.spec.scenario import parse_scenario

    flagged = 0
    for seed in range(12):
        scenario, _ = scenario_for("fifo1", calibration, 300.0, 1500, 2, seed=100 + seed)
        frame = simulate(parse_scenario(scenario)).run.requests
        kept = frame[~frame["warmup"].astype(bool)]
        for q, key in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
            runs = kept.groupby("replication")["latency_ms"].quantile(q).tolist()
            flagged += chance(runs, spread[key]["run_sd_pct"])["beyond_chance"]
    assert flagged <= 5  # of 36; the 5% rule expects about 2
