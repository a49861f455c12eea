"""Reliability and security (issue 13): a scenario reads only allowed files and never echoes them, every
number is finite and bounded, YAML bombs and huge runs are refused before work, CLI paths are checked,
and results that served nothing or are unstable say so (exit 3)."""

from __future__ import annotations

import json
import os
import time

import pytest

from sim.cli.main import main
from sim.errors import DataFileError, ScenarioError, ServesimError
from sim.metrics.invariants import EXIT_UNSTABLE, classify, violations, with_status
from sim.spec import budget
from sim.spec.datafiles import PROJECT_ROOT, expanded_size, parse_yaml, shipped_data_roots
from sim.spec.scenario import load_scenario, parse_scenario_text

ROOT = PROJECT_ROOT
GOOD = """
name: ok
workload:
  arrival: {process: poisson, rate_rps: 2.5}
  requests: 1000
stages:
  - name: forward
    kind: model
    service_ms: {dist: exponential, mean: 100}
"""
EMPIRICAL = GOOD.replace("{dist: exponential, mean: 100}", "{dist: empirical, file: FILE}")


def error_of(text: str, **kwargs) -> str:
    with pytest.raises(ScenarioError) as info:
        parse_scenario_text(text, **kwargs)
    return str(info.value)


# ---- file access ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["/etc/passwd", "../../../../../../etc/passwd", "/proc/self/environ"])
def test_files_outside_the_allowed_folders_are_refused_by_name(tmp_path, name):
    message = error_of(EMPIRICAL.replace("FILE", name), base_dir=tmp_path)
    assert "stages.forward.service_ms.file" in message and "is outside the allowed folders" in message
    assert "root:" not in message


def test_home_paths_are_refused(tmp_path):
    assert "'~' paths are not allowed" in error_of(EMPIRICAL.replace("FILE", "~/.bashrc"), base_dir=tmp_path)


def test_a_symlink_out_of_the_scenario_folder_is_resolved_then_refused(tmp_path):
    (tmp_path / "lat.csv").symlink_to("/etc/hostname")
    message = error_of(EMPIRICAL.replace("FILE", "lat.csv"), base_dir=tmp_path)
    assert "lat.csv is outside the allowed folders" in message


def test_a_file_beside_the_scenario_is_allowed(tmp_path):
    (tmp_path / "lat.csv").write_text("ms\n1\n2\n3\n")
    scenario = parse_scenario_text(EMPIRICAL.replace("FILE", "lat.csv"), base_dir=tmp_path)
    assert scenario.stages[0].service_ms.mean == 2.0


def test_planner_uploads_reach_shipped_data_only(tmp_path):
    (tmp_path / "lat.csv").write_text("ms\n1\n")
    text = EMPIRICAL.replace("FILE", str(tmp_path / "lat.csv"))
    message = error_of(text, base_dir=tmp_path, allowed_roots=shipped_data_roots())
    assert "is outside the allowed folders" in message
    shipped = GOOD.replace("service_ms: {dist: exponential, mean: 100}", "profile: models/mlp-cpu-onnxruntime.yaml")
    assert parse_scenario_text(shipped, base_dir=ROOT, allowed_roots=shipped_data_roots()).stages[0].profile


def test_overrides_keep_the_file_access_of_the_original(tmp_path):
    scenario = parse_scenario_text(GOOD, base_dir=tmp_path, allowed_roots=[tmp_path])
    with pytest.raises(ScenarioError, match="outside the allowed folders"):
        scenario.with_overrides({"stages.forward.service_ms": {"dist": "empirical", "file": "/etc/passwd"}})


def test_errors_count_columns_and_never_quote_the_file(tmp_path):
    (tmp_path / "t.csv").write_text("secret_token_abc,other\n1,2\n")
    text = GOOD.replace("{process: poisson, rate_rps: 2.5}", "{process: trace, file: t.csv}")
    scenario = parse_scenario_text(text.replace("  requests: 1000\n", ""), base_dir=tmp_path)
    with pytest.raises(DataFileError) as info:
        scenario.workload.arrival.generate(None, 1, None)
    assert "no column 'arrived_at' (2 columns)" in str(info.value) and "secret" not in str(info.value)


def test_a_bad_cell_is_located_not_quoted(tmp_path):
    (tmp_path / "lat.csv").write_text("ms\n1\nhunter2\n")
    scenario = parse_scenario_text(EMPIRICAL.replace("FILE", "lat.csv"), base_dir=tmp_path)
    with pytest.raises(DataFileError) as info:
        scenario.stages[0].service_ms.values
    assert "row 3 is not a number" in str(info.value) and "hunter2" not in str(info.value)


