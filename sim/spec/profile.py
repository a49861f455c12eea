"""Measured model profiles (models/NAME.yaml): what a batch of n costs, in ms, on one model instance.

A profile keeps the measured latency distribution per batch size (p50 / p90 / p99, optionally at 1..k
co-located busy instances) and a fitted median curve (`affine`, `roofline` or `piecewise_linear`) for
batch sizes that were not measured. One batch's service time is drawn as

    overhead_ms + median(n) × slowdown(n, k) × (s + (1 − s) · exp(σ · Z)),   Z ~ N(0, 1)

a shifted lognormal whose shape (s = shift / median, σ) matches the measured p50 / p90 / p99 at measured
batch sizes (between them the ratios p90/p50 and p99/p50 are interpolated linearly and the shape solved
from those), and whose slowdown is the measured median at k busy instances over the median alone
(interpolated over batch size, constant beyond the measured ones; k above the highest measured level
uses that level). Where the profile carries measured `samples` (>= 30 at a batch size, at one number of
busy instances), batches between the smallest and largest such size are drawn non-parametrically instead:
the measured samples resampled, the quantile functions of the two neighbouring sizes interpolated in
between (sim/spec/measured_samples.py); a two-peaked sample is named in the profile's warnings.
`overhead_ms` (framework dispatch, serialisation, input / output
copies; Triton's compute-input + compute-output) is per executed batch and is *included* in `mean_ms`,
`sample_ms` and `sample_many_ms`: the engine must not add it again. It is exposed as
`per_request_overhead_ms` (per request when requests run unbatched).

The file format (see models/*.yaml for full examples):

    kind: batch                       # the only kind this module loads (LLM profiles are kind: llm)
    name: resnet50-v100-clockwork
    model: ResNet-50
    hardware: v100-16gb               # a name in models/hardware.yaml, or free text
    usd_per_hour: 3.06                # optional; else taken from the hardware catalogue
    precision: fp32
    serving_stack: Clockwork
    provenance: {source: ..., date: ..., ...}
    overhead_ms: 0.0
    max_batch_size: 8                 # optional; default the largest measured; at most 2x it
    curve: {family: piecewise_linear, points: [[1, 3.3], [2, 5.3], ...]}
    default_spread: {p90_over_p50: 1.01, p99_over_p50: 1.02, note: ...}   # for rows without p90 / p99
    latency:                          # measured, ms
      - {batch_size: 1, instances: 1, n: 200, p50_ms: 3.3, p90_ms: 3.35, p99_ms: 3.4, mean_ms: 3.31}
    lever: {name: int8, speedup: 2.0, speedup_range: [2, 4], accuracy_cost: ..., source: ...}
    samples:                          # optional: measured batch times (ms, overhead excluded)
      - {batch_size: 1, instances: 1, ms: [0.61, 0.66, 4.7, ...]}
    co_load:                          # optional: the kernel measured beside the serving path's load
      - {batch_size: 1, client_rps: 200, siblings: 0, n: 200, p50_ms: 3.6, slowdown: 1.09}
    estimated: true                   # optional: costs moved from other hardware, not measured
    estimate: {interval_log_half_width: 0.62, interval_pct: -46..+86, source_hardware: v100-16gb, basis: ...}

`estimated: true` marks a profile written by `servesim calibrate transfer` (calibrate/transfer_model.py):
its `estimate` holds the 95% prediction interval of every batch's cost, exp(±interval_log_half_width)
times the profile's, which a run carries into its latency CIs (sim/analysis/cost_interval.py). A profile
without the two fields is measured and runs as it always did.

`co_load` rows (`servesim calibrate measure --co-load-rps`) hold the kernel's median with a load generator
sending `client_rps` requests per second through a reply path on the same host and `siblings` other
sessions busy beside it, over its median alone at that batch size (`slowdown`). A model stage whose
`host:` says the host is shared runs at the slowdown `co_load_slowdown` reads from them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sim.errors import DataFileError
from sim.spec.measured_samples import QuantileMix, quantile_mixes, two_peak_test

Z90 = NormalDist().inv_cdf(0.90)
Z99 = NormalDist().inv_cdf(0.99)
# A profile may be asked for batches up to this multiple of the largest measured batch size, no further.
MAX_EXTRAPOLATION = 2.0
CURVE_FAMILIES = ("affine", "roofline", "piecewise_linear")


# --------------------------------------------------------------------------- fitted median curves
def curve_ms(family: str, params: dict[str, Any], batch_sizes: np.ndarray) -> np.ndarray:
    """Median batch cost in ms of a fitted curve at `batch_sizes`.

    affine:            base_ms + per_item_ms · n
    roofline:          base_ms + per_item_below_ms · min(n, knee_batch) + per_item_above_ms · max(n − knee, 0)
                       (under-utilised hardware below the knee, saturated and linear above it)
    piecewise_linear:  straight lines through `points` [[n, ms], ...]; outside them the end segments extend.
    """
    n = np.asarray(batch_sizes, dtype=float)
    if family == "affine":
        return params["base_ms"] + params["per_item_ms"] * n
    if family == "roofline":
        knee = params["knee_batch"]
        return (
            params["base_ms"]
            + params["per_item_below_ms"] * np.minimum(n, knee)
            + params["per_item_above_ms"] * np.maximum(n - knee, 0.0)
        )
    if family == "piecewise_linear":
        pts = np.asarray(params["points"], dtype=float)
        x, y = pts[:, 0], pts[:, 1]
        out = np.interp(n, x, y)
        lo_slope = (y[1] - y[0]) / (x[1] - x[0])
        hi_slope = (y[-1] - y[-2]) / (x[-1] - x[-2])
        out = np.where(n < x[0], y[0] + lo_slope * (n - x[0]), out)
        out = np.where(n > x[-1], y[-1] + hi_slope * (n - x[-1]), out)
        return out
    raise ValueError(f"unknown curve family {family!r} (choose from {', '.join(CURVE_FAMILIES)})")


# --------------------------------------------------------------------------- spread: shifted lognormal
def spread_shape(p50: float, p90: float | None, p99: float | None) -> tuple[float, float]:
    """Scale-free shape (s = shift / p50, σ) of a shifted lognormal with these quantiles.

    With p90 and p99 the three quantiles are matched exactly when a non-negative shift does it; otherwise
    (or with p99 only) a plain lognormal (s = 0) matches p50 and p99. No spread given: (0, 0), a constant.
    """
    if p99 is None or p99 <= p50:
        return 0.0, 0.0
    plain = (0.0, math.log(p99 / p50) / Z99)
    if p90 is None or p90 <= p50:
        return plain
    ratio = (p99 - p50) / (p90 - p50)
    if ratio <= Z99 / Z90 + 1e-9:  # tail lighter than any lognormal's: no shifted solution
        return plain

    def excess(sigma: float) -> float:
        return math.expm1(sigma * Z99) / math.expm1(sigma * Z90) - ratio

    lo, hi = 1e-9, 1.0
    while excess(hi) < 0:
        hi *= 2.0
        if hi > 64:
            return plain
    for _ in range(60):  # bisection: excess is increasing in sigma
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if excess(mid) < 0 else (lo, mid)
    sigma = 0.5 * (lo + hi)
    scale = (p90 - p50) / math.expm1(sigma * Z90)
    shift = p50 - scale
    if shift < 0:
        return plain
    return shift / p50, sigma


# --------------------------------------------------------------------------- file schema
class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class LatencyRow(_Model):
    """Measured latency of one batch size at one number of busy co-located instances, in ms."""

    batch_size: int = Field(ge=1)
    instances: int = Field(default=1, ge=1)
    n: int | None = Field(default=None, ge=1)
    p50_ms: float = Field(gt=0)
    p90_ms: float | None = Field(default=None, gt=0)
    p95_ms: float | None = Field(default=None, gt=0)
    p99_ms: float | None = Field(default=None, gt=0)
    mean_ms: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> "LatencyRow":
        qs = [(k, getattr(self, k)) for k in ("p50_ms", "p90_ms", "p95_ms", "p99_ms") if getattr(self, k)]
        for (k1, v1), (k2, v2) in zip(qs, qs[1:]):
            if v2 < v1:
                raise ValueError(f"{k2} ({v2}) is below {k1} ({v1})")
        return self


class CurveSpec(_Model):
    family: Literal["affine", "roofline", "piecewise_linear"]
    base_ms: float | None = None
    per_item_ms: float | None = Field(default=None, ge=0)
    knee_batch: float | None = Field(default=None, gt=0)
    per_item_below_ms: float | None = Field(default=None, ge=0)
    per_item_above_ms: float | None = Field(default=None, ge=0)
    points: list[tuple[float, float]] | None = None
    quality: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _params(self) -> "CurveSpec":
        needed = {
            "affine": ("base_ms", "per_item_ms"),
            "roofline": ("base_ms", "knee_batch", "per_item_below_ms", "per_item_above_ms"),
            "piecewise_linear": ("points",),
        }[self.family]
        missing = [k for k in needed if getattr(self, k) is None]
        if missing:
            raise ValueError(f"a {self.family} curve needs {', '.join(missing)}")
        if self.points is not None:
            xs = [p[0] for p in self.points]
            if len(xs) < 2 or any(b <= a for a, b in zip(xs, xs[1:])):
                raise ValueError("points need at least two batch sizes in increasing order")
            if any(p[1] <= 0 for p in self.points):
                raise ValueError("points need positive latencies")
        return self

    def params(self) -> dict[str, Any]:
        return self.model_dump(exclude={"family", "quality"}, exclude_none=True)


class SpreadSpec(_Model):
    p90_over_p50: float | None = Field(default=None, ge=1)
    p99_over_p50: float = Field(ge=1)
    note: str | None = None


class SampleRow(_Model):
    """Measured service times (ms) of one batch size at one number of busy instances."""

    batch_size: int = Field(ge=1)
    instances: int = Field(default=1, ge=1)
    ms: list[float] = Field(min_length=1)

    @model_validator(mode="after")
    def _positive(self) -> "SampleRow":
        if min(self.ms) <= 0:
            raise ValueError(f"ms: service times must be > 0 (batch_size {self.batch_size} has {min(self.ms)})")
        return self


class CoLoadRow(_Model):
    """The kernel's median at one batch size beside a load generator (`client_rps`, 0 = none, its replies
    included) and `siblings` other busy sessions, and its slowdown over the median alone."""

    batch_size: int = Field(ge=1)
    client_rps: float = Field(ge=0)
    siblings: int = Field(default=0, ge=0)
    n: int | None = Field(default=None, ge=1)
    p50_ms: float | None = Field(default=None, gt=0)
    slowdown: float = Field(gt=0)


class HostShare(_Model):
    """What shares the host with a model stage's replica besides its own instances: a load generator or
    other client sending `client_rps` (with its replies) and `siblings` other busy model sessions. The stage
    then runs at its profile's co-load slowdown (`co_load` rows, measured beside that load)."""

    shared_with_client: bool = False
    client_rps: float | None = Field(default=None, ge=0)
    siblings: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _rate(self) -> "HostShare":
        if self.shared_with_client and self.client_rps is None:
            raise ValueError("client_rps: the rate the client on this host sends (requests per second)")
        return self

    @property
    def slowdown_applies(self) -> bool:
        return self.shared_with_client or self.siblings > 0

    def slowdown(self, profile: "ModelProfile") -> float:
        """The profile's co-load slowdown for what runs beside the stage (1 when nothing does)."""
        if not self.slowdown_applies:
            return 1.0
        return profile.co_load_slowdown(self.client_rps if self.shared_with_client else 0.0, self.siblings)


