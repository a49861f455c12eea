"""`python -m calibrate.fidelity --predict-only DIR`: saved runs predicted again from their calibration
alone, every cell with its errors, the in-situ diagnostics, and the leave-one-cell-out co-load model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from calibrate.fidelity import ERROR_LIMIT_PCT, main
from calibrate.fidelity_offline import _co_load_factors, load_saved_run, repredict
from calibrate.fidelity_offline_report import format_repredicted, reading, summary
from sim.errors import DataFileError

DATA = Path(__file__).parent / "data" / "realserver-quiet-2026-12-02"
RUNS = [DATA / "run1", DATA / "run2"]


@pytest.fixture(scope="module")
def repredicted() -> list[dict]:
    return repredict(RUNS)


def test_every_cell_of_both_quiet_host_runs_is_predicted_again_with_its_error(repredicted):
    assert [run["run"] for run in repredicted] == ["run1", "run2"]
    for run, directory in zip(repredicted, RUNS):
        saved = json.loads((directory / "fidelity.json").read_text())
        assert len(run["cells"]) == len(saved["cells"]) == 6
        for cell, saved_cell in zip(run["cells"], saved["cells"]):
            assert (cell["config"], cell["utilisation"]) == (saved_cell["config"], saved_cell["utilisation"])
            for row, saved_row in zip(cell["table"], saved_cell["table"]):
                mean = float(np.mean([m[row["percentile"]] for m in saved_cell["measured"]]))
                assert row["measured_mean_ms"] == pytest.approx(mean)
                for model in ("isolated", "co_load"):
                    predicted = row[model]["ms"]
                    assert predicted > 0
                    assert row[model]["error_pct"] == pytest.approx(100 * (predicted - mean) / mean)
                # the isolated model is the one the live run used, from the same calibration: within its CI
                low, high = saved_row["predicted_ci95"]
                assert low - 1e-6 <= row["isolated"]["ms"] <= high + 1e-6
                assert (row["isolated"]["verdict"] == "noisy") == (saved_row["verdict"] == "noisy")


def test_the_runs_carry_no_request_logs_so_replay_comes_only_from_the_live_fifo1_cells(repredicted):
    for run in repredicted:
        assert run["request_logs"] is False
        for cell in run["cells"]:
            replayed = [row.get("in_situ_replay") for row in cell["table"]]
            if cell["config"] == "fifo1":
                assert all(r is not None and r["saved"] for r in replayed)
            else:
                assert all(r is None for r in replayed)


def test_in_situ_mean_prediction_runs_at_the_logged_service_mean(repredicted):
    """fifo1 / shared2: the in-situ slowdown is the logged mean over the simulated one; dynamic1 (no batch
    log) the scale at which the simulated mean batch size meets the measured one."""
    saved = json.loads((RUNS[1] / "fidelity.json").read_text())
    for cell, saved_cell in zip(repredicted[1]["cells"], saved["cells"]):
        if cell["config"] == "fifo1":
            calibrated = np.mean(saved["calibration_samples"][saved["cells"].index(saved_cell)]["service_ms"])
            assert cell["in_situ_factor"] == pytest.approx(saved_cell["service_ms_mean_in_situ"] / calibrated, rel=0.01)
        if cell["config"] == "dynamic1":
            assert cell["in_situ_source"] == "measured mean batch size"


def test_co_load_factor_leaves_the_predicted_cell_out():
    class Cell:
        def __init__(self, config):
            self.config, self.co_load_factor = config, None

    runs = [
        {"cells": [{"cell": Cell("fifo1"), "in_situ_factor": f} for f in (1.0, 1.2, 1.1)]},
        {"cells": [{"cell": Cell("fifo1"), "in_situ_factor": 1.5}, {"cell": Cell("shared2"), "in_situ_factor": 9}]},
    ]
    _co_load_factors(runs)
    factors = [e["co_load_factor"] for e in runs[0]["cells"]] + [runs[1]["cells"][0]["co_load_factor"]]
    assert factors == pytest.approx([1.2, 1.1, 1.2, 1.1])  # the median of the three others, each time
    assert runs[1]["cells"][1]["co_load_factor"] == 1.0  # no other shared2 cell: nothing learned
    own = Cell("fifo1")
    own.co_load_factor = 1.07  # the cell's own co-load calibration wins
    runs = [{"cells": [{"cell": own, "in_situ_factor": 2.0}, {"cell": Cell("fifo1"), "in_situ_factor": 3.0}]}]
    _co_load_factors(runs)
    assert (
        runs[0]["cells"][0]["co_load_factor"] == 1.07 and runs[0]["cells"][0]["co_load_source"] == "co-load calibration"
    )


def test_a_miss_is_read_as_service_time_or_queueing_model():
    limit = ERROR_LIMIT_PCT["p95"]

    def row(mean_error, replay_error=None):
        out = {"percentile": "p95", "isolated": {"error_pct": -30.0, "verdict": "miss"}}
        out["in_situ_mean"] = {"error_pct": mean_error}
        if replay_error is not None:
            out["in_situ_replay"] = {"error_pct": replay_error}
        return out

    assert reading(row(-limit / 2)) == "service time"
    assert reading(row(-2 * limit, -limit / 2)) == "queueing model"
    assert reading(row(-2 * limit, -2 * limit)) == "neither alone"
    assert reading({**row(0.0), "isolated": {"error_pct": 1.0, "verdict": "ok"}}) == ""


def test_summary_counts_judged_percentiles_and_flags_low_tails(repredicted):
    run1 = summary(repredicted[0], "isolated")
    assert run1["judged"] == 7  # the live run's count: judging depends on the measurements only
    assert any("shared2 0.8 p95" in flag for flag in run1["below_limit"])


def test_predict_only_prints_every_cell(capsys, tmp_path):
    assert main(["--predict-only", str(RUNS[0]), "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    rows = [
        line
        for line in printed.splitlines()
        if line.split()[:1] and line.split()[0] in ("fifo1", "shared2", "dynamic1")
    ]
    assert len(rows) == 18
    assert (tmp_path / "repredicted.txt").read_text().strip() == printed.strip()
    assert json.loads((tmp_path / "repredicted.json").read_text())[0]["run"] == "run1"


def test_format_names_models_and_missing_logs(repredicted):
    text = format_repredicted(repredicted[:1])
    assert "no per-request logs" in text and "co-load" in text and "in-situ replay" in text
    assert "drift band" in text and "drift_band: judged 7" in text


@pytest.mark.parametrize(
    "edit, field",
    [
        (lambda d: d["cells"][2].__setitem__("rate_rps", -1), "cells.2.rate_rps"),
        (lambda d: d["cells"][0].__setitem__("config", "fifo9"), "cells.0.config"),
        (lambda d: d["calibration_samples"].pop(), "calibration_samples needs one entry per cell"),
        (lambda d: d["calibration_samples"][4].pop("batch_ms"), "calibration_samples.4"),
        (lambda d: d["calibration_samples"][0].__setitem__("co_load_path_ms", [0.4, -1.0]), "co_load_path_ms.1"),
    ],
)
def test_bad_saved_run_is_one_line_naming_file_and_field(tmp_path, capsys, edit, field):
    folder = tmp_path / "bad"
    folder.mkdir()
    data = json.loads((RUNS[0] / "fidelity.json").read_text())
    edit(data)
    (folder / "fidelity.json").write_text(json.dumps(data))
    with pytest.raises(DataFileError, match="fidelity.json"):
        load_saved_run(folder)
    assert main(["--predict-only", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and field in err and "fidelity.json" in err
    assert str(tmp_path) not in err


def test_missing_or_unreadable_run_exits_2(tmp_path, capsys):
    assert main(["--predict-only", str(tmp_path / "nowhere")]) == 2
    assert "not found" in capsys.readouterr().err
    shutil.copytree(RUNS[0], tmp_path / "copy")
    (tmp_path / "copy" / "fidelity.json").write_text("{not json")
    assert main(["--predict-only", str(tmp_path / "copy")]) == 2
    err = capsys.readouterr().err
    assert "not valid JSON" in err and "{not json" not in err


def _with_request_logs(tmp_path: Path, slowdown: float) -> Path:
    """run 1's fifo1 and dynamic1 cells with synthetic per-request logs: the kernel `slowdown` x its
    calibration."""
    import pandas as pd

    from calibrate.fidelity_log import COLUMNS, log_name

    folder = tmp_path / "logged"
    folder.mkdir()
    data = json.loads((RUNS[0] / "fidelity.json").read_text())
    keep = [k for k, cell in enumerate(data["cells"]) if cell["config"] != "shared2"]  # kernel time: one level
    data["cells"] = [data["cells"][k] for k in keep]
    data["calibration_samples"] = [data["calibration_samples"][k] for k in keep]
    rng = np.random.default_rng(3)
    for cell, calibration in zip(data["cells"], data["calibration_samples"]):
        n = 400
        if cell["config"] == "dynamic1":
            sizes = rng.integers(1, 9, size=n)
            busy = np.array([slowdown * rng.choice(calibration["batch_ms"][str(b)]) for b in sizes])
        else:
            sizes, busy = np.ones(n, int), slowdown * rng.choice(calibration["service_ms"], size=n)
        start = np.cumsum(busy + 1.0)
        frame = pd.DataFrame({c: 0.0 for c in COLUMNS}, index=range(n))
        frame = frame.assign(
            service_start_ms=start, service_end_ms=start + busy, busy_ms=busy, batch_id=range(n), batch_size=sizes
        )
        name = log_name(cell["config"], cell["utilisation"], 0)
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(folder / name, index=False)
        cell["request_logs"] = [name]
    (folder / "fidelity.json").write_text(json.dumps(data))
    return folder


def test_request_logs_give_every_cell_its_in_situ_slowdown_and_replay(tmp_path):
    run = repredict([_with_request_logs(tmp_path, slowdown=1.2)])[0]
    assert run["request_logs"] is True
    for cell in run["cells"]:
        assert cell["in_situ_source"] == "per-request log"
        # the logged kernel ran 1.2x its calibration (the simulated mean is a resample of the calibration)
        assert cell["in_situ_factor"] == pytest.approx(1.2, rel=0.06)
        for row in cell["table"]:
            assert "saved" not in row["in_situ_replay"] and row["in_situ_replay"]["ms"] > 0
        # leave one out: the other cell of its configuration (~1.2 by construction), never the cell's own
        assert cell["co_load_factor"] == pytest.approx(1.2, rel=0.06)


def test_a_request_log_outside_the_run_folder_is_refused(tmp_path, capsys):
    folder = _with_request_logs(tmp_path, slowdown=1.0)
    data = json.loads((folder / "fidelity.json").read_text())
    data["cells"][0]["request_logs"] = ["../elsewhere.csv"]
    (folder / "fidelity.json").write_text(json.dumps(data))
    assert main(["--predict-only", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "request_logs" in err and str(tmp_path) not in err


def test_drift_is_the_next_calibration_of_the_same_server_over_this_one():
    from calibrate.fidelity_offline import drift_after

    class Cell:
        def __init__(self, config):
            self.config = config

    cells = [
        {"cell": Cell("fifo1"), "calibration": {"service_ms": np.array([4.0, 6.0])}},
        {"cell": Cell("shared2"), "calibration": {"service_ms": np.ones(2), "service_busy_ms": np.array([6.0])}},
        {"cell": Cell("fifo1"), "calibration": {"service_ms": np.array([6.0])}},
        {"cell": Cell("shared2"), "calibration": {"service_ms": np.ones(2), "service_busy_ms": np.array([3.0])}},
    ]
    assert drift_after(cells) == [pytest.approx(1.2), pytest.approx(0.5), None, None]


def test_drift_band_runs_from_the_co_load_prediction_to_it_at_the_next_calibrations_level(repredicted):
    """calibrate/fidelity_drift.py: a cell whose next calibration found the host slower is also predicted
    that much slower; a cell with no later calibration (each configuration's last here) keeps the point."""
    seen = set()
    for run in repredicted:
        for cell in run["cells"]:
            ratio = cell["next_calibration_ratio"]
            for row in cell["table"]:
                band, co_load = row["drift_band"], row["co_load"]
                assert band["low_ms"] <= co_load["ms"] <= band["high_ms"]
                assert abs(band["error_pct"]) <= abs(co_load["error_pct"]) + 1e-9  # a band only moves closer
                if ratio is None:
                    assert band["point"] and band["low_ms"] == band["high_ms"]
                    seen.add("point")
                elif ratio > 1.05:
                    assert band["high_ms"] > co_load["ms"]
                    seen.add("slower")
    assert seen == {"point", "slower"}


def test_a_workers_cycle_beyond_its_busy_time_is_measured_only_where_it_served_back_to_back():
    """Per worker, end-to-end interval minus the next busy time, over pairs whose next request was sent
    before the worker finished (else the gap is idle time, not lost service)."""
    import pandas as pd

    from calibrate.fidelity_offline import cycle_beyond_busy

    frame = pd.DataFrame(
        {
            "batch_id": [0, 1, 2, 3, 4],
            "worker": [0, 1, 0, 1, 0],
            "sent_ms": [0.0, 0.5, 1.0, 2.0, 50.0],  # request 4 arrives after worker 0 went idle
            "service_start_ms": [0.1, 0.6, 5.3, 6.0, 50.1],
            "service_end_ms": [5.0, 5.6, 10.3, 11.0, 55.1],
            "busy_ms": [4.9, 5.0, 5.0, 5.0, 5.0],
        }
    )
    cycle = cycle_beyond_busy([frame])
    # worker 0: 10.3 - 5.0 - 5.0 = 0.3 (back to back); 55.1 - 10.3 idle, excluded; worker 1: 11.0 - 5.6 - 5.0
    assert cycle["pairs"] == 2
    assert cycle["mean_ms"] == pytest.approx((0.3 + 0.4) / 2)
    assert cycle["busy_mean_ms"] == pytest.approx(5.0)
    assert cycle_beyond_busy([frame.iloc[[0, 4]]]) is None
