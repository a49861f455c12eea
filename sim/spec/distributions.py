"""Service-time distributions from their scenario specs, drawn in bulk from a generator passed in.

Every distribution is positive and in milliseconds. Each spec knows its mean and second moment (so the
engine can check stability and tests can compare with Pollaczek-Khinchine) and samples vectorised.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Annotated, ClassVar, Literal, Union

import numpy as np
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from sim.spec.bounds import MAX_CV, MAX_LIST_ITEMS, MAX_MS, Ms, PositiveCv, PositiveMs
from sim.spec.datafiles import data_error, read_numeric_column, resolve_path

# z-score of the 99th percentile of a standard normal: lognormal {median, p99} -> sigma.
_Z99 = 2.3263478740408408
# The p99 / median ratio of a lognormal whose CV is MAX_CV: larger ratios overflow the moments.
_MAX_P99_RATIO = float(np.exp(_Z99 * np.sqrt(np.log1p(MAX_CV**2))))


class _Dist(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @property
    def mean(self) -> float:
        raise NotImplementedError

    @property
    def second_moment(self) -> float:
        raise NotImplementedError

    @property
    def cv(self) -> float:
        return float(np.sqrt(max(self.second_moment / self.mean**2 - 1.0, 0.0)))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        raise NotImplementedError


class Constant(_Dist):
    """Always `value` ms."""

    dist: Literal["constant"]
    value: Ms

    @property
    def mean(self) -> float:
        return self.value

    @property
    def second_moment(self) -> float:
        return self.value**2

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, self.value)


class Exponential(_Dist):
    """Exponential with mean `mean` ms (CV 1): the M in M/M/c."""

    dist: Literal["exponential"]
    mean_ms: PositiveMs = Field(alias="mean")

    @property
    def mean(self) -> float:
        return self.mean_ms

    @property
    def second_moment(self) -> float:
        return 2 * self.mean_ms**2

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.exponential(self.mean_ms, size=n)


class Lognormal(_Dist):
    """Lognormal given by `{median, p99}` (how latency is usually quoted) or by `{mean, cv}`."""

    dist: Literal["lognormal"]
    median: PositiveMs | None = None
    p99: PositiveMs | None = None
    mean_ms: PositiveMs | None = Field(default=None, alias="mean")
    cv_given: PositiveCv | None = Field(default=None, alias="cv")

    @model_validator(mode="after")
    def _one_parameterisation(self) -> "Lognormal":
        by_quantiles = self.median is not None and self.p99 is not None
        by_moments = self.mean_ms is not None and self.cv_given is not None
        if by_quantiles == by_moments:
            raise ValueError("give either {median, p99} or {mean, cv}")
        if by_quantiles and self.p99 <= self.median:
            raise ValueError(f"p99 ({self.p99}) must be larger than median ({self.median})")
        if by_quantiles and self.p99 / self.median > _MAX_P99_RATIO:
            raise ValueError(
                f"p99 / median = {self.p99 / self.median:.3g} is above {_MAX_P99_RATIO:.3g} (a CV above {MAX_CV:g})"
            )
        return self

    @cached_property
    def mu_sigma(self) -> tuple[float, float]:
        if self.median is not None:
            return float(np.log(self.median)), float(np.log(self.p99 / self.median) / _Z99)
        sigma2 = np.log1p(self.cv_given**2)
        return float(np.log(self.mean_ms) - sigma2 / 2), float(np.sqrt(sigma2))

    @property
    def mean(self) -> float:
        mu, sigma = self.mu_sigma
        return float(np.exp(mu + sigma**2 / 2))

    @property
    def second_moment(self) -> float:
        mu, sigma = self.mu_sigma
        return float(np.exp(2 * mu + 2 * sigma**2))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        mu, sigma = self.mu_sigma
        return rng.lognormal(mu, sigma, size=n)


class Gamma(_Dist):
    """Gamma with `mean` ms and coefficient of variation `cv` (cv < 1 is more regular than exponential)."""

    dist: Literal["gamma"]
    mean_ms: PositiveMs = Field(alias="mean")
    cv_given: PositiveCv = Field(alias="cv")

    @property
    def mean(self) -> float:
        return self.mean_ms

    @property
    def second_moment(self) -> float:
        return self.mean_ms**2 * (1 + self.cv_given**2)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        shape = 1.0 / self.cv_given**2
        return rng.gamma(shape, self.mean_ms / shape, size=n)


class Uniform(_Dist):
    """Uniform between `low` and `high` ms."""

    dist: Literal["uniform"]
    low: Ms
    high: PositiveMs

    @model_validator(mode="after")
    def _ordered(self) -> "Uniform":
        if self.high <= self.low:
            raise ValueError(f"high ({self.high}) must be larger than low ({self.low})")
        return self

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2

    @property
    def second_moment(self) -> float:
        return (self.low**2 + self.low * self.high + self.high**2) / 3

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.uniform(self.low, self.high, size=n)


class SampleSource(BaseModel):
    """Measured values to resample: inline `samples`, or a CSV `file` (column `column`, else the first).
    Shared by service-time and token-count empirical distributions; `values_what` names them in errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    values_what: ClassVar[str] = "empirical samples"
    samples: list[float] | None = Field(default=None, max_length=MAX_LIST_ITEMS)
    file: str | None = None
    column: str | None = None

    @field_validator("file")
    @classmethod
    def _file_exists(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else str(resolve_path(value, info.context))

    @model_validator(mode="after")
    def _one_source(self):
        if (self.samples is None) == (self.file is None):
            raise ValueError("give either samples: [...] or file: PATH")
        if self.samples is not None and not self.samples:
            raise ValueError("samples is empty")
        return self

    @cached_property
    def values(self) -> np.ndarray:
        if self.samples is not None:
            return np.asarray(self.samples, dtype=float)
        values = read_numeric_column(Path(self.file), self.column, what=self.values_what)
        if values.max() > MAX_MS:
            row = int(np.flatnonzero(values > MAX_MS)[0]) + 2
            raise data_error(
                self.values_what, self.file, f"is above the limit of {MAX_MS:g}", column=self.column, row=row
            )
        return values


class Empirical(_Dist, SampleSource):
    """Resample measured latencies (ms): inline `samples`, or a CSV `file`."""

    values_what: ClassVar[str] = "empirical service times"
    dist: Literal["empirical"]
    samples: list[Ms] | None = Field(default=None, max_length=MAX_LIST_ITEMS)

    @property
    def mean(self) -> float:
        return float(self.values.mean())

    @property
    def second_moment(self) -> float:
        return float(np.mean(self.values**2))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.choice(self.values, size=n, replace=True)


def _number_is_constant(value: object) -> object:
    """`service_ms: 12` is shorthand for `{dist: constant, value: 12}`."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"dist": "constant", "value": value}
    if isinstance(value, dict) and "dist" not in value:
        raise ValueError("a distribution needs `dist:` (constant, exponential, lognormal, gamma, uniform, empirical)")
    return value


Distribution = Annotated[
    Union[Constant, Exponential, Lognormal, Gamma, Uniform, Empirical],
    Field(discriminator="dist"),
    BeforeValidator(_number_is_constant),
]