class Estimate(BaseModel):
    """Where an estimated profile's costs come from and how far to trust them. The interval is the typed
    part every reader needs; the transfer's working (ratios per batch, reach, work per item) rides along."""

    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)

    interval_log_half_width: float = Field(ge=0, le=5)  # 95%: each batch's cost × exp(±this)
    interval_pct: str | None = None  # the same as percentages, '-46..+86'
    source_hardware: str | None = None  # where the costs were measured
    basis: str | None = None  # how they were moved ('roofline: FLOPs and bytes per batch ...')
    band_edge: Literal["fast", "slow"] | None = None  # one end of the interval (`transfer --band`), not the estimate


class ProfileFile(_Model):
    """The YAML of a batch-cost profile."""

    kind: Literal["batch"] = "batch"
    name: str
    model: str | None = None
    hardware: str | None = None
    usd_per_hour: float | None = Field(default=None, ge=0)
    precision: str | None = None
    serving_stack: str | None = None
    provenance: dict[str, Any] = Field(default_factory=dict)
    overhead_ms: float = Field(default=0.0, ge=0)
    max_batch_size: int | None = Field(default=None, ge=1)
    curve: CurveSpec
    default_spread: SpreadSpec | None = None
    latency: list[LatencyRow] = Field(min_length=1)
    lever: dict[str, Any] | None = None
    samples: list[SampleRow] | None = None
    co_load: list[CoLoadRow] | None = None
    estimated: bool = False
    estimate: Estimate | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "ProfileFile":
        if self.estimated and self.estimate is None:
            raise ValueError("estimated: true needs estimate: {interval_log_half_width: ...} (its 95% interval)")
        keys = [(r.batch_size, r.instances) for r in self.latency]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise ValueError(f"latency has more than one row for (batch_size, instances) {dupes[0]}")
        if not any(r.instances == 1 for r in self.latency):
            raise ValueError("latency needs rows measured with instances: 1 (one instance busy)")
        largest = max(r.batch_size for r in self.latency if r.instances == 1)
        if self.max_batch_size is not None and self.max_batch_size > MAX_EXTRAPOLATION * largest:
            raise ValueError(
                f"max_batch_size {self.max_batch_size} is more than {MAX_EXTRAPOLATION:g}x the largest measured "
                f"batch size {largest}: refusing to extrapolate that far; measure larger batches"
            )
        return self


