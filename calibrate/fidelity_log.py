"""The per-request log of a `make fidelity` run: one row per request, so a prediction can be made again
offline from what was measured (`python -m calibrate.fidelity --predict-only DIR`).

Columns (times in ms from the run's start, read from `time.perf_counter`, which on Linux is the
system-wide monotonic clock, so the client's and the servers' readings share one time line):

- `request`: the request's index in the run; `scheduled_ms`: its Poisson send time; `sent_ms`: when the
  client began to write it (the sender can run late); `received_ms`: when the client read its reply;
  `latency_ms` = received − scheduled (what the percentiles are computed from; no coordinated omission);
- `server_arrival_ms`: when the server took it from its queue (fifo1 / shared2: its service start; dynamic1:
  when the batcher's reader thread queued it); `service_start_ms` / `service_end_ms`: the forward pass of
  the batch it rode in (dispatch to end);
- `busy_ms`: the server's busy time for that batch as it reported it (the forward pass plus sending the
  previous reply, see calibrate/fidelity.py), the in-situ service time; `batch_id` (in dispatch order per
  worker, unique in the run), `batch_size`, `worker`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = (
    "request",
    "scheduled_ms",
    "sent_ms",
    "server_arrival_ms",
    "service_start_ms",
    "service_end_ms",
    "received_ms",
    "latency_ms",
    "busy_ms",
    "batch_id",
    "batch_size",
    "worker",
)


def request_frame(
    start_ms: float,
    scheduled_ms: np.ndarray,
    sent_ms: np.ndarray,
    received_ms: np.ndarray,
    log: list[tuple[list[int], float, object]],
    timing: list[dict],
) -> pd.DataFrame:
    """One row per request from the client's clock readings (absolute ms, `scheduled_ms` relative to
    `start_ms`) and the replies (`log`: ids, busy ms, extra; `timing`: the server's readings per reply)."""
    n = len(scheduled_ms)
    columns = {name: np.full(n, np.nan) for name in ("server_arrival_ms", "service_start_ms", "service_end_ms")}
    busy, batch_id, batch_size, worker = np.full(n, np.nan), np.full(n, -1), np.zeros(n, int), np.full(n, -1)
    for k, ((ids, served, _), when) in enumerate(zip(log, timing)):
        index = np.asarray(ids, dtype=int)
        arrival = when.get("arrival_ms") or [when["start_ms"]] * len(ids)
        columns["server_arrival_ms"][index] = np.asarray(arrival, dtype=float) - start_ms
        columns["service_start_ms"][index] = when["start_ms"] - start_ms
        columns["service_end_ms"][index] = when["end_ms"] - start_ms
        busy[index], batch_id[index], batch_size[index], worker[index] = served, k, len(ids), when["worker"]
    return pd.DataFrame(
        {
            "request": np.arange(n),
            "scheduled_ms": scheduled_ms,
            "sent_ms": sent_ms - start_ms,
            **columns,
            "received_ms": received_ms - start_ms,
            "latency_ms": received_ms - start_ms - scheduled_ms,
            "busy_ms": busy,
            "batch_id": batch_id,
            "batch_size": batch_size,
            "worker": worker,
        },
        columns=list(COLUMNS),
    )


def log_name(config: str, utilisation: float, run: int) -> str:
    """Where a run's log lies inside the run's folder."""
    return f"requests/{config}-rho{utilisation:g}-run{run + 1}.csv"


def write_request_logs(folder: Path, cell: dict, frames: list[pd.DataFrame]) -> list[str]:
    """Write a cell's per-run logs under `folder`; their names relative to it (as fidelity.json keeps them)."""
    names = []
    for run, frame in enumerate(frames):
        name = log_name(cell["config"], cell["utilisation"], run)
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(path, index=False, float_format="%.4f")
        names.append(name)
    return names
