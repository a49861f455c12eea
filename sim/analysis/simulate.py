"""A run: simulate the replications of a scenario (sim/engine) and summarise their log (sim/metrics).
Every command and the planner go through `simulate`; `load_run` reads a saved run log back and
recomputes the same summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from sim.analysis.cost_interval import with_cost_interval
from sim.engine.run import simulate_replication, simulate_replications
from sim.engine.runlog import RunLog, RunLogWriter
from sim.engine.runlog_manifest import shown
from sim.errors import ServesimError
from sim.metrics.summary import (
    ReplicationPart,
    model_stages,
    replication_part,
    stage_columns,
    summarize,
    summarize_parts,
)
from sim.spec.budget import check_run_options
from sim.spec.scenario import Scenario, parse_scenario_text


@dataclass
class RunResult:
    """A finished run: the scenario, its run log (every replication; None for a run that did not keep it)
    and the summary derived from it."""

    scenario: Scenario
    run: RunLog | None
    summary: dict = field(default_factory=dict)

    @property
    def log(self) -> pd.DataFrame | None:
        """The request log: one row per request of every replication."""
        return None if self.run is None else self.run.requests


def simulate(
    scenario: Scenario,
    *,
    requests: int | None = None,
    seed: int | None = None,
    replications: int | None = None,
    on_replication: Callable[[int, int], None] | None = None,
    workers: int = 1,
    keep_log: bool = True,
    each_log: Callable[[RunLog], None] | None = None,
) -> RunResult:
    """Simulate `replications` independent replications (default: the scenario's) and summarise them.
    `workers` > 1 runs them in a pool of processes (started once per session); every replication draws
    from its own streams, so the result is identical to the in-process one. `keep_log` False reduces each
    replication to its summary part as it finishes and drops its log (`run` is None): memory is one
    replication's, whatever the count, and the summary is the same; `each_log` is handed each replication's
    log first, in replication order (a `RunLogWriter.append` saves the run without holding it)."""
    check_run_options(scenario, requests, seed, replications, keep_log=keep_log)  # bounds and memory, first
    seed = scenario.seed if seed is None else seed
    replications = scenario.replications if replications is None else replications
    if not keep_log:
        parts = _parts(scenario, replications, seed, requests, workers, on_replication, each_log)
        summary = with_cost_interval(summarize_parts(parts, scenario), scenario, seed, requests)
        return RunResult(scenario=scenario, run=None, summary=summary)
    if workers > 1 and replications > 1:
        run = _in_pool(scenario, replications, seed, requests, min(workers, replications), on_replication)
    else:
        run = simulate_replications(scenario, replications, seed=seed, requests=requests, on_replication=on_replication)
    summary = with_cost_interval(summarize(run, scenario), scenario, seed, requests)
    return RunResult(scenario=scenario, run=run, summary=summary)


def _parts(
    scenario: Scenario,
    replications: int,
    seed: int,
    requests: int | None,
    workers: int,
    on_replication,
    each_log: Callable[[RunLog], None] | None = None,
) -> list[ReplicationPart]:
    """Each replication reduced to its summary part, in replication order (in a pool: in the workers,
    unless `each_log` needs the logs here)."""

    def reduce(rep: int, run: RunLog) -> ReplicationPart:
        if each_log:
            each_log(run)
        return replication_part(run, scenario, first=rep == 0)

    if workers > 1 and replications > 1:
        pool = _pool(min(workers, replications))
        task = _replication_task if each_log else _part_task
        futures = [
            pool.submit(task, scenario.raw, str(scenario.base_dir), rep, seed, requests) for rep in range(replications)
        ]
        results = (reduce(rep, f.result()) if each_log else f.result() for rep, f in enumerate(futures))
    else:
        results = (
            reduce(rep, simulate_replication(scenario, rep, seed=seed, requests=requests))
            for rep in range(replications)
        )
    parts = []
    for done, part in enumerate(results, start=1):
        parts.append(part)
        if on_replication:
            on_replication(done, replications)
    return parts


def save_run(result: RunResult, folder: Path, settings: dict) -> list[Path]:
    """The run log, the scenario and the run's settings in `folder` (see RunLog.write)."""
    with RunLogWriter(folder) as writer:
        writer.append(result.run)
        return finish_log(writer, result.scenario, settings)


def finish_log(writer: RunLogWriter, scenario: Scenario, settings: dict) -> list[Path]:
    """Close a run log folder: the scenario as run and the run's settings beside its frames."""
    import yaml

    text = yaml.safe_dump(scenario.raw, sort_keys=False)
    return writer.finish(scenario_yaml=text, run={**settings, "base_dir": str(scenario.base_dir)})


def load_run(folder: Path, keep_log: bool = True) -> RunResult:
    """A saved run log, with the summary recomputed from it. `keep_log` False reads it one replication at
    a time and keeps none (`run` is None): memory is one replication's, and the summary is the same. A
    folder that does not match its manifest, or lacks a column its scenario's summary reads, is refused
    (sim/engine/runlog_manifest.py)."""
    manifest = RunLog.verify(folder)
    if not keep_log:
        replications = RunLog.replications_in(folder)
        if not replications:
            raise ServesimError(f"run log {shown(folder)}: the run log holds no requests")
    first = None if keep_log else replications[0]
    run, text, settings = RunLog.read(folder, replication=first, verified=True)
    base_dir = settings.get("base_dir")
    scenario = parse_scenario_text(
        text,
        source=str(Path(folder) / "scenario.yaml"),
        base_dir=base_dir if isinstance(base_dir, str) and base_dir else None,
    )
    _check_columns(folder, manifest, scenario)
    _check_stages_add_up(folder, run.requests, scenario)
    seed = settings.get("seed") if isinstance(settings.get("seed"), int) else scenario.seed
    requests = settings.get("requests") if isinstance(settings.get("requests"), int) else None
    if keep_log:
        summary = with_cost_interval(summarize(run, scenario), scenario, seed, requests)
        return RunResult(scenario=scenario, run=run, summary=summary)
    parts = [replication_part(run, scenario, first=True)]
    for rep in replications[1:]:
        rest = RunLog.read(folder, replication=rep, verified=True)[0]
        _check_stages_add_up(folder, rest.requests, scenario)
        parts.append(replication_part(rest, scenario, first=False))
    summary = with_cost_interval(summarize_parts(parts, scenario), scenario, seed, requests)
    return RunResult(scenario=scenario, run=None, summary=summary)


# A served request's stage times add up to its latency, and its latency is departure - arrival, to float
# rounding: measured 2e-10 of the latency at most on the shipped scenarios (recsys-caches' hour-long clock).
STAGE_SUM_TOLERANCE = 1e-6


def _check_stages_add_up(folder: Path, log: pd.DataFrame, scenario: Scenario) -> None:
    """Every served request's stage columns add up to its latency and its latency is departure - arrival,
    so a log whose manifest was rewritten to match a changed stage column (NaN, scaled, zeroed) is still
    refused, naming the column's first broken row, instead of summarised into wrong stage figures."""
    served = log[~log["rejected"].to_numpy(dtype=bool)]
    latency = served["latency_ms"].to_numpy(dtype=float)
    scale = STAGE_SUM_TOLERANCE * np.maximum(1.0, np.abs(latency))
    elapsed = served["departure_ms"].to_numpy(dtype=float) - served["arrival_ms"].to_numpy(dtype=float)
    broken = ~(np.abs(elapsed - latency) <= scale)
    what = "latency_ms is not departure_ms - arrival_ms"
    if not broken.any():
        stages = np.nan_to_num(served[stage_columns(scenario)].to_numpy(dtype=float), nan=0.0).sum(axis=1)
        broken = ~(np.abs(stages - latency) <= scale)
        what = f"its stage times ({', '.join(stage_columns(scenario))}) do not add up to latency_ms"
    if broken.any():
        row = int(served.index[np.argmax(broken)])
        raise ServesimError(f"run log {shown(folder)}: requests.parquet: row {row} (a served request): {what}")


def _check_columns(folder: Path, manifest: dict, scenario: Scenario) -> None:
    """The request columns the scenario's summary reads are in the log (the manifest's column list)."""
    present = manifest["frames"].get("requests", {}).get("columns", {})
    needed = list(stage_columns(scenario))
    for stage in model_stages(scenario):
        needed += [f"{stage.name}_batch_id", f"{stage.name}_start_ms", f"{stage.name}_ms"]
    missing = [name for name in dict.fromkeys(needed) if name not in present]
    if missing:
        raise ServesimError(
            f"run log {shown(folder)}: requests.parquet lacks {len(missing)} column(s) its scenario needs "
            f"({', '.join(map(repr, missing[:5]))})"
        )


def run_log_zip(result: RunResult) -> bytes:
    """The folder `save_run` writes, as the bytes of a zip file (for a download)."""
    import io
    import tempfile
    import zipfile

    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp:
        paths = save_run(result, Path(tmp) / "run", {"seed": result.scenario.seed})
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in paths:
                archive.write(path, arcname=f"run/{path.name}")
    return buffer.getvalue()


_POOL = None


def _pool(workers: int):
    """The session's process pool (fork server: children come from a clean process that has imported the
    engine, not from a threaded planner), grown when more workers are asked for."""
    global _POOL
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    if _POOL is None or _POOL._max_workers < workers:
        first = _POOL is None
        if _POOL is not None:
            _POOL.shutdown(wait=False)
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        if context.get_start_method() == "forkserver":
            context.set_forkserver_preload(["sim.engine.run", "sim.spec.scenario"])
        _POOL = ProcessPoolExecutor(max_workers=workers, mp_context=context)
        if first:
            import atexit

            atexit.register(_shutdown_pool)  # before interpreter teardown, not in it
    return _POOL


def _shutdown_pool() -> None:
    global _POOL
    if _POOL is not None:
        _POOL.shutdown(wait=True, cancel_futures=True)
        _POOL = None


def _replication_task(raw: dict, base_dir: str, replication: int, seed: int, requests: int | None) -> RunLog:
    from sim.spec.scenario import parse_scenario

    return simulate_replication(parse_scenario(raw, base_dir=base_dir), replication, seed=seed, requests=requests)


def _part_task(raw: dict, base_dir: str, replication: int, seed: int, requests: int | None) -> ReplicationPart:
    from sim.spec.scenario import parse_scenario

    scenario = parse_scenario(raw, base_dir=base_dir)
    run = simulate_replication(scenario, replication, seed=seed, requests=requests)
    return replication_part(run, scenario, first=replication == 0)


def _in_pool(
    scenario: Scenario, replications: int, seed: int, requests: int | None, workers: int, on_replication
) -> RunLog:
    pool = _pool(workers)
    futures = [
        pool.submit(_replication_task, scenario.raw, str(scenario.base_dir), rep, seed, requests)
        for rep in range(replications)
    ]
    parts = []
    for done, future in enumerate(futures, start=1):
        parts.append(future.result())
        if on_replication:
            on_replication(done, replications)
    return RunLog.concat(parts)
