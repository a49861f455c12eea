"""Fuzzing the scenario schema and the `run` options (issue 13): every outcome is either a result that
meets the output invariants or a ServesimError naming a field — never a traceback, a hang or a memory
blow-up. Shipped scenarios are mutated (values replaced by huge / negative / infinite / NaN / string /
nested values, keys deleted, unknown keys added) and run in-process with small request counts.

Two families (issue 23) check strictness rather than survival: a boolean, NaN, infinity, a 30-to-5,000-digit
number or a YAML tag put in a number field of a shipped scenario must be refused, never taken ("taken" is a
silent-wrong result); and a run above the work budget must be refused at once, naming the limit.

CI runs a few hundred examples (profile `ci`); `make fuzz` runs 10,000 (HYPOTHESIS_PROFILE=fuzz) and
prints the outcome counts.
"""

from __future__ import annotations

import copy
import json
import math
import os
import signal
from collections import Counter
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.errors import ServesimError
from sim.metrics.invariants import classify, violations, with_status
from sim.spec import budget

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"
SHIPPED = (
    "mm3",
    "search-ranker",
    "vision-a100",
    "bert-cpu",
    "recsys-caches",
    "autoscale-diurnal",
    "reference",
    "llm-chat-static",
)
REQUESTS, REPLICATIONS = 300, 2
EXAMPLE_SECONDS = 20
FUZZ_MEMORY_LIMIT_BYTES = 150_000_000  # a fuzz run never needs more; bigger asks count as memory stops
# Work the budget lets a fuzz case do: about 10 s of CPU at a third of a microsecond a unit, half the time
# bound, so a case the budget lets through and still runs past EXAMPLE_SECONDS is an estimate off by over
# 2× (counted as a hang), never a legitimately long run.
FUZZ_WORK_LIMIT_UNITS = 3e7

settings.register_profile(
    "ci", max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "10000")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
OUTCOMES: Counter = Counter()
FAILURES: list[str] = []

PLAUSIBLE = st.one_of(st.integers(1, 64), st.floats(0.01, 1000), st.sampled_from(["none", "dynamic", "lru", "zipf"]))
NASTY = st.one_of(
    st.sampled_from(
        [
            0,
            -1,
            -1e9,
            10**9,
            10**12,
            2**63,
            1e308,
            1e-300,
            math.inf,
            -math.inf,
            math.nan,
            True,
            None,
            "",
            "x",
            "1e9",
            "../../../../etc/passwd",
            "/dev/zero",
            [],
            {},
            [1, 2],
            {"dist": "zipf"},
        ]
    ),
    st.integers(-(10**6), 10**10),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)


class _Timeout(Exception):
    pass


def _raise_timeout(signum, frame):
    raise _Timeout()


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    if OUTCOMES:
        line = ", ".join(f"{k} {v}" for k, v in sorted(OUTCOMES.items()))
        print(f"\nfuzz outcomes ({PROFILE}): {line}")
        if os.environ.get("FUZZ_REPORT"):
            Path(os.environ["FUZZ_REPORT"]).write_text(
                json.dumps({"outcomes": OUTCOMES, "failures": FAILURES}, indent=1)
            )


@pytest.fixture(autouse=True)
def small_memory_and_work_limits(monkeypatch):
    monkeypatch.setattr(budget, "MEMORY_LIMIT_BYTES", FUZZ_MEMORY_LIMIT_BYTES)
    monkeypatch.setattr(budget, "WORK_LIMIT_UNITS", FUZZ_WORK_LIMIT_UNITS)
    monkeypatch.delenv(budget.WORK_LIMIT_ENV, raising=False)


def _shipped(name: str) -> dict:
    raw = yaml.safe_load((SCENARIOS / f"{name}.yaml").read_text())
    workload = raw["workload"]
    workload.pop("duration_s", None)
    workload.pop("warmup_s", None)
    if workload["arrival"].get("process") == "time_varying":  # a curve runs over a horizon, never a count
        workload["duration_s"], workload["warmup_s"] = 20, 2  # ~280 requests at midnight's 14 req/s
    else:
        workload["requests"], workload["warmup_requests"] = REQUESTS, 30
    raw["replications"] = REPLICATIONS
    return raw


