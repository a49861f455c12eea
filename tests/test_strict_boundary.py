"""Strict types at the boundary (issue 23, part C): a boolean is not a number, YAML holds plain data only,
number options are finite and short, a work budget beside the memory budget, `--set` hints that name the
path that exists, and exit codes 0 / 2 / 3 / 4 as the README and every command's --help state them."""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import pytest

from sim.cli.main import EXIT_CODES_HELP, build_parser, finite_float, main, whole_number
from sim.errors import ScenarioError
from sim.spec.budget import WORK_LIMIT_ENV, WORK_LIMIT_UNITS, check_run_options, estimate_run_work
from sim.spec.scenario import load_scenario, parse_scenario_text

ROOT = Path(__file__).resolve().parents[1]
MM3 = ROOT / "scenarios" / "mm3.yaml"
GOOD = """
name: ok
seed: 1
workload:
  arrival: {process: poisson, rate_rps: 2.5}
  requests: 1000
stages:
  - name: pre
    kind: pool
    workers: 2
    per_replica: true
    service_ms: {dist: constant, value: 1}
  - name: forward
    kind: model
    service_ms: {dist: exponential, mean: 100}
deployment:
  replicas: 2
"""
LONG = "9" * 5000


def error_of(text: str) -> str:
    with pytest.raises(ScenarioError) as info:
        parse_scenario_text(text)
    return str(info.value)


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse refuses an option with exit 2
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


# --- a boolean is not a number -----------------------------------------------------------------------


def test_the_good_scenario_parses_with_its_true_flag():
    assert parse_scenario_text(GOOD).stage("pre").per_replica is True


@pytest.mark.parametrize(
    "old, new, path",
    [
        ("replicas: 2", "replicas: yes", "deployment.replicas"),
        ("seed: 1", "seed: 1\nreplications: true", "replications"),
        ("rate_rps: 2.5", "rate_rps: true", "workload.arrival.rate_rps"),
        ("mean: 100}", "mean: 100}\n    per_item: true", "stages.forward.per_item"),
        ("workers: 2", "workers: on", "stages.pre.workers"),
        ("value: 1}", "value: false}", "stages.pre.service_ms"),
    ],
)
def test_a_boolean_in_a_number_field_is_refused(old, new, path):
    message = error_of(GOOD.replace(old, new, 1))
    assert f"{path}" in message and "boolean" in message, message


def test_a_boolean_in_a_number_field_no_bound_type_declares_is_refused():
    # target_ongoing_requests is a plain float of sim/spec/autoscaling.py: the walk over the validated
    # scenario finds the true pydantic took as 1.0
    text = GOOD.replace(
        "  replicas: 2",
        "  autoscaling: {policy: ray_serve, min_replicas: 1, max_replicas: 3, target_ongoing_requests: true}",
    )
    message = error_of(text)
    assert "deployment.autoscaling.target_ongoing_requests: a boolean is not a number" in message, message


def test_set_replicas_true_is_refused(capsys):
    code, out, err = run_cli(["run", str(MM3), "--requests", "1000", "--set", "deployment.replicas=true"], capsys)
    assert code == 2 and "deployment.replicas" in err and "boolean" in err and "Traceback" not in err
    assert out == ""


# --- YAML holds plain data only ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, tag",
    [
        ("!!binary aGVsbG8=", "!!binary"),
        ("!!timestamp 2024-01-01", "!!timestamp"),
        ("2024-01-01", "!!timestamp"),
        ("!!set {a, b}", "!!set"),
        ("!!omap [a: 1]", "!!omap"),
        ("!!pairs [a: 1]", "!!pairs"),
    ],
)
def test_yaml_tags_beyond_the_safe_core_are_refused(value, tag):
    message = error_of(GOOD.replace("name: ok", f"name: {value}"))
    assert re.search(r"name(\.0)?: a YAML !!", message) and tag in message and "not allowed" in message, message


def test_text_that_looks_like_a_date_is_fine_quoted():
    assert parse_scenario_text(GOOD.replace("name: ok", 'name: "2024-01-01"')).name == "2024-01-01"


def test_set_refuses_a_tagged_value(capsys):
    code, _, err = run_cli(["run", str(MM3), "--requests", "1000", "--set", "name=!!binary aGVsbG8="], capsys)
    assert code == 2 and "!!binary" in err and "Traceback" not in err


# --- numbers that are too long, NaN, infinity ----------------------------------------------------------


def test_a_5000_digit_seed_in_the_file_is_one_clear_line():
    message = error_of(GOOD.replace("seed: 1", f"seed: {LONG}"))
    assert "more than 30 digits" in message and len(message) < 200


