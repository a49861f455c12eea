"""Correlated service times, for model servers on shared hosts, where slow batches come in regimes
lasting seconds (a noisy neighbour, a CPU frequency drop) rather than as independent draws:

- `slowdown: {slow_factor, slow_share, mean_slow_s}` — a two-state regime (normal / slow) switching as a
  continuous-time Markov chain in simulated time; a batch that starts in the slow state costs
  `slow_factor` × its draw. One chain per model stage (its replicas share the host). Fitted from a log's
  lag-1 autocorrelation by `servesim calibrate regimes` (calibrate/regimes.py).
- `replay: {file, column}` (or `samples`) — ordered replay of a measured service-time sequence: the k-th
  batch of a run takes the k-th measured value (relative to the sequence's median) × the batch's median
  cost, from an offset drawn per replication, wrapping around.

Both wrap another batch cost and keep their state per run (`for_run`), so replications stay independent
and the same seed gives the same run.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, model_validator

from sim.spec.distributions import SampleSource


class RegimeSpec(BaseModel):
    """Two-state modulated slowdown: `slow_share` of the time in a state `slow_factor` × slower, whose
    visits last `mean_slow_s` on average (exponential)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    slow_factor: float = Field(ge=1)
    slow_share: float = Field(ge=0, lt=1)
    mean_slow_s: PositiveFloat

    @property
    def mean_normal_s(self) -> float:
        return self.mean_slow_s * (1 - self.slow_share) / self.slow_share if self.slow_share > 0 else float("inf")


class ReplaySpec(SampleSource):
    """A measured service-time sequence (ms, in the order measured) replayed batch after batch."""

    values_what: ClassVar[str] = "replayed service times"

    @model_validator(mode="after")
    def _positive(self) -> "ReplaySpec":
        if self.samples is not None and min(self.samples) <= 0:
            raise ValueError("replayed service times must be > 0")
        return self


class RegimeCost:
    """A batch cost slowed by `slow_factor` while a two-state regime chain is in its slow state."""

    depends_on_time = True

    def __init__(self, inner, spec: RegimeSpec) -> None:
        self.inner = inner
        self.spec = spec
        self.depends_on_busy_instances = inner.depends_on_busy_instances
        self._slow = False
        self._switch_ms: float | None = None  # next state change; None until the first draw of a run

    def for_run(self) -> "RegimeCost":
        return RegimeCost(self.inner.for_run(), self.spec)

    def _factor_at(self, now_ms: float, rng: np.random.Generator) -> float:
        spec = self.spec
        if spec.slow_share == 0:
            return 1.0
        if self._switch_ms is None:  # start in the stationary distribution
            self._slow = bool(rng.random() < spec.slow_share)
            self._switch_ms = now_ms + self._stay_ms(rng)
        while self._switch_ms <= now_ms:
            self._slow = not self._slow
            self._switch_ms += self._stay_ms(rng)
        return spec.slow_factor if self._slow else 1.0

    def _stay_ms(self, rng: np.random.Generator) -> float:
        mean_s = self.spec.mean_slow_s if self._slow else self.spec.mean_normal_s
        return float(rng.exponential(mean_s * 1000.0))

    def mean_ms(self, batch_size: int, busy_instances: int = 1) -> float:
        """Mean at light load (batches sample the regimes by time share; back to back, slow ones are
        sampled less often, since each takes longer)."""
        s = self.spec
        return self.inner.mean_ms(batch_size, busy_instances) * (1 + s.slow_share * (s.slow_factor - 1))

    def sample_ms(
        self, batch_size: int, rng: np.random.Generator, busy_instances: int = 1, now_ms: float = 0.0
    ) -> float:
        factor = self._factor_at(now_ms, rng)
        return self.inner.sample_ms(batch_size, rng, busy_instances) * factor

    def sample_many_ms(self, batch_size: int, rng: np.random.Generator, n: int) -> np.ndarray:
        """`n` draws for batches starting back to back (each starts when the previous ends)."""
        out = np.empty(n)
        now = 0.0
        for i in range(n):
            out[i] = self.sample_ms(batch_size, rng, 1, now)
            now += out[i]
        return out


class ReplayCost:
    """A batch cost whose successive batches follow a measured sequence, relative to its median."""

    depends_on_time = False

    def __init__(self, inner, spec: ReplaySpec) -> None:
        self.inner = inner
        self.spec = spec
        self.depends_on_busy_instances = inner.depends_on_busy_instances
        values = np.asarray(spec.values, dtype=float)
        self._relative = values / np.median(values)
        self._position: int | None = None

    def for_run(self) -> "ReplayCost":
        return ReplayCost(self.inner.for_run(), self.spec)

    def _next(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self._position is None:
            self._position = int(rng.integers(len(self._relative)))
        index = (self._position + np.arange(n)) % len(self._relative)
        self._position = int((self._position + n) % len(self._relative))
        return self._relative[index]

    def _median_ms(self, batch_size: int, busy_instances: int) -> float:
        median = getattr(self.inner, "median_ms", None)
        return median(batch_size, busy_instances) if median else self.inner.mean_ms(batch_size, busy_instances)

    def mean_ms(self, batch_size: int, busy_instances: int = 1) -> float:
        return self._median_ms(batch_size, busy_instances) * float(self._relative.mean())

    def sample_ms(
        self, batch_size: int, rng: np.random.Generator, busy_instances: int = 1, now_ms: float = 0.0
    ) -> float:
        return self._median_ms(batch_size, busy_instances) * float(self._next(rng, 1)[0])

    def sample_many_ms(self, batch_size: int, rng: np.random.Generator, n: int) -> np.ndarray:
        return self._median_ms(batch_size, 1) * self._next(rng, n)
