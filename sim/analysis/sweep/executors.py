"""Executors: where a sweep's tasks run. In this process, in a local process pool, or on a Dask cluster.

Every executor takes the same pure tasks (sim/analysis/sweep/task.py) and hands each finished record to a callback
in the driving process as it lands, so results do not depend on the executor and the driver alone writes
the output. A task whose worker dies is re-run by Dask on another worker (the scheduler's
`allowed-failures` bound, 3 by default, turns a task that keeps killing workers into a recorded error).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Protocol, Sequence

from sim.analysis.sweep.spec import SweepError
from sim.analysis.sweep.task import Task, describe_exception, run_task

OnRecord = Callable[[dict], None]
EXECUTORS = ("auto", "inprocess", "processes", "dask")
# Fewer tasks than this run in-process under `auto`: a pool costs more to start than they take.
INPROCESS_BELOW_TASKS = 8
DASK_CONNECT_TIMEOUT_S = 30
DASK_WORKER_WAIT_S = 60


class Executor(Protocol):
    name: str

    def run(self, tasks: Sequence[Task], on_record: OnRecord) -> None:
        """Run every task; call on_record(record) in this process as each one finishes."""


class InProcessExecutor:
    name = "inprocess"

    def run(self, tasks: Sequence[Task], on_record: OnRecord) -> None:
        for task in tasks:
            on_record(run_task(task))


class ProcessPoolSweepExecutor:
    """A local pool of worker processes (all cores by default), started from a fork server: children are
    forked from a clean process that has already imported the engine, not from this threaded one."""

    name = "processes"

    def __init__(self, workers: int | None = None):
        self.workers = workers or os.cpu_count() or 1

    def run(self, tasks: Sequence[Task], on_record: OnRecord) -> None:
        if not tasks:
            return
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        if context.get_start_method() == "forkserver":
            context.set_forkserver_preload(["sim.analysis.sweep.task", "sim.engine.run", "sim.metrics.summary"])
        pool = ProcessPoolExecutor(
            max_workers=min(self.workers, len(tasks)), mp_context=context, initializer=_ignore_interrupts
        )
        try:
            # Keep a bounded window in flight so an interrupt leaves little queued work to cancel.
            pending = iter(tasks)
            in_flight = {}
            for task in _take(pending, 4 * self.workers):
                in_flight[pool.submit(run_task, task)] = task
            while in_flight:
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    task = in_flight.pop(future)
                    try:
                        record = future.result()
                    except BrokenProcessPool:
                        raise SweepError(
                            "a worker process of the local pool died (out of memory?); finished tasks are saved: "
                            "re-run the same command to resume"
                        ) from None
                    except Exception as exc:  # noqa: BLE001 - unpicklable results and the like
                        record = _error_record(task, exc)
                    on_record(record)
                    for nxt in _take(pending, 1):
                        in_flight[pool.submit(run_task, nxt)] = nxt
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _ignore_interrupts() -> None:
    """Ctrl-C is the driver's to handle (it cancels queued tasks); a worker killed by it would break the pool."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class DaskExecutor:
    """Tasks on a Dask cluster: an existing scheduler (`tcp://HOST:PORT`), or a LocalCluster of
    `local_workers` single-threaded worker processes. Workers must have servesim installed (same version)
    and see scenario data files (profiles, traces) at the same paths."""

    name = "dask"

    def __init__(self, address: str | None = None, local_workers: int | None = None):
        if (address is None) == (local_workers is None):
            raise ValueError("DaskExecutor needs a scheduler address or a local worker count")
        self.address = address
        self.local_workers = local_workers

    def run(self, tasks: Sequence[Task], on_record: OnRecord) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise SweepError("the Dask executor needs dask[distributed]: pip install 'servesim[sweep]'") from None
        cluster = None
        try:
            if self.address is None:
                cluster = LocalCluster(
                    n_workers=self.local_workers, threads_per_worker=1, processes=True, dashboard_address=":0"
                )
                client = Client(cluster)
            else:
                try:
                    client = Client(self.address, timeout=DASK_CONNECT_TIMEOUT_S)
                except (OSError, TimeoutError) as exc:
                    raise SweepError(
                        f"--scheduler: cannot reach the Dask scheduler at {self.address} ({exc})"
                    ) from None
            with client:
                _check_workers(client, self.address or "the local cluster")
                _run_on_client(client, tasks, on_record)
        finally:
            if cluster is not None:
                cluster.close()


