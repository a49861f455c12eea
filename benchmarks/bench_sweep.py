"""Sweep speed: points per second on the local process pool (vs in-process), and the scaling efficiency
from 1 to 2 workers of a real Dask cluster on loopback (`dask scheduler` + `dask worker` processes).

Efficiency = (time on 1 worker / time on 2 workers) / 2 for the same tasks, workers warmed first (engine
imported, one replication run) so the figure is about running tasks, not starting Python. On a machine
whose cores are busy with other work the figure drops: the note records the cores and the load.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sim.analysis.sweep.run import parse_sweep, plan_tasks, run_sweep

ROOT = Path(__file__).resolve().parent.parent
TARGET_EFFICIENCY = 0.8


def reference_sweep(points: int, requests: int):
    """`points` arrival rates of the reference scenario, one replication each."""
    rates = [round(2500 + i * (2250 / max(points - 1, 1)), 3) for i in range(points)]
    return parse_sweep(
        {
            "name": "bench-reference",
            "scenario": str(ROOT / "scenarios" / "reference.yaml"),
            "replications": 1,
            "requests": requests,
            "set": {"workload.warmup_requests": requests // 10},
            "axes": {"workload.arrival.rate_rps": rates},
            "metrics": ["throughput_rps", "latency_ms.p99"],
        },
        base_dir=ROOT,
        source="bench_sweep",
    )


def local_pool(quick: bool) -> list[dict]:
    sweep = reference_sweep(points=12 if quick else 48, requests=10_000 if quick else 40_000)
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as folder:
        inproc = run_sweep(sweep, Path(folder) / "a", executor="inprocess")
        pooled = run_sweep(sweep, Path(folder) / "b", executor="processes")
    n = len(sweep.points())
    per_s_in, per_s_pool = n / inproc.elapsed_s, n / pooled.elapsed_s
    return [
        {"name": "sweep: in-process", "value": per_s_in, "unit": "points/s",
         "note": f"{n} reference points × 1 replication of {sweep.spec.requests:,} requests"},
        {"name": "sweep: local process pool", "value": per_s_pool, "unit": "points/s",
         "baseline": per_s_in, "ratio": per_s_pool / per_s_in,
         "note": f"{cores} cores; ratio = speed-up over in-process, pool start-up included"},
    ]  # fmt: skip


class LoopbackCluster:
    """A `dask scheduler` and single-threaded `dask worker` processes on 127.0.0.1 (free ports)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.env.pop("DASK_SCHEDULER_ADDRESS", None)
        self.procs: list[subprocess.Popen] = []
        scheduler_file = folder / "scheduler.json"
        self._spawn("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                    "--scheduler-file", str(scheduler_file))  # fmt: skip
        deadline = time.monotonic() + 60
        while not scheduler_file.is_file():
            if time.monotonic() > deadline:
                raise RuntimeError("dask scheduler did not start within 60 s")
            time.sleep(0.05)
        self.address = json.loads(scheduler_file.read_text())["address"]

    def _spawn(self, *args: str) -> None:
        log = open(self.folder / f"{args[0]}-{len(self.procs)}.log", "w")
        self.procs.append(
            subprocess.Popen([sys.executable, "-m", "dask", *args], cwd=ROOT, env=self.env, stdout=log, stderr=log)
        )

    def add_worker(self) -> None:
        self._spawn("worker", self.address, "--nthreads", "1", "--no-nanny", "--no-dashboard", "--host", "127.0.0.1")

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def _warm_worker() -> bool:
    from sim.engine.run import simulate_replication
    from sim.spec.scenario import load_scenario

    simulate_replication(load_scenario(ROOT / "scenarios" / "mm3.yaml"), 0, seed=1, requests=1000)
    return True


def _timed_run(client, tasks) -> tuple[float, float]:
    """(wall seconds for all tasks, mean seconds one task took on its worker)."""
    from sim.analysis.sweep.executors import _run_on_client

    landed = []
    started = time.perf_counter()
    _run_on_client(client, tasks, landed.append)
    elapsed = time.perf_counter() - started
    failed = [r for r in landed if r["status"] != "ok"]
    if len(landed) != len(tasks) or failed:
        raise RuntimeError(f"dask run incomplete: {len(landed)}/{len(tasks)} landed, {len(failed)} failed")
    return elapsed, sum(r["elapsed_s"] for r in landed) / len(landed)


def dask_scaling(quick: bool) -> list[dict]:
    from distributed import Client

    sweep = reference_sweep(points=16 if quick else 40, requests=20_000 if quick else 60_000)
    tasks = plan_tasks(sweep)
    with tempfile.TemporaryDirectory() as folder:
        cluster = LoopbackCluster(Path(folder))
        try:
            cluster.add_worker()
            with Client(cluster.address, timeout=60) as client:
                client.wait_for_workers(1, timeout=60)
                client.run(_warm_worker)
                one, task_one = _timed_run(client, [dataclasses.replace(t, key=f"{t.key}-w1") for t in tasks])
                cluster.add_worker()
                client.wait_for_workers(2, timeout=60)
                client.run(_warm_worker)
                two, task_two = _timed_run(client, [dataclasses.replace(t, key=f"{t.key}-w2") for t in tasks])
        finally:
            cluster.close()
    efficiency = one / two / 2
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return [
        {"name": "sweep: Dask, 1 worker", "value": len(tasks) / one, "unit": "points/s",
         "note": f"{len(tasks)} reference points of {sweep.spec.requests:,} requests, loopback cluster"},
        {"name": "sweep: Dask, 2 workers", "value": len(tasks) / two, "unit": "points/s"},
        {"name": "sweep: Dask scaling efficiency 1→2 workers", "value": efficiency, "unit": "",
         "baseline": TARGET_EFFICIENCY, "ratio": efficiency / TARGET_EFFICIENCY,
         "note": f"(T1/T2)/2; one task took {task_one * 1000:.0f} ms on 1 worker, {task_two * 1000:.0f} ms with 2 "
                 f"(CPU contention shows there); {os.cpu_count()} cores, load average {load:.1f}"},
    ]  # fmt: skip


def run(quick: bool = False) -> list[dict]:
    return local_pool(quick) + dask_scaling(quick)


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(row)
