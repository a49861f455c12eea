"""Triton perf_analyzer CSV import: microseconds to ms, the server compute split into kernel and overhead,
the client spread carried over, and clear messages for files that are not perf_analyzer output."""

from __future__ import annotations

import pytest

from sim.cli.main import main as calibrate_main
from calibrate.importers import parse_file_batch, perf_analyzer_summary, read_perf_analyzer
from sim.errors import DataFileError
from sim.spec.profile import load_profile

HEADER = (
    "Concurrency,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,Server Compute Input,"
    "Server Compute Infer,Server Compute Output,Client Recv,p50 latency,p90 latency,p95 latency,p99 latency\n"
)


def run_csv(tmp_path, name: str, infer_us: int, input_us: int, output_us: int) -> str:
    """Two concurrency rows; the first (concurrency 1) is the one the importer uses."""
    path = tmp_path / name
    p50 = infer_us + input_us + output_us + 400
    path.write_text(
        HEADER
        + f"1,500,20,300,30,{input_us},{infer_us},{output_us},5,{p50},{p50 + 100},{p50 + 150},{p50 + 300}\n"
        + f"4,900,20,300,3000,{input_us},{infer_us},{output_us},5,{p50 * 3},{p50 * 4},{p50 * 4},{p50 * 5}\n"
    )
    return str(path)


def test_read_converts_microseconds_to_ms(tmp_path):
    frame = read_perf_analyzer(run_csv(tmp_path, "b1.csv", 1500, 50, 20))
    assert frame["level"].tolist() == [1, 4]
    assert frame.loc[0, "compute_infer_ms"] == pytest.approx(1.5)
    assert frame.loc[0, "p50_ms"] == pytest.approx(1.97)
    assert frame.loc[0, "throughput_rps"] == 500


def test_summary_splits_kernel_and_overhead(tmp_path):
    files = {1: run_csv(tmp_path, "b1.csv", 1500, 50, 20), 8: run_csv(tmp_path, "b8.csv", 6000, 200, 40)}
    summary, overhead = perf_analyzer_summary(files)
    assert overhead == pytest.approx(0.070)  # smallest input + output: 50 + 20 µs at batch 1
    b8 = summary[summary.batch_size == 8].iloc[0]
    assert b8["p50_ms"] == pytest.approx(6.0 + 0.2 + 0.04 - 0.07)
    assert b8["p90_ms"] - b8["p50_ms"] == pytest.approx(0.1)  # client p90 - p50 = 100 µs
    assert b8["p99_ms"] - b8["p50_ms"] == pytest.approx(0.3)


def test_cli_import_writes_profile_whose_medians_include_the_overhead(tmp_path, capsys):
    files = [run_csv(tmp_path, f"b{n}.csv", 1000 + 600 * n, 50, 20) + f":{n}" for n in (1, 2, 4, 8)]
    out = tmp_path / "triton.yaml"
    assert calibrate_main(["calibrate", "import-perf-analyzer", *files, "-o", str(out), "--hardware", "t4"]) == 0
    profile = load_profile(out)
    assert profile.per_request_overhead_ms == pytest.approx(0.07)
    # server compute of a batch of 4 = input + infer + output = (50 + 3400 + 20) µs
    assert profile.median_ms(4) == pytest.approx(3.47, rel=1e-3)
    assert profile.curve_family == "affine"
    assert "perf_analyzer" in profile.provenance["source"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("Concurrency,Inferences/Second\n1,5\n", "missing column"),
        (HEADER + "1,500,20,300,30,50,abc,20,5,1,2,3,4\n", "'Server Compute Infer' row 2 is not a number"),
        (HEADER + "1,500,20,300,30,50,0,20,5,1,2,3,4\n", "must be positive"),
        ("", "is empty"),
    ],
)
def test_bad_perf_analyzer_files(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataFileError, match=message):
        read_perf_analyzer(path)


def test_one_batch_size_is_not_enough_and_file_specs_need_a_batch(tmp_path):
    with pytest.raises(DataFileError, match="at least two"):
        perf_analyzer_summary({1: run_csv(tmp_path, "b1.csv", 1500, 50, 20)})
    with pytest.raises(DataFileError, match="PATH:BATCH_SIZE"):
        parse_file_batch("run.csv")
    assert parse_file_batch("dir/run_b8.csv:8") == (8, "dir/run_b8.csv")
