"""LLM batching policies by name, for the scenario schema and the engine. Adding a policy is one
LLMScheduler subclass (sim/engine/llm/scheduler.py) plus its entry here and in sim/spec/llm_schema.py.

- `static`: FasterTransformer-style request-level batching (sim/engine/llm/static.py);
- `continuous`: vLLM-style iteration-level scheduling with paged KV blocks, recompute preemption and
  optional chunked prefill (sim/engine/llm/continuous.py).
"""

from __future__ import annotations

from tests.llm_oracle.continuous import ContinuousScheduler
from tests.llm_oracle.scheduler import ArrivalCursor, LLMScheduler, blocks_for
from tests.llm_oracle.static import StaticScheduler

SCHEDULERS: dict[str, type[LLMScheduler]] = {cls.policy: cls for cls in (StaticScheduler, ContinuousScheduler)}

__all__ = ["SCHEDULERS", "ArrivalCursor", "LLMScheduler", "blocks_for", "ContinuousScheduler", "StaticScheduler"]
