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
    "time_ms",
    "duration_ms",
    "replica",
    "batch_size",
    "running",
    "waiting",
    "kv_blocks_used",
    "prefill_tokens",
    "decode_tokens",
    "preempted",
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
        self,
        start_ms: float,
        durations_ms: list[float],
        ends_ms: list[float],
        replica: int,
        batch: int,
        kv_blocks: list[int],
    ) -> None:
        """A run of decode steps of one unchanged batch: no prefill, nobody waiting, no preemption."""
        self._fused.append((start_ms, durations_ms, ends_ms, replica, batch, kv_blocks))

    def iteration_frame(self) -> pd.DataFrame:
        parts = [pd.DataFrame.from_records(self.iterations, columns=ITERATION_COLUMNS)]
        if self._fused:
            lengths = np.array([len(d) for _, d, _, _, _, _ in self._fused])
            starts = np.fromiter(
                (t for t0, _, ends, _, _, _ in self._fused for t in (t0, *ends[:-1])),
                dtype=float,
                count=int(lengths.sum()),
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
        """(itl_ms, request) of every gap between consecutive tokens of a request, in request order.

        Vectorised: every segment's token times ([prefill end] + its decode-step end times) laid end to end,
        segments ordered by request then time; the gaps are the differences between neighbours of the same
        request (which also spans a preemption: from the last token before it to the re-prefill's token)."""
        if not self.seg_request:
            return np.empty(0), np.empty(0, dtype=np.int64)
        request = np.asarray(self.seg_request, dtype=np.int64)
        prefill_end = np.asarray(self.seg_prefill_end_ms, dtype=float)
        order = np.lexsort((prefill_end, request))
        request, prefill_end = request[order], prefill_end[order]
        replica = np.asarray(self.seg_replica, dtype=np.int64)[order]
        first = np.asarray(self.seg_first_step, dtype=np.int64)[order]
        steps = np.asarray(self.seg_steps, dtype=np.int64)[order]
        lengths = [len(times) for times in self.decode_end_ms]
        decode_end = (
            np.concatenate([np.asarray(times, dtype=float) for times in self.decode_end_ms])
            if sum(lengths)
            else np.empty(0)
        )
        replica_offset = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        sizes = steps + 1
        seg_start = np.concatenate(([0], np.cumsum(sizes)[:-1]))
        total = int(sizes.sum())
        times = np.empty(total)
        owner = np.repeat(request, sizes)
        times[seg_start] = prefill_end
        is_decode = np.ones(total, dtype=bool)
        is_decode[seg_start] = False
        # Position within its segment's decode run (0-based) for every decode token, then its step index.
        within = np.arange(total) - np.repeat(seg_start, sizes) - 1
        source = np.repeat(replica_offset[replica] + first, sizes) + within
        times[is_decode] = decode_end[source[is_decode]]
        same = owner[1:] == owner[:-1]
        return np.diff(times)[same], owner[1:][same]
