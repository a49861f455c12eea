"""A sweep store has one writer at a time: a second sweep on the same --out is refused by name at once,
and the first one keeps every point (before the lock, both exited 0 and one sweep's points were lost)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pandas as pd
import pytest

from sim.analysis.sweep.executors import InProcessExecutor
from sim.analysis.sweep.run import load_sweep, run_sweep
from sim.analysis.sweep.store import LOCK_FILE, ResultStore
from sim.errors import ServesimError
from tests.test_sweep import REPO, write_sweep

BUSY = "another sweep is writing to this store now"


class HeldExecutor(InProcessExecutor):
    """Runs the tasks in this process, but only after `go` is set; `started` says it holds the store."""

    def __init__(self) -> None:
        self.started, self.go = threading.Event(), threading.Event()

    def run(self, tasks, on_record) -> None:
        self.started.set()
        assert self.go.wait(60)
        super().run(tasks, on_record)


def test_a_second_writer_in_another_thread_is_refused_and_the_first_keeps_every_point(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path))
    out = tmp_path / "out"
    held = HeldExecutor()
    results: dict = {}
    first = threading.Thread(target=lambda: results.update(first=run_sweep(sweep, out, executor=held)))
    first.start()
    try:
        assert held.started.wait(60)
        with pytest.raises(ServesimError, match=BUSY) as refused:
            run_sweep(
                load_sweep(write_sweep(tmp_path, axes={"deployment.replicas": [4, 5]})), out, executor="inprocess"
            )
        assert str(out) in str(refused.value) and LOCK_FILE in str(refused.value)
    finally:
        held.go.set()
        first.join(120)
    table = results["first"].replications
    assert len(table) == 12 and (table["status"] == "ok").all()
    assert len(pd.read_parquet(out / "replications.parquet")) == 12
    # ... and once the first is done, the store is free again: a rerun finds every task done.
    again = run_sweep(sweep, out, executor="inprocess")
    assert again.ran == 0 and again.skipped == 12


def test_the_lock_is_released_with_the_store():
    """Closing the store (or dropping it) frees the folder for the next writer."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        with ResultStore(folder):
            with pytest.raises(ServesimError, match=BUSY):
                ResultStore(folder)
        ResultStore(folder).release()
        store = ResultStore(folder)
        del store
        ResultStore(folder).release()


def test_a_sweep_process_on_a_store_held_by_another_process_exits_2_naming_it(tmp_path):
    """This test's process holds the store (as a running sweep does); a `servesim sweep` on it is refused
    at once and touches nothing; once it is released, the same command runs."""
    path = write_sweep(tmp_path, axes={"workload.arrival.rate_rps": [0.6, 0.8]})
    out = tmp_path / "out"
    command = [sys.executable, "-m", "sim.cli.main", "sweep", str(path), "--out", str(out), "--executor", "inprocess",
               "--no-plots", "--json"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with ResultStore(out) as held:
        held.append({"key": "earlier", "status": "ok"})
        refused = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr
        assert refused.stderr.count("\n") == 1 and BUSY in refused.stderr and str(out) in refused.stderr
        assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE, "tasks.jsonl"]
    ran = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["ran"] == 4
    records = [json.loads(line) for line in (out / "tasks.jsonl").read_text().splitlines()]
    assert [r["key"] for r in records][0] == "earlier" and len(records) == 5


def test_the_cli_holds_the_store_while_it_draws_the_plots(tmp_path, monkeypatch):
    # `servesim sweep` writes plots after the points: a second sweep on the same store then must still be
    # refused (the lock covers the whole command, not only the runs).
    import sim.present.sweep_plots as sweep_plots
    from sim.cli.main import main

    out = tmp_path / "out"
    seen: list[str] = []

    def plots_while_a_second_sweep_tries(sweep, points, folder):
        with pytest.raises(ServesimError, match=BUSY):
            ResultStore(out)
        seen.append("refused")
        return {}

    monkeypatch.setattr(sweep_plots, "write_plots", plots_while_a_second_sweep_tries)
    assert main(["sweep", str(write_sweep(tmp_path)), "--out", str(out), "--executor", "inprocess"]) == 0
    assert seen == ["refused"]
    ResultStore(out).release()  # and free once the command is done