# --------------------------------------------------------------------------- the loaded profile
@dataclass(frozen=True)
class ModelProfile:
    """A loaded batch-cost profile, with per-(instances, batch size) sampling parameters precomputed."""

    name: str
    hardware: str | None
    usd_per_hour: float | None
    precision: str | None
    lever: dict | None
    max_batch_size: int
    max_instances: int
    per_request_overhead_ms: float  # per executed batch; already included in mean_ms / sample_ms
    model: str | None = None
    serving_stack: str | None = None
    provenance: dict = field(default_factory=dict)
    curve_family: str = "piecewise_linear"
    curve_params: dict = field(default_factory=dict)
    co_load: tuple[CoLoadRow, ...] = ()
    measured: tuple[LatencyRow, ...] = ()
    largest_measured_batch: int = 1
    warnings: tuple[str, ...] = ()
    # Costs moved from other hardware (calibrate/transfer_model.py), with their interval in `estimate`.
    estimated: bool = False
    estimate: dict = field(default_factory=dict)
    # _table[k-1][n] = (median_ms, s, sigma) at k busy instances, batch size n (index 0 unused)
    _table: tuple = field(default=(), repr=False, compare=False)
    # _empirical[(k, n)]: measured samples to resample at k busy instances, batch size n
    _empirical: dict = field(default_factory=dict, repr=False, compare=False)

    def co_load_slowdown(self, client_rps: float, siblings: int = 0) -> float:
        """The kernel's slowdown beside a client sending `client_rps` and `siblings` busy sessions: the median
        over batch sizes of the measured slowdowns at the nearest measured sibling count, linear in the
        client rate between measured rates (alone = 1 with no siblings), constant beyond them."""
        if not self.co_load:
            raise DataFileError(
                f"profile {self.name}: no co_load rows (measure them with servesim calibrate measure --co-load-rps)"
            )
        level = min({r.siblings for r in self.co_load}, key=lambda k: (abs(k - siblings), k))
        by_rate: dict[float, list[float]] = {}
        for row in self.co_load:
            if row.siblings == level:
                by_rate.setdefault(row.client_rps, []).append(row.slowdown)
        if level == 0:
            by_rate.setdefault(0.0, [1.0])
        rates = sorted(by_rate)
        return float(np.interp(client_rps, rates, [float(np.median(by_rate[r])) for r in rates]))

    def _params(self, batch_size: int, busy_instances: int) -> tuple[float, float, float]:
        if not 1 <= batch_size <= self.max_batch_size:
            raise DataFileError(
                f"profile {self.name}: batch size {batch_size} asked, but the profile allows 1..{self.max_batch_size}"
                f" (largest measured {self.largest_measured_batch})"
            )
        k = min(max(int(busy_instances), 1), self.max_instances)
        return self._table[k - 1][batch_size]

    def measured_samples(self, batch_size: int, busy_instances: int = 1) -> QuantileMix | None:
        """The non-parametric cost at this batch size, where the profile has enough samples around it."""
        self._params(batch_size, busy_instances)  # range check
        return self._empirical.get((min(max(int(busy_instances), 1), self.max_instances), batch_size))

    def median_ms(self, batch_size: int, busy_instances: int = 1) -> float:
        """Median service time of a batch in ms (overhead included)."""
        return self.quantile_ms(batch_size, 0.5, busy_instances)

    def quantile_ms(self, batch_size: int, q: float, busy_instances: int = 1) -> float:
        """The q-quantile (0 < q < 1) of a batch's service time in ms (overhead included)."""
        mix = self.measured_samples(batch_size, busy_instances)
        if mix is not None:
            return self.per_request_overhead_ms + mix.quantile(q)
        m, s, sigma = self._params(batch_size, busy_instances)
        return self.per_request_overhead_ms + m * (s + (1 - s) * math.exp(sigma * NormalDist().inv_cdf(q)))

    def mean_ms(self, batch_size: int, busy_instances: int = 1) -> float:
        """Mean service time of a batch in ms (overhead included)."""
        mix = self.measured_samples(batch_size, busy_instances)
        if mix is not None:
            return self.per_request_overhead_ms + mix.mean
        m, s, sigma = self._params(batch_size, busy_instances)
        return self.per_request_overhead_ms + m * (s + (1 - s) * math.exp(0.5 * sigma * sigma))

    def sample_ms(self, batch_size: int, rng: np.random.Generator, busy_instances: int = 1) -> float:
        """One draw of a batch's service time in ms with `busy_instances` busy on the replica (this one included)."""
        return float(self.sample_many_ms(batch_size, rng, 1, busy_instances)[0])

    def sample_many_ms(self, batch_size: int, rng: np.random.Generator, n: int, busy_instances: int = 1) -> np.ndarray:
        """`n` independent draws of a batch's service time in ms."""
        mix = self.measured_samples(batch_size, busy_instances)
        if mix is not None:
            return self.per_request_overhead_ms + mix.sample(rng, n)
        m, s, sigma = self._params(batch_size, busy_instances)
        if sigma == 0.0:
            return np.full(n, self.per_request_overhead_ms + m)
        return self.per_request_overhead_ms + m * (s + (1 - s) * np.exp(sigma * rng.standard_normal(n)))


