"""Calibration under co-load: the kernel measured beside a client, its reply path and siblings; a profile's
`co_load` rows (backwards compatible); a model stage with `host:` runs at the measured slowdown."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from sim.errors import DataFileError, ScenarioError
from sim.spec.profile import load_profile, profile_from_dict
from sim.spec.scenario import parse_scenario

BASE = {
    "kind": "batch",
    "name": "co-load-test",
    "curve": {"family": "affine", "base_ms": 0.0, "per_item_ms": 4.0},
    "latency": [{"batch_size": 1, "p50_ms": 4.0, "p99_ms": 4.0}],
}
ROWS = [
    {"batch_size": 1, "client_rps": 100.0, "siblings": 0, "slowdown": 1.1},
    {"batch_size": 1, "client_rps": 300.0, "siblings": 0, "slowdown": 1.3},
    {"batch_size": 1, "client_rps": 0.0, "siblings": 1, "slowdown": 1.25},
    {"batch_size": 1, "client_rps": 300.0, "siblings": 1, "slowdown": 1.6},
]


def test_a_profile_without_co_load_rows_loads_as_before():
    profile = profile_from_dict(BASE, where="profile test")
    assert profile.co_load == ()
    with pytest.raises(DataFileError, match="no co_load rows"):
        profile.co_load_slowdown(100.0)


def test_co_load_slowdown_is_linear_in_the_client_rate_from_one_alone():
    profile = profile_from_dict({**BASE, "co_load": ROWS}, where="profile test")
    assert profile.co_load_slowdown(0.0) == 1.0  # nothing beside it: alone
    assert profile.co_load_slowdown(50.0) == pytest.approx(1.05)  # between alone and 100 req/s
    assert profile.co_load_slowdown(200.0) == pytest.approx(1.2)
    assert profile.co_load_slowdown(1000.0) == pytest.approx(1.3)  # constant beyond the measured rates
    assert profile.co_load_slowdown(300.0, siblings=1) == pytest.approx(1.6)
    assert profile.co_load_slowdown(150.0, siblings=1) == pytest.approx(1.425)
    assert profile.co_load_slowdown(300.0, siblings=3) == pytest.approx(1.6)  # nearest measured sibling count


@pytest.mark.parametrize(
    "row, field",
    [
        ({"batch_size": 1, "client_rps": -1, "slowdown": 1.1}, "client_rps"),
        ({"batch_size": 1, "client_rps": 1}, "slowdown"),
    ],
)
def test_bad_co_load_rows_are_named(row, field):
    with pytest.raises(DataFileError, match=field):
        profile_from_dict({**BASE, "co_load": [row]}, where="profile test")


def _scenario(tmp_path: Path, host: dict | None, co_load=ROWS) -> dict:
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({**BASE, **({"co_load": co_load} if co_load else {})}))
    stage = {"name": "forward", "kind": "model", "profile": "p.yaml", "batching": {"policy": "none"}}
    if host is not None:
        stage["host"] = host
    return {
        "name": "co-load",
        "seed": 3,
        "replications": 2,
        "workload": {"arrival": {"process": "poisson", "rate_rps": 50.0}, "requests": 4000},
        "stages": [stage],
    }


def _mean_service_ms(scenario) -> float:
    from sim.analysis.simulate import simulate

    return float(simulate(scenario).log["forward_ms"].mean())


def test_the_engine_runs_the_loaded_cost_where_the_host_is_shared(tmp_path):
    alone = _mean_service_ms(parse_scenario(_scenario(tmp_path, None), base_dir=tmp_path))
    assert alone == pytest.approx(4.0)
    shared = parse_scenario(_scenario(tmp_path, {"shared_with_client": True, "client_rps": 200}), base_dir=tmp_path)
    assert _mean_service_ms(shared) == pytest.approx(4.0 * 1.2)
    siblings = parse_scenario(_scenario(tmp_path, {"siblings": 1}), base_dir=tmp_path)  # no client: 0 req/s
    assert siblings.stages[0].cost.mean_ms(1) == pytest.approx(4.0 * 1.25)
    quiet = parse_scenario(_scenario(tmp_path, {"shared_with_client": False}), base_dir=tmp_path)
    assert quiet.stages[0].cost.mean_ms(1) == pytest.approx(4.0)
    unshared = _scenario(tmp_path, {"shared_with_client": False}, co_load=None)
    unshared["stages"][0] = {**unshared["stages"][0], "profile": None, "service_ms": {"dist": "constant", "value": 3}}
    assert parse_scenario(unshared, base_dir=tmp_path).stages[0].cost.mean_ms(1) == 3.0  # nothing beside: as is


def test_a_shared_host_needs_a_profile_measured_under_co_load(tmp_path):
    with pytest.raises(ScenarioError, match="host"):
        parse_scenario(
            _scenario(tmp_path, {"shared_with_client": True, "client_rps": 10}, co_load=None), base_dir=tmp_path
        )
    with pytest.raises(ScenarioError, match="client_rps"):
        parse_scenario(_scenario(tmp_path, {"shared_with_client": True}), base_dir=tmp_path)


# --------------------------------------------------------------------------- live measurement
@pytest.fixture(scope="module")
def small_mlp() -> bytes:
    pytest.importorskip("onnxruntime")
    from calibrate.networks import build_mlp

    return build_mlp(hidden=(2048, 2048))  # ~1 ms a run: a client at 2,000 req/s sends during the timed runs


def test_co_load_measures_the_kernel_alone_and_beside_a_live_client(small_mlp):
    from calibrate.co_load import CoLoadSettings, co_load_rows, measure_co_load

    settings = CoLoadSettings(client_rps=(2000.0,), siblings=(0, 1), batch_sizes=(1,), warmup=2, repeats=40, rounds=2)
    frame = measure_co_load(small_mlp, settings)
    levels = frame.groupby(["client_rps", "siblings"]).size()
    assert dict(levels) == {(0.0, 0): 40, (0.0, 1): 40, (2000.0, 0): 40, (2000.0, 1): 40}
    loaded = frame[frame["client_rps"] > 0]
    assert (loaded["replies_per_s"] > 0).all()  # the client ran and its replies went back while timed
    assert (frame.loc[frame["client_rps"] == 0, "replies_per_s"] == 0).all()
    rows = co_load_rows(frame)
    alone = frame[(frame["client_rps"] == 0) & (frame["siblings"] == 0)]["latency_ms"].median()
    for row in rows:
        level = frame[(frame["client_rps"] == row["client_rps"]) & (frame["siblings"] == row["siblings"])]
        assert row["slowdown"] == pytest.approx(level["latency_ms"].median() / alone, rel=1e-4)
    assert {(r["client_rps"], r["siblings"]) for r in rows} == {(0.0, 1), (2000.0, 0), (2000.0, 1)}


def test_cli_measure_writes_co_load_rows_the_engine_reads(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    from sim.cli.main import main as calibrate_main

    out = tmp_path / "mlp.yaml"
    args = ["calibrate", "measure", "--batch-sizes", "1,2", "--instances", "1", "--warmup", "1", "--repeats", "5"]
    args += ["--co-load-rps", "200", "--co-load-repeats", "10", "--no-plot", "-o", str(out)]
    assert calibrate_main(args) == 0
    assert "co-load: batch 1, client 200 req/s" in capsys.readouterr().out
    profile = load_profile(out)
    (row,) = profile.co_load
    assert row.client_rps == 200.0 and profile.co_load_slowdown(200.0) == pytest.approx(row.slowdown)
    co_csv = out.with_name("mlp-co-load.csv")
    assert profile.provenance["co_load_file"] == co_csv.name and co_csv.is_file()
    with pytest.raises(SystemExit) as bad:  # argparse: usage and one line, exit 2
        calibrate_main([*args[:-2], "--co-load-rps", "-5", "-o", str(out)])
    assert bad.value.code == 2 and "--co-load-rps" in capsys.readouterr().err


def test_fidelity_co_load_calibration_is_the_logged_busy_time_over_the_calibrated_one():
    from calibrate.fidelity_offline import slowdown

    calibration = {"batch_ms": {1: np.array([2.0, 2.0]), 2: np.array([3.0, 3.0])}}
    busy, sizes = np.array([2.2, 3.3, 3.3]), np.array([1, 2, 2])
    assert slowdown("dynamic1", calibration, busy, sizes, {}) == pytest.approx(8.8 / 8.0)
    assert slowdown("fifo1", {}, np.array([5.0, 7.0]), np.ones(2), {"mean_service_ms": 5.0}) == pytest.approx(1.2)
    assert json.dumps(ROWS)  # rows are plain data, as a profile file holds them
