"""Sweeps: point expansion, aggregation equal to `servesim run`, executors agree, resume, failing points."""

from __future__ import annotations

import itertools
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from sim.analysis.simulate import simulate
from sim.analysis.sweep.run import load_sweep, parse_sweep, plan_tasks, run_sweep
from sim.analysis.sweep.executors import DaskExecutor, InProcessExecutor, ProcessPoolSweepExecutor, make_executor

REPO = Path(__file__).resolve().parents[1]

# An M/M/2 queue small enough that one replication takes a few milliseconds.
SCENARIO = {
    "name": "mm2-tiny",
    "seed": 11,
    "replications": 3,
    "workload": {"arrival": {"process": "poisson", "rate_rps": 1.2}, "requests": 2000, "warmup_requests": 200},
    "stages": [
        {"name": "forward", "kind": "model", "service_ms": {"dist": "exponential", "mean": 1000},
         "batching": {"policy": "none"}},
    ],
    "deployment": {"replicas": 2, "hardware": {"usd_per_hour": 1.0}},
    "slo": {"p99_ms": 8000},
}  # fmt: skip


def sweep_dict(**changes) -> dict:
    sweep = {
        "name": "tiny",
        "scenario": "scenario.yaml",
        "replications": 2,
        "axes": {"workload.arrival.rate_rps": [0.8, 1.2, 1.6], "deployment.replicas": [2, 3]},
        "metrics": ["throughput_rps", "latency_ms.p50", "latency_ms.p99", "utilization", "cost.usd_per_1m_queries"],
    }
    sweep.update(changes)
    return sweep


def write_sweep(folder: Path, **changes) -> Path:
    (folder / "scenario.yaml").write_text(yaml.safe_dump(SCENARIO, sort_keys=False))
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep_dict(**changes), sort_keys=False))
    return path


def metric_columns(table: pd.DataFrame) -> pd.DataFrame:
    """The results, without the wall-clock timing that legitimately differs between runs."""
    return table.drop(columns=["elapsed_s"]).reset_index(drop=True)


# --- points ---------------------------------------------------------------------------------------------


def test_grid_is_the_cartesian_product_of_the_axis_values(tmp_path):
    axes = {
        "workload.arrival.rate_rps": [0.5, 1.0, 1.5],
        "deployment.replicas": [2, 3],
        "workload.warmup_requests": {"low": 0, "high": 400, "num": 3, "integer": True},
    }
    sweep = load_sweep(write_sweep(tmp_path, axes=axes))
    points = sweep.points()
    expected = list(itertools.product([0.5, 1.0, 1.5], [2, 3], [0, 200, 400]))
    assert [tuple(p.values.values()) for p in points] == expected
    assert [p.index for p in points] == list(range(18))
    # Each point runs exactly the scenario its values describe.
    p = points[7]
    assert p.raw["workload"]["arrival"]["rate_rps"] == p.values["workload.arrival.rate_rps"]
    assert p.raw["deployment"]["replicas"] == p.values["deployment.replicas"]
    assert len(plan_tasks(sweep, points)) == 18 * 2


def test_latin_hypercube_puts_one_point_in_each_stratum_of_each_axis(tmp_path):
    n = 20
    axes = {"workload.arrival.rate_rps": {"low": 0.5, "high": 1.5}, "deployment.replicas": [2, 3, 4, 5]}
    sweep = load_sweep(write_sweep(tmp_path, sampling="latin_hypercube", points=n, sampling_seed=3, axes=axes))
    points = sweep.points()
    rates = np.array([p.values["workload.arrival.rate_rps"] for p in points])
    strata = np.floor((rates - 0.5) / 1.0 * n).astype(int)
    assert sorted(strata) == list(range(n))  # McKay, Beckman & Conover (1979): one draw per stratum
    replicas = [p.values["deployment.replicas"] for p in points]
    assert {r: replicas.count(r) for r in (2, 3, 4, 5)} == {2: 5, 3: 5, 4: 5, 5: 5}