# ---- YAML -------------------------------------------------------------------------------------------


def test_duplicate_keys_are_refused_with_the_line():
    message = error_of(GOOD + "name: again\n")
    assert "duplicate key 'name'" in message and "line 10" in message


def test_deep_nesting_is_refused():
    assert "nested deeper than" in error_of("name: " + "[" * 1000 + "]" * 1000)


def test_a_billion_laughs_list_is_refused_without_expanding():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    text = "\n".join(lines) + "\n"
    start = time.perf_counter()
    assert "expands to more than" in error_of(text)
    assert time.perf_counter() - start < 2.0


def test_expanded_size_counts_shared_lists_once_per_reference():
    leaf = [1, 2, 3]
    assert expanded_size({"a": [leaf, leaf], "b": 1}) == 1 + (1 + 2 * 4) + 1


def test_unsafe_tags_are_refused():
    assert "could not determine a constructor" in error_of("!!python/object/apply:os.system [echo hi]")


def test_oversized_text_is_refused():
    with pytest.raises(ScenarioError, match="larger than"):
        parse_yaml("x" * 1_000_001, "big", ScenarioError)


# ---- bounds and finiteness ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "replace, field, limit",
    [
        (
            ("kind: model", "kind: model\n    batching: {policy: dynamic, max_batch_size: 1000000000}"),
            "stages.forward.batching.max_batch_size",
            "4096",
        ),
        (("requests: 1000", "requests: 1000\ndeployment: {replicas: 1000000000}"), "deployment.replicas", "10000"),
        (("requests: 1000", "requests: 1000\ndeployment: {instances: 1e9}"), "deployment.instances", ""),
        (("name: ok", "name: ok\nreplications: 1000000000"), "replications", "1000"),
        (("rate_rps: 2.5", "rate_rps: .inf"), "workload.arrival.rate_rps", "finite"),
        (("mean: 100", "mean: .nan"), "stages.forward.service_ms.mean", "finite"),
        (("requests: 1000", "requests: 1000\nslo: {p99_ms: .inf}"), "slo.p99_ms", "finite"),
        (
            ("requests: 1000", "requests: 1000\ndeployment: {hardware: {usd_per_hour: .inf}}"),
            "deployment.hardware.usd_per_hour",
            "finite",
        ),
        (("requests: 1000", "requests: 1000\ndeployment: {cold_start_ms: .inf}"), "deployment.cold_start_ms", "finite"),
        (("kind: model", "kind: model\n    speedup: .inf"), "stages.forward.speedup", "finite"),
        (
            ("{dist: exponential, mean: 100}", "{dist: gamma, mean: 100, cv: 1000000}"),
            "stages.forward.service_ms.cv",
            "30",
        ),
        (("rate_rps: 2.5}", "rate_rps: 2.5, cv: 1e6, process: gamma}"), "workload.arrival", ""),
        (
            ("service_ms: {dist: exponential, mean: 100}", "batch_cost: {base_ms: 1, per_item_ms: 1, cv: .inf}"),
            "stages.forward.batch_cost.cv",
            "finite",
        ),
    ],
)
def test_huge_and_infinite_numbers_name_the_field(replace, field, limit):
    text = GOOD.replace(*replace)
    if "process: gamma" in text:
        text = text.replace("{process: poisson, ", "{")
    message = error_of(text)
    assert field in message and limit in message


def test_workers_keys_and_tokens_are_bounded():
    pool = GOOD.replace("stages:\n", "stages:\n  - {name: pre, kind: pool, workers: 1000000000, service_ms: 1}\n")
    assert "stages.pre.workers: Input should be less than or equal to 100000" in error_of(pool)
    caches = (
        GOOD + "caches: [{name: out, tier: output, keys: {popularity: zipf, exponent: 1, n_keys: 1e9}, capacity: 10}]\n"
    )
    assert "caches.out.keys" in error_of(caches)
    llm = (ROOT / "scenarios" / "llm-chat-continuous.yaml").read_text()
    llm = llm.replace(
        "tokens: {prompt_column: num_prefill_tokens, output_column: num_decode_tokens}",
        "tokens: {prompt: 10, output: {dist: zipf, a: 1.1, max: 1000000000}}",
    )
    assert "workload.tokens.output.max: Input should be less than or equal to 1000000" in error_of(
        llm, base_dir=ROOT / "scenarios"
    )


