"""Fuzzing the data-file readers (issue 23): CSV and YAML files of any shape, whose every header, cell and
line carries a marker, are fed to every reader a scenario or a command reaches (trace, empirical samples,
batch and LLM profiles, `validate` measurements, `calibrate fit` measurements, serving logs, perf_analyzer
CSVs). Each outcome is either a result or a ServesimError that quotes nothing of the file (no marker, no
marked number) and names no folder of this machine — never a traceback, a hang or an echo.

CI runs a few dozen examples per reader (profile `ci`); `make fuzz` runs FUZZ_EXAMPLES (HYPOTHESIS_PROFILE=fuzz)
and prints the outcome counts."""

from __future__ import annotations

import json
import os
import signal
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.errors import ServesimError
from sim.spec.datafiles import PROJECT_ROOT

MARK = "SECRETQZ"
NUMBER = "987654.321"  # a marked number: a message quoting a cell would show "987654"
EXAMPLE_SECONDS = 20
settings.register_profile(
    "files-ci", max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
settings.register_profile(
    "files-fuzz",
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "10000")) // 8,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
PROFILE = "files-fuzz" if os.environ.get("HYPOTHESIS_PROFILE") == "fuzz" else "files-ci"
OUTCOMES: Counter = Counter()
FAILURES: list[str] = []
COLUMNS = ("arrived_at", "ms", "latency_ms", "batch_size", "instances", "server_ms", "p99 latency", "Concurrency")

CELL = st.one_of(
    st.sampled_from(["1", "2", "0", "-3", "", "nan", "inf", "1e300", NUMBER, f"{MARK}_cell", '"', "a,b"]),
    st.integers(-5, 100).map(str),
)
HEADER = st.one_of(st.sampled_from(COLUMNS), st.text("abcXYZ_ ", min_size=1, max_size=6).map(lambda t: MARK + t))


@st.composite
def csv_text(draw) -> str:
    header = draw(st.lists(HEADER, min_size=1, max_size=6))
    rows = draw(st.lists(st.lists(CELL, min_size=0, max_size=len(header) + 2), min_size=0, max_size=12))
    lines = [",".join(header), *(",".join(row) for row in rows)]
    if draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), f"{MARK} a bare line {NUMBER}")
    return "\n".join(lines) + draw(st.sampled_from(["\n", "", "\r\n"]))


YAML_TEXT = st.one_of(
    st.sampled_from(
        [
            f"{MARK}: 1\n",
            f"{MARK}\n",
            f"kind: llm\n{MARK}: [unclosed\n",
            f"a: *{MARK}\n",
            f"kind: {MARK}\n",
            f"name: x\ncurve: affine\ncurve_params: {{{MARK}: {NUMBER}}}\n",
            f"name: x\ncurve: {MARK}\nlatency: []\n",
            f"name: {MARK}\ncurve: affine\nlatency: [{{batch_size: {NUMBER}, ms: [{NUMBER}]}}]\n",
            "",
            "\x00\xff",
        ]
    ),
    st.dictionaries(HEADER, CELL, max_size=4).map(lambda d: "\n".join(f'"{k}": "{v}"' for k, v in d.items()) + "\n"),
)


def _raise_timeout(signum, frame):
    raise TimeoutError


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    counts = dict(sorted(OUTCOMES.items()))
    print(f"\nfile fuzz outcomes: {json.dumps(counts)}")
    if os.environ.get("FUZZ_REPORT"):
        path = Path(os.environ["FUZZ_REPORT"]).with_name("fuzz-files-report.json")
        path.write_text(json.dumps({"outcomes": counts, "failures": FAILURES[:50]}, indent=2))


def _scenario_with(kind: str, name: str) -> str:
    stage = "service_ms: {dist: exponential, mean: 10}"
    arrival = "{process: poisson, rate_rps: 5}"
    if kind == "trace":
        arrival = f"{{process: trace, file: {name}}}"
    elif kind == "samples":
        stage = f"service_ms: {{dist: empirical, file: {name}}}"
    elif kind == "profile":
        stage = f"profile: {name}"
    return (
        f"name: fz\nseed: 1\nworkload:\n  arrival: {arrival}\n  requests: 200\n"
        f"stages:\n  - name: forward\n    kind: model\n    {stage}\n"
    )


def _read(kind: str, path: Path) -> None:
    if kind in ("trace", "samples", "profile"):
        from sim.analysis.simulate import simulate
        from sim.spec.scenario import parse_scenario_text

        scenario = parse_scenario_text(_scenario_with(kind, path.name), base_dir=path.parent)
        simulate(scenario, requests=200, replications=1)
    elif kind == "validate":
        from calibrate.validate import read_measured

        read_measured(path)
    elif kind == "fit":
        from calibrate.fit import load_measurements

        load_measurements(path)
    elif kind == "serving_log":
        from calibrate.serving_log import load_serving_log

        load_serving_log(path, kernel_column="ms", batch_id_column="instances")
    elif kind == "perf_analyzer":
        from calibrate.importers import read_perf_analyzer

        read_perf_analyzer(path)
    elif kind == "llm_profile":
        from sim.spec.llm_cost import load_llm_profile

        load_llm_profile(path)


def _outcome(kind: str, text: str, suffix: str) -> str:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"data{suffix}"
        path.write_bytes(text.encode("utf-8", errors="surrogateescape"))
        signal.signal(signal.SIGALRM, _raise_timeout)
        signal.alarm(EXAMPLE_SECONDS)
        try:
            _read(kind, path)
            outcome = "result"
        except ServesimError as exc:
            message = str(exc)
            echoed = MARK in message or "987654" in message or folder in message or str(PROJECT_ROOT) in message
            outcome = "echo" if echoed else "clear_error"
            if echoed:
                FAILURES.append(f"{kind}: {text[:200]!r} -> {message[:300]}")
        except TimeoutError:
            outcome = "hang"
            FAILURES.append(f"{kind}: {text[:200]!r} -> over {EXAMPLE_SECONDS} s")
        except Exception as exc:  # a traceback a user would see
            outcome = "traceback"
            FAILURES.append(f"{kind}: {text[:200]!r} -> {type(exc).__name__}: {exc}"[:500])
        finally:
            signal.alarm(0)
    OUTCOMES[outcome] += 1
    return outcome


@pytest.mark.parametrize("kind", ["trace", "samples", "validate", "fit", "serving_log", "perf_analyzer"])
def test_csv_readers_give_a_result_or_an_error_that_quotes_nothing(kind):
    @given(text=csv_text())
    @settings(settings.get_profile(PROFILE))
    def check(text):
        outcome = _outcome(kind, text, ".csv")
        assert outcome in ("result", "clear_error"), FAILURES[-1]

    check()


@pytest.mark.parametrize("kind", ["profile", "llm_profile"])
def test_yaml_readers_give_a_result_or_an_error_that_quotes_nothing(kind):
    @given(text=YAML_TEXT)
    @settings(settings.get_profile(PROFILE))
    def check(text):
        outcome = _outcome(kind, text, ".yaml")
        assert outcome in ("result", "clear_error"), FAILURES[-1]

    check()