def _interp_over_batch(rows: list[LatencyRow], values: list[float], n_max: int) -> np.ndarray:
    """Values known at some batch sizes → every batch size 0..n_max, linear between, constant outside."""
    xs = np.array([r.batch_size for r in rows], dtype=float)
    order = np.argsort(xs)
    return np.interp(np.arange(n_max + 1, dtype=float), xs[order], np.asarray(values, dtype=float)[order])


def profile_from_spec(spec: ProfileFile, catalogue_price: float | None = None) -> ModelProfile:
    """Precompute sampling tables from a validated profile file."""
    warnings: list[str] = []
    base_rows = sorted((r for r in spec.latency if r.instances == 1), key=lambda r: r.batch_size)
    largest = base_rows[-1].batch_size
    n_max = spec.max_batch_size or largest
    if n_max > largest:
        warnings.append(
            f"profile {spec.name}: batches {largest + 1}..{n_max} are extrapolated from the fitted "
            f"{spec.curve.family} curve beyond the largest measured batch size {largest}"
        )
    sizes = np.arange(n_max + 1, dtype=float)
    sizes[0] = 1.0
    median = curve_ms(spec.curve.family, spec.curve.params(), sizes)
    if (median[1:] <= 0).any():
        bad = int(np.flatnonzero(median[1:] <= 0)[0]) + 1
        raise DataFileError(f"profile {spec.name}: the fitted curve gives a non-positive latency at batch size {bad}")

    def ratios(row: LatencyRow) -> tuple[float, float]:
        """(p90 / p50, p99 / p50) of a row; a missing p90 is the one of a lognormal through p50 and p99."""
        p90, p99 = row.p90_ms, row.p99_ms
        if p99 is None and spec.default_spread is not None:
            ds = spec.default_spread
            p99 = row.p50_ms * ds.p99_over_p50
            p90 = row.p50_ms * ds.p90_over_p50 if ds.p90_over_p50 else None
        if p99 is None:
            return 1.0, 1.0
        r99 = p99 / row.p50_ms
        r90 = p90 / row.p50_ms if p90 is not None else math.exp(math.log(r99) / Z99 * Z90)
        return r90, r99

    # Between measured batch sizes (and instance counts) the quantile ratios are interpolated, and the
    # shifted-lognormal shape is solved from them, so the spread changes smoothly between measurements.
    base_p50 = {r.batch_size: r.p50_ms for r in base_rows}
    levels = sorted({r.instances for r in spec.latency})
    per_level: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for k in levels:
        rows = sorted((r for r in spec.latency if r.instances == k), key=lambda r: r.batch_size)
        rs = [ratios(r) for r in rows]
        reference = [
            base_p50.get(r.batch_size, float(median[r.batch_size]) if r.batch_size <= n_max else r.p50_ms) for r in rows
        ]
        slowdown = _interp_over_batch(rows, [r.p50_ms / ref for r, ref in zip(rows, reference)], n_max)
        r90 = _interp_over_batch(rows, [x[0] for x in rs], n_max)
        r99 = _interp_over_batch(rows, [x[1] for x in rs], n_max)
        per_level[k] = (np.ones_like(slowdown) if k == 1 else slowdown, r90, r99)

    shapes: dict[tuple[float, float], tuple[float, float]] = {}
    k_max = levels[-1]
    table = []
    for k in range(1, k_max + 1):
        if k in per_level:
            slow, r90, r99 = per_level[k]
        else:  # a level between measured ones: linear between its neighbours
            lo = max(x for x in levels if x < k)
            hi = min(x for x in levels if x > k)
            w = (k - lo) / (hi - lo)
            slow, r90, r99 = ((1 - w) * a + w * b for a, b in zip(per_level[lo], per_level[hi]))
        row = []
        for n in range(n_max + 1):
            key = (round(float(r90[n]), 9), round(float(r99[n]), 9))
            if key not in shapes:
                shapes[key] = spread_shape(1.0, key[0], key[1])
            s, sigma = shapes[key]
            row.append((float(median[n] * slow[n]), s, sigma))
        table.append(tuple(row))

    empirical, sample_warnings = _empirical_costs(spec, n_max, k_max)
    warnings.extend(sample_warnings)
    usd = spec.usd_per_hour if spec.usd_per_hour is not None else catalogue_price
    return ModelProfile(
        name=spec.name,
        hardware=spec.hardware,
        usd_per_hour=usd,
        precision=spec.precision,
        lever=spec.lever,
        max_batch_size=n_max,
        max_instances=k_max,
        per_request_overhead_ms=spec.overhead_ms,
        model=spec.model,
        serving_stack=spec.serving_stack,
        provenance=dict(spec.provenance),
        curve_family=spec.curve.family,
        curve_params=spec.curve.params(),
        co_load=tuple(spec.co_load or ()),
        measured=tuple(spec.latency),
        largest_measured_batch=largest,
        warnings=tuple(warnings),
        estimated=spec.estimated,
        estimate=spec.estimate.model_dump(exclude_none=True) if spec.estimate is not None else {},
        _table=tuple(table),
        _empirical=empirical,
    )


