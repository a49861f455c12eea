"""Every user mistake gets one clear message naming the field path and the problem, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sim.errors import ScenarioError
from sim.spec.scenario import load_scenario, parse_scenario_text

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


def error_of(text: str) -> str:
    with pytest.raises(ScenarioError) as info:
        parse_scenario_text(text)
    return str(info.value)


def test_the_good_scenario_parses():
    assert parse_scenario_text(GOOD).workload.requests == 1000


def test_unknown_key_is_named_with_a_suggestion():
    message = error_of(GOOD.replace("rate_rps", "rate_rsp"))
    assert "workload.arrival.rate_rsp: unknown field (did you mean 'rate_rps'?)" in message


def test_negative_rate_names_field_and_value():
    message = error_of(GOOD.replace("rate_rps: 2.5", "rate_rps: -2"))
    assert "workload.arrival.rate_rps" in message and "greater than 0" in message and "-2" in message


def test_wrong_type_names_the_field():
    message = error_of(GOOD + "deployment: {replicas: two}\n")
    assert "deployment.replicas" in message and "'two'" in message


def test_stage_errors_use_the_stage_name():
    message = error_of(GOOD.replace("mean: 100", "mean: 0"))
    assert "stages.forward.service_ms.mean" in message


def test_unknown_process_lists_the_choices():
    message = error_of(GOOD.replace("process: poisson", "process: poison"))
    assert "workload.arrival" in message and "'poisson'" in message and "'trace'" in message


def test_missing_trace_file_is_named():
    message = error_of(GOOD.replace("{process: poisson, rate_rps: 2.5}", "{process: trace, file: no/such.csv}"))
    assert "workload.arrival.file: file not found: no/such.csv" in message


def test_missing_profile_file_is_named():
    message = error_of(GOOD.replace("service_ms: {dist: exponential, mean: 100}", "profile: models/absent.yaml"))
    assert "stages.forward.profile: file not found" in message


def test_model_stage_needs_exactly_one_cost():
    message = error_of(GOOD.replace("    service_ms:", "    batch_cost: {base_ms: 1, per_item_ms: 1}\n    service_ms:"))
    assert "exactly one of service_ms, batch_cost, profile" in message


def test_preferred_batch_sizes_within_max():
    message = error_of(GOOD + "    batching: {policy: dynamic, max_batch_size: 4, preferred_batch_sizes: [8]}\n")
    assert "stages.forward.batching" in message and "exceed max_batch_size 4" in message


def test_invalid_yaml_reports_the_line():
    assert "not valid YAML at line" in error_of("name: x\nworkload: [1, 2\n")


def test_a_scenario_needs_a_model_stage():
    text = GOOD.replace("kind: model", "kind: delay")
    assert "stages need a model stage" in error_of(text)


def test_duplicate_stage_names_are_refused():
    text = GOOD + "  - {name: forward, kind: delay, service_ms: 1}\n"
    assert "repeated: forward" in error_of(text)


def test_lognormal_needs_one_parameterisation():
    message = error_of(GOOD.replace("{dist: exponential, mean: 100}", "{dist: lognormal, median: 10}"))
    assert "stages.forward.service_ms" in message and "{median, p99} or {mean, cv}" in message


def test_warmup_must_leave_requests_to_measure():
    message = error_of(GOOD.replace("requests: 1000", "requests: 1000\n  warmup_requests: 1000"))
    assert "warmup_requests (1000) must be below requests (1000)" in message


def test_missing_scenario_file(tmp_path: Path):
    with pytest.raises(ScenarioError, match="scenario file not found"):
        load_scenario(tmp_path / "nope.yaml")


def test_oversized_scenario_is_refused():
    with pytest.raises(ScenarioError, match="larger than"):
        parse_scenario_text("name: x\n" + "#" * 2_000_000)


def test_override_by_unknown_stage_name():
    scenario = parse_scenario_text(GOOD)
    with pytest.raises(ScenarioError, match="no item named 'forwrd'"):
        scenario.with_overrides({"stages.forwrd.service_ms": 3})


def test_bad_override_value_is_validated():
    scenario = parse_scenario_text(GOOD)
    with pytest.raises(ScenarioError, match="deployment.replicas"):
        scenario.with_overrides({"deployment.replicas": 0})


def test_cli_prints_one_clean_error_and_exits_2(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("rate_rps: 2.5", "rate_rps: -1"))
    result = subprocess.run([sys.executable, "-m", "sim.cli.main", "run", str(bad)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "workload.arrival.rate_rps" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_rejects_a_bad_set_option(tmp_path: Path):
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    result = subprocess.run(
        [sys.executable, "-m", "sim.cli.main", "run", str(good), "--set", "deployment.replicas"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "expected PATH=VALUE" in result.stderr and "Traceback" not in result.stderr


def test_file_outside_the_allowed_folders_is_named(tmp_path):
    message = error_of_at(
        GOOD.replace("{process: poisson, rate_rps: 2.5}", "{process: trace, file: /etc/passwd}"), tmp_path
    )
    assert "workload.arrival.file: /etc/passwd is outside the allowed folders (" in message


def test_duplicate_keys_are_named_with_their_line():
    assert "not valid YAML at line 6, column 3: duplicate key 'requests'" in error_of(
        GOOD.replace("  requests: 1000\n", "  requests: 1000\n  requests: 2000\n")
    )


def test_a_limit_names_field_value_and_ceiling():
    message = error_of(GOOD + "deployment: {replicas: 1000000000}\n")
    assert "deployment.replicas: Input should be less than or equal to 10000 (got 1000000000)" in message


def test_infinity_is_refused_by_field():
    message = error_of(GOOD.replace("mean: 100", "mean: .inf"))
    assert "stages.forward.service_ms.mean: Input should be a finite number (got inf)" in message


def error_of_at(text: str, base_dir) -> str:
    with pytest.raises(ScenarioError) as info:
        parse_scenario_text(text, base_dir=base_dir)
    return str(info.value)
