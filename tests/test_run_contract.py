"""`servesim run --json` meets the DESIGN.md contract; runs are reproducible; warnings are honest."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim.analysis.simulate import simulate
from sim.engine.run import simulate_replication
from sim.spec.scenario import load_scenario
from tests.helpers import model_scenario

ROOT = Path(__file__).resolve().parent.parent
LATENCY_KEYS = {"mean", "p50", "p90", "p95", "p99", "p999"}


def run_json(*args: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "sim.cli.main", "run", *args, "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    return json.loads(result.stdout)


def test_mm3_json_has_every_contract_key():
    out = run_json("scenarios/mm3.yaml", "--requests", "20000", "--replications", "3")
    for key in (
        "requests",
        "throughput_rps",
        "latency_ms",
        "latency_ms_ci95",
        "stages",
        "utilization",
        "rejected_fraction",
        "cost",
        "slo",
        "warnings",
    ):
        assert key in out, key
    assert set(out["latency_ms"]) == LATENCY_KEYS
    assert set(out["latency_ms_ci95"]) == LATENCY_KEYS
    assert all(len(v) == 2 and v[0] <= out["latency_ms"][k] * 1.5 for k, v in out["latency_ms_ci95"].items())
    assert set(out["stages"]["forward"]) == {"mean", "p50", "p95", "p99"}
    assert set(out["cost"]) >= {"usd_per_hour", "usd_per_1m_queries"}
    assert set(out["slo"]) >= {"p99_ms", "met", "attainment"}
    assert isinstance(out["warnings"], list)
    # --requests keeps the scenario's warm-up share (10000 of 200000 = 5%): 3 x (20000 - 1000) measured.
    assert out["requests"] == 3 * 19_000
    assert out["throughput_rps"] == pytest.approx(2.5, rel=0.05)
    assert out["utilization"] == pytest.approx(2.5 / 3, rel=0.05)


def test_same_seed_same_output_in_separate_processes():
    first = run_json("scenarios/vision-a100.yaml", "--requests", "3000", "--replications", "2", "--seed", "4")
    second = run_json("scenarios/vision-a100.yaml", "--requests", "3000", "--replications", "2", "--seed", "4")
    assert first == second
    other = run_json("scenarios/vision-a100.yaml", "--requests", "3000", "--replications", "2", "--seed", "5")
    assert other["latency_ms"] != first["latency_ms"]


def test_same_seed_same_dataframe():
    scenario = load_scenario(ROOT / "scenarios" / "search-ranker.yaml")
    a = simulate_replication(scenario, 1, seed=3, requests=5000)
    b = simulate_replication(scenario, 1, seed=3, requests=5000)
    pd.testing.assert_frame_equal(a.requests, b.requests)


def test_changing_the_batching_policy_keeps_the_arrivals_and_stage_draws():
    scenario = load_scenario(ROOT / "scenarios" / "vision-a100.yaml")
    dynamic = simulate_replication(scenario, 0, seed=1, requests=4000).requests
    none = simulate_replication(
        scenario.with_overrides({"stages.forward.batching": {"policy": "none"}}), 0, seed=1, requests=4000
    ).requests
    np.testing.assert_array_equal(dynamic["arrival_ms"], none["arrival_ms"])
    np.testing.assert_array_equal(dynamic["network_ms"], none["network_ms"])
    np.testing.assert_array_equal(dynamic["preprocess_ms"], none["preprocess_ms"])
    assert not np.array_equal(dynamic["forward_start_ms"], none["forward_start_ms"])


def test_replications_are_independent_draws():
    scenario = load_scenario(ROOT / "scenarios" / "mm3.yaml")
    first = simulate_replication(scenario, 0, seed=7, requests=100).requests
    second = simulate_replication(scenario, 1, seed=7, requests=100).requests
    assert not np.array_equal(first["arrival_ms"], second["arrival_ms"])


def test_too_few_requests_for_p99_is_warned():
    scenario = model_scenario(
        arrival={"process": "poisson", "rate_rps": 1}, service_ms=100, requests=300, replications=3
    )
    warnings = simulate(scenario).summary["warnings"]
    assert any(w.startswith("p99 from") and "fewer than 1000" in w for w in warnings)


def test_unstable_load_is_warned_and_finishes():
    scenario = model_scenario(
        arrival={"process": "poisson", "rate_rps": 5},
        service_ms={"dist": "exponential", "mean": 1000},
        replicas=3,
        requests=20_000,
        replications=2,
    )
    summary = simulate(scenario).summary
    assert summary["warnings"][0].startswith("unstable: offered load on stage 'forward' is 1.67")
    # The replicas cannot do more than 3/s: throughput is capacity, not the offered 5/s.
    assert summary["throughput_rps"] == pytest.approx(3.0, rel=0.05)


def test_cost_per_million_queries_from_price_and_throughput():
    scenario = load_scenario(ROOT / "scenarios" / "bert-cpu.yaml")
    result = simulate(scenario, requests=5000, replications=2)
    summary, log = result.summary, result.log
    usd_per_hour = 0.806 * 2  # 2 replicas of a 16-vCPU instance
    assert summary["cost"]["usd_per_hour"] == pytest.approx(usd_per_hour)
    # Per replication: dollars paid over the measurement window / queries that left in it; then the mean.
    per_replication = []
    for rep in (0, 1):
        part = log[(log["replication"] == rep) & ~log["warmup"]]
        t0, t1 = part["arrival_ms"].min(), part["arrival_ms"].max()
        departures = log.loc[log["replication"] == rep, "departure_ms"]
        served = ((departures >= t0) & (departures <= t1)).sum()
        per_replication.append(usd_per_hour * (t1 - t0) / 3.6e6 / served * 1e6)
    assert summary["cost"]["usd_per_1m_queries"] == pytest.approx(np.mean(per_replication))


def test_slo_attainment_is_the_share_within_budget():
    scenario = load_scenario(ROOT / "scenarios" / "vision-a100.yaml")
    result = simulate(scenario, requests=5000, replications=2)
    served = result.log[~result.log["warmup"] & ~result.log["rejected"]]
    share = served.groupby("replication")["latency_ms"].apply(lambda s: (s <= 100).mean()).mean()
    assert result.summary["slo"]["attainment"] == pytest.approx(share)
    assert result.summary["slo"]["met"] == (result.summary["latency_ms"]["p99"] <= 100)


def test_log_folder_is_written_and_summarised_again_by_the_cli(tmp_path: Path):
    out = tmp_path / "run"
    cli = [sys.executable, "-m", "sim.cli.main"]
    ran = subprocess.run(
        [*cli, "run", "scenarios/mm3.yaml", "--requests", "2000", "--replications", "2", "--json", "--log", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    log = pd.read_parquet(out / "requests.parquet")
    assert len(log) == 4000 and {"arrival_ms", "latency_ms", "forward_queue_ms", "replica"} <= set(log.columns)
    again = subprocess.run(
        [*cli, "summarize", str(out), "--json"], cwd=ROOT, check=True, capture_output=True, text=True
    )
    assert again.stdout == ran.stdout


def test_log_onto_a_file_is_a_clear_error(tmp_path: Path):
    target = tmp_path / "x.parquet"
    target.write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "sim.cli.main", "run", "scenarios/mm3.yaml", "--requests", "500", "--log", str(target)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "--log" in result.stderr and "Traceback" not in result.stderr


SHIPPED = sorted(p.name for p in (ROOT / "scenarios").glob("*.yaml"))


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_scenario_round_trips_through_parquet_bit_for_bit(name, tmp_path: Path):
    from sim.analysis.simulate import load_run, save_run

    scenario = load_scenario(ROOT / "scenarios" / name)
    # Short runs, but long enough for every frame a scenario has (autoscaling timeline, LLM logs) to exist.
    requests = (
        None if scenario.workload.duration_s or scenario.workload.arrival.process in ("trace", "time_varying") else 3000
    )
    if scenario.workload.duration_s:
        scenario = scenario.with_overrides(
            {"workload.duration_s": min(scenario.workload.duration_s, 1800.0), "workload.warmup_s": None}
        )
    result = simulate(scenario, requests=requests, replications=2)
    save_run(result, tmp_path / "run", {"seed": scenario.seed})
    again = load_run(tmp_path / "run")
    for name_, frame in result.run.frames().items():
        pd.testing.assert_frame_equal(frame, getattr(again.run, name_), check_exact=True)
    assert json.dumps(result.summary, sort_keys=True, default=str) == json.dumps(
        again.summary, sort_keys=True, default=str
    )


def test_human_table_names_the_stages():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sim.cli.main",
            "run",
            "scenarios/vision-a100.yaml",
            "--requests",
            "3000",
            "--replications",
            "2",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    for word in ("p99", "preprocess", "forward_queue", "where latency lives", "per 1M queries"):
        assert word in result.stdout


def test_replications_in_a_process_pool_give_the_in_process_result():
    scenario = load_scenario(ROOT / "scenarios" / "vision-a100.yaml")
    alone = simulate(scenario, requests=3000, replications=3, seed=4)
    pooled = simulate(scenario, requests=3000, replications=3, seed=4, workers=2)
    pd.testing.assert_frame_equal(alone.log, pooled.log, check_exact=True)
    assert json.dumps(alone.summary, sort_keys=True, default=str) == json.dumps(
        pooled.summary, sort_keys=True, default=str
    )
