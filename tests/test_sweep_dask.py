"""Sweeps on a real Dask cluster: a `dask scheduler` and two `dask worker` processes on 127.0.0.1.

The cluster is started with subprocess (free ports through a scheduler file), each worker single-threaded
and without a nanny, so that killing a worker's process is the loss of that worker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytest.importorskip("distributed")

from sim.analysis.sweep.run import load_sweep, run_sweep  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 60

SCENARIO = {
    "name": "mm2-tiny",
    "seed": 5,
    "workload": {"arrival": {"process": "poisson", "rate_rps": 1.2}, "requests": 4000, "warmup_requests": 400},
    "stages": [{"name": "forward", "kind": "model", "service_ms": {"dist": "exponential", "mean": 1000}}],
    "deployment": {"replicas": 2},
}


class Cluster:
    """A scheduler and named workers, each its own OS process, logs in `folder`."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.scheduler_file = folder / "scheduler.json"
        self.env = {**os.environ, "PYTHONPATH": str(REPO), "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
        self.env.pop("DASK_SCHEDULER_ADDRESS", None)
        self.workers: dict[str, subprocess.Popen] = {}
        self.scheduler = self._spawn(
            "scheduler", ["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                          "--scheduler-file", str(self.scheduler_file)],
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.scheduler_file.is_file() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.address = json.loads(self.scheduler_file.read_text())["address"]

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.folder / f"{name}.log", "w")
        return subprocess.Popen([sys.executable, "-m", "dask", *args], cwd=REPO, env=self.env, stdout=log, stderr=log)

    def start_worker(self, name: str) -> None:
        self.workers[name] = self._spawn(
            name, ["worker", self.address, "--nthreads", "1", "--no-nanny", "--no-dashboard", "--name", name,
                   "--host", "127.0.0.1", "--death-timeout", "30"],
        )  # fmt: skip

    def wait_for_workers(self, n: int) -> None:
        from distributed import Client

        with Client(self.address, timeout=START_TIMEOUT_S) as client:
            client.wait_for_workers(n, timeout=START_TIMEOUT_S)

    def worker_pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self.workers.items() if proc.poll() is None}

    def close(self) -> None:
        for proc in [*self.workers.values(), self.scheduler]:
            if proc.poll() is None:
                proc.terminate()
        for proc in [*self.workers.values(), self.scheduler]:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted(self.folder.glob("*.log")))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dask")
    cluster = Cluster(folder)
    try:
        cluster.start_worker("w1")
        cluster.start_worker("w2")
        cluster.wait_for_workers(2)
        yield cluster
    finally:
        cluster.close()


def write_sweep(folder: Path, replications: int = 2) -> Path:
    (folder / "scenario.yaml").write_text(yaml.safe_dump(SCENARIO))
    sweep = {
        "name": "dask-tiny",
        "scenario": "scenario.yaml",
        "replications": replications,
        "axes": {"workload.arrival.rate_rps": [0.6, 0.9, 1.2, 1.5], "deployment.replicas": [2, 3, 4]},
        "metrics": ["throughput_rps", "latency_ms.p50", "latency_ms.p99", "utilization"],
    }
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


def results(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=["elapsed_s"]).reset_index(drop=True)


def test_sweep_on_the_cluster_equals_the_local_run(cluster, tmp_path):
    from sim.cli.main import main

    path = write_sweep(tmp_path)
    code = main(["sweep", str(path), "--scheduler", cluster.address, "--out", str(tmp_path / "dask"), "--no-plots",
                 "--no-progress"])  # fmt: skip
    assert code == 0, cluster.logs()
    local = run_sweep(load_sweep(path), tmp_path / "local", executor="inprocess")
    on_cluster = pd.read_parquet(tmp_path / "dask" / "replications.parquet")
    assert len(on_cluster) == 24
    pd.testing.assert_frame_equal(results(on_cluster), results(local.replications), check_exact=True, check_dtype=False)
    workers = {json.loads(line)["worker"] for line in (tmp_path / "dask" / "tasks.jsonl").read_text().splitlines()}
    pids = {int(w.rsplit(":", 1)[1]) for w in workers}
    assert pids <= set(cluster.worker_pids().values()) and os.getpid() not in pids


def test_dask_scheduler_address_from_the_environment(cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster.address)
    result = run_sweep(load_sweep(write_sweep(tmp_path, replications=1)), tmp_path / "out")
    assert result.executor == "dask" and result.ran == 12 and (result.points["status"] == "ok").all()


def test_killing_a_worker_mid_sweep_loses_no_point(cluster, tmp_path):
    path = write_sweep(tmp_path, replications=4)
    victim = cluster.workers["w1"]
    landed: list[dict] = []

    def kill_after_a_few(record: dict) -> None:
        landed.append(record)
        if len(landed) == 6:
            victim.kill()  # SIGKILL: no goodbye to the scheduler, its running task is lost
            victim.wait()

    try:
        result = run_sweep(load_sweep(path), tmp_path / "out", scheduler=cluster.address, on_record=kill_after_a_few)
    finally:
        cluster.start_worker("w1")  # leave the module's cluster as found
    assert victim.poll() is not None and len(landed) == 48
    table = result.replications
    assert len(table) == 48 and not table.duplicated(["point_id", "replication"]).any()
    assert (table["status"] == "ok").all(), table["error"].dropna().tolist()
    ran_on = {record["worker"] for record in landed}
    assert any(w.endswith(f":{victim.pid}") for w in ran_on) and len(ran_on) == 2
    local = run_sweep(load_sweep(path), tmp_path / "local", executor="inprocess")
    pd.testing.assert_frame_equal(results(table), results(local.replications), check_exact=True)


@pytest.mark.slow  # starting a LocalCluster's worker processes takes seconds
def test_local_dask_cluster_gives_the_same_results(tmp_path):
    path = write_sweep(tmp_path, replications=1)
    on_local_cluster = run_sweep(load_sweep(path), tmp_path / "dl", dask_local=2)
    local = run_sweep(load_sweep(path), tmp_path / "local", executor="inprocess")
    assert on_local_cluster.executor == "dask"
    pd.testing.assert_frame_equal(results(on_local_cluster.replications), results(local.replications), check_exact=True)


def test_unreachable_scheduler_is_a_clear_error(tmp_path):
    from sim.analysis.sweep.run import SweepError
    from sim.analysis.sweep.executors import DaskExecutor

    executor = DaskExecutor(address="tcp://127.0.0.1:9")
    with pytest.raises(SweepError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        import sim.analysis.sweep.executors as sweep_exec

        old = sweep_exec.DASK_CONNECT_TIMEOUT_S
        sweep_exec.DASK_CONNECT_TIMEOUT_S = 1
        try:
            run_sweep(load_sweep(write_sweep(tmp_path, replications=1)), tmp_path / "out", executor=executor)
        finally:
            sweep_exec.DASK_CONNECT_TIMEOUT_S = old
