"""Continuous (iteration-level) batching with a paged KV cache, as vLLM schedules it (vLLM v0 `Scheduler`):
admit waiting requests first come first served while sequences, the token budget and free KV blocks
allow; otherwise decode every running sequence; when a decode step lacks blocks, preempt the most recent
sequences by recompute. With `chunked_prefill`, every iteration decodes all running sequences and fills
the rest of the token budget with prefill chunks (Sarathi-Serve).

Decoding sequences are not touched per step: a sequence joining the decode set at replica step `s` with
KV length `p` has KV length `p + (S - s) + 1` during step `S` and finishes at a known step (a heap keyed by
step number delivers those); it needs a new block at every step `S >= s` with `S ≡ s - p (mod block_size)`,
so the blocks a step claims are the count of sequences of that phase (`due_by_phase`), with no per-step event.
"""

from __future__ import annotations

import heapq
from collections import deque

from sim.engine.llm.scheduler import MAX_STEPS_PER_EVENT, LLMScheduler, blocks_for, watermark_blocks
from sim.spec.llm_schema import ContinuousLLMBatching


class ContinuousScheduler(LLMScheduler):
    """vLLM-style continuous batching with paged KV blocks and preemption by recompute (see module doc)."""

    policy = "continuous"
    batching: ContinuousLLMBatching

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        n = len(self.prompt)
        self.bs = self.batching.block_size
        # Python ints: read once per request per iteration, where numpy scalars cost several times more.
        lists = self.token_lists or (self.prompt.tolist(), self.output.tolist(), self.cached.tolist())
        self.prompt_tokens, self.output_tokens, self.cached_tokens = lists
        self.scheduled: set[int] = set()  # requests scheduled once (their first_scheduled_ms is set)
        self.started: set[int] = set()  # requests whose first token is out
        self.free = self.num_blocks
        self.watermark = watermark_blocks(self.batching, self.num_blocks)
        self.step = 0  # decode steps done on this replica
        self.generated = [0] * n  # tokens emitted so far, per request
        self.kv_len = [0] * n  # KV length right after the last (re)prefill
        self.join_step = [0] * n
        self.phase = [0] * n  # the step number modulo block_size at which the sequence claims a block
        self.due_by_phase = [0] * self.bs  # sequences of the decode set per phase
        self.epoch = [0] * n
        self.prefill_end_ms = [0.0] * n
        self.running: set[int] = set()  # sequences in the decode set
        self.base_sum = 0  # Σ (kv_len - join_step + 1) over the decode set: Σ context = base_sum + n·step
        self.base_sq_sum = 0  # Σ of its squares (KV-off recompute cost)
        self.finish_heap: list[tuple[int, int, int]] = []  # (last step, epoch, request)
        self.prefilling: deque[list[int]] = deque()  # [request, tokens left to compute, kv length] (chunked)
        self._chunks: list[tuple[list[int], int]] = []  # this iteration's prefill work: ([request, left, kv], take)
        self._decoding = 0
        self._preempted = 0
        self._now = 0.0
        self._rows = self.ledger.iterations

    # -- bookkeeping -----------------------------------------------------------------------------------

    def has_work(self) -> bool:
        return bool(self.waiting or self.running or self.prefilling)

    def outstanding(self) -> int:
        return len(self.waiting) + len(self.running) + len(self.prefilling)

    def _join_decode(self, request: int, now_ms: float) -> None:
        """After a (re)prefill emitted a token: finish, or join the decode set from the next step."""
        ledger = self.ledger
        if request not in self.started:
            self.started.add(request)
            ledger.first_token_ms[request] = now_ms
        self.generated[request] += 1
        left = self.output_tokens[request] - self.generated[request]
        if left == 0:
            ledger.last_token_ms[request] = now_ms
            ledger.segment(request, self.replica, now_ms, self.step, 0)
            self.free += blocks_for(self.kv_len[request], self.bs)
            return
        s, kv = self.step, self.kv_len[request]
        self.join_step[request] = s
        self.prefill_end_ms[request] = now_ms
        self.running.add(request)
        base = kv - s + 1
        self.base_sum += base
        self.base_sq_sum += base * base
        epoch = self.epoch[request]
        heapq.heappush(self.finish_heap, (s + left - 1, epoch, request))
        phase = (s - kv) % self.bs
        self.phase[request] = phase
        self.due_by_phase[phase] += 1

    def _leave_decode(self, request: int) -> int:
        """Remove from the decode set; return the decode steps it did since joining."""
        self.running.discard(request)
        self.epoch[request] += 1
        base = self.kv_len[request] - self.join_step[request] + 1
        self.base_sum -= base
        self.base_sq_sum -= base * base
        self.due_by_phase[self.phase[request]] -= 1
        return self.step - self.join_step[request]

    def _preempt(self, request: int) -> None:
        """Recompute preemption: free all blocks, keep the tokens already streamed, requeue at the front."""
        steps = self._leave_decode(request)
        self.free += blocks_for(self.kv_len[request] + steps, self.bs)
        self.generated[request] += steps
        self.ledger.segment(request, self.replica, self.prefill_end_ms[request], self.join_step[request], steps)
        self.ledger.preemptions[request] += 1

    def _admit(self, request: int, budget: int, chunked: bool) -> int | None:
        """Allocate blocks for the (re)prefill of the waiting head; the tokens it computes now, or None."""
        kv = self.prompt_tokens[request] + self.generated[request]
        need = blocks_for(kv, self.bs)
        if self.free - need < self.watermark:
            return None
        compute = kv - self.cached_tokens[request]
        if chunked:
            compute = min(compute, budget)
        elif self._chunks and compute > budget:
            return None  # only a recomputed (preempted) sequence can exceed the budget: it runs alone
        self.waiting.popleft()
        self.free -= need
        self.kv_len[request] = kv
        if request not in self.scheduled:
            self.scheduled.add(request)
            self.ledger.first_scheduled_ms[request] = self._now
            self.ledger.replica[request] = self.replica
        return compute

    # -- one iteration ---------------------------------------------------------------------------------

    def plan(self, now_ms: float) -> float | None:
        self._now = now_ms
        self._chunks = []
        self._decoding = 0
        self._preempted = 0
        self._fused = 0
        b = self.batching
        if self.fuse_quiet_steps and self.running and not self.waiting and not self.prefilling and self.kv_cache:
            fused = self._plan_quiet_decode(now_ms)
            if fused is not None:
                return fused
        if b.chunked_prefill:
            self._reserve_decode_blocks()
            self._decoding = len(self.running)
            budget = b.max_num_batched_tokens - self._decoding
            for item in self.prefilling:
                if budget <= 0:
                    break
                take = min(item[1], budget)
                self._chunks.append((item, take))
                budget -= take
            seqs = len(self.running) + len(self.prefilling)
            while self.waiting and budget > 0 and seqs < b.max_num_seqs:
                request = self.waiting[0]
                take = self._admit(request, budget, chunked=True)
                if take is None:
                    break
                item = [request, self.kv_len[request] - self.cached_tokens[request], self.kv_len[request]]
                self.prefilling.append(item)
                self._chunks.append((item, take))
                budget -= take
                seqs += 1
        else:
            budget = b.max_num_batched_tokens
            seqs = len(self.running)
            while self.waiting and seqs < b.max_num_seqs:
                request = self.waiting[0]
                take = self._admit(request, budget, chunked=False)
                if take is None:
                    break
                self._chunks.append(([request, take, self.kv_len[request]], take))
                budget -= take
                seqs += 1
            if not self._chunks:
                self._reserve_decode_blocks()
                self._decoding = len(self.running)
        return self._duration()

    def _plan_quiet_decode(self, now_ms: float) -> float | None:
        """Decode steps during which nothing can change — no request arrives for this replica, none
        finishes before the last of them, no block can run short — fused into one timeout and one record.
        The result is the same as one event per step (each step is still logged and timed): only the
        event count drops."""
        heap, epoch = self.finish_heap, self.epoch
        while heap and heap[0][1] != epoch[heap[0][2]]:
            heapq.heappop(heap)
        s, n, free = self.step, len(self.running), self.free
        if free < 2 * n:
            return None
        # Until the first sequence finishes; each sequence needs at most one new block per block_size steps
        # (plus one at the first step).
        steps = min(heap[0][0] - s + 1, MAX_STEPS_PER_EVENT, (free // n - 1) * self.bs)
        if steps <= 1:
            return None
        context0 = self.base_sum + n * s
        base_ms = self.cost.decode_step_ms(n, 0)
        ends = decode_run_ends(now_ms, steps, base_ms, self.cost.kv_ms_per_token, context0, n, self.arrivals.next_ms())
        steps = len(ends)
        if steps <= 1:
            return None
        used = self.num_blocks - self.free
        bs = self.bs
        phase = s % bs
        due = (*self.due_by_phase[phase:], *self.due_by_phase[:phase])  # from this step's phase on
        self.free -= (steps // bs) * n + sum(due[: steps % bs])
        self.ledger.fused_run(self.replica, now_ms, ends, base_ms, context0, n, used, due)
        self._fused = steps
        self._fused_ends = ends
        self._decoding = n
        return ends[-1] - now_ms

    def _duration(self) -> float:
        """Cost of the composed iteration: prefill chunks (new tokens × their context for attention) and
        the decode step of the decode set, KV cache on or off."""
        n = self._decoding
        context = self.base_sum + n * self.step
        if not self._chunks and self.kv_cache:
            return self._log(self.cost.decode_step_ms(n, context), n, 0)
        tokens = pairs = 0
        for (request, left, kv), take in self._chunks:
            tokens += take
            pairs += take * (kv - left + take)  # context at the end of the chunk
        seqs = len(self._chunks)
        if self.kv_cache or n == 0:
            duration = self.cost.mixed_ms(tokens, pairs, seqs, n, context)
        else:
            s = self.step
            squares = self.base_sq_sum + 2 * s * self.base_sum + n * s * s
            duration = self.cost.recompute_step_ms(n, context, squares)
            if seqs:
                duration = max(duration, self.cost.prefill_parts_ms(tokens, pairs, seqs))
        return self._log(duration, n, tokens)

    def _log(self, duration_ms: float, decoding: int, prefill_tokens: int) -> float:
        chunks = len(self._chunks)
        resident = len(self.running) + len(self.prefilling) + (0 if self.batching.chunked_prefill else chunks)
        self._rows.append(
            (
                self._now,
                duration_ms,
                self.replica,
                decoding + chunks,
                resident,
                len(self.waiting),
                self.num_blocks - self.free,
                prefill_tokens,
                decoding,
                self._preempted,
            )
        )
        return duration_ms

    def _reserve_decode_blocks(self) -> None:
        """Blocks for this decode step's new tokens; preempt the most recent sequences while they lack."""
        phase = self.step % self.bs
        due_by_phase, running = self.due_by_phase, self.running
        while due_by_phase[phase] > self.free:
            victim = max(running, key=self._rank)
            self._preempt(victim)  # leaves its phase
            self._preempted += 1
            self.waiting.appendleft(victim)
        self.free -= due_by_phase[phase]

    def _rank(self, request: int) -> tuple[float, int]:
        return (self.ready_ms[request], request)

    def finish(self, now_ms: float) -> None:
        ledger = self.ledger
        if self._fused:
            now_ms = self._fused_ends[-1]
            done_step = self.step + self._fused - 1
            self.step += self._fused
        elif self._decoding:
            ledger.decode_end_ms[self.replica].append(now_ms)
            done_step = self.step
            self.step += 1
        if self._decoding:
            heap, epoch = self.finish_heap, self.epoch
            while heap and heap[0][0] <= done_step:
                _, e, request = heapq.heappop(heap)
                if e != epoch[request]:
                    continue
                steps = self._leave_decode(request)
                ledger.last_token_ms[request] = now_ms
                ledger.segment(request, self.replica, self.prefill_end_ms[request], self.join_step[request], steps)
                self.free += blocks_for(self.kv_len[request] + steps, self.bs)
        if not self._chunks:
            return
        if self.batching.chunked_prefill:
            for item, take in self._chunks:
                item[1] -= take
            if any(item[1] == 0 for item, _ in self._chunks):  # only this iteration's chunks can complete
                done = [item for item in self.prefilling if item[1] == 0]
                self.prefilling = deque(item for item in self.prefilling if item[1] > 0)
                for item in done:
                    self._join_decode(item[0], now_ms)
        else:
            for (request, _, _), _ in self._chunks:
                self._join_decode(request, now_ms)


def decode_run_ends(
    start_ms: float, steps: int, base_ms: float, kv_ms_per_token: float, context0: int, batch: int, stop_ms: float
) -> list[float]:
    """End times of up to `steps` decode steps of one batch from `start_ms`, step j costing `base_ms +
    kv_ms_per_token × (context0 + batch × j)`, stopping after the first that ends at or after `stop_ms`.

    Summed one step after the other, as one event per step would, so that every token time has the same
    bits. (Solving for the stop in closed form first — the ends are a quadratic in the step count — was
    measured slower: the sums up to the stop are needed anyway, and the loop stops there.)"""
    ends: list[float] = []
    end_ms = start_ms
    for j in range(steps):
        end_ms += base_ms + kv_ms_per_token * (context0 + batch * j)
        ends.append(end_ms)
        if end_ms >= stop_ms:
            break
    return ends
