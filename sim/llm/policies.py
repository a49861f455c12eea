"""LLM batching policies by name, for the scenario schema and the engine. Adding a policy is one
LLMScheduler subclass (sim/llm/scheduler.py) plus its entry here and in sim/llm/schema.py.

- `static`: FasterTransformer-style request-level batching (sim/llm/static.py);
- `continuous`: vLLM-style iteration-level scheduling with paged KV blocks, recompute preemption and
  optional chunked prefill (sim/llm/continuous.py).
"""

from __future__ import annotations

from sim.llm.continuous import ContinuousScheduler
from sim.llm.scheduler import ArrivalCursor, LLMScheduler, blocks_for
from sim.llm.static import StaticScheduler

SCHEDULERS: dict[str, type[LLMScheduler]] = {cls.policy: cls for cls in (StaticScheduler, ContinuousScheduler)}

__all__ = ["SCHEDULERS", "ArrivalCursor", "LLMScheduler", "blocks_for", "ContinuousScheduler", "StaticScheduler"]