def test_a_400_digit_seed_in_the_file_is_named_without_being_echoed():
    message = error_of(GOOD.replace("seed: 1", "seed: " + "9" * 400))
    assert "seed: a whole number of more than 30 digits" in message and len(message) < 200


@pytest.mark.parametrize(
    "argv",
    [
        ["run", str(MM3), "--seed", LONG],
        ["run", str(MM3), "--requests", "1000", "--set", f"seed={LONG}"],
        ["run", str(MM3), "--window-s", "inf"],
        ["run", str(MM3), "--window-s", "nan"],
        ["run", str(MM3), "--requests", "1e3"],
        ["validate", str(MM3), "measured.csv", "--tolerance-pct", "nan"],
        ["size", str(MM3), "--slo-p99-ms=-inf"],
        ["advise", str(MM3), "--cache-hit-rate", "NaN"],
    ],
)
def test_number_options_refuse_nan_infinity_and_endless_digits(argv, capsys):
    code, out, err = run_cli(argv, capsys)
    assert code == 2 and "Traceback" not in err and out == "" and err.count("\n") == 1, err
    assert "finite" in err or "whole number" in err or "30 digits" in err, err
    assert LONG not in err  # never echoed


def test_every_number_option_of_every_command_is_checked():
    seen = {float: 0, int: 0}

    def walk(parser: argparse.ArgumentParser) -> None:
        for action in parser._actions:
            assert action.type not in (float, int), f"{parser.prog} {action.option_strings}"
            reads = getattr(action.type, "reads", None)
            seen[float] += reads is finite_float
            seen[int] += reads is whole_number
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    walk(sub)

    walk(build_parser())
    assert seen[float] >= 10 and seen[int] >= 20  # run, size, advise, compare, sweep, calibrate, validate


# --- LLM utilisation: absent, not null -----------------------------------------------------------------


def test_an_llm_run_has_no_utilization_key_but_its_occupancy(capsys):
    argv = ["run", str(ROOT / "scenarios" / "llm-chat-continuous.yaml"), "--requests", "300", "--replications", "1"]
    code, out, _ = run_cli([*argv, "--json"], capsys)
    summary = json.loads(out)
    assert code == 0 and summary["status"] == "ok"
    assert "utilization" not in summary
    assert 0 < summary["llm"]["busy_fraction"] <= 1 and 0 <= summary["llm"]["kv_cache_utilization"]["mean"] <= 1


def test_a_model_run_keeps_its_utilization(capsys):
    code, out, _ = run_cli(["run", str(MM3), "--requests", "3000", "--replications", "2", "--json"], capsys)
    assert code == 0 and 0 < json.loads(out)["utilization"] <= 1


# --- the work budget --------------------------------------------------------------------------------------


def test_a_billion_requests_on_ten_thousand_replicas_is_refused_at_once(capsys):
    argv = ["run", str(MM3), "--set", "deployment.replicas=10000", "--requests", "1000000", "--replications", "1000"]
    start = time.perf_counter()
    code, out, err = run_cli(argv, capsys)
    assert time.perf_counter() - start < 5
    assert code == 2 and out == "" and "Traceback" not in err
    assert f"{WORK_LIMIT_UNITS:.3g}" in err and WORK_LIMIT_ENV in err and "work limit" in err, err


def test_the_work_limit_is_raised_by_its_environment_variable(monkeypatch):
    scenario = load_scenario(MM3)
    with pytest.raises(ScenarioError, match=WORK_LIMIT_ENV):
        check_run_options(scenario, 1_000_000, None, 1000, keep_log=False)
    monkeypatch.setenv(WORK_LIMIT_ENV, "1e10")
    check_run_options(scenario, 1_000_000, None, 1000, keep_log=False)
    monkeypatch.setenv(WORK_LIMIT_ENV, "nan")
    with pytest.raises(ScenarioError, match="positive number"):
        check_run_options(scenario, 1000, None, 1, keep_log=False)


