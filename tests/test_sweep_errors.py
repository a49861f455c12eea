"""Bad sweep files: each problem is named by its field (or axis path) in one clean message, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sim.errors import ServesimError
from sim.analysis.sweep.run import SweepError, load_sweep

SCENARIO = {
    "name": "mm1",
    "seed": 3,
    "workload": {"arrival": {"process": "poisson", "rate_rps": 0.5}, "requests": 1000},
    "stages": [{"name": "forward", "kind": "model", "service_ms": {"dist": "exponential", "mean": 1000}}],
}


def write(folder: Path, sweep: dict | str) -> Path:
    (folder / "scenario.yaml").write_text(yaml.safe_dump(SCENARIO))
    path = folder / "sweep.yaml"
    path.write_text(sweep if isinstance(sweep, str) else yaml.safe_dump(sweep, sort_keys=False))
    return path


def sweep(**changes) -> dict:
    base = {"name": "s", "scenario": "scenario.yaml", "axes": {"deployment.replicas": [1, 2]}}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


CASES = [
    pytest.param(
        sweep(axes={"workload.arrival.rate": [0.2, 0.4]}),
        ["axes.workload.arrival.rate", "unknown field", "did you mean 'rate_rps'"],
        id="unknown-field-path",
    ),
    pytest.param(
        sweep(axes={"stages.fwd.batching.max_queue_delay_ms": [1, 2]}),
        ["axes.stages.fwd.batching.max_queue_delay_ms", "no item named 'fwd'", "have: forward"],
        id="unknown-stage-name",
    ),
    pytest.param(sweep(axes={"deployment.replicas": []}), ["axes.deployment.replicas", "empty axis"], id="empty-list"),
    pytest.param(
        sweep(axes={"deployment.replicas": {}}), ["axes.deployment.replicas", "empty axis"], id="empty-mapping"
    ),
    pytest.param(sweep(axes={}), ["axes: give at least one axis"], id="no-axes"),
    pytest.param(
        sweep(axes={"deployment.replicas": [2, "four"]}),
        ["axes.deployment.replicas", "value 'four'", "deployment.replicas", "valid integer"],
        id="wrong-value-type",
    ),
    pytest.param(
        sweep(axes={"deployment.replicas": [2, 0]}),
        ["axes.deployment.replicas", "value 0", "greater than 0"],
        id="value-out-of-range",
    ),
    pytest.param(
        sweep(axes={"deployment.replicas": "3,4"}),
        ["axes.deployment.replicas", "a list of values or a range", "str '3,4'"],
        id="axis-is-a-string",
    ),
    pytest.param(
        sweep(axes={"workload.arrival.rate_rps": {"low": 0.9, "high": 0.1, "num": 3}}),
        ["axes.workload.arrival.rate_rps", "low (0.9) must not exceed high (0.1)"],
        id="inverted-range",
    ),
    pytest.param(
        sweep(axes={"workload.arrival.rate_rps": {"low": 0.1, "high": 0.9}}),
        ["axes.workload.arrival.rate_rps", "needs num"],
        id="grid-range-without-num",
    ),
    pytest.param(
        sweep(axes={"workload.arrival.rate_rps": {"low": "slow", "high": 0.9, "num": 2}}),
        ["axes.workload.arrival.rate_rps.low", "valid number"],
        id="range-bound-not-a-number",
    ),
    pytest.param(
        sweep(sampling="latin_hypercube"), ["sampling: latin_hypercube needs points"], id="lhs-without-points"
    ),
    pytest.param(
        sweep(sampling="sobol", points=8), ["sampling", "'grid', 'random' or 'latin_hypercube'"], id="bad-sampling"
    ),
    pytest.param(sweep(replications=0), ["replications", "greater than 0"], id="zero-replications"),
    pytest.param(sweep(replications="three"), ["replications", "valid integer"], id="replications-not-a-number"),
    pytest.param(
        sweep(metrics=["latency_ms.p99", "latency.p99"]),
        ["metrics: unknown metric 'latency.p99'", "did you mean 'latency_ms.p99'"],
        id="unknown-metric",
    ),
    pytest.param(
        sweep(replicatons=3), ["replicatons: unknown field", "did you mean 'replications'"], id="typo-top-level"
    ),
    pytest.param(sweep(name=None), ["name: required field is missing"], id="missing-name"),
    pytest.param(sweep(scenario="nowhere.yaml"), ["scenario", "file not found", "nowhere.yaml"], id="missing-scenario"),
    pytest.param(
        sweep(set={"deployment.replica": 2}),
        ["set:", "deployment.replica", "unknown field", "did you mean 'replicas'"],
        id="bad-fixed-override",
    ),
    pytest.param(
        sweep(plots=[{"metric": "latency_ms.p99", "x": "workload.arrival.rate_rps"}]),
        ["plots.0.x", "'workload.arrival.rate_rps' is not an axis"],
        id="plot-on-a-non-axis",
    ),
    pytest.param(
        sweep(plots=[{"metric": "latency_ms.p99", "x": "deployment.replicas", "where": {"seed": 1}}]),
        ["plots.0.where", "'seed' is not an axis other than x and by"],
        id="plot-where-on-a-non-axis",
    ),
    pytest.param("axes: [1, 2", ["not valid YAML", "line"], id="broken-yaml"),
    pytest.param("- a\n- b\n", ["a sweep is a mapping"], id="not-a-mapping"),
]


@pytest.mark.parametrize(("content", "expected"), CASES)
def test_bad_sweep_file_is_named_clearly(tmp_path, content, expected):
    with pytest.raises(SweepError) as caught:
        load_sweep(write(tmp_path, content))
    message = str(caught.value)
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in:\n{message}"
    assert isinstance(caught.value, ServesimError)


def test_cli_prints_one_clean_error_and_exits_2(tmp_path, capsys):
    from sim.cli.main import main

    path = write(tmp_path, sweep(axes={"workload.arrival.rate": [0.2]}))
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("servesim: error: ") and "did you mean 'rate_rps'" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_bad_options_are_user_errors(tmp_path, capsys):
    from sim.cli.main import main

    path = write(tmp_path, sweep())
    assert main(["sweep", str(path), "--replications", "0"]) == 2
    assert "--replications must be positive" in capsys.readouterr().err
    assert main(["sweep", str(path), "--scheduler", "tcp://127.0.0.1:1", "--dask-local", "2"]) == 2
    assert "--scheduler or --dask-local, not both" in capsys.readouterr().err
    assert main(["sweep", str(path), "--workers", "-1", "--executor", "processes"]) == 2
    assert "--workers must be positive" in capsys.readouterr().err