def test_a_seed_out_of_range_is_a_clear_error(capsys):
    assert main(["run", str(ROOT / "scenarios/mm3.yaml"), "--requests", "500", "--seed", "-1"]) == 2
    assert "--seed: -1 must be a whole number" in capsys.readouterr().err


# ---- run budget ---------------------------------------------------------------------------------------


def test_the_run_budget_is_requests_times_replications_times_columns():
    scenario = load_scenario(ROOT / "scenarios/mm3.yaml")
    columns = budget.log_columns(scenario)
    assert columns == 9 + 8  # base columns + one model stage
    expected = 1_000 * 5 * columns * budget.BYTES_PER_CELL * budget.WORKING_COPIES
    assert budget.estimate_run_bytes(scenario, requests=1_000, replications=5) == expected


def test_a_run_too_large_for_memory_is_refused_before_it_starts():
    scenario = load_scenario(ROOT / "scenarios/mm3.yaml")
    start = time.perf_counter()
    with pytest.raises(
        ScenarioError, match=r"--requests: 1e\+07 requests × 5 replications .* GB, above the memory limit"
    ):
        from sim.analysis.simulate import simulate

        simulate(scenario, requests=10_000_000, replications=5)
    assert time.perf_counter() - start < 1.0


def test_a_nearly_silent_on_off_process_is_refused_not_looped():
    scenario = load_scenario(ROOT / "scenarios/mm3.yaml").with_overrides(
        {"workload.arrival": {"process": "on_off", "rate_on_rps": 1e-6, "mean_on_s": 1, "mean_off_s": 1}}
    )
    with pytest.raises(ScenarioError, match="on/off periods"):
        budget.check_run_budget(scenario, requests=1000)


def test_thinning_stops_at_its_draw_limit(monkeypatch):
    import numpy as np

    from sim.spec import arrivals

    monkeypatch.setattr(arrivals, "MAX_THINNING_DRAWS", 100_000)
    process = arrivals.TimeVarying(
        process="time_varying", points=[(0.0, 1.0)], spikes=[{"at_s": 0, "duration_s": 1, "multiplier": 10_000}]
    )
    with pytest.raises(ScenarioError, match="thinning drew"):
        process.generate(np.random.default_rng(0), 100_000, None)


# ---- output invariants -----------------------------------------------------------------------------


def summary(**changes) -> dict:
    base = {
        "requests": 100,
        "served": 100,
        "throughput_rps": 2.0,
        "rejected_fraction": 0.0,
        "utilization": 0.5,
        "latency_ms": {"mean": 5.0, "p50": 4.0, "p90": 8.0, "p95": 9.0, "p99": 12.0, "p999": 20.0},
        "offered_load": {"forward": 0.5},
        "cost": {"usd_per_hour": 1.0, "usd_per_1m_queries": 0.2},
    }
    base.update(changes)
    return base


def test_invariants_classify_results():
    assert classify(summary()).status == "ok" and violations(summary()) == []
    assert classify(summary(served=0, throughput_rps=0.0, rejected_fraction=1.0)).status == "no_service"
    unstable = classify(summary(offered_load={"forward": 1.3}))
    assert unstable.status == "unstable" and "1.30 ≥ 1" in unstable.reasons[0] and unstable.exit_code == EXIT_UNSTABLE
    not_finite = summary(latency_ms={"mean": float("inf"), "p50": 4.0, "p95": 9.0, "p99": float("nan")})
    assert classify(not_finite).reasons == ("latency mean is not finite", "latency p99 is not finite")
    assert with_status(summary())["status"] == "ok"


def test_violations_name_the_broken_identity():
    broken = summary(utilization=1.5, latency_ms={"p50": 10.0, "p95": 9.0, "p99": 12.0}, cost={"usd_per_hour": -1.0})
    assert violations(broken) == [
        "latency p50 (10) is above p95 (9)",
        "utilization 1.5 is outside [0, 1]",
        "cost usd_per_hour is negative (-1)",
    ]


def test_an_unstable_run_exits_3_and_says_so(capsys):
    code = main(
        [
            "run",
            str(ROOT / "scenarios/mm3.yaml"),
            "--requests",
            "3000",
            "--replications",
            "2",
            "--set",
            "workload.arrival.rate_rps=5",
            "--json",
        ]
    )
    captured = capsys.readouterr()
    assert code == 3 and "servesim: unstable: offered load on stage 'forward' is 1.67" in captured.err
    assert json.loads(captured.out)["status"] == "unstable"


