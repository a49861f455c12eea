"""Batch service times in dispatch order, bit-identical to one `cost.sample_ms(size, rng)` per batch.

Costs that are a per-size multiple of one draw from a bulk-safe distribution are drawn in chunks; a chunk
never exceeds the fewest batches still to come, so the generator ends where per-batch calls would have left
it. Other costs (measured profiles, empirical samples) are drawn one call per batch. Speed-ups (`SpedUp`)
are peeled off and divided in afterwards, in the order the nested costs divide.
"""

from __future__ import annotations

import numpy as np

from sim.spec.batch_cost import AffineCost, ScaledSingle, SpedUp
from sim.spec.distributions import Constant, Exponential, Gamma, Lognormal, Uniform

# numpy draws these one value after another from the bit stream, so a bulk draw of k equals k single draws.
_BULK_SAFE = (Constant, Exponential, Lognormal, Gamma, Uniform)


class ServiceDraws:
    """The service stream of one queue: `constant` (per batch size) for a cost that draws nothing, else
    base draws × `multiplier[size]` (bulk), else one `inner.sample_ms` per batch; then ÷ each divisor."""

    def __init__(self, cost, rng: np.random.Generator, max_batch: int) -> None:
        self.cost = cost
        self.rng = rng
        self.max_batch = max_batch
        self.divisors: list[float] = []
        inner = cost
        while isinstance(inner, SpedUp):
            self.divisors.insert(0, inner.speedup)
            inner = inner.inner
        self.inner = inner
        self.bulk = None  # (rng, k) -> k base draws
        self.constant: list[float] | None = None
        self.multiplier = [1.0] * (max_batch + 1)
        if isinstance(inner, ScaledSingle) and isinstance(inner.single, _BULK_SAFE):
            self.bulk = inner.single.sample
            self.multiplier = [inner._scale(size) for size in range(max_batch + 1)]
        elif isinstance(inner, AffineCost):
            spec = inner.spec
            if spec.cv == 0 or (spec.base_ms == 0 and spec.per_item_ms == 0):
                self.constant = [inner.mean_ms(size) for size in range(max_batch + 1)]
            else:
                shape = 1.0 / spec.cv**2
                # numpy's gamma(shape, scale) is scale × standard_gamma(shape), bit for bit.
                self.bulk = lambda rng, k: rng.standard_gamma(shape, size=k)
                self.multiplier = [inner.mean_ms(size) / shape for size in range(max_batch + 1)]

    def base(self, requests_left: int, size: int) -> list[float]:
        """The next base draws: as many as there are surely batches left (each holds at most max_batch), or
        for a cost drawn per batch, the next batch's (of `size`) before its speed-ups."""
        if self.bulk is None:
            return [self.inner.sample_ms(size, self.rng, 1)]
        k = max(1, -(-requests_left // self.max_batch))
        return self.bulk(self.rng, k).tolist()

    def singles(self, n: int) -> np.ndarray:
        """`n` batches of one, drawn in one go (the FCFS fast path)."""
        if self.constant is not None:
            values = np.full(n, self.constant[1])
        elif self.bulk is not None:
            values = self.bulk(self.rng, n) * self.multiplier[1]
        else:
            return np.array([self.cost.sample_ms(1, self.rng, 1) for _ in range(n)], dtype=float)
        for divisor in self.divisors:
            values = values / divisor
        return values
