"""`servesim compare` writes a self-contained design-review report: Markdown, PNGs that open as images,
the YAML of every variant; the figures' numbers come from the request log."""

from __future__ import annotations

import json
import zipfile
from io import BytesIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib import image as mpimg

from sim.analysis import compare, planner
from sim.present import plots
from sim.cli.main import main
from sim.spec.scenario import load_scenario, parse_scenario_text

SCENARIO = """
name: report-test
seed: 9
replications: 2
workload:
  arrival: {process: poisson, rate_rps: 100}
  requests: 3000
stages:
  - name: network
    kind: delay
    service_ms: {dist: constant, value: 2}
  - name: forward
    kind: model
    batch_cost: {base_ms: 3.0, per_item_ms: 1.0, cv: 0.1}
    batching: {policy: none}
deployment:
  replicas: 1
  hardware: {name: t4, usd_per_hour: 0.526}
slo: {p99_ms: 40}
"""

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture()
def scenario_file(tmp_path: Path) -> Path:
    path = tmp_path / "report-test.yaml"
    path.write_text(SCENARIO)
    return path


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC, f"{path} is not a PNG"
    pixels = mpimg.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert pixels.std() > 0.01, f"{path} is blank"


def test_compare_command_writes_a_self_contained_report(scenario_file, tmp_path, capsys):
    out = tmp_path / "report"
    code = main(
        [
            "compare",
            str(scenario_file),
            "--variant",
            "none:batching=none",
            "--variant",
            "dyn:batching=dynamic(max_batch_size=8,max_queue_delay_ms=2)",
            "--variant",
            "two:replicas=2",
            "--load-points",
            "3",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "p99 latency" in printed and str(out / "report.md") in printed
    for name in ("cdf.png", "stages.png", "load.png"):
        assert_png(out / name)
    report = (out / "report.md").read_text()
    # Every image and scenario the report links to is in the directory.
    for link in [part.split(")")[0] for part in report.split("](")[1:]]:
        assert (out / link).is_file(), link
    for name in ("none", "dyn", "two"):
        assert (out / "scenarios" / f"{name}.yaml").is_file()
        assert f"| {name} |" in report
    # The variant files are valid scenarios carrying their overrides.
    assert load_scenario(out / "scenarios" / "two.yaml").deployment.replicas == 2
    summaries = json.loads((out / "summaries.json").read_text())
    assert set(summaries) == {compare.CURRENT, "none", "dyn", "two"}  # the scenario as written is always one
    # Two replicas on the same arrivals: the lowest p99 is theirs, and the report says so.
    assert "lowest p99: **two**" in report


def test_one_variant_is_compared_with_the_baseline(scenario_file, tmp_path):
    out = tmp_path / "r"
    assert main(["compare", str(scenario_file), "-v", "replicas=2", "--load-points", "0", "-o", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert "| baseline |" in report and "| replicas=2 |" in report
    assert not (out / "load.png").exists()


def test_a_bad_variant_is_a_clean_error(scenario_file, tmp_path, capsys):
    code = main(["compare", str(scenario_file), "-v", "batching=dynamic(max_batch_size=0)", "-o", str(tmp_path / "x")])
    assert code == 2
    err = capsys.readouterr().err
    assert "servesim: error:" in err and "max_batch_size" in err and "Traceback" not in err


def test_report_zip_holds_the_same_files():
    scenario = parse_scenario_text(SCENARIO)
    variants = compare.parse_variants(["a:replicas=1", "b:replicas=2"], scenario)
    comparison = compare.run_comparison(scenario, variants, size=planner.RunSize(1500, 2))
    from sim.present.report import report_zip

    with zipfile.ZipFile(BytesIO(report_zip(comparison))) as archive:
        names = set(archive.namelist())
        assert {
            "report-test-compare/report.md",
            "report-test-compare/cdf.png",
            "report-test-compare/stages.png",
            "report-test-compare/scenarios/a.yaml",
            "report-test-compare/scenarios/b.yaml",
        } <= names
        assert archive.read("report-test-compare/cdf.png")[:8] == PNG_MAGIC


# --- the numbers behind the figures -------------------------------------------------------------------


def _log(latency_by_stage: dict[str, np.ndarray]) -> pd.DataFrame:
    n = len(next(iter(latency_by_stage.values())))
    frame = pd.DataFrame({f"{k}_ms": v for k, v in latency_by_stage.items()})
    frame["latency_ms"] = frame.sum(axis=1)
    frame["warmup"] = np.zeros(n, dtype=bool)
    frame["rejected"] = np.zeros(n, dtype=bool)
    return frame


def test_stage_shares_decompose_the_p50_and_p99_requests():
    """Stage A is a constant 10 ms, stage B is 0 ms for 98% of requests and 100 ms for 2%: the typical
    p50 request is all A (10 ms), the p99 request spends 10 ms in A and 100 ms in B."""
    n = 10_000
    a = np.full(n, 10.0)
    b = np.zeros(n)
    b[: n // 50] = 100.0
    shares = plots.stage_shares(_log({"a": a, "b": b}), ["a_ms", "b_ms"])
    assert shares.loc["p50"].to_dict() == {"a": 10.0, "b": 0.0}
    assert shares.loc["p99"].to_dict() == {"a": 10.0, "b": 100.0}


def test_stage_shares_add_up_to_the_latency_of_the_band():
    rng = np.random.default_rng(1)
    log = _log({"x": rng.exponential(5, 20_000), "y": rng.exponential(1, 20_000)})
    shares = plots.stage_shares(log, ["x_ms", "y_ms"])
    latency = log["latency_ms"].to_numpy()
    low, high = np.quantile(latency, [0.985, 0.995])
    band_mean = latency[(latency >= low) & (latency <= high)].mean()
    assert shares.loc["p99"].sum() == pytest.approx(band_mean, rel=1e-12)


def test_every_figure_renders_to_a_png(tmp_path):
    scenario = parse_scenario_text(SCENARIO)
    result = planner.run(scenario, planner.RunSize(1500, 2))
    curve = pd.DataFrame(
        {
            "rate_rps": [10, 50, 90],
            "offered_load": [0.1, 0.5, 0.9],
            "p50": [5, 6, 20],
            "p99": [9, 12, 60],
            "p99_low": [8, 11, 50],
            "p99_high": [10, 13, 70],
            "throughput_rps": [10, 50, 90],
            "usd_per_1m_queries": [14.6, 2.9, 1.6],
        }
    )
    replicas = pd.DataFrame(
        {
            "replicas": [1, 2, 3],
            "stable": [False, True, True],
            "p99": [np.nan, 30, 20],
            "usd_per_1m_queries": [np.nan, 3.0, 4.5],
        }
    )
    figures = {
        "cdf": plots.cdf_figure({"a": result.log, "b": result.log}, 40),
        "stages": plots.stage_breakdown_figure(
            plots.stage_shares(result.log, ["network_ms", "forward_queue_ms", "forward_ms"])
        ),
        "load": plots.load_curve_figure(curve, 40, {"": 1}, 50),
        "tradeoff": plots.tradeoff_figure({"none": curve, "dyn": curve}, 40),
        "cost": plots.cost_replicas_figure(replicas, 25),
        "batches": plots.batch_size_figure(result.log),
    }
    for name, figure in figures.items():
        plots.save(figure, tmp_path / f"{name}.png")
        assert_png(tmp_path / f"{name}.png")


def test_timeline_figure_from_change_points(tmp_path):
    from sim.engine.runlog import RunLog
    from sim.present.timeline import timeline_figure
    from sim.spec.scenario import parse_scenario

    scenario = parse_scenario(
        {
            "name": "t",
            "workload": {"arrival": {"process": "poisson", "rate_rps": 5}},
            "stages": [{"name": "forward", "kind": "model", "service_ms": 10}],
            "deployment": {
                "hardware": {"usd_per_hour": 1.0},
                "autoscaling": {"policy": "ray_serve", "max_replicas": 3},
            },
            "slo": {"p99_ms": 50},
        }
    )
    timeline = pd.DataFrame(
        {
            "time_ms": [0.0, 1000.0, 3000.0, 6000.0],
            "warm": [1, 1, 1, 3],
            "starting": [0, 2, 2, 0],
            "draining": [0, 0, 0, 0],
            "queued": [0, 5, 9, 0],
            "replication": [0, 0, 0, 0],
        }
    )
    arrivals = np.linspace(0, 7000, 50)
    log = pd.DataFrame({"arrival_ms": arrivals, "replication": 0, "latency_ms": 20.0, "rejected": False})
    plots.save(timeline_figure(RunLog(log, timeline), scenario, 1.0), tmp_path / "timeline.png")
    assert_png(tmp_path / "timeline.png")


def test_cdf_switches_to_a_log_time_axis_when_variants_are_decades_apart():
    fast = _log({"a": np.full(1000, 10.0)})
    slow = _log({"a": np.full(1000, 1000.0)})
    assert plots.wide_range({"fast": fast, "slow": slow})
    assert not plots.wide_range({"fast": fast, "same": fast})
    figure = plots.cdf_figure({"fast": fast, "slow": slow})
    assert [axis.get_xscale() for axis in figure.axes] == ["log", "log"]
