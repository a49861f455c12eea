"""Arrival processes -> sorted arrays of arrival times (ms), drawn vectorised from one generator.

Each process is a small spec that knows its long-run rate and generates either a number of arrivals or
all arrivals before a horizon. Trace replay also carries the trace's other columns (e.g. token counts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal, Union

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from sim.spec.bounds import (
    MAX_LIST_ITEMS,
    Multiplier,
    PositiveCv,
    PositiveRateRps,
    PositiveSeconds,
    RateRps,
    Scale,
    Seconds,
)
from sim.spec.datafiles import data_error, numeric_column, read_csv, resolve_path
from sim.errors import ScenarioError
from sim.spec.budget import MAX_THINNING_DRAWS

# Every generation loop is bounded; the run budget (sim/spec/budget.py) refuses long ones before this.
_MAX_LOOP_STEPS = 5_000_000


@dataclass(frozen=True)
class Arrivals:
    """Arrival times in ms (sorted) plus any per-request columns a trace carried."""

    times_ms: np.ndarray
    columns: dict[str, np.ndarray] = field(default_factory=dict)


class _Process(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @property
    def mean_rate_rps(self) -> float:
        raise NotImplementedError

    def generate(self, rng: np.random.Generator, count: int | None, horizon_ms: float | None) -> Arrivals:
        """`count` arrivals, or every arrival before `horizon_ms` (exactly one of them is given)."""
        gaps_ms = self._renewal_gaps
        chunk = count if count is not None else int(horizon_ms * self.mean_rate_rps / 1000 * 1.2) + 64
        times = np.cumsum(gaps_ms(rng, chunk))
        for _ in range(_MAX_LOOP_STEPS):
            if count is not None or times[-1] >= horizon_ms:
                break
            more = np.cumsum(gaps_ms(rng, chunk)) + times[-1]
            times = np.concatenate([times, more])
        if count is None:
            times = times[times < horizon_ms]
        return Arrivals(times)

    def _renewal_gaps(self, rng: np.random.Generator, n: int) -> np.ndarray:
        raise NotImplementedError


class Poisson(_Process):
    """Poisson arrivals at `rate_rps` (exponential gaps, CV 1)."""

    process: Literal["poisson"]
    rate_rps: PositiveRateRps

    @property
    def mean_rate_rps(self) -> float:
        return self.rate_rps

    def _renewal_gaps(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.exponential(1000.0 / self.rate_rps, size=n)


class GammaRenewal(_Process):
    """Renewal arrivals with gamma gaps: `cv` > 1 is burstier than Poisson, < 1 smoother."""

    process: Literal["gamma"]
    rate_rps: PositiveRateRps
    cv: PositiveCv

    @property
    def mean_rate_rps(self) -> float:
        return self.rate_rps

    def _renewal_gaps(self, rng: np.random.Generator, n: int) -> np.ndarray:
        shape = 1.0 / self.cv**2
        return rng.gamma(shape, 1000.0 / self.rate_rps / shape, size=n)


class ConstantRate(_Process):
    """Evenly spaced arrivals (perf_analyzer's `--request-distribution constant`)."""

    process: Literal["constant"]
    rate_rps: PositiveRateRps

    @property
    def mean_rate_rps(self) -> float:
        return self.rate_rps

    def _renewal_gaps(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, 1000.0 / self.rate_rps)


class OnOff(_Process):
    """Two-state MMPP: Poisson at `rate_on_rps` during exponential ON periods (mean `mean_on_s`), at
    `rate_off_rps` during OFF periods (mean `mean_off_s`). Starts in ON."""

    process: Literal["on_off"]
    rate_on_rps: PositiveRateRps
    rate_off_rps: RateRps = 0.0
    mean_on_s: PositiveSeconds
    mean_off_s: PositiveSeconds

    @property
    def mean_rate_rps(self) -> float:
        on_share = self.mean_on_s / (self.mean_on_s + self.mean_off_s)
        return on_share * self.rate_on_rps + (1 - on_share) * self.rate_off_rps

    def generate(self, rng: np.random.Generator, count: int | None, horizon_ms: float | None) -> Arrivals:
        pieces: list[np.ndarray] = []
        total, start_ms, on = 0, 0.0, True
        for _ in range(_MAX_LOOP_STEPS):
            if not ((count is not None and total < count) or (count is None and start_ms < horizon_ms)):
                break
            length_ms = rng.exponential((self.mean_on_s if on else self.mean_off_s) * 1000.0)
            rate = self.rate_on_rps if on else self.rate_off_rps
            n = rng.poisson(rate * length_ms / 1000.0)
            # Given their number, Poisson points in an interval are uniform order statistics.
            pieces.append(np.sort(rng.uniform(start_ms, start_ms + length_ms, size=n)))
            total += n
            start_ms += length_ms
            on = not on
        else:
            raise ScenarioError(f"workload.arrival: on_off needs more than {_MAX_LOOP_STEPS} on/off periods")
        times = np.concatenate(pieces) if pieces else np.empty(0)
        times = times[:count] if count is not None else times[times < horizon_ms]
        return Arrivals(times)


class Spike(BaseModel):
    """Multiply the rate by `multiplier` from `at_s` for `duration_s`."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    at_s: Seconds
    duration_s: PositiveSeconds
    multiplier: Multiplier


class TimeVarying(_Process):
    """Non-homogeneous Poisson: a piecewise-linear rate through `points` [[t_s, rate_rps], ...] (a diurnal
    curve, a ramp), repeated every `period_s` if given, times any `spikes`. Generated by thinning."""

    process: Literal["time_varying"]
    points: list[tuple[Seconds, RateRps]] = Field(min_length=1, max_length=MAX_LIST_ITEMS)
    period_s: PositiveSeconds | None = None
    spikes: list[Spike] = Field(default_factory=list, max_length=1000)

    @field_validator("points")
    @classmethod
    def _valid_points(cls, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        times = [t for t, _ in points]
        if any(b <= a for a, b in zip(times, times[1:])):
            raise ValueError("times in points must be strictly increasing")
        if any(rate < 0 for _, rate in points):
            raise ValueError("rates in points must be >= 0")
        if max(rate for _, rate in points) <= 0:
            raise ValueError("at least one rate in points must be > 0")
        return points

    def rate_rps_at(self, t_s: np.ndarray) -> np.ndarray:
        t_s = np.asarray(t_s, dtype=float)
        times, rates = zip(*self.points)
        local = np.mod(t_s, self.period_s) if self.period_s else t_s
        rate = np.interp(local, times, rates)
        ordered = bool(self.spikes) and t_s.ndim == 1 and bool(np.all(t_s[1:] >= t_s[:-1]))
        for spike in self.spikes:
            if ordered:  # times in order (thinning's candidates): scale the slice inside the spike only
                lo, hi = np.searchsorted(t_s, [spike.at_s, spike.at_s + spike.duration_s], side="left")
                rate[lo:hi] = rate[lo:hi] * spike.multiplier
                continue
            inside = (t_s >= spike.at_s) & (t_s < spike.at_s + spike.duration_s)
            rate = np.where(inside, rate * spike.multiplier, rate)
        return rate

    @property
    def varies(self) -> bool:
        """The rate changes over time (not one flat rate without spikes)."""
        rates = {rate for _, rate in self.points}
        return len(rates) > 1 or any(spike.multiplier != 1 for spike in self.spikes)

    @property
    def span_s(self) -> float:
        """The length of the curve: one period, else up to its last point or the end of its last spike
        (0 for one flat rate)."""
        return self.period_s or max([self.points[-1][0], *(s.at_s + s.duration_s for s in self.spikes)])

    @property
    def peak_rate_rps(self) -> float:
        peak_spike = max((s.multiplier for s in self.spikes), default=1.0)
        return max(rate for _, rate in self.points) * max(peak_spike, 1.0)

    @property
    def mean_rate_rps(self) -> float:
        end = self.period_s or max(self.points[-1][0], 1.0)
        grid = np.linspace(0, end, 4097)
        return float(np.mean(self.rate_rps_at(grid)))

    def generate(self, rng: np.random.Generator, count: int | None, horizon_ms: float | None) -> Arrivals:
        peak = self.peak_rate_rps
        gap_ms = 1000.0 / peak
        chunk = max(1024, (count or int(horizon_ms / gap_ms)) // 2)
        kept: list[np.ndarray] = []
        total, last_ms, draws = 0, 0.0, 0
        for _ in range(_MAX_LOOP_STEPS):
            if not ((count is not None and total < count) or (count is None and last_ms < horizon_ms)):
                break
            candidates = last_ms + np.cumsum(rng.exponential(gap_ms, size=chunk))
            accept = rng.uniform(size=chunk) * peak < self.rate_rps_at(candidates / 1000.0)
            kept.append(candidates[accept])
            total += int(accept.sum())
            last_ms = float(candidates[-1])
            draws += chunk
            if draws > MAX_THINNING_DRAWS:
                raise ScenarioError(
                    f"workload.arrival: thinning drew {draws} candidate arrivals at the peak rate of {peak:.3g} rps "
                    f"and accepted {total} (limit {MAX_THINNING_DRAWS}); lower the spike multiplier or the peak rate"
                )
        else:
            raise ScenarioError(f"workload.arrival: thinning needs more than {_MAX_LOOP_STEPS} rounds of candidates")
        times = np.concatenate(kept)
        times = times[:count] if count is not None else times[times < horizon_ms]
        return Arrivals(times)


class Trace(_Process):
    """Replay arrival times from a CSV (`time_column`, in `time_unit`), `rate_scale` times faster; every
    other numeric column travels with its request (e.g. token counts)."""

    process: Literal["trace"]
    file: str
    time_column: str = "arrived_at"
    time_unit: Literal["s", "ms"] = "s"
    rate_scale: Scale = 1.0

    @field_validator("file")
    @classmethod
    def _file_exists(cls, value: str, info: ValidationInfo) -> str:
        return str(resolve_path(value, info.context))

    def _frame(self) -> pd.DataFrame:
        return _read_trace(self.file)

    def _times_ms(self, frame: pd.DataFrame) -> np.ndarray:
        times = numeric_column(frame, self.time_column, Path(self.file), "arrival trace")
        if np.any(np.diff(times) < 0):
            row = int(np.flatnonzero(np.diff(times) < 0)[0]) + 3
            raise data_error(
                "arrival trace",
                self.file,
                "is earlier than the row before (not sorted in time)",
                column=self.time_column,
                row=row,
            )
        scale = 1000.0 if self.time_unit == "s" else 1.0
        return (times - times[0]) * scale / self.rate_scale

    @property
    def mean_rate_rps(self) -> float:
        times = self._times_ms(self._frame())
        span_s = (times[-1] - times[0]) / 1000.0
        return (len(times) - 1) / span_s if span_s > 0 else float("inf")

    def generate(self, rng: np.random.Generator, count: int | None, horizon_ms: float | None) -> Arrivals:
        frame = self._frame()
        times = self._times_ms(frame)
        keep = slice(0, count) if count is not None else slice(0, int(np.searchsorted(times, horizon_ms)))
        columns = {
            str(name): frame[name].to_numpy()[keep]
            for name in frame.columns
            if name != self.time_column and pd.api.types.is_numeric_dtype(frame[name])
        }
        return Arrivals(times[keep], columns)

    @property
    def length(self) -> int:
        return len(self._frame())


_TRACE_CACHE: dict[str, pd.DataFrame] = {}


def _read_trace(path: str) -> pd.DataFrame:
    # Traces are read-only inputs; caching them by path keeps replications from re-reading the CSV.
    if path not in _TRACE_CACHE:
        _TRACE_CACHE[path] = read_csv(Path(path), "arrival trace")
    return _TRACE_CACHE[path]


ArrivalProcess = Annotated[
    Union[Poisson, GammaRenewal, ConstantRate, OnOff, TimeVarying, Trace], Field(discriminator="process")
]