def _empirical_costs(spec: ProfileFile, n_max: int, k_max: int) -> tuple[dict, list[str]]:
    """Resampling tables per (busy instances, batch size) from the profile's samples, and a warning for
    every measured size whose samples are two-peaked."""
    empirical: dict = {}
    warnings: list[str] = []
    for k in range(1, k_max + 1):
        rows = {r.batch_size: np.asarray(r.ms, dtype=float) for r in spec.samples or () if r.instances == k}
        for n, mix in quantile_mixes(rows, n_max).items():
            empirical[(k, n)] = mix
        for b, values in sorted(rows.items()):
            peaks = two_peak_test(values)
            if peaks is not None and peaks.two_peaked:
                warnings.append(
                    f"profile {spec.name}: batch {b} at {k} busy instance(s) has two-peaked service times "
                    f"(Ashman's D {peaks.ashman_d:.1f}: {100 * peaks.share_low:.0f}% near {peaks.centre_low_ms:.3g} ms, "
                    f"{100 * (1 - peaks.share_low):.0f}% near {peaks.centre_high_ms:.3g} ms) that a shifted lognormal "
                    "cannot represent: the measured samples are resampled instead"
                )
    return empirical, warnings


def _format_validation(exc: ValidationError) -> str:
    from sim.spec.datafiles import validation_problems

    return validation_problems(exc, ProfileFile, "profile fields")


