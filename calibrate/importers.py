"""Import what users already have: NVIDIA Triton `perf_analyzer` CSV output (`perf_analyzer ... -f out.csv`).

perf_analyzer writes one row per concurrency (or request rate) level, every time in microseconds:
`Concurrency, Inferences/Second, Client Send, Network+Server Send/Recv, Server Queue, Server Compute Input,
Server Compute Infer, Server Compute Output, Client Recv, p50 latency, p90 latency, p95 latency,
p99 latency` (newer versions add columns, which are ignored). One file is one model at one batch size
(`perf_analyzer -b N`).

Turning runs at several batch sizes into a profile, from the lowest-concurrency row of each file:
  - the instance's cost of a batch is Server Compute Input + Infer + Output (averages);
  - the per-batch overhead outside the kernel (`overhead_ms`) is the smallest Compute Input + Output over
    the batch sizes; what input / output copying grows with batch size stays in the batch cost;
  - the spread comes from the client-side percentiles: p90 and p99 sit above the median by as much as the
    client's p90 / p99 sit above the client's p50 (all of the client's jitter charged to the instance:
    conservative for the tail).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sim.spec.datafiles import read_csv, shown
from sim.errors import DataFileError

LEVEL_COLUMNS = ("Concurrency", "Request Rate")
SERVER_COLUMNS = ("Server Compute Input", "Server Compute Infer", "Server Compute Output")
PERCENTILE_COLUMNS = {
    "p50 latency": "p50_ms",
    "p90 latency": "p90_ms",
    "p95 latency": "p95_ms",
    "p99 latency": "p99_ms",
}


def read_perf_analyzer(path: str | Path) -> pd.DataFrame:
    """A perf_analyzer CSV as a frame in ms: level, throughput_rps, queue/compute columns, p50..p99_ms."""
    path = Path(path)
    where = f"perf_analyzer CSV {shown(path)}"
    frame = read_csv(path, "perf_analyzer CSV")
    frame.columns = [str(c).strip() for c in frame.columns]
    level = next((c for c in LEVEL_COLUMNS if c in frame.columns), None)
    needed = [*SERVER_COLUMNS, *PERCENTILE_COLUMNS]
    missing = [c for c in needed if c not in frame.columns] + ([] if level else ["Concurrency (or Request Rate)"])
    if missing:
        raise DataFileError(
            f"{where}: missing column(s) {', '.join(missing)} (the file has {len(frame.columns)} columns); expected the CSV"
            " written by perf_analyzer -f FILE with server-side statistics"
        )
    out = pd.DataFrame()
    columns = {level: "level", "Inferences/Second": "throughput_rps", "Server Queue": "server_queue_ms"}
    columns.update({c: c.lower().replace("server ", "").replace(" ", "_") + "_ms" for c in SERVER_COLUMNS})
    columns.update(PERCENTILE_COLUMNS)
    for source, target in columns.items():
        if source not in frame.columns:
            continue
        values = pd.to_numeric(frame[source], errors="coerce")
        if values.isna().any():
            row = int(np.flatnonzero(values.isna().to_numpy())[0])
            raise DataFileError(f"{where}: column {source!r} row {row + 2} is not a number")
        array = values.to_numpy(dtype=float)
        if (array < 0).any():
            raise DataFileError(f"{where}: column {source!r} has a negative value")
        scale = 1.0 if target in ("level", "throughput_rps") else 1e-3  # perf_analyzer times are in µs
        out[target] = array * scale
    if (out["p50_ms"] <= 0).any() or (out["compute_infer_ms"] <= 0).any():
        raise DataFileError(f"{where}: p50 latency and Server Compute Infer must be positive")
    out["level_kind"] = level
    return out.sort_values("level").reset_index(drop=True)


def perf_analyzer_summary(files: dict[int, str | Path]) -> tuple[pd.DataFrame, float]:
    """{batch_size: CSV path} → (a summary frame as calibrate.fit.summarise gives, overhead_ms)."""
    if len(files) < 2:
        raise DataFileError(
            f"perf_analyzer import: runs at {len(files)} batch size(s) given; a batch-cost curve needs at least two"
            " (one CSV per `perf_analyzer -b N` run)"
        )
    lowest = {}
    for batch, path in files.items():
        if batch < 1:
            raise DataFileError(f"perf_analyzer import: batch size must be positive, got {batch} for {shown(path)}")
        frame = read_perf_analyzer(path)
        lowest[batch] = frame.iloc[0]
    overhead = min(r["compute_input_ms"] + r["compute_output_ms"] for r in lowest.values())
    rows = []
    for batch in sorted(lowest):
        r = lowest[batch]
        median = r["compute_input_ms"] + r["compute_infer_ms"] + r["compute_output_ms"] - overhead
        rows.append(
            dict(
                batch_size=batch,
                instances=1,
                n=np.nan,
                p50_ms=median,
                p90_ms=median + max(r["p90_ms"] - r["p50_ms"], 0.0),
                p95_ms=median + max(r["p95_ms"] - r["p50_ms"], 0.0),
                p99_ms=median + max(r["p99_ms"] - r["p50_ms"], 0.0),
                mean_ms=np.nan,
                se_p50_ms=0.0,
            )
        )
    return pd.DataFrame(rows), float(overhead)


def parse_file_batch(spec: str) -> tuple[int, str]:
    """'run_b8.csv:8' → (8, 'run_b8.csv')."""
    path, sep, batch = spec.rpartition(":")
    if not sep or not batch.strip().isdigit():
        raise DataFileError(
            f"perf_analyzer import: give each file as PATH:BATCH_SIZE (e.g. run_b8.csv:8), got {spec!r}"
        )
    return int(batch), path