def test_random_sampling_is_reproducible_and_respects_log_and_integer_ranges(tmp_path):
    axes = {"workload.arrival.rate_rps": {"low": 0.01, "high": 1.0, "log": True},
            "deployment.replicas": {"low": 2, "high": 9, "integer": True}}  # fmt: skip
    path = write_sweep(tmp_path, sampling="random", points=400, sampling_seed=5, axes=axes)
    points = load_sweep(path).points()
    rates = np.array([p.values["workload.arrival.rate_rps"] for p in points])
    replicas = [p.values["deployment.replicas"] for p in points]
    assert rates.min() >= 0.01 and rates.max() <= 1.0
    # Log-uniform: the decade below 0.1 holds half the draws (binomial sd 10 on 400).
    assert abs(np.count_nonzero(rates < 0.1) - 200) < 40
    assert all(isinstance(r, int) and 2 <= r <= 9 for r in replicas)
    assert [p.values for p in load_sweep(path).points()] == [p.values for p in points]


def test_common_random_numbers_by_default_and_independent_seeds_on_request(tmp_path):
    common = load_sweep(write_sweep(tmp_path)).points()
    assert {p.seed for p in common} == {SCENARIO["seed"]}
    independent = load_sweep(write_sweep(tmp_path, random_numbers="independent")).points()
    seeds = [p.seed for p in independent]
    assert len(set(seeds)) == len(seeds)
    assert seeds == [p.seed for p in load_sweep(write_sweep(tmp_path, random_numbers="independent")).points()]


# --- results --------------------------------------------------------------------------------------------


def test_point_figures_equal_servesim_run_of_the_same_scenario(tmp_path):
    """A point's mean over replications and its CI are what `servesim run` reports for that scenario."""
    sweep = load_sweep(write_sweep(tmp_path, replications=3))
    result = run_sweep(sweep, tmp_path / "out", executor="inprocess")
    row = result.points.set_index("point").loc[4]
    point = sweep.points()[4]
    scenario = sweep.base.with_overrides(point.values)
    summary = simulate(scenario, replications=3).summary
    for key in ("p50", "p99"):
        assert row[f"latency_ms.{key}"] == summary["latency_ms"][key]
        assert [row[f"latency_ms.{key}.ci_low"], row[f"latency_ms.{key}.ci_high"]] == summary["latency_ms_ci95"][key]
    assert row["throughput_rps"] == summary["throughput_rps"]
    assert row["utilization"] == summary["utilization"]
    # Cost comes from the same function as `servesim run`'s (tests/test_numbers_agree.py checks it by hand).
    assert row["cost.usd_per_1m_queries"] == summary["cost"]["usd_per_1m_queries"]
    assert row["replications"] == 3 and row["status"] == "ok"


def test_in_process_and_process_pool_give_identical_tables(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path))
    local = run_sweep(sweep, tmp_path / "a", executor=InProcessExecutor())
    pooled = run_sweep(sweep, tmp_path / "b", executor=ProcessPoolSweepExecutor(workers=2))
    assert len(local.replications) == 12 and local.ran == 12
    pd.testing.assert_frame_equal(
        metric_columns(local.replications), metric_columns(pooled.replications), check_exact=True
    )
    pd.testing.assert_frame_equal(local.points, pooled.points, check_exact=True)
    on_disk = pd.read_parquet(tmp_path / "b" / "replications.parquet")
    pd.testing.assert_frame_equal(
        metric_columns(on_disk), metric_columns(pooled.replications), check_exact=True, check_dtype=False
    )
    assert len(pd.read_csv(tmp_path / "b" / "points.csv")) == 6


