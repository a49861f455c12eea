"""Live measurement with ONNX Runtime on this CPU: the built-in model runs, its batch-cost curve rises, a
user's .onnx file can be measured, and `servesim calibrate measure` → a profile the simulator runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from sim.cli.main import main as calibrate_main  # noqa: E402
from calibrate.measure import MeasureError, MeasureSettings, measure  # noqa: E402
from calibrate.networks import build_encoder, build_mlp  # noqa: E402
from sim.errors import DataFileError  # noqa: E402
from sim.spec.profile import load_profile  # noqa: E402

# Small enough for CI: a few ms per configuration; batch sizes spaced so the cost visibly grows.
QUICK = MeasureSettings(batch_sizes=(1, 16, 128), instances=(1,), warmup=3, repeats=15, rounds=3)


@pytest.fixture(scope="module")
def mlp_bytes() -> bytes:
    return build_mlp()  # the built-in model `servesim calibrate measure` uses by default


def test_built_in_mlp_gives_a_monotone_batch_cost_curve(mlp_bytes):
    frame = measure(mlp_bytes, QUICK)
    assert sorted(frame["batch_size"].unique()) == [1, 16, 128]
    assert (frame.groupby("batch_size").size() == QUICK.repeats).all()
    medians = frame.groupby("batch_size")["latency_ms"].median().to_numpy()
    assert (medians > 0).all()
    assert medians[0] < medians[1] < medians[2]
    # 128 rows cost more than one row but far less than 128 one-row runs: batching pays on a CPU too.
    assert medians[2] < 128 * medians[0]
    # the running thread's CPU time never exceeds the wall-clock time of the same run (timer granularity aside)
    assert (frame["cpu_ms"] <= frame["latency_ms"] + 0.05).all()


def test_concurrent_instances_are_timed_at_each_level(mlp_bytes):
    settings = MeasureSettings(batch_sizes=(1, 8), instances=(1, 2), warmup=2, repeats=6, rounds=2)
    frame = measure(mlp_bytes, settings)
    counts = frame.groupby(["instances", "batch_size"]).size()
    # each of k sessions contributes `repeats` timed runs
    assert counts.to_dict() == {(1, 1): 6, (1, 8): 6, (2, 1): 12, (2, 8): 12}


def test_user_onnx_file_with_symbolic_dims(tmp_path):
    path = tmp_path / "enc.onnx"
    path.write_bytes(build_encoder(layers=1, hidden=64, heads=4, ffn=128, seq_len=8))
    frame = measure(path, MeasureSettings(batch_sizes=(1, 4), instances=(1,), warmup=1, repeats=3, rounds=1))
    assert len(frame) == 6


def test_unreadable_model_and_missing_file_give_clear_errors(tmp_path):
    with pytest.raises(MeasureError, match="not found"):
        measure(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(MeasureError, match="cannot load"):
        measure(junk, QUICK)


def test_cli_measure_then_profile_runs_in_the_simulator(tmp_path, capsys):
    out = tmp_path / "models" / "mlp-quick.yaml"
    code = calibrate_main(
        [
            "calibrate",
            "measure",
            "--batch-sizes",
            "1,4,16",
            "--instances",
            "1,2",
            "--warmup",
            "2",
            "--repeats",
            "12",
            "-o",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "chosen curve" in printed and "interference" in printed
    assert out.with_suffix(".csv").is_file() and out.with_suffix(".png").is_file()
    profile = load_profile(out)
    assert profile.max_batch_size == 16 and profile.max_instances == 2
    assert profile.provenance["measurements_file"] == "mlp-quick.csv"

    from sim.analysis.simulate import simulate
    from sim.spec.scenario import load_scenario

    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        f"""name: fresh
seed: 1
workload:
  arrival: {{process: poisson, rate_rps: 50}}
  requests: 2000
  warmup_requests: 100
stages:
  - name: forward
    kind: model
    profile: {out}
    batching: {{policy: dynamic, max_batch_size: 16, max_queue_delay_ms: 1}}
deployment:
  replicas: 1
"""
    )
    result = simulate(load_scenario(scenario), replications=1)
    assert result.summary["latency_ms"]["p50"] > 0


def test_cli_measure_cpu_clock_records_provenance(tmp_path, capsys):
    out = tmp_path / "cpu.yaml"
    args = [
        "calibrate",
        "measure",
        "--batch-sizes",
        "1,8",
        "--instances",
        "1",
        "--warmup",
        "1",
        "--repeats",
        "5",
        "--clock",
        "cpu",
        "--no-plot",
        "-o",
        str(out),
    ]
    assert calibrate_main(args) == 0
    assert "thread CPU" in capsys.readouterr().out
    profile = load_profile(out)
    assert "thread CPU time" in profile.provenance["method"] and "load average" in profile.provenance["load_average"]
    assert calibrate_main([*args[:-2], "--threads", "2", "-o", str(out)]) == 2


def test_cli_measure_rejects_an_unknown_model(tmp_path, capsys):
    assert calibrate_main(["calibrate", "measure", str(tmp_path / "nope.onnx")]) == 2
    assert "neither a built-in model" in capsys.readouterr().err


def test_cli_fit_reports_quality(tmp_path, capsys):
    csv = tmp_path / "m.csv"
    rng = np.random.default_rng(0)
    lines = ["batch_size,latency_ms"] + [
        f"{n},{(2 + 0.5 * n) * np.exp(0.03 * rng.standard_normal()):.4f}" for n in (1, 2, 4, 8, 16) for _ in range(30)
    ]
    csv.write_text("\n".join(lines))
    assert calibrate_main(["calibrate", "fit", str(csv), "-o", str(tmp_path / "p.yaml"), "--hardware", "l4"]) == 0
    printed = capsys.readouterr().out
    assert "chosen curve: affine" in printed and "MAPE" in printed and "R²" in printed
    assert load_profile(tmp_path / "p.yaml").usd_per_hour == 0.80


def test_cli_fit_bad_file_is_one_clean_line(tmp_path, capsys):
    csv = tmp_path / "m.csv"
    csv.write_text("batch_size,latency_ms\n4,2\n")
    assert calibrate_main(["calibrate", "fit", str(csv), "-o", str(tmp_path / "p.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("servesim: error: ") and "only one batch size" in err and "Traceback" not in err
    assert not Path(tmp_path / "p.yaml").exists()
    with pytest.raises(DataFileError):
        load_profile(tmp_path / "p.yaml")