@pytest.mark.parametrize("path", sorted((ROOT / "scenarios").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_scenario_is_well_within_the_work_budget(path):
    scenario = load_scenario(path)
    assert estimate_run_work(scenario) <= WORK_LIMIT_UNITS / 20
    check_run_options(scenario, None, None, None, keep_log=False)


def test_the_readme_commands_are_within_the_work_budget():
    reference = load_scenario(ROOT / "scenarios" / "reference.yaml")
    # README, "Speed": run scenarios/reference.yaml --json --requests 10000000 --replications 5
    assert estimate_run_work(reference, 10_000_000, 5) <= WORK_LIMIT_UNITS
    bert = load_scenario(ROOT / "scenarios" / "bert-cpu.yaml")
    assert estimate_run_work(bert, 20_000, 10) <= WORK_LIMIT_UNITS / 100


# --- --set hints name the path that exists ----------------------------------------------------------------


@pytest.mark.parametrize(
    "option, hint",
    [
        ("autoscaling.min_replicas=3", "deployment.autoscaling.min_replicas"),
        ("deployment.replica=3", "deployment.replicas"),
        ("rate_rps=3", "workload.arrival.rate_rps"),
    ],
)
def test_set_hints_name_the_path_that_exists(option, hint, capsys):
    code, _, err = run_cli(["run", str(MM3), "--requests", "1000", "--set", option], capsys)
    assert code == 2 and f"did you mean {hint}?" in err, err
    assert "did you mean 'autoscaling'" not in err


def test_a_field_in_the_wrong_place_is_no_hint_for_itself():
    message = error_of(GOOD + "autoscaling: {min_replicas: 3}\n")
    assert "autoscaling: unknown field" in message and "did you mean 'autoscaling'" not in message


# --- exit codes -------------------------------------------------------------------------------------------


def test_exit_0_for_a_stable_run(capsys):
    assert run_cli(["run", str(MM3), "--requests", "2000", "--replications", "2", "--json"], capsys)[0] == 0


def test_exit_2_for_bad_input(capsys):
    assert run_cli(["run", str(MM3), "--requests", "1000", "--set", "deployment.replicas=-1"], capsys)[0] == 2


def test_exit_3_for_an_unstable_run(capsys):
    argv = ["run", str(MM3), "--requests", "5000", "--replications", "2", "--set", "deployment.replicas=2", "--json"]
    code, out, err = run_cli(argv, capsys)
    assert code == 3 and json.loads(out)["status"] == "unstable" and "unstable" in err


def test_exit_4_when_no_candidate_meets_the_slo(tmp_path, capsys):
    scenario = tmp_path / "const.yaml"
    scenario.write_text(
        GOOD.replace("{dist: exponential, mean: 100}", "{dist: constant, value: 100}").replace(
            "requests: 1000", "requests: 2000"
        )
    )
    argv = ["size", str(scenario), "--slo-p99-ms", "50", "--replications", "2", "--out", str(tmp_path / "out")]
    code, out, _ = run_cli(argv, capsys)
    assert code == 4 and "no candidate meets the SLO" in out


@pytest.mark.parametrize("command", ["run", "summarize", "size", "advise", "compare", "sweep", "validate", "calibrate"])
def test_every_command_help_states_the_exit_codes(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert " ".join(EXIT_CODES_HELP.split()) in text


def test_the_readme_states_every_exit_code():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("**Exit codes**") :][:2500]
    for code in ("`0`", "`1`", "`2`", "`3`", "`4`"):
        assert code in section
    assert WORK_LIMIT_ENV in readme


# --- an LLM stage's work and memory grow with the tokens it generates --------------------------------------


def _llm_with_output(tokens: int):
    scenario = load_scenario(ROOT / "scenarios" / "llm-chat-continuous.yaml")
    return scenario.with_overrides(
        {
            "workload.arrival": {"process": "poisson", "rate_rps": 5.0},
            "workload.tokens": {"prompt": 512, "output": tokens},
        }
    )


def test_llm_work_and_memory_grow_with_output_tokens():
    from sim.spec.budget import estimate_run_bytes

    short, long = _llm_with_output(20), _llm_with_output(2000)
    assert estimate_run_work(long, 10_000, 1) > 5 * estimate_run_work(short, 10_000, 1)
    assert estimate_run_bytes(long, 10_000, 1) > 5 * estimate_run_bytes(short, 10_000, 1)


def test_the_whole_conversation_trace_five_times_over_is_refused_for_memory():
    # Measured: one replication of the conversation trace peaks ~670 MB above the interpreter and each further
    # one adds ~830 MB (the summary reads every replication's token times), so five need ~4 GB. The estimate
    # counted 80 MB (requests × log columns) and the fuzz found the run taking minutes of swapping.
    scenario = load_scenario(ROOT / "scenarios" / "llm-chat-continuous.yaml")
    with pytest.raises(ScenarioError, match="memory limit") as error:
        check_run_options(scenario, None, None, 5, keep_log=False)
    assert str(error.value).startswith("workload.requests") or "requests" in str(error.value).split(":")[0]
    check_run_options(scenario, None, None, 1, keep_log=False)
