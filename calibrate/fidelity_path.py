"""The serving path around the server, as served under load: what a `make fidelity` request spends outside
the server's queue and busy time — the sender running late, the trip to the server, the reply's trip
back. The closed-loop calibration times this one request at a time, on a host otherwise idle; under open
loop the client's threads compete with each other and with the servers for the CPUs, an idle server's CPU
wakes slowly, and the sender runs late. The co-load phase (served at the cell's rate just before its runs)
measures it as the runs will see it; its samples replace the closed-loop transport in the co-load
prediction (calibrate/fidelity_scenarios.py `under_load`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def reply_send_ms(frame: pd.DataFrame) -> float:
    """The median time a server took to send a reply: each batch's busy time carries the previous reply's
    send on top of its forward pass (calibrate/fidelity_servers.py)."""
    batches = frame.drop_duplicates("batch_id")
    extra = (batches["busy_ms"] - (batches["service_end_ms"] - batches["service_start_ms"])).to_numpy(dtype=float)
    extra = extra[np.isfinite(extra)]
    return float(np.median(np.maximum(extra, 0.0))) if len(extra) else 0.0


def found_idle(frame: pd.DataFrame) -> np.ndarray:
    """Per request (the frame's order), whether a worker was idle and no earlier request was still on its way
    when it was sent: its service then started when it reached the server, so its trip there is visible."""
    send = reply_send_ms(frame)
    sent = frame["sent_ms"].to_numpy(dtype=float)
    idle = np.zeros(len(frame), dtype=bool)
    batches = frame.drop_duplicates("batch_id")
    for _, worker in batches.groupby("worker"):
        order = np.argsort(worker["service_start_ms"].to_numpy(dtype=float))
        starts = worker["service_start_ms"].to_numpy(dtype=float)[order]
        frees = worker["service_end_ms"].to_numpy(dtype=float)[order] + send
        k = np.searchsorted(starts, sent, side="right") - 1
        busy = (k >= 0) & (sent < frees[np.maximum(k, 0)])
        idle |= ~busy
    by_sent = np.argsort(sent, kind="stable")
    started = frame["service_start_ms"].to_numpy(dtype=float)[by_sent]
    earlier_unstarted = np.concatenate([[-np.inf], np.maximum.accumulate(started)[:-1]]) > sent[by_sent]
    clear = np.empty(len(frame), dtype=bool)
    clear[by_sent] = ~earlier_unstarted
    return idle & clear


def path_samples(config: str, frame: pd.DataFrame) -> np.ndarray:
    """ms per request outside the server's queue and busy time, from a co-load phase's per-request log
    (calibrate/fidelity_log.py): lateness + trip to the server + the reply's trip back (received − forward
    end − the reply's send, which the busy time carries). fifo1 / shared2: the requests that found a worker
    idle (for the others the trip hides in the queue wait); dynamic1: every request (its batcher's reader
    stamps the arrival). Empty where no request qualifies."""
    served = frame.dropna(subset=["service_start_ms", "service_end_ms", "server_arrival_ms"])
    late = served["sent_ms"] - served["scheduled_ms"]
    to_server = served["server_arrival_ms"] - served["sent_ms"]
    back = served["received_ms"] - served["service_end_ms"] - reply_send_ms(served)
    path = (late + to_server + back).to_numpy(dtype=float)
    keep = np.isfinite(path)
    if config != "dynamic1":
        keep &= found_idle(served)
    return np.maximum(path[keep], 0.0)
