"""Moving a model stage's batch-cost profile to other hardware from FLOPs and bytes per batch (issue 22,
calibrate/transfer_model.py). models/ holds no measured pair of batch profiles (the same model measured on
two catalogue hardware), so nothing here validates the estimate against a measurement: the tests pin the
arithmetic against a hand-computed roofline, the counting of an ONNX graph, the interval, and the file."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from calibrate import networks
from calibrate import transfer_model as tm
from sim.errors import DataFileError
from sim.spec.hardware import load_specifications
from sim.spec.profile import load_profile

ROOT = Path(__file__).resolve().parent.parent
RESNET = ROOT / "models/resnet50-v100-clockwork.yaml"


def _profile(overhead_ms: float = 0.0, precision: str = "fp32") -> dict:
    return {
        "kind": "batch",
        "name": "toy-v100",
        "hardware": "v100-16gb",
        "precision": precision,
        "overhead_ms": overhead_ms,
        "curve": {"family": "piecewise_linear", "points": [[1, 1.0], [8, 4.0]]},
        "latency": [
            {"batch_size": 1, "instances": 1, "p50_ms": 1.0, "p99_ms": 1.5},
            {"batch_size": 8, "instances": 1, "p50_ms": 4.0, "p99_ms": 5.0},
            {"batch_size": 8, "instances": 2, "p50_ms": 7.0},
        ],
    }


def test_the_catalogue_figures_the_hand_computation_uses():
    specs = load_specifications()
    assert specs["v100-16gb"].peak_tflops("fp32") == 15.7 and specs["v100-16gb"].memory_bandwidth_gb_s == 900
    assert specs["a100-80gb"].peak_tflops("fp32") == 19.5 and specs["a100-80gb"].memory_bandwidth_gb_s == 2039


def test_each_part_scales_by_its_catalogue_ratio_as_computed_by_hand():
    # 1 GFLOP an item, 90 MB of weights a batch, V100 -> A100 80 GB at fp32.
    work = tm.Work(flops_per_item=1e9, bytes_per_batch=9e7)
    out = tm.transfer_batch_profile(_profile(), "a100-80gb", work)
    for n, p50 in ((1, 1.0), (8, 4.0)):
        compute = 1e9 * n / 15.7e12 * 1e3  # ms on the V100
        memory = 9e7 / 900e9 * 1e3
        share = compute / (compute + memory)
        ratio = share * (15.7 / 19.5) + (1 - share) * (900 / 2039)
        row = next(r for r in out["latency"] if r["batch_size"] == n)
        assert row["p50_ms"] == pytest.approx(p50 * ratio, rel=1e-6)
        assert out["estimate"]["per_batch"][str(n)]["ratio"] == pytest.approx(ratio, abs=1e-4)
    # n = 1: compute 0.0637 ms vs memory 0.1 ms -> share 0.389, time x 0.5829 (by hand)
    assert out["latency"][0]["p50_ms"] == pytest.approx(0.5829, abs=1e-4)
    assert out["latency"][0]["p99_ms"] == pytest.approx(1.5 * 0.5829, abs=2e-4)  # the spread scales with it
    assert [r["instances"] for r in out["latency"]] == [1, 1]  # interference rows are the source host's
    assert out["curve"]["points"] == [[r["batch_size"], r["p50_ms"]] for r in out["latency"]]


def test_the_overhead_stays_and_only_the_kernel_time_scales():
    work = tm.Work(flops_per_item=1e9, bytes_per_batch=0)  # compute only: x 15.7 / 19.5
    out = tm.transfer_batch_profile(_profile(overhead_ms=0.5), "a100-80gb", work)
    assert out["overhead_ms"] == 0.5
    assert out["latency"][0]["p50_ms"] == pytest.approx(0.5 + 0.5 * 15.7 / 19.5)
    assert out["latency"][1]["p50_ms"] == pytest.approx(0.5 + 3.5 * 15.7 / 19.5)


def test_fp16_on_the_target_halves_the_weights_uses_its_peak_and_widens_the_interval():
    work = tm.Work(flops_per_item=1e9, bytes_per_batch=9e7)
    fp32 = tm.transfer_batch_profile(_profile(), "a100-80gb", work)
    fp16 = tm.transfer_batch_profile(_profile(), "a100-80gb", work, precision="fp16")
    r = fp16["estimate"]["per_batch"]["1"]
    assert r["compute_ratio"] == pytest.approx(15.7 / 312, abs=1e-4)
    assert r["memory_ratio"] == pytest.approx(900 / 2039 / 2, abs=1e-4)
    assert fp16["estimate"]["reach_log_sd"]["precision"] == 0.25
    assert fp16["estimate"]["interval_log_half_width"] > fp32["estimate"]["interval_log_half_width"]


def test_the_interval_is_the_reach_allowances_combined():
    work = tm.Work(flops_per_item=1e9, bytes_per_batch=9e7)
    nvidia = tm.transfer_batch_profile(_profile(), "a100-80gb", work)["estimate"]
    assert nvidia["reach_log_sd"] == {"roofline": 0.25, "hardware": 0.15}
    assert nvidia["interval_log_half_width"] == pytest.approx(1.959964 * math.hypot(0.25, 0.15), abs=1e-4)
    amd = tm.transfer_batch_profile(_profile(), "mi300x", work)["estimate"]
    assert (
        amd["reach_log_sd"]["vendor"] == 0.30 and amd["interval_pct"] == "-56..+127"
    )  # 1.96 x sqrt(0.25² + 0.15² + 0.30²)


def test_a_gpu_to_cpu_move_names_the_missing_catalogue_field():
    # The CPU instance publishes no memory bandwidth: a transfer with bytes to move is refused naming it.
    with pytest.raises(DataFileError, match=r"specifications\.cpu-16vcpu lacks memory_bandwidth_gb_s"):
        tm.transfer_batch_profile(_profile(), "cpu-16vcpu", tm.Work(1e9, 9e7))
    compute_only = tm.transfer_batch_profile(_profile(), "cpu-16vcpu", tm.Work(1e9, 0))["estimate"]
    assert compute_only["reach_log_sd"]["device"] == 0.30 and compute_only["per_batch"]["1"]["ratio"] == pytest.approx(
        15.7 / 1.64, abs=1e-3
    )


def test_onnx_counting_matches_the_layer_arithmetic(tmp_path):
    mlp, encoder = tmp_path / "mlp.onnx", tmp_path / "encoder.onnx"
    mlp.write_bytes(networks.build_mlp())
    encoder.write_bytes(networks.build_encoder())
    dims = [512, 1024, 1024, 1024, 10]
    work = tm.onnx_work(mlp)
    assert work.flops_per_item == 2 * sum(a * b for a, b in zip(dims, dims[1:]))
    assert work.bytes_per_batch == 4 * sum(a * b + b for a, b in zip(dims, dims[1:]))
    # BERT-base shape: per layer and token QKV + output projection 4 h^2, FFN 2 h f; attention 2 s h per token.
    h, f, s, layers = 768, 3072, 128, 12
    macs = layers * (s * (4 * h * h + 2 * h * f) + 2 * s * s * h)
    assert tm.onnx_work(encoder).flops_per_item == 2 * macs


def test_onnx_counting_of_a_convolution(tmp_path):
    from onnx import TensorProto, helper, numpy_helper
    import numpy as np

    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), dtype=np.float32), "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])
    graph = helper.make_graph(
        [node],
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4, 8, 8])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "conv.onnx"
    path.write_bytes(model.SerializeToString())
    work = tm.onnx_work(path)
    assert work.flops_per_item == 2 * (4 * 8 * 8) * (3 * 3 * 3) and work.bytes_per_batch == 4 * 4 * 3 * 3 * 3


def _servesim(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sim.cli.main", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_the_cli_writes_a_loadable_profile_marked_estimated_with_its_band(tmp_path):
    out = tmp_path / "r50-l4.yaml"
    done = _servesim(
        "calibrate", "transfer", str(RESNET), "--to", "l4", "--flops-per-item", "8.18e9",
        "--bytes-per-batch", "1.0224e8", "--band", "-o", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "ESTIMATED" in done.stdout
    assert out.read_text(encoding="utf-8").startswith("# ESTIMATED")
    data = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert data["estimated"] is True and data["hardware"] == "l4" and data["usd_per_hour"] == 0.8
    profile = load_profile(out)
    slow, fast = load_profile(tmp_path / "r50-l4-slow.yaml"), load_profile(tmp_path / "r50-l4-fast.yaml")
    assert fast.median_ms(4) < profile.median_ms(4) < slow.median_ms(4)


@pytest.mark.parametrize(
    ("profile", "args", "field"),
    [
        (RESNET, ("--to", "l4"), "--flops-per-item and --bytes-per-batch"),
        (RESNET, ("--to", "l4", "--flops-per-item", "-1", "--bytes-per-batch", "1"), "--flops-per-item"),
        (RESNET, ("--to", "l4", "--flops-per-item", "1e9", "--bytes-per-batch", "1", "--tp", "2"), "--tp"),
        (RESNET, ("--to", "nope", "--flops-per-item", "1e9", "--bytes-per-batch", "1"), "specifications.nope"),
        (
            ROOT / "models/bert-base-encoder-cpu-onnxruntime.yaml",
            ("--to", "l4", "--flops-per-item", "1e9", "--bytes-per-batch", "1"),
            "specifications.cpu-2vcpu lacks peak_dense_tflops.fp32",
        ),
        (ROOT / "models/llama2-70b-tp4-a100.yaml", ("--to", "h200", "--flops-per-item", "1"), "batch-cost profiles"),
    ],
)
def test_bad_input_is_one_line_exit_2_naming_the_field(tmp_path, profile, args, field):
    done = _servesim("calibrate", "transfer", str(profile), *args, "-o", str(tmp_path / "x.yaml"))
    assert done.returncode == 2, done.stdout
    message = done.stderr.strip()
    assert field in message and "\n" not in message and str(ROOT) not in message


def test_a_model_stage_runs_on_the_estimated_profile(tmp_path):
    from sim.analysis.simulate import simulate
    from sim.spec.datafiles import shipped_data_roots
    from sim.spec.scenario import parse_scenario_text

    work = tm.Work(flops_per_item=8.18e9, bytes_per_batch=1.0224e8)
    data = tm.transfer_batch_profile(yaml.safe_load(RESNET.read_text(encoding="utf-8")), "t4", work)
    path = tm.write_estimated(data, tmp_path / "r50-t4.yaml")
    text = f"""