def test_a_run_that_serves_nothing_exits_3(capsys):
    code = main(
        [
            "run",
            str(ROOT / "scenarios/mm3.yaml"),
            "--requests",
            "2000",
            "--replications",
            "2",
            "--set",
            "deployment.max_queue_size=0",
            "--set",
            "stages.forward.service_ms=100000000",
            "--set",
            "deployment.replicas=1",
            "--set",
            "workload.warmup_requests=1000",
            "--json",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 3 and out["status"] == "no_service" and out["served"] == 0


def test_same_seed_gives_byte_identical_json(capsys):
    argv = ["run", str(ROOT / "scenarios/mm3.yaml"), "--requests", "2000", "--replications", "2", "--json"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert main(argv) == 0
    assert capsys.readouterr().out == first and json.loads(first)["status"] == "ok"


# ---- command-line paths -----------------------------------------------------------------------------

MM3 = str(ROOT / "scenarios/mm3.yaml")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", MM3, "--log", "EXISTING"], "--log EXISTING: exists and is not a folder"),
        (["run", MM3, "--workers", "0"], "--workers: 0 must be from 1 to"),
        (["run", MM3, "--timeline", "t.xyz"], "use a .png or .svg or .pdf file name"),
        (["run", MM3, "--log", "a" * 300], "file name too long"),
        (["run", "/dev/zero"], "is not a regular file"),
        (["run", MM3, "--set", "seed=" + "[" * 500 + "]" * 500], "nested deeper than"),
        (["run", MM3, "--window-s", "inf"], "--window-s: inf must be a finite number"),
        (
            ["sweep", str(ROOT / "sweeps/reference-100.yaml"), "--scheduler", "not-an-address"],
            "is not a scheduler address",
        ),
        (["size", MM3, "--slo-p99-ms", "0"], "--slo-p99-ms: 0.0 must be a finite number above 0"),
        (["size", MM3, "--slo-p99-ms", "inf"], "--slo-p99-ms: inf must be a finite number"),
        (["size", MM3, "--slo-p99-ms", "100", "--out", "EXISTING"], "exists and is not a folder"),
        (["compare", MM3, "-v", "replicas=4", "--out", "EXISTING"], "exists and is not a folder"),
        (["validate", MM3, "/dev/zero"], "measured: zero is not a regular file"),
        (["calibrate", "fit", "/dev/zero", "-o", "x.yaml"], "measurements: zero is not a regular file"),
    ],
)
def test_cli_paths_are_checked_before_work(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "LOGDIR.csv").mkdir()
    (tmp_path / "EXISTING").write_text("keep me")
    start = time.perf_counter()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert time.perf_counter() - start < 5.0
    assert (tmp_path / "EXISTING").read_text() == "keep me"


def test_a_scenario_file_larger_than_the_limit_is_refused(tmp_path, capsys):
    big = tmp_path / "big.yaml"
    with open(big, "wb") as handle:
        handle.truncate(2_000_000)
    assert main(["run", str(big)]) == 2
    assert "above the limit of 1000000" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads and writes everything")
def test_an_unwritable_log_folder_is_refused(tmp_path, capsys):
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o500)
    assert main(["run", MM3, "--log", str(folder / "log")]) == 2
    assert "not writable" in capsys.readouterr().err


def test_serviceable_errors_are_serveserrors():
    assert issubclass(ScenarioError, ServesimError) and issubclass(DataFileError, ServesimError)


def test_a_cv_too_small_to_square_is_refused_not_divided_by():
    text = GOOD.replace(
        "service_ms: {dist: exponential, mean: 100}", "batch_cost: {base_ms: 1, per_item_ms: 1, cv: 1e-187}"
    )
    assert "stages.forward.batch_cost.cv: cv 1e-187 is below 1e-06: use 0" in error_of(text)
    assert parse_scenario_text(text.replace("cv: 1e-187", "cv: 0")).stages[0].batch_cost.cv == 0


def test_a_vanishing_rate_is_refused_before_times_overflow():
    scenario = load_scenario(ROOT / "scenarios/mm3.yaml").with_overrides({"workload.arrival.rate_rps": 1e-300})
    with pytest.raises(ScenarioError, match=r"workload.arrival: .* s, above the limit of 1e\+10 s"):
        budget.check_run_budget(scenario, requests=300)