RAW = {name: _shipped(name) for name in SHIPPED}


def _slots(node, path=()):
    """Every (container, key) in a raw scenario, dict keys and list indices alike."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        yield node, key, path + (key,)
        yield from _slots(child, path + (key,))


def _mutate(raw: dict, data) -> dict:
    raw = copy.deepcopy(raw)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        slots = list(_slots(raw))
        container, key, _ = slots[data.draw(st.integers(0, len(slots) - 1), label="slot")]
        op = data.draw(
            st.sampled_from(
                ["replace", "replace", "plausible", "plausible", "delete", "unknown", "nest", "scale", "scale"]
            )
        )
        if op == "replace":
            container[key] = copy.deepcopy(data.draw(NASTY, label="value"))  # sampled lists are shared
        elif op == "plausible":
            container[key] = data.draw(PLAUSIBLE, label="value")
        elif op == "delete":
            del container[key]
        elif op == "unknown" and isinstance(container, dict):
            container[data.draw(st.text(min_size=1, max_size=8), label="unknown key")] = 1
        elif op == "nest":
            value = container[key]
            for _ in range(data.draw(st.integers(1, 200), label="depth")):
                value = [value]
            container[key] = value
        elif op == "scale" and isinstance(container[key], (int, float)) and not isinstance(container[key], bool):
            container[key] = container[key] * data.draw(st.sampled_from([-1, 0, 1e-9, 0.5, 2, 10, 1e3, 1e6, 1e12]))
    return raw


def check_summary(summary: dict) -> list[str]:
    """Invariants of a result: identities always; finite ordered figures unless it says it is not `ok`."""
    problems = violations(summary)
    if classify(summary).status == "ok":
        latency = summary["latency_ms"]
        if not latency["p50"] <= latency["p95"] <= latency["p99"]:
            problems.append("p50 ≤ p95 ≤ p99 fails")
        if not summary["throughput_rps"] > 0:
            problems.append("throughput not above 0")
        for key, value in summary["cost"].items():
            if value is not None and not (math.isfinite(value) and value >= 0):
                problems.append(f"cost {key} = {value}")
        utilisation = summary.get("utilization")
        if utilisation is not None and math.isfinite(utilisation) and not 0 <= utilisation <= 1 + 1e-6:
            problems.append(f"utilization {utilisation}")
    return problems


def classify_outcome(run, case: object = None) -> str:
    """Run `run()` under a time bound; return the outcome kind and record failures with their cause."""
    previous = signal.signal(signal.SIGALRM, _raise_timeout)
    signal.setitimer(signal.ITIMER_REAL, EXAMPLE_SECONDS)
    try:
        summary = run()
        problems = check_summary(summary) if summary is not None else []
        outcome = "invariant break" if problems else f"result {with_status(summary)['status']}" if summary else "result"
        if problems:
            FAILURES.append("; ".join(problems))
    except _Timeout:
        outcome = "hang"
    except ServesimError as exc:
        message = str(exc)
        outcome = "memory stop" if "memory limit" in message else "clear error"
        if ":" not in message:  # every message names its field or option before a colon
            outcome = "unclear error"
            FAILURES.append(message[:200])
    except RecursionError:
        outcome = "traceback"
        FAILURES.append("RecursionError")
    except Exception as exc:  # noqa: BLE001 - counting what escaped is the point
        outcome = "traceback"
        FAILURES.append(f"{type(exc).__name__}: {str(exc)[:200]}")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    if outcome == "hang":
        FAILURES.append(f"no answer within {EXAMPLE_SECONDS} s")
    if outcome not in ACCEPTABLE and case is not None:
        FAILURES[-1] += f"  <- {json.dumps(case, default=str)[:1500]}"
    OUTCOMES["cases"] += 1
    OUTCOMES[outcome] += 1
    return outcome


ACCEPTABLE = {"clear error", "memory stop", "result ok", "result unstable", "result no_service"}


@given(data=st.data())
@settings(settings.get_profile(PROFILE))
def test_mutated_scenarios_give_a_result_or_a_clear_error(data):
    from sim.analysis.simulate import simulate
    from sim.spec.scenario import parse_scenario

    name = data.draw(st.sampled_from(SHIPPED), label="scenario")
    raw = _mutate(RAW[name], data)

    def run():
        scenario = parse_scenario(raw, base_dir=SCENARIOS, source=name)
        return simulate(scenario).summary

    outcome = classify_outcome(run, case=raw)
    # In CI a failure stops and shrinks; a long `make fuzz` run counts every outcome and checks at the end.
    assert outcome in ACCEPTABLE or PROFILE == "fuzz", f"{outcome}: {FAILURES[-1] if FAILURES else ''}"


OPTION_VALUES = st.sampled_from(["-1", "0", "1", "3", "1000000000", "inf", "nan", "1e999", "x", ""])
SET_PATHS = st.sampled_from(
    [
        "deployment.replicas",
        "workload.arrival.rate_rps",
        "stages.forward.service_ms",
        "stages.forward.batching",
        "slo.p99_ms",
        "seed",
        "nosuch.path",
        "stages.9.name",
    ]
)
SET_VALUES = st.sampled_from(
    [
        "4",
        "-4",
        ".inf",
        ".nan",
        "1e9",
        "{policy: dynamic, max_batch_size: 1000000000}",
        "[[[[1]]]]",
        "{a: 1, a: 2}",
        "!!python/object:os.system",
        "{dist: constant, value: 3}",
    ]
)


@given(data=st.data())
@settings(settings.get_profile(PROFILE))
def test_run_options_give_a_result_or_a_clear_error(data, tmp_path_factory, capsys):
    from sim.cli.main import main

    folder = tmp_path_factory.mktemp("cli")
    argv = ["run", str(SCENARIOS / "mm3.yaml"), "--json", "--requests", str(REQUESTS), "--replications", "2"]
    for option in data.draw(
        st.lists(st.sampled_from(["--requests", "--seed", "--replications", "--window-s"]), max_size=3), label="options"
    ):
        argv += [option, data.draw(OPTION_VALUES, label=option)]
    for _ in range(data.draw(st.integers(0, 2), label="sets")):
        argv += ["--set", f"{data.draw(SET_PATHS)}={data.draw(SET_VALUES)}"]
    if data.draw(st.booleans(), label="log"):
        argv += ["--log", str(folder / data.draw(st.sampled_from(["l.csv", "l.parquet", "l.txt", "no/l.csv", "."])))]

    def run():
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse: a malformed option is exit 2 with usage
            code = exc.code
        out = capsys.readouterr().out
        if code not in (0, 2, 3):
            raise AssertionError(f"exit code {code}")
        if code == 2:
            raise ServesimError("cli: exit 2")
        return json.loads(out)

    outcome = classify_outcome(run, case=argv)
    # In CI a failure stops and shrinks; a long `make fuzz` run counts every outcome and checks at the end.
    assert outcome in ACCEPTABLE or PROFILE == "fuzz", f"{outcome}: {FAILURES[-1] if FAILURES else ''}"


# A long number is drawn as its digit count (hypothesis cannot print a 5,000-digit int when it reports).
STRICT_VALUES = st.one_of(
    st.sampled_from([True, False, math.nan, math.inf, -math.inf]), st.integers(30, 5000).map(lambda n: f"{n} digits")
)
# YAML text for a number field: tags beyond the safe core, words YAML 1.1 reads as booleans, long numbers.
STRICT_TEXT = st.one_of(
    st.sampled_from(
        [
            "!!binary aGVsbG8=",
            "!!timestamp 2001-12-14",
            "2001-12-14",
            "!!set {a, b}",
            "!!omap [a: 1]",
            "!!pairs [a: 1]",
            "yes",
            "off",
            "true",
            ".nan",
            "-.inf",
            "!!python/tuple [1, 2]",
            "!!float nan",
        ]
    ),
    st.integers(30, 5000).map(lambda digits: "9" * digits),
)


def _number_slots(raw: dict) -> list[tuple]:
    return [
        (container, key, path)
        for container, key, path in _slots(raw)
        if isinstance(container[key], (int, float)) and not isinstance(container[key], bool)
    ]


def _strict_outcome(run, case: object) -> str:
    """A strict-type case must be a clear error: a result means the value was taken as a number."""
    outcome = classify_outcome(run)
    if outcome not in ACCEPTABLE and FAILURES:
        FAILURES[-1] += f"  <- {json.dumps(case, default=str)[:300]}"
    if outcome.startswith("result"):
        OUTCOMES["taken (silent-wrong)"] += 1
        FAILURES.append(f"taken as a number  <- {json.dumps(case, default=str)[:300]}")
    return outcome


@given(data=st.data())
@settings(settings.get_profile(PROFILE))
def test_strict_types_are_refused_never_taken(data):
    from sim.spec.scenario import parse_scenario, parse_scenario_text

    name = data.draw(st.sampled_from(SHIPPED), label="scenario")
    raw = copy.deepcopy(RAW[name])
    container, key, path = data.draw(st.sampled_from(_number_slots(raw)), label="number field")
    if data.draw(st.booleans(), label="as YAML text"):
        marker = "__strict_value__"
        container[key] = marker
        text = yaml.safe_dump(raw, sort_keys=False).replace(f"'{marker}'", data.draw(STRICT_TEXT, label="text"))

        def run():
            parse_scenario_text(text, base_dir=SCENARIOS, source=name)

        case = {"scenario": name, "path": path, "text": text[-400:]}
    else:
        value = data.draw(STRICT_VALUES, label="value")
        container[key] = 10 ** int(value.split()[0]) - 1 if isinstance(value, str) else value

        def run():
            parse_scenario(raw, base_dir=SCENARIOS, source=name)

        case = {"scenario": name, "path": path, "value": str(value)}
    # parsing alone: refused is "clear error"; accepted returns None and counts as "result" (taken)
    outcome = _strict_outcome(run, case)
    assert outcome == "clear error" or PROFILE == "fuzz", f"{outcome}: {FAILURES[-1] if FAILURES else ''}"


@given(data=st.data())
@settings(settings.get_profile(PROFILE))
def test_work_above_the_budget_is_refused_at_once(data, capsys):
    import time

    from sim.cli.main import main
    from sim.spec.scenario import load_scenario

    name = data.draw(st.sampled_from([n for n in SHIPPED if n != "autoscale-diurnal"]), label="scenario")
    requests = data.draw(st.integers(2_000_000, 20_000_000), label="requests")
    replications = data.draw(st.integers(300, 1000), label="replications")
    replicas = data.draw(st.sampled_from([1, 10, 1000, 10_000]), label="replicas")
    scenario = load_scenario(SCENARIOS / f"{name}.yaml").with_overrides({"deployment.replicas": replicas})
    work = budget.estimate_run_work(scenario, requests, replications)
    assert work > budget.WORK_LIMIT_UNITS, "every drawn case is above the budget"
    argv = [
        "run",
        str(SCENARIOS / f"{name}.yaml"),
        "--json",
        *("--requests", str(requests), "--replications", str(replications)),
        *("--set", f"deployment.replicas={replicas}"),
    ]

    def run():
        start = time.perf_counter()
        code = main(argv)
        err = capsys.readouterr().err
        if code == 2 and "work limit" in err and budget.WORK_LIMIT_ENV in err and time.perf_counter() - start < 5:
            raise ServesimError("cli: refused at once, naming the work limit")
        raise AssertionError(f"exit {code} for {work:.3g} units: {err[:200]}")

    outcome = classify_outcome(run, case=argv)
    assert outcome == "clear error" or PROFILE == "fuzz", f"{outcome}: {FAILURES[-1] if FAILURES else ''}"


def test_no_failures_were_recorded():
    assert not FAILURES, f"{len(FAILURES)} failures, first: {FAILURES[:5]}"