def test_rerun_skips_finished_tasks_and_torn_lines_are_run_again(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path))
    first = run_sweep(sweep, tmp_path / "out", executor="inprocess")
    tasks_file = tmp_path / "out" / "tasks.jsonl"
    lines = tasks_file.read_text().splitlines()
    # Keep 5 records and half of the 6th, as a kill in the middle of a write would.
    tasks_file.write_text("\n".join(lines[:5]) + "\n" + lines[5][: len(lines[5]) // 2])
    second = run_sweep(sweep, tmp_path / "out", executor="inprocess")
    assert (second.ran, second.skipped) == (7, 5)
    pd.testing.assert_frame_equal(
        metric_columns(first.replications), metric_columns(second.replications), check_exact=True
    )
    third = run_sweep(sweep, tmp_path / "out", executor="inprocess")
    assert (third.ran, third.skipped) == (0, 12)
    fresh = run_sweep(sweep, tmp_path / "out", executor="inprocess", fresh=True)
    assert (fresh.ran, fresh.skipped) == (12, 0)


def test_editing_the_sweep_reuses_the_points_it_keeps(tmp_path):
    run_sweep(load_sweep(write_sweep(tmp_path)), tmp_path / "out", executor="inprocess")
    grown = {"workload.arrival.rate_rps": [0.8, 1.0, 1.2, 1.6], "deployment.replicas": [2, 3]}
    result = run_sweep(load_sweep(write_sweep(tmp_path, axes=grown)), tmp_path / "out", executor="inprocess")
    assert (result.ran, result.skipped) == (4, 12)  # only the two new points × 2 replications ran
    assert len(result.points) == 8


def test_interrupted_sweep_resumes_and_every_task_is_present_once(tmp_path):
    """Kill the CLI (SIGKILL) mid-sweep, run it again: only the missing tasks run, each task once."""
    path = write_sweep(
        tmp_path,
        replications=3,
        requests=12000,
        axes={"workload.arrival.rate_rps": [0.6, 0.8, 1.0, 1.2, 1.4], "deployment.replicas": [2, 3, 4]},
    )
    out = tmp_path / "out"
    command = [sys.executable, "-m", "sim.cli.main", "sweep", str(path), "--out", str(out), "--executor", "inprocess",
               "--no-plots", "--json"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    tasks_file = out / "tasks.jsonl"
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if tasks_file.is_file() and len(tasks_file.read_text().splitlines()) >= 6:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the sweep finished before it could be interrupted"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    done_before = len({json.loads(line)["key"] for line in tasks_file.read_text().splitlines() if _whole(line)})
    assert 6 <= done_before < 45

    rerun = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads(rerun.stdout)
    assert report["skipped"] == done_before and report["ran"] == 45 - done_before
    table = pd.read_parquet(out / "replications.parquet")
    assert len(table) == 45 and not table.duplicated(["point_id", "replication"]).any()
    assert (table["status"] == "ok").all()
    straight = run_sweep(load_sweep(path), tmp_path / "straight", executor="inprocess")
    pd.testing.assert_frame_equal(
        metric_columns(table), metric_columns(straight.replications), check_exact=True, check_dtype=False
    )


def _whole(line: str) -> bool:
    try:
        json.loads(line)
        return True
    except json.JSONDecodeError:
        return False


def test_failing_points_record_their_error_and_the_sweep_goes_on(tmp_path):
    # duration 0.001 s at ~1 rps produces no arrival: the engine raises when the task runs on the worker.
    path = write_sweep(
        tmp_path,
        axes={"workload.duration_s": [0.001, 1500.0], "deployment.replicas": [2, 3]},
        set={"workload.requests": None, "workload.warmup_requests": None},
    )
    result = run_sweep(load_sweep(path), tmp_path / "out", executor="inprocess")
    by_duration = result.points.groupby("workload.duration_s")["status"].agg(set).to_dict()
    assert by_duration == {0.001: {"error"}, 1500.0: {"ok"}}
    errors = result.points.loc[result.points["status"] == "error", "error"]
    assert errors.str.contains("produced no requests").all()
    assert (result.replications["status"] == "ok").sum() == 2 * 2

    # A combination the scenario schema refuses fails when the point is built, and only that point.
    combo = write_sweep(tmp_path, axes={"workload.warmup_requests": [100, 1900], "workload.requests": [1000, 3000]})
    mixed = run_sweep(load_sweep(combo), tmp_path / "out2", executor="inprocess")
    failed = mixed.points[mixed.points["status"] == "error"]
    assert failed[["workload.warmup_requests", "workload.requests"]].values.tolist() == [[1900, 1000]]
    assert "warmup_requests (1900) must be below requests (1000)" in failed["error"].iloc[0]
    assert (mixed.points["status"] == "ok").sum() == 3


def test_cli_writes_tables_and_plots_and_exits_nonzero_when_points_fail(tmp_path, capsys):
    from sim.cli.main import main

    path = write_sweep(tmp_path)
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    shown = capsys.readouterr().out
    assert "sweep tiny: 6 points × 2 replications" in shown and "ran 12 runs" in shown
    for name in ("replications.parquet", "replications.csv", "points.parquet", "points.csv", "sweep.json"):
        assert (tmp_path / "out" / name).is_file()
    assert len(list((tmp_path / "out" / "plots").glob("*.png"))) == 1

    bad = write_sweep(tmp_path, axes={"workload.duration_s": [0.001, 1500.0]},
                      set={"workload.requests": None, "workload.warmup_requests": None})  # fmt: skip
    assert main(["sweep", str(bad), "--out", str(tmp_path / "bad"), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["failed_points"] == 1 and report["points"] == 2


def test_plot_shows_the_points_table_means(tmp_path):
    from sim.present.sweep_plots import metric_figure

    sweep = load_sweep(write_sweep(tmp_path))
    points = run_sweep(sweep, tmp_path / "out", executor="inprocess").points
    fig = metric_figure(points, "latency_ms.p99", "workload.arrival.rate_rps", "deployment.replicas")
    lines = fig.axes[0].get_lines()
    assert len(lines) == 2
    for line, (_, group) in zip(lines, points.groupby("deployment.replicas", sort=True)):
        group = group.sort_values("workload.arrival.rate_rps")
        assert list(line.get_xdata()) == list(group["workload.arrival.rate_rps"])
        assert list(line.get_ydata()) == list(group["latency_ms.p99"])


def test_plot_splits_the_other_grid_axes_into_panels_or_holds_them_fixed(tmp_path):
    from sim.present.sweep_plots import metric_figure, plot_layout
    from sim.analysis.sweep.spec import PlotSpec

    axes = {
        "workload.arrival.rate_rps": [0.8, 1.2],
        "deployment.replicas": [2, 3],
        "workload.warmup_requests": [0, 100, 200],
    }
    sweep = load_sweep(write_sweep(tmp_path, axes=axes))
    points = pd.DataFrame([{**p.values, "m": float(i), "m.ci_low": i - 0.5, "m.ci_high": i + 0.5}
                           for i, p in enumerate(sweep.points())])  # fmt: skip
    spec = PlotSpec(metric="m", x="workload.arrival.rate_rps", by="deployment.replicas")
    rows, panels, note = plot_layout(sweep, spec, points)
    assert panels == ["workload.warmup_requests"] and len(rows) == 12 and note == ""
    fig = metric_figure(rows, "m", spec.x, spec.by, panels=panels)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == [
        "warmup_requests = 0",
        "warmup_requests = 100",
        "warmup_requests = 200",
    ]
    # Panel "warmup 100", line "replicas 3": the points with those values, in order of rate.
    expected = points[(points["workload.warmup_requests"] == 100) & (points["deployment.replicas"] == 3)]
    assert list(visible[1].get_lines()[1].get_ydata()) == expected.sort_values(spec.x)["m"].tolist()

    held = PlotSpec(metric="m", x="workload.arrival.rate_rps", where={"workload.warmup_requests": 200})
    rows, panels, note = plot_layout(sweep, held, points)
    assert panels == ["deployment.replicas"] and set(rows["workload.warmup_requests"]) == {200}
    assert note == "; warmup_requests = 200"


def test_executor_choice(monkeypatch):
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    assert make_executor("auto", task_count=3).name == "inprocess"
    assert make_executor("auto", task_count=100).name == "processes"
    assert make_executor("auto", task_count=100, scheduler="tcp://10.0.0.1:8786").address == "tcp://10.0.0.1:8786"
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://10.0.0.2:8786")
    chosen = make_executor("auto", task_count=100)
    assert isinstance(chosen, DaskExecutor) and chosen.address == "tcp://10.0.0.2:8786"
    assert make_executor("processes", task_count=100).name == "processes"
    assert make_executor("dask", dask_local=2).local_workers == 2


def test_shipped_sweeps_validate():
    reference = load_sweep(REPO / "sweeps" / "reference-100.yaml")
    assert len(reference.points()) == 100
    assert all(p.error is None for p in reference.points())
    lhs = load_sweep(REPO / "sweeps" / "mm3-lhs.yaml")
    assert len(lhs.points()) == 40
    assert math.isfinite(lhs.points()[0].offered_load)
    assert parse_sweep(sweep_dict(scenario=SCENARIO)).replications == 2


def test_a_point_run_by_another_servesim_version_is_never_reused(tmp_path, monkeypatch):
    from sim.analysis.sweep import spec

    sweep = load_sweep(write_sweep(tmp_path))
    before = [p.point_id for p in sweep.points()]
    monkeypatch.setattr(spec, "__version__", "9.9.9")
    after = [p.point_id for p in load_sweep(write_sweep(tmp_path)).points()]
    assert len(set(before)) == len(before) and not set(before) & set(after)
