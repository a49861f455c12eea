"""Concurrent-sweep family (issue 23): several sweeps started on one store at once, in random number,
order and grids. Exactly one runs; every other is refused by name at once (a clear error, nothing
written); the store ends with exactly the running sweep's points, none lost; once it is done, a rerun of
any of them runs or skips cleanly. Before the lock, two sweeps on one --out both exited 0 and one sweep's
points were silently dropped.

CI runs a handful of examples; `make fuzz` (HYPOTHESIS_PROFILE=fuzz) runs 100.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.analysis.sweep.run import load_sweep, run_sweep
from sim.errors import ServesimError
from tests.test_sweep_lock import BUSY, HeldExecutor
from tests.test_sweep import write_sweep

EXAMPLES = 100 if os.environ.get("HYPOTHESIS_PROFILE") == "fuzz" else 4
OUTCOMES: Counter = Counter()
RATES = [0.6, 0.8, 1.0, 1.2]


def teardown_module() -> None:
    print(f"\nconcurrent-sweep outcomes: {dict(OUTCOMES)}")


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    grids=st.lists(st.lists(st.sampled_from(RATES), min_size=1, max_size=3, unique=True), min_size=2, max_size=4),
    winner=st.integers(0, 3),
)
def test_one_writer_wins_the_others_are_refused_and_no_point_is_lost(tmp_path, grids, winner):
    winner %= len(grids)
    root = Path(tmp_path) / f"case-{len(list(Path(tmp_path).iterdir()))}"
    root.mkdir()
    sweeps = []
    for i, rates in enumerate(grids):
        folder = root / f"s{i}"
        folder.mkdir()
        sweeps.append(load_sweep(write_sweep(folder, axes={"workload.arrival.rate_rps": rates}, replications=1)))
    out = root / "out"
    held = HeldExecutor()
    results: dict = {}
    first = threading.Thread(target=lambda: results.update(run=run_sweep(sweeps[winner], out, executor=held)))
    first.start()
    try:
        assert held.started.wait(60)
        for i, sweep in enumerate(sweeps):
            if i == winner:
                continue
            try:
                run_sweep(sweep, out, executor="inprocess")
            except ServesimError as exc:
                assert BUSY in str(exc) and str(out) in str(exc) and "\n" not in str(exc)
                OUTCOMES["refused by name"] += 1
            else:
                raise AssertionError("a second sweep ran on a store another sweep holds")
    finally:
        held.go.set()
        first.join(120)
    table = results["run"].replications
    assert sorted(table["workload.arrival.rate_rps"].tolist()) == sorted(grids[winner])
    assert len(pd.read_parquet(out / "replications.parquet")) == len(grids[winner])
    OUTCOMES["ran alone, every point kept"] += 1
    # Free again: every other sweep now runs on the store, after the one that held it.
    for i, sweep in enumerate(sweeps):
        if i != winner:
            assert run_sweep(sweep, out, executor="inprocess").failed_points is not None