name: r50
seed: 1
workload:
  arrival: {{process: poisson, rate_rps: 5}}
  requests: 2000
stages:
  - name: forward
    kind: model
    profile: {path}
    batching: {{policy: none}}
deployment:
  replicas: 1
"""
    scenario = parse_scenario_text(text, base_dir=tmp_path, allowed_roots=(*shipped_data_roots(), tmp_path))
    summary = simulate(scenario, replications=1).summary
    single = load_profile(path).median_ms(1)
    assert single == pytest.approx(3.3 * data["estimate"]["per_batch"]["1"]["ratio"], rel=1e-4)
    assert summary["stages"]["forward"]["p50"] == pytest.approx(single, rel=0.05)  # light load: service alone


def test_the_stand_in_validation_on_llm_prefill_is_what_the_note_reports():
    # No measured pair of batch profiles exists; LLM prefill of one prompt (A100 <-> H100, llm-perf table)
    # stands in. A plain roofline is optimistic A100 -> H100 (the issue measured 2.1-2.4x where peaks say 3.2x).
    table = tm.summary_table(tm.validate())
    assert list(table.index) == ["A100 -> H100", "H100 -> A100"] and (table.rows == 28).all()
    assert table.loc["A100 -> H100", "median_signed_pct"] == pytest.approx(-26.9, abs=0.1)
    assert table.loc["H100 -> A100", "median_signed_pct"] == pytest.approx(36.9, abs=0.1)
    assert (table.coverage_pct >= 89).all()
