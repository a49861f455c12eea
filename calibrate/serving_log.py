"""In-situ calibration: batch costs from what a serving path logged under load, one row per request.

Columns: `batch_size` (the batch the request rode in), `server_ms` (its time in the server after the
queue: pre-processing copies + the batch's kernel + post-processing, as Triton's compute_input +
compute_infer + compute_output), optionally `kernel_ms` (the batch's kernel alone, as compute_infer) and
`batch_id` (requests that rode in the same batch). Any batch sizes, batch 1 alone included.

The per-batch overhead outside the kernel is `server_ms − kernel_ms`, its median; the batch-cost curve is
fitted to the kernel times. Without `kernel_ms` the two cannot be told apart from batch sizes alone (the
overhead and the kernel's intercept are both constant per batch), so the overhead stays in the curve and
the profile says so. With `batch_id` every batch counts once (its requests share one kernel run).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from calibrate.fit import check_measurements
from sim.errors import DataFileError
from sim.spec.datafiles import read_csv, shown


def measurements_from_log(
    frame: pd.DataFrame,
    where: str,
    server_column: str = "server_ms",
    kernel_column: str | None = None,
    batch_id_column: str | None = None,
) -> tuple[pd.DataFrame, float, str]:
    """(measurements: batch_size, instances, latency_ms of the kernel; overhead_ms per batch; a note for
    the profile's provenance) from a per-request serving log."""
    needed = ["batch_size", server_column] + [c for c in (kernel_column, batch_id_column) if c]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataFileError(
            f"{where}: missing column(s) {', '.join(missing)} (the file has {len(frame.columns)} columns);"
            " a serving log needs one row per request with batch_size and the server time in ms"
        )
    server = check_measurements(
        pd.DataFrame({"batch_size": frame["batch_size"], "latency_ms": frame[server_column]}), where
    )
    table = pd.DataFrame({"batch_size": server["batch_size"], "server_ms": server["latency_ms"]})
    if kernel_column:
        kernel = check_measurements(
            pd.DataFrame({"batch_size": frame["batch_size"], "latency_ms": frame[kernel_column]}), where
        )
        table["kernel_ms"] = kernel["latency_ms"].to_numpy()
        above = np.flatnonzero(table["kernel_ms"].to_numpy() > table["server_ms"].to_numpy() + 1e-9)
        if len(above):
            raise DataFileError(
                f"{where}: row {above[0] + 2}: {kernel_column} exceeds {server_column} (the kernel runs inside the server time)"
            )
    if batch_id_column:
        table["batch"] = frame[batch_id_column].to_numpy()
        sizes = table.groupby("batch")["batch_size"].nunique()
        if (sizes > 1).any():
            raise DataFileError(f"{where}: a batch ({batch_id_column}) has requests logging different batch sizes")
        # One kernel run per batch: its requests share it; each batch counts once, at its median request.
        table = table.groupby("batch", sort=False).median().reset_index(drop=True)
        table["batch_size"] = table["batch_size"].astype(int)
    server = pd.DataFrame({"batch_size": table["batch_size"], "instances": 1, "latency_ms": table["server_ms"]})
    if kernel_column is None:
        note = (
            "fitted from per-request server times (no kernel column): the per-batch overhead is not separated "
            "and sits inside the batch-cost curve (overhead_ms 0)"
        )
        return server, 0.0, note
    kernel = pd.DataFrame({"batch_size": table["batch_size"], "instances": 1, "latency_ms": table["kernel_ms"]})
    outside = server["latency_ms"].to_numpy() - kernel["latency_ms"].to_numpy()
    overhead_ms = round(float(np.median(outside)), 4)
    note = (
        f"fitted from a serving log: kernel times ({kernel_column}) per batch size; per-batch overhead "
        f"{overhead_ms} ms = median of {server_column} − {kernel_column} over {len(outside)} "
        + ("batches" if batch_id_column else "requests")
    )
    return kernel, overhead_ms, note


def load_serving_log(
    path: str | Path,
    server_column: str = "server_ms",
    kernel_column: str | None = None,
    batch_id_column: str | None = None,
) -> tuple[pd.DataFrame, float, str]:
    """Read a per-request serving log CSV; see `measurements_from_log`."""
    path = Path(path)
    return measurements_from_log(
        read_csv(path, "serving log"), f"serving log {shown(path)}", server_column, kernel_column, batch_id_column
    )