def profile_from_dict(data: Any, where: str = "profile") -> ModelProfile:
    """Validate a parsed profile (a dict) and precompute it; `where` names it in error messages."""
    if not isinstance(data, dict):
        raise DataFileError(f"{where}: expected a mapping of profile fields, got {type(data).__name__}")
    kind = data.get("kind", "batch")
    if kind != "batch":
        # Only a kind servesim knows is named: anything else is text from a file the scenario pointed at.
        named = f"kind {kind!r} is not a batch-cost profile" if kind in ("llm",) else "kind is not batch"
        raise DataFileError(f"{where}: {named} (this loader reads kind: batch)")
    try:
        spec = ProfileFile.model_validate(data)
    except ValidationError as exc:
        raise DataFileError(f"{where}: {_format_validation(exc)}") from None
    price = None
    if spec.usd_per_hour is None and spec.hardware:
        from sim.spec.hardware import load_catalogue

        try:
            hw = load_catalogue().get(spec.hardware)
            price = hw.usd_per_hour if hw else None
        except DataFileError:
            price = None
    try:
        return profile_from_spec(spec, price)
    except ValueError as exc:
        if isinstance(exc, DataFileError):
            raise
        raise DataFileError(f"{where}: {exc}") from None


def read_profile_yaml(path: str | Path) -> dict:
    """The raw mapping of a profile file; DataFileError if it is missing, too large or not YAML (named
    as `shown` names it; nothing read from the file is quoted)."""
    from sim.spec.datafiles import MAX_YAML_BYTES, check_data_file, data_error, parse_yaml, shown

    path = Path(path)
    check_data_file(path, "profile", limit=MAX_YAML_BYTES)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise data_error("profile", path, "is not a readable UTF-8 file") from None
    data = parse_yaml(text, f"profile {shown(path)}", DataFileError, quote=False)
    if data is None:
        raise data_error("profile", path, "is empty")
    return data


def load_profile(path: str | Path) -> ModelProfile:
    """Load and check models/NAME.yaml; raises DataFileError naming the file and the field on any problem."""
    from sim.spec.datafiles import shown

    return profile_from_dict(read_profile_yaml(path), where=f"profile {shown(path)}")
