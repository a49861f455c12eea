"""Batching policies: each decides, from the queue, how big a batch leaves now and when to stop waiting.

A policy holds no simulation state; the replica process owns all waiting (see sim/engine/model_stage.py) and
asks two questions: `batch_now(queued)` (send this many at once; 0 = not yet) and
`deadline_ms(oldest_ready_ms)` (when to send whatever is queued, or None to wait for more requests).
Adding a policy is one class here plus its entry in `BatchingPolicy`.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from sim.spec.bounds import MAX_BATCH_SIZE, BatchSize, Ms
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sim.spec.distributions import Distribution


class _Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @property
    def max_batch_size(self) -> int:
        raise NotImplementedError

    def batch_now(self, queued: int) -> int:
        raise NotImplementedError

    def deadline_ms(self, oldest_ready_ms: float) -> float | None:
        raise NotImplementedError


class NoBatching(_Policy):
    """One request per forward pass."""

    policy: Literal["none"]

    @property
    def max_batch_size(self) -> int:
        return 1

    def batch_now(self, queued: int) -> int:
        return 1 if queued else 0

    def deadline_ms(self, oldest_ready_ms: float) -> float | None:
        return oldest_ready_ms


class StaticBatching(_Policy):
    """Wait until exactly `batch_size` requests are queued; with `timeout_ms`, send a partial batch once the
    oldest has waited that long. Without a timeout the last requests of a lull wait for the next ones:
    that is the tail-latency risk static batching carries."""

    policy: Literal["static"]
    batch_size: BatchSize
    timeout_ms: Ms | None = None

    @property
    def max_batch_size(self) -> int:
        return self.batch_size

    def batch_now(self, queued: int) -> int:
        return self.batch_size if queued >= self.batch_size else 0

    def deadline_ms(self, oldest_ready_ms: float) -> float | None:
        return None if self.timeout_ms is None else oldest_ready_ms + self.timeout_ms


class DynamicBatching(_Policy):
    """NVIDIA Triton's dynamic batcher: a batch leaves at once when `max_batch_size` or one of the
    `preferred_batch_sizes` can be formed (the largest such); otherwise it leaves when the oldest request
    has waited `max_queue_delay_ms`, with whatever is queued (up to the max)."""

    policy: Literal["dynamic"]
    max_batch_size_: BatchSize = Field(alias="max_batch_size")
    max_queue_delay_ms: Ms = 0.0
    preferred_batch_sizes: tuple[BatchSize, ...] = Field(default=(), max_length=MAX_BATCH_SIZE)
    # How late a batch leaves after its delay ran out (a real batcher's timer and thread wake-up: Triton
    # measured ~0.4 ms at the median); drawn once per oldest request by the engine. None: on time.
    dispatch_overshoot_ms: Distribution | None = None

    @field_validator("preferred_batch_sizes")
    @classmethod
    def _sorted(cls, sizes: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(sorted(set(sizes)))

    @model_validator(mode="after")
    def _preferred_within_max(self) -> "DynamicBatching":
        too_big = [s for s in self.preferred_batch_sizes if s > self.max_batch_size_]
        if too_big:
            raise ValueError(f"preferred_batch_sizes {too_big} exceed max_batch_size {self.max_batch_size_}")
        return self

    @property
    def max_batch_size(self) -> int:
        return self.max_batch_size_

    def batch_now(self, queued: int) -> int:
        if queued >= self.max_batch_size_:
            return self.max_batch_size_
        formable = [size for size in self.preferred_batch_sizes if size <= queued]
        return formable[-1] if formable else 0

    def deadline_ms(self, oldest_ready_ms: float) -> float | None:
        return oldest_ready_ms + self.max_queue_delay_ms


BatchingPolicy = Annotated[Union[NoBatching, StaticBatching, DynamicBatching], Field(discriminator="policy")]
