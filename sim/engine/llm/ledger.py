"""What an LLM stage run records: per-request times, per-request token segments, and one row per iteration.

Schedulers write here; nothing is summarised here. A request's tokens come in *segments*: a (re)prefill
that emits one token at `prefill_end_ms`, followed by `steps` decode steps of its replica, numbered from
`first_step` in that replica's list of decode-step end times. Token times (and so ITL) are rebuilt from
segments after the run, so the engine never does per-token work.
"""

from __future__ import annotations

from array import array
from typing import NamedTuple

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


class FusedRun(NamedTuple):
    """A run of decode steps of one unchanged batch (no prefill, nobody waiting, no preemption). Step j of
    the run (0-based) costs `base_ms + kv_ms_per_token × (context0 + batch × j)` (the decode cost with the
    KV growing by one token per sequence and step); its end time is kept in the replica's list of
    decode-step ends from index `first`; its blocks in use are `blocks0` plus those claimed up to it: the
    ledger's `fused_dues` holds, per run, block_size counts: the k-th is how many sequences claim a block at
    each step whose number modulo the block size is the run's first step's + k."""

    replica: int
    first: int
    steps: int
    start_ms: float
    base_ms: float
    context0: int
    batch: int
    blocks0: int


class Ledger:
    """Per-request records (arrays indexed by request) plus the iteration timeline (rows, and fused runs)."""

    def __init__(self, n: int, replicas: int, kv_ms_per_token: float = 0.0) -> None:
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
        # Typed arrays (C doubles): appended to one by one, read by numpy without a copy.
        self.decode_end_ms: list[array] = [array("d") for _ in range(replicas)]
        self.iterations: list[tuple] = []  # one tuple per iteration, fields as ITERATION_COLUMNS
        self.kv_ms_per_token = kv_ms_per_token
        self.iteration_blocks: list[list[np.ndarray]] = []  # many iterations at once: ITERATION_COLUMNS arrays
        self.fused: list[tuple] = []  # FusedRun fields (plain tuples: made by the thousand)
        self.fused_dues = array("q")  # block_size counts per fused run (see FusedRun)

    def segment(self, request: int, replica: int, prefill_end_ms: float, first_step: int, steps: int) -> None:
        self.seg_request.append(request)
        self.seg_replica.append(replica)
        self.seg_prefill_end_ms.append(prefill_end_ms)
        self.seg_first_step.append(first_step)
        self.seg_steps.append(steps)

    def fused_run(
        self,
        replica: int,
        start_ms: float,
        ends_ms: list[float],
        base_ms: float,
        context0: int,
        batch: int,
        blocks0: int,
        due_by_phase: tuple[int, ...],
    ) -> None:
        """Record a run of decode steps (see FusedRun) whose end times are `ends_ms`."""
        ends = self.decode_end_ms[replica]
        self.fused.append((replica, len(ends), len(ends_ms), start_ms, base_ms, context0, batch, blocks0))
        self.fused_dues.extend(due_by_phase)
        ends.extend(ends_ms)

    def iteration_frame(self, *, release: bool = False) -> pd.DataFrame:
        """One row per iteration (ITERATION_COLUMNS), in time order (then replica); `release`: the records it
        is made from are let go as it is made (the ledger has no iterations left)."""
        if not self.iterations:  # nothing ran (no fused run without an iteration before it)
            frame = pd.DataFrame.from_records(self.iterations, columns=ITERATION_COLUMNS)
            return frame.astype({c: np.int64 for c in ITERATION_COLUMNS if c not in ("time_ms", "duration_ms")})
        # A column of Python numbers becomes int64 if all are ints (a clock still at SimPy's int 0), else float64.
        rows = [np.array(column) for column in zip(*self.iterations)]
        kinds = [[part.dtype for part in column] for column in zip(rows, *self.iteration_blocks)]
        total = len(self.iterations) + sum(len(block[0]) for block in self.iteration_blocks)
        if self.fused:
            kinds = [
                [*column, np.dtype(float if name.endswith("_ms") else np.int64)]
                for column, name in zip(kinds, ITERATION_COLUMNS)
            ]
            total += sum(run[2] for run in self.fused)
        # The frame's columns first, the runs' temporaries above them: what those leave behind is one piece.
        frame = {name: np.empty(total, np.result_type(*column)) for name, column in zip(ITERATION_COLUMNS, kinds)}
        blocks = self.iteration_blocks + ([self._fused_columns()] if self.fused else [])
        for name, *parts in zip(ITERATION_COLUMNS, rows, *blocks):
            np.concatenate(parts, out=frame[name])
        del rows, blocks
        if release:
            self.iterations, self.iteration_blocks, self.fused, self.fused_dues = [], [], [], array("q")
        order = np.lexsort((frame["replica"], frame["time_ms"]))  # stable: by time_ms, then replica
        for column in frame.values():
            column[:] = column[order]
        return pd.DataFrame(frame, copy=False)

    def _fused_columns(self) -> list[np.ndarray]:
        """ITERATION_COLUMNS of every step of every fused run, computed as the engine would have step by step
        (the same float operations, so the same bits)."""
        runs = FusedRun(*zip(*self.fused))  # columns
        steps = np.asarray(runs.steps, dtype=np.int64)

        def each(values, dtype=None) -> np.ndarray:  # a value per run, repeated over the run's steps
            return np.repeat(np.asarray(values, dtype=dtype), steps)

        offsets = np.concatenate(([0], np.cumsum(steps)[:-1]))
        j = np.arange(int(steps.sum())) - each(offsets)  # step within its run
        batch = each(runs.batch, np.int64)
        durations = each(runs.base_ms) + self.kv_ms_per_token * (each(runs.context0, np.int64) + batch * j)
        ends = self._all_decode_ends()
        first = self._replica_offsets()[np.asarray(runs.replica)] + np.asarray(runs.first, dtype=np.int64)
        starts = ends[each(first) + j - 1]
        starts[offsets] = runs.start_ms
        bs = len(self.fused_dues) // len(steps)
        dues = np.frombuffer(self.fused_dues, dtype=np.int64)[each(np.arange(len(steps)) * bs) + j % bs]
        claimed = np.cumsum(dues)
        claimed -= each(claimed[offsets] - dues[offsets])  # within its run, up to and including the step
        zeros = np.zeros(len(j), dtype=np.int64)
        replica = each(runs.replica, np.int64)
        blocks = each(runs.blocks0, np.int64) + claimed
        # time_ms, duration_ms, replica, batch_size, running, waiting, kv_blocks_used, prefill, decode, preempted
        return [starts, durations, replica, batch, batch, zeros, blocks, zeros, batch, zeros]

    def _all_decode_ends(self) -> np.ndarray:
        """Every replica's decode-step end times, laid end to end in replica order."""
        if not any(self.decode_end_ms):
            return np.empty(0)
        return np.concatenate([np.frombuffer(times, dtype=float) for times in self.decode_end_ms])

    def _replica_offsets(self) -> np.ndarray:
        lengths = [len(times) for times in self.decode_end_ms]
        return np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)

    def token_gaps(self) -> tuple[np.ndarray, np.ndarray]:
        """(itl_ms, counts): every gap between consecutive tokens of a request, in request order, and how many
        gaps each request has (not a request per gap: millions of gaps).

        Segments ordered by request then time; each gives the gap from its request's previous token (the
        last before a preemption) to its prefill's token, then to its first decode step's end, then the
        gaps between its decode steps — slices of its replica's step-to-step gaps, never copied one by one.
        Each gap is the same subtraction of two token times as a difference of the token times laid end to
        end would be."""
        counts = np.zeros(len(self.rejected), dtype=np.int64)
        if not self.seg_request:
            return np.empty(0), counts
        request = np.asarray(self.seg_request, dtype=np.int64)
        prefill_end = np.asarray(self.seg_prefill_end_ms, dtype=float)
        order = np.lexsort((prefill_end, request))
        request, prefill_end = request[order], prefill_end[order]
        steps = np.asarray(self.seg_steps, dtype=np.int64)[order]
        ends = self._all_decode_ends()
        first = (self._replica_offsets()[np.asarray(self.seg_replica, dtype=np.int64)] + self.seg_first_step)[order]
        decodes = steps > 0
        last_token_ms = prefill_end.copy()
        last_token_ms[decodes] = ends[first[decodes] + steps[decodes] - 1]
        to_first_decode = np.zeros(len(request))
        to_first_decode[decodes] = ends[first[decodes]] - prefill_end[decodes]
        resumes = np.zeros(len(request), dtype=bool)  # a segment after a preemption of the same request
        resumes[1:] = request[1:] == request[:-1]
        from_before = np.zeros(len(request))
        from_before[1:] = prefill_end[1:] - last_token_ms[:-1]
        step_gaps = np.diff(ends)  # step_gaps[k - 1]: end of step k minus end of step k - 1
        itl_ms = np.empty(int(steps.sum() + resumes.sum()))
        at = 0
        segments = zip(first.tolist(), steps.tolist(), resumes.tolist(), from_before.tolist(), to_first_decode.tolist())
        for k, count, resumed, before_ms, first_ms in segments:
            if resumed:
                itl_ms[at] = before_ms
                at += 1
            if count:
                itl_ms[at] = first_ms
                itl_ms[at + 1 : at + count] = step_gaps[k : k + count - 1]
                at += count
        np.add.at(counts, request, steps + resumes)
        return itl_ms, counts
