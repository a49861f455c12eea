"""Static (request-level) batching of LLM requests, as FasterTransformer serves them (Orca, OSDI '22, §2)."""

from __future__ import annotations

import numpy as np

from sim.engine.llm.scheduler import LLMScheduler
from sim.spec.llm_schema import StaticLLMBatching


class StaticScheduler(LLMScheduler):
    """FasterTransformer request-level batching. Tokens stream as they are generated (first token at the
    end of the batch's prefill), but the batch holds its slots — and pays decode steps for its full size —
    until the longest request is done; the replica takes no new request meanwhile."""

    policy = "static"
    batching: StaticLLMBatching

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.in_batch = 0
        self.step = 0

    def has_work(self) -> bool:
        return bool(self.waiting)

    def outstanding(self) -> int:
        return len(self.waiting) + self.in_batch

    def plan(self, now_ms: float) -> float | None:
        size, timeout = self.batching.batch_size, self.batching.timeout_ms
        oldest_deadline = self.ready_ms[self.waiting[0]] + timeout
        if len(self.waiting) < size and timeout > 0 and now_ms < oldest_deadline:
            self.wait_until_ms = oldest_deadline
            return None
        batch = np.array([self.waiting.popleft() for _ in range(min(size, len(self.waiting)))])
        b = len(batch)
        prompt, output, cached = self.prompt[batch], self.output[batch], self.cached[batch]
        new = prompt - cached
        prefill_ms = self.cost.prefill_parts_ms(float(new.sum()), float((new * prompt).sum()), b)
        longest = int(output.max())
        k = np.arange(1, longest)  # decode step k: every padded sequence holds prompt + k tokens of KV
        context = np.add.outer(k, prompt)  # (steps, b)
        if self.kv_cache:
            step_ms = self.cost.decode_steps_ms(b, context.sum(axis=1))
        else:
            step_ms = np.array(
                [self.cost.recompute_step_ms(b, float(c.sum()), float((c * c).sum())) for c in context.astype(float)]
            )
        start_decode_ms = now_ms + prefill_ms
        step_end_ms = start_decode_ms + np.cumsum(step_ms)
        ledger, first_step = self.ledger, self.step
        ledger.first_scheduled_ms[batch] = now_ms
        ledger.first_token_ms[batch] = start_decode_ms
        last_ms = np.full(b, start_decode_ms)
        streams = output > 1
        last_ms[streams] = step_end_ms[output[streams] - 2]
        ledger.last_token_ms[batch] = last_ms
        ledger.replica[batch] = self.replica
        ledger.decode_end_ms[self.replica].extend(step_end_ms.tolist())
        for request, out in zip(batch.tolist(), output.tolist()):
            ledger.segment(request, self.replica, start_decode_ms, first_step, out - 1)
        self.step += len(step_ms)
        blocks = (-(-context // self.batching.block_size)).sum(axis=1)
        prompt_blocks = int((-(-prompt // self.batching.block_size)).sum())
        generating = (output[None, :] - 1 >= k[:, None]).sum(axis=1)  # padded slots produce no token
        self._record(now_ms, prefill_ms, step_ms, b, int(new.sum()), prompt_blocks, blocks, generating)
        self.in_batch = b
        return prefill_ms + float(step_ms.sum())

    def _record(self, now_ms, prefill_ms, step_ms, b, prefill_tokens, prompt_blocks, blocks, generating) -> None:
        """The prefill row, then the batch's decode steps as one block of columns (ITERATION_COLUMNS)."""
        steps = len(step_ms)
        rep, waiting = self.replica, len(self.waiting)
        self.ledger.iterations.append((now_ms, prefill_ms, rep, b, b, waiting, prompt_blocks, prefill_tokens, 0, 0))
        if not steps:
            return
        starts = now_ms + prefill_ms + np.concatenate([[0.0], np.cumsum(step_ms)[:-1]])
        batch, zeros = np.full(steps, b, dtype=np.int64), np.zeros(steps, dtype=np.int64)
        replica, queued = np.full(steps, rep, dtype=np.int64), np.full(steps, waiting, dtype=np.int64)
        self.ledger.iteration_blocks.append(
            [starts, step_ms, replica, batch, batch, queued, blocks, zeros, generating.astype(np.int64), zeros]
        )

    def finish(self, now_ms: float) -> None:
        self.in_batch = 0
