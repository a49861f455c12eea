"""Batching policies: each decides, from the queue, how big a batch leaves now and when to stop waiting.

A policy holds no simulation state. It yields its `BatchRule` (`policy.rule()`): the batch to send at once
for each queue length (0 = not yet), the largest batch, and how long the oldest request may wait (None:
until the batch fills or traffic ends). Every engine path reads that one rule: the SimPy model stage (the
oracle, sim/engine/model_stage.py), the fleet walk and its compiled twin (sim/engine/queue_walk.py,
sim/engine/fleet_kernel.py). Adding a policy is one class here (its `rule`) plus its entry in
`BatchingPolicy`; no engine tells policies apart by type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, Union

from sim.spec.bounds import MAX_BATCH_SIZE, BatchSize, Ms
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sim.spec.distributions import Distribution


@dataclass(frozen=True)
class BatchRule:
    """When a batch leaves and what is in it, as every engine path reads it.

    `now_sizes[m]`: the batch sent at once with m < `max_batch_size` requests queued (0: keep waiting); with
    `max_batch_size` or more queued, a full batch leaves. `delay_ms`: once the oldest queued request has
    waited this long, whatever is queued leaves (None: it waits for a batch that can leave at once, or for
    the end of traffic, which flushes every queue)."""

    max_batch_size: int
    now_sizes: tuple[int, ...]
    delay_ms: float | None
    sizes: tuple[int, ...] = ()  # the batch sizes it sends under sustained load (what offered load is costed at)

    def batch_now(self, queued: int) -> int:
        """The batch to send at once with `queued` requests waiting (0: not yet)."""
        return self.max_batch_size if queued >= self.max_batch_size else self.now_sizes[queued]

    def deadline_ms(self, oldest_ready_ms: float) -> float | None:
        """When the oldest request's wait runs out (None: never)."""
        return None if self.delay_ms is None else oldest_ready_ms + self.delay_ms

    @property
    def trigger(self) -> int:
        """The fewest queued requests that send a batch at once."""
        return next((m for m in range(1, self.max_batch_size) if self.now_sizes[m]), self.max_batch_size)


class _Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @property
    def max_batch_size(self) -> int:
        raise NotImplementedError

    def batch_now(self, queued: int) -> int:
        raise NotImplementedError

    @property
    def delay_ms(self) -> float | None:
        """How long the oldest request may wait before a partial batch leaves (None: no limit)."""
        raise NotImplementedError

    @property
    def sizes(self) -> tuple[int, ...]:
        """The batch sizes it sends under sustained load: any up to the max, unless it says otherwise."""
        return tuple(range(1, self.max_batch_size + 1))

    def deadline_ms(self, oldest_ready_ms: float) -> float | None:
        return self.rule().deadline_ms(oldest_ready_ms)

    def rule(self) -> BatchRule:
        """The policy as the engines read it (sizes allowed now, the deadline)."""
        return _rule(self)


class NoBatching(_Policy):
    """One request per forward pass."""

    policy: Literal["none"]

    @property
    def max_batch_size(self) -> int:
        return 1

    def batch_now(self, queued: int) -> int:
        return 1 if queued else 0

    @property
    def delay_ms(self) -> float | None:
        return 0.0


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

    @property
    def delay_ms(self) -> float | None:
        return self.timeout_ms

    @property
    def sizes(self) -> tuple[int, ...]:
        return (self.batch_size,)  # a partial batch only on a lull's timeout


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

    @property
    def delay_ms(self) -> float | None:
        return self.max_queue_delay_ms


_RULES: dict = {}


def _rule(policy: _Policy) -> BatchRule:
    """The rule of a (frozen, hashable) policy, built once."""
    try:
        rule = _RULES.get(policy)
    except TypeError:  # a field that cannot be hashed (e.g. a list of samples): build it afresh
        return _build_rule(policy)
    if rule is None:
        rule = _build_rule(policy)
        if len(_RULES) > 4096:
            _RULES.clear()
        _RULES[policy] = rule
    return rule


def _build_rule(policy: _Policy) -> BatchRule:
    largest = policy.max_batch_size
    return BatchRule(largest, tuple(policy.batch_now(m) for m in range(largest)), policy.delay_ms, policy.sizes)


BatchingPolicy = Annotated[Union[NoBatching, StaticBatching, DynamicBatching], Field(discriminator="policy")]
