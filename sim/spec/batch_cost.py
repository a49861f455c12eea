"""What a forward pass of a batch costs: a scaled single-request distribution, an affine batch cost, or a
measured model profile (models/NAME.yaml, see sim/spec/profile.py). All answer the same two questions."""

from __future__ import annotations

from typing import Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict

from sim.spec.bounds import Cv, Ms
from sim.spec.distributions import Distribution


class BatchCost(Protocol):
    """Service time of one batch, in ms, for `batch_size` requests with `busy_instances` running on the
    replica (co-located instances interfere; costs that ignore it take the argument and drop it), starting
    at `now_ms` (only costs with `depends_on_time`, such as regime slowdowns, use it). `for_run` gives
    the cost a run should use: itself, or a copy with fresh state (sim/spec/correlated.py)."""

    depends_on_busy_instances: bool
    depends_on_time: bool

    def for_run(self) -> "BatchCost": ...

    def mean_ms(self, batch_size: int, busy_instances: int = 1) -> float: ...

    def sample_ms(
        self, batch_size: int, rng: np.random.Generator, busy_instances: int = 1, now_ms: float = 0.0
    ) -> float: ...

    def sample_many_ms(self, batch_size: int, rng: np.random.Generator, n: int) -> np.ndarray: ...


class _Stateless:
    """Costs without state over a run: every run uses the same object."""

    depends_on_time = False

    def for_run(self):
        return self


class ScaledSingle(_Stateless):
    """A batch of n costs one draw of the single-request time × (1 + per_item × (n − 1)): per_item 1 means
    no batching gain, 0 means a batch costs the same as one request."""

    depends_on_busy_instances = False

    def __init__(self, single: Distribution, per_item: float) -> None:
        self.single = single
        self.per_item = per_item

    def _scale(self, batch_size: int) -> float:
        return 1.0 + self.per_item * (batch_size - 1)

    def mean_ms(self, batch_size: int, busy_instances: int = 1) -> float:
        return self.single.mean * self._scale(batch_size)

    def sample_ms(
        self, batch_size: int, rng: np.random.Generator, busy_instances: int = 1, now_ms: float = 0.0
    ) -> float:
        return float(self.single.sample(rng, 1)[0]) * self._scale(batch_size)

    def sample_many_ms(self, batch_size: int, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.single.sample(rng, n) * self._scale(batch_size)


class AffineSpec(BaseModel):
    """Batch cost `base_ms + per_item_ms × n`, gamma-distributed around that mean with CV `cv` (0 = fixed)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    base_ms: Ms
    per_item_ms: Ms
    cv: Cv = 0.0


class AffineCost(_Stateless):
    depends_on_busy_instances = False

    def __init__(self, spec: AffineSpec) -> None:
        self.spec = spec

    def mean_ms(self, batch_size: int, busy_instances: int = 1) -> float:
        return self.spec.base_ms + self.spec.per_item_ms * batch_size

    def sample_many_ms(self, batch_size: int, rng: np.random.Generator, n: int) -> np.ndarray:
        mean = self.mean_ms(batch_size)
        if self.spec.cv == 0 or mean == 0:
            return np.full(n, mean)
        shape = 1.0 / self.spec.cv**2
        return rng.gamma(shape, mean / shape, size=n)

    def sample_ms(
        self, batch_size: int, rng: np.random.Generator, busy_instances: int = 1, now_ms: float = 0.0
    ) -> float:
        return float(self.sample_many_ms(batch_size, rng, 1)[0])


class ProfileCost(_Stateless):
    """A measured profile (sim/spec/profile.py): per-batch-size latency distributions, with interference when the
    profile measured more than one concurrent instance."""

    def __init__(self, profile) -> None:
        self.profile = profile
        self.depends_on_busy_instances = profile.max_instances > 1

    def mean_ms(self, batch_size: int, busy_instances: int = 1) -> float:
        return self.profile.mean_ms(batch_size, busy_instances)

    def median_ms(self, batch_size: int, busy_instances: int = 1) -> float:
        return self.profile.median_ms(batch_size, busy_instances)

    def sample_ms(
        self, batch_size: int, rng: np.random.Generator, busy_instances: int = 1, now_ms: float = 0.0
    ) -> float:
        return self.profile.sample_ms(batch_size, rng, busy_instances)

    def sample_many_ms(self, batch_size: int, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.profile.sample_many_ms(batch_size, rng, n)


class SpedUp:
    """Another batch cost divided by `speedup` (faster hardware, a quantised or compiled model)."""

    def __init__(self, inner: BatchCost, speedup: float) -> None:
        self.inner = inner
        self.speedup = speedup
        self.depends_on_busy_instances = inner.depends_on_busy_instances
        self.depends_on_time = inner.depends_on_time

    def for_run(self) -> "SpedUp":
        return SpedUp(self.inner.for_run(), self.speedup)

    def mean_ms(self, batch_size: int, busy_instances: int = 1) -> float:
        return self.inner.mean_ms(batch_size, busy_instances) / self.speedup

    def sample_ms(
        self, batch_size: int, rng: np.random.Generator, busy_instances: int = 1, now_ms: float = 0.0
    ) -> float:
        return self.inner.sample_ms(batch_size, rng, busy_instances, now_ms) / self.speedup

    def sample_many_ms(self, batch_size: int, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.inner.sample_many_ms(batch_size, rng, n) / self.speedup
