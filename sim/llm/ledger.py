"""What an LLM stage run records: per-request times, per-request token segments, and one row per iteration.

Schedulers write here; nothing is summarised here. A request's tokens come in *segments*: a (re)prefill
that emits one token at `prefill_end_ms`, followed by `steps` decode steps of its replica, numbered from
`first_step` in that replica's list of decode-step end times. Token times (and so ITL) are rebuilt from
segments after the run, so the engine never does per-token work.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ITERATION_COLUMNS = (
    "time_ms", "duration_ms", "replica", "batch_size", "running", "waiting",
    "kv_blocks_used", "prefill_tokens", "decode_tokens", "preempted",
)


class Ledger:
    """Per-request records (arrays indexed by request) plus the iteration timeline (lists of columns)."""

    def __init__(self, n: int, replicas: int) -> None:
        self.first_scheduled_ms = np.full(n, np.nan)
        self.first_token_ms = np.full(n, np.nan)
        self.last_token_ms = np.full(n, np.nan)
        self.replica = np.full(n, -1, dtype=np.int64)
        self.preemptions = np.zeros(n, dtype=np.int64)
        self.rejected = np.zeros(n, dtype=bool)
        self.seg_request: list[int] = []
        self.seg_replica: list[int] = []
        self.seg_prefill_end_ms: list[float] = []
        self.seg_first_step: list[int] = []
        self.seg_steps: list[int] = []
        self.decode_end_ms: list[list[float]] = [[] for _ in range(replicas)]
        self.iterations: list[tuple] = []  # one tuple per iteration, fields as ITERATION_COLUMNS
        self._fused: list[tuple] = []  # runs of decode steps logged at once (see fused_iterations)

    def segment(self, request: int, replica: int, prefill_end_ms: float, first_step: int, steps: int) -> None:
        self.seg_request.append(request)
        self.seg_replica.append(replica)
        self.seg_prefill_end_ms.append(prefill_end_ms)
        self.seg_first_step.append(first_step)
        self.seg_steps.append(steps)

    def fused_iterations(
        self, start_ms: float, durations_ms: list[float], ends_ms: list[float], replica: int, batch: int, kv_blocks: list[int]
    ) -> None:
        """A run of decode steps of one unchanged batch: no prefill, nobody waiting, no preemption."""
        self._fused.append((start_ms, durations_ms, ends_ms, replica, batch, kv_blocks))

    def iteration_frame(self) -> pd.DataFrame:
        parts = [pd.DataFrame.from_records(self.iterations, columns=ITERATION_COLUMNS)]
        if self._fused:
            lengths = np.array([len(d) for _, d, _, _, _, _ in self._fused])
            starts = np.fromiter(
                (t for t0, _, ends, _, _, _ in self._fused for t in (t0, *ends[:-1])), dtype=float, count=int(lengths.sum())
            )
            batch = np.repeat([b for *_, b, _ in self._fused], lengths)
            zeros = np.zeros(len(starts), dtype=np.int64)
            parts.append(
                pd.DataFrame(
                    {
                        "time_ms": starts,
                        "duration_ms": np.fromiter((x for _, d, _, _, _, _ in self._fused for x in d), dtype=float),
                        "replica": np.repeat([r for _, _, _, r, _, _ in self._fused], lengths),
                        "batch_size": batch,
                        "running": batch,
                        "waiting": zeros,
                        "kv_blocks_used": np.fromiter((x for *_, kv in self._fused for x in kv), dtype=np.int64),
                        "prefill_tokens": zeros,
                        "decode_tokens": batch,
                        "preempted": zeros,
                    }
                )
            )
        frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
        frame = frame.astype({c: np.int64 for c in ITERATION_COLUMNS if c not in ("time_ms", "duration_ms")})
        return frame.sort_values(["time_ms", "replica"], kind="stable", ignore_index=True)

    def token_gaps(self) -> tuple[np.ndarray, np.ndarray]:
        """(itl_ms, request) of every gap between consecutive tokens of a request, in request order."""
        order = np.lexsort((np.asarray(self.seg_prefill_end_ms), np.asarray(self.seg_request)))
        decode_end = [np.asarray(times) for times in self.decode_end_ms]
        gaps: list[np.ndarray] = []
        owners: list[np.ndarray] = []
        previous_request, previous_ms = -1, 0.0
        for k in order:
            request = self.seg_request[k]
            first, steps = self.seg_first_step[k], self.seg_steps[k]
            times = np.empty(steps + 1)
            times[0] = self.seg_prefill_end_ms[k]
            times[1:] = decode_end[self.seg_replica[k]][first : first + steps]
            if request == previous_request:
                gaps.append(np.array([times[0] - previous_ms]))
                owners.append(np.array([request]))
            gaps.append(np.diff(times))
            owners.append(np.full(steps, request))
            previous_request, previous_ms = request, times[-1]
        if not gaps:
            return np.empty(0), np.empty(0, dtype=np.int64)
        return np.concatenate(gaps), np.concatenate(owners).astype(np.int64)
