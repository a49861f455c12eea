"""Measure batch costs live with ONNX Runtime on this machine's CPU.

A built-in network (an MLP made with onnx.helper; random weights cost the same time as trained ones) or
any user .onnx file is run across batch sizes with a fixed thread count per session, warm-up runs, then
timed repeats, at 1..k concurrently busy sessions (co-located instances share cores and memory
bandwidth). Output: a long-format DataFrame (batch_size, instances, latency_ms, cpu_ms, repeat), as `fit`
reads: `latency_ms` is wall-clock time of a run, `cpu_ms` the CPU time of the thread that ran it (ONNX
Runtime with one intra-op thread computes on the calling thread), which leaves out time slices the OS gave
to other processes: on a shared machine compare the two.
"""

from __future__ import annotations

import platform
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sim.errors import ServesimError


class MeasureError(ServesimError):
    """A model that cannot be measured (missing onnxruntime, bad .onnx file, unusable input shape)."""


def _ort():
    try:
        import onnxruntime
    except ImportError:  # optional dependency: pip install servesim[calibrate]
        raise MeasureError("live measurement needs onnxruntime and onnx: pip install 'servesim[calibrate]'") from None
    return onnxruntime


@dataclass(frozen=True)
class MeasureSettings:
    batch_sizes: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    instances: tuple[int, ...] = (1, 2)
    warmup: int = 10
    repeats: int = 50
    threads: int = 1  # intra-op threads per session
    rounds: int = 5  # passes over all configurations the repeats are spread across
    interference_batch_sizes: tuple[int, ...] | None = None  # None: all batch sizes


def _session(model: bytes | str, threads: int):
    ort = _ort()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    try:
        return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable / invalid models
        raise MeasureError(f"ONNX Runtime cannot load the model: {exc}") from None


_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
}


def make_inputs(
    session, batch_size: int, rng: np.random.Generator, fixed_dims: dict[str, int] | None = None
) -> dict[str, np.ndarray]:
    """Random inputs for every model input; the first dimension is the batch, other symbolic dims need `fixed_dims`."""
    feeds = {}
    for inp in session.get_inputs():
        shape = []
        for i, dim in enumerate(inp.shape):
            if i == 0:
                shape.append(batch_size)
            elif isinstance(dim, int) and dim > 0:
                shape.append(dim)
            elif fixed_dims and str(dim) in fixed_dims:
                shape.append(fixed_dims[str(dim)])
            elif fixed_dims and inp.name in fixed_dims:
                shape.append(fixed_dims[inp.name])
            else:
                raise MeasureError(
                    f"input {inp.name!r} has a symbolic dimension {dim!r} at position {i}: give its size with"
                    f" --dim {dim}=N"
                )
        dtype = _DTYPES.get(inp.type)
        if dtype is None:
            raise MeasureError(f"input {inp.name!r} has type {inp.type}, which this tool cannot fill with random data")
        if np.issubdtype(dtype, np.integer):
            feeds[inp.name] = rng.integers(0, 100, size=shape).astype(dtype)  # token ids / indices: small values
        elif dtype is np.bool_:
            feeds[inp.name] = np.ones(shape, dtype=bool)
        else:
            feeds[inp.name] = rng.standard_normal(shape).astype(dtype)
    return feeds


def _run_concurrently(sessions, feeds, warmup: int, repeats: int) -> list[list[tuple[float, float]]]:
    """(wall ms, thread CPU ms) of each timed run of each session. Each session in its own thread (ONNX Runtime releases the GIL while it computes): warm-up, then timed
    repeats; a session that finishes early keeps running untimed so every timed run overlaps all others."""
    k = len(sessions)
    start = threading.Barrier(k)
    done = [0]
    lock = threading.Lock()
    results: list[list[tuple[float, float]]] = [[] for _ in range(k)]
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        finished = False
        try:
            sess, feed = sessions[i], feeds[i]
            for _ in range(warmup):
                sess.run(None, feed)
            start.wait()
            for _ in range(repeats):
                t0, c0 = time.perf_counter(), time.thread_time()
                sess.run(None, feed)
                results[i].append(((time.perf_counter() - t0) * 1000.0, (time.thread_time() - c0) * 1000.0))
            with lock:
                done[0] += 1
            finished = True
            while not errors:
                with lock:
                    if done[0] >= k:
                        break
                sess.run(None, feed)
        except BaseException as exc:  # surfaced in the calling thread; the others stop their untimed runs
            errors.append(exc)
            start.abort()
            if not finished:
                with lock:
                    done[0] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(k)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        exc = errors[0]
        if isinstance(exc, threading.BrokenBarrierError) and len(errors) > 1:
            exc = errors[1]
        raise MeasureError(f"model run failed: {exc}") from None
    return results


def measure(
    model: bytes | str | Path,
    settings: MeasureSettings = MeasureSettings(),
    fixed_dims: dict[str, int] | None = None,
    seed: int = 0,
    progress=None,
) -> pd.DataFrame:
    """Time the model at each batch size and number of concurrently busy sessions; one row per timed run.

    The timed repeats are spread over `settings.rounds` passes through every (instances, batch size)
    configuration, so a burst of load from elsewhere on the machine touches all of them a little rather
    than one of them a lot. Warm-up runs precede each configuration's first pass (two untimed runs later)."""
    if isinstance(model, Path):
        model = str(model)
    if isinstance(model, str) and not Path(model).is_file():
        raise MeasureError(f"model file not found: {model}")
    if settings.repeats < 1 or settings.warmup < 0 or settings.threads < 1:
        raise MeasureError("repeats and threads must be at least 1, warmup at least 0")
    rng = np.random.default_rng(seed)
    k_max = max(settings.instances)
    sessions = [_session(model, settings.threads) for _ in range(k_max)]
    configs = []
    for k in sorted(settings.instances):
        sizes = settings.batch_sizes
        if k > 1 and settings.interference_batch_sizes is not None:
            sizes = settings.interference_batch_sizes
        configs += [(k, b) for b in sizes]
    feeds = {(k, b): [make_inputs(sessions[i], b, rng, fixed_dims) for i in range(k)] for k, b in configs}
    rounds = max(1, min(settings.rounds, settings.repeats))
    per_round = [settings.repeats // rounds + (1 if r < settings.repeats % rounds else 0) for r in range(rounds)]
    times: dict[tuple[int, int], list[list[tuple[float, float]]]] = {c: [[] for _ in range(c[0])] for c in configs}
    for r, count in enumerate(per_round):
        for k, b in configs:
            warm = settings.warmup if r == 0 else min(2, settings.warmup)
            got = _run_concurrently(sessions[:k], feeds[(k, b)], warm, count)
            for i in range(k):
                times[(k, b)][i] += got[i]
    rows = []
    for k, b in configs:
        for i, series in enumerate(times[(k, b)]):
            rows += [(b, k, wall, cpu, i * settings.repeats + j) for j, (wall, cpu) in enumerate(series)]
        if progress:
            runs = [run for series in times[(k, b)] for run in series]
            progress(b, k, float(np.median([w for w, _ in runs])), float(np.median([c for _, c in runs])))
    return pd.DataFrame(rows, columns=["batch_size", "instances", "latency_ms", "cpu_ms", "repeat"])


def machine_description(threads: int) -> str:
    """One line on where a measurement ran (CPU model, logical CPUs, threads per session, ORT version)."""
    import os

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} logical CPUs, {threads} intra-op thread(s) per session, "
        f"onnxruntime {_ort().__version__} CPUExecutionProvider, Python {platform.python_version()}"
    )