def _run_on_client(client, tasks: Sequence[Task], on_record: OnRecord) -> None:
    from distributed import as_completed

    futures = {client.submit(run_task, task, key=f"servesim-sweep-{task.key}", pure=False): task for task in tasks}
    try:
        for future in as_completed(list(futures)):
            task = futures.pop(future)
            try:
                record = future.result()
            except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker after repeated worker deaths
                record = _error_record(task, exc)
            future.release()
            on_record(record)
    finally:
        if futures:
            client.cancel(list(futures))


def _check_workers(client, where: str) -> None:
    """Fail early and clearly when no worker answers or the workers cannot run servesim tasks."""
    import sim

    try:
        client.wait_for_workers(1, timeout=DASK_WORKER_WAIT_S)
    except TimeoutError:
        raise SweepError(f"no Dask worker joined {where} within {DASK_WORKER_WAIT_S} s") from None
    try:
        version = client.submit(_worker_version, pure=False).result(timeout=DASK_WORKER_WAIT_S)
    except ModuleNotFoundError as exc:
        raise SweepError(
            f"Dask workers at {where} cannot import servesim ({exc}): install it on every worker"
        ) from None
    if version != sim.__version__:
        raise SweepError(
            f"Dask workers at {where} run servesim {version}, this machine {sim.__version__}: results would differ"
        )


def _worker_version() -> str:
    import sim

    return sim.__version__


def make_executor(
    kind: str = "auto",
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    dask_local: int | None = None,
    task_count: int = 0,
) -> Executor:
    """The executor asked for: `scheduler` or `dask_local` imply Dask; `auto` is in-process for a handful
    of tasks, else the local pool, unless DASK_SCHEDULER_ADDRESS names a cluster."""
    if kind not in EXECUTORS:
        raise SweepError(f"--executor: {kind!r} is not one of {', '.join(EXECUTORS)}")
    if workers is not None and workers <= 0:
        raise SweepError(f"--workers must be positive (got {workers})")
    if dask_local is not None and dask_local <= 0:
        raise SweepError(f"--dask-local must be a positive worker count (got {dask_local})")
    if scheduler is not None and dask_local is not None:
        raise SweepError("give --scheduler or --dask-local, not both")
    if kind in ("inprocess", "processes") and (scheduler or dask_local):
        raise SweepError(f"--executor {kind} does not use --scheduler / --dask-local")
    if kind in ("auto", "dask") and scheduler is None and dask_local is None:
        scheduler = os.environ.get("DASK_SCHEDULER_ADDRESS") or None
    if scheduler is not None or dask_local is not None:
        return DaskExecutor(address=scheduler, local_workers=dask_local)
    if kind == "dask":
        return DaskExecutor(local_workers=workers or os.cpu_count() or 1)
    if kind == "inprocess" or (kind == "auto" and task_count < INPROCESS_BELOW_TASKS):
        return InProcessExecutor()
    return ProcessPoolSweepExecutor(workers)


def _error_record(task: Task, exc: BaseException) -> dict:
    return {
        "key": task.key,
        "point_id": task.point_id,
        "replication": task.replication,
        "seed": task.seed,
        "status": "error",
        "error": describe_exception(exc),
    }


def _take(iterator, n: int) -> list:
    out = []
    for item in iterator:
        out.append(item)
        if len(out) >= n:
            break
    return out
