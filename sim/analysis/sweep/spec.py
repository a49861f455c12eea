"""Sweep files: the pydantic schema, validation against the base scenario, and the points it expands to.

A sweep is a base scenario, fixed overrides (`set`), and axes over scenario fields by dotted path, expanded
by `sampling` into points: `grid` (the cartesian product of every axis's values), `random` (independent
uniform draws) or `latin_hypercube` (scipy.stats.qmc: each axis cut into `points` equal strata, one draw
per stratum). Each point runs `replications` times. A point is identified by a hash of the scenario it
runs, its seed, its request count and the servesim version, so results survive edits that add or reorder
points but are never reused by another version of the code.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, model_validator

from sim.spec.datafiles import check_data_file, parse_yaml, resolve_path, shown
from sim import __version__
from sim.errors import DataFileError, ScenarioError, ServesimError
from sim.spec.scenario import Scenario, load_scenario, parse_scenario

MAX_SWEEP_BYTES = 1_000_000
MAX_POINTS = 100_000

# Per-replication figures a sweep can keep; `stages.<stage>[_queue].<stat>` are added per scenario.
SCALAR_METRICS = (
    "requests", "served", "throughput_rps", "utilization", "rejected_fraction",
    "latency_ms.mean", "latency_ms.p50", "latency_ms.p90", "latency_ms.p95", "latency_ms.p99", "latency_ms.p999",
    "slo.attainment", "cost.usd_per_hour", "cost.usd_per_1m_queries", "cost.mean_replicas",
)  # fmt: skip
STAGE_STATS = ("mean", "p50", "p95", "p99")
DEFAULT_METRICS = (
    "throughput_rps", "latency_ms.mean", "latency_ms.p50", "latency_ms.p95", "latency_ms.p99",
    "utilization", "rejected_fraction", "cost.usd_per_1m_queries",
)  # fmt: skip


class SweepError(ServesimError):
    """A sweep file that does not validate; the message names the field (or axis path) and the problem."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Axis(_Model):
    """One swept field: explicit `values`, or a range `low`..`high` (`num` evenly spaced values on a grid;
    uniform draws for random / Latin hypercube sampling; `log` spaces geometrically; `integer` rounds)."""

    values: list[Any] | None = None
    low: float | None = None
    high: float | None = None
    num: PositiveInt | None = None
    log: bool = False
    integer: bool = False

    @model_validator(mode="before")
    @classmethod
    def _list_means_values(cls, data: Any) -> Any:
        if isinstance(data, list):
            return {"values": data}
        if not isinstance(data, dict):
            raise ValueError(
                f"an axis is a list of values or a range {{low, high[, num]}}, not {type(data).__name__} {data!r}"
            )
        return data

    @model_validator(mode="after")
    def _one_kind(self) -> "Axis":
        ranged = self.low is not None or self.high is not None
        if self.values is not None:
            if ranged or self.num is not None:
                raise ValueError("give values, or a range low/high, not both")
            if not self.values:
                raise ValueError("empty axis: give at least one value")
            return self
        if self.low is None or self.high is None:
            raise ValueError("empty axis: give values: [...] or a range with both low and high")
        if not self.low <= self.high:
            raise ValueError(f"low ({self.low:g}) must not exceed high ({self.high:g})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log axis needs low > 0 (got {self.low:g})")
        return self

    def grid_values(self) -> list[Any]:
        if self.values is not None:
            return list(self.values)
        if self.num is None:
            raise ValueError("a range on a grid needs num (how many values from low to high)")
        space = np.geomspace if self.log else np.linspace
        return _dedupe([self._cast(v) for v in space(self.low, self.high, self.num)])

    def from_unit(self, u: float) -> Any:
        """The axis value at quantile u in [0, 1): a stratum of the value list, or a point of the range."""
        if self.values is not None:
            return self.values[min(int(u * len(self.values)), len(self.values) - 1)]
        if self.log:
            value = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        else:
            value = self.low + u * (self.high - self.low)
        return self._cast(value)

    def endpoints(self) -> list[Any]:
        """Values that show whether the axis fits the scenario: every listed value, or both range ends."""
        if self.values is not None:
            return list(self.values)
        return [self._cast(self.low), self._cast(self.high)]

    def _cast(self, value: float) -> Any:
        return int(round(value)) if self.integer else float(value)


class PlotSpec(_Model):
    """A metric (mean over replications, with its 95% CI) against one axis, one line per value of `by`;
    `where` holds other axes at given values (otherwise a grid's other axes become panels)."""

    metric: str
    x: str
    by: str | None = None
    where: dict[str, Any] = Field(default_factory=dict)


class SweepSpec(_Model):
    name: str
    description: str | None = None
    scenario: str | dict
    fixed: dict[str, Any] = Field(default_factory=dict, alias="set")
    sampling: Literal["grid", "random", "latin_hypercube"] = "grid"
    points: PositiveInt | None = None
    sampling_seed: int = Field(default=0, ge=0)
    axes: dict[str, Axis] = Field(min_length=1)
    replications: PositiveInt | None = None
    seed: int | None = Field(default=None, ge=0)
    requests: PositiveInt | None = None
    random_numbers: Literal["common", "independent"] = "common"
    metrics: list[str] = Field(default_factory=lambda: list(DEFAULT_METRICS), min_length=1)
    plots: list[PlotSpec] | None = None

    @model_validator(mode="after")
    def _points_match_sampling(self) -> "SweepSpec":
        if self.sampling == "grid":
            if self.points is not None:
                raise ValueError(
                    "points is for random / latin_hypercube sampling; a grid has one point per combination"
                )
            for path, axis in self.axes.items():
                if axis.values is None and axis.num is None:
                    raise ValueError(f"axes.{path}: a range on a grid needs num (how many values from low to high)")
        elif self.points is None:
            raise ValueError(f"sampling: {self.sampling} needs points (how many points to draw)")
        return self


@dataclass(frozen=True)
class SweepPoint:
    """One point: its position in the sweep, its axis values, and the scenario it runs (or why it cannot)."""

    index: int
    values: dict[str, Any]
    point_id: str
    seed: int
    raw: dict | None  # the scenario with every override applied; None when it does not validate
    error: str | None = None
    offered_load: float = math.nan


@dataclass(frozen=True)
class Sweep:
    """A validated sweep: the spec, the base scenario, and everything needed to plan its tasks."""

    spec: SweepSpec
    base: Scenario
    base_dir: Path
    source: str

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def axis_paths(self) -> list[str]:
        return list(self.spec.axes)

    @property
    def replications(self) -> int:
        return self.spec.replications or self.base.replications

    @property
    def seed(self) -> int:
        return self.base.seed if self.spec.seed is None else self.spec.seed

    def with_options(self, replications: int | None = None, requests: int | None = None) -> "Sweep":
        """The same sweep with replications / requests per replication replaced (command-line options)."""
        update = {k: v for k, v in (("replications", replications), ("requests", requests)) if v is not None}
        for key, value in update.items():
            if value <= 0:
                raise SweepError(f"--{key} must be positive (got {value})")
        return Sweep(self.spec.model_copy(update=update), self.base, self.base_dir, self.source)

    def points(self) -> list[SweepPoint]:
        return [self._point(i, values) for i, values in enumerate(self._axis_values())]

    def _axis_values(self) -> list[dict[str, Any]]:
        spec = self.spec
        paths = self.axis_paths
        if spec.sampling == "grid":
            columns = [spec.axes[p].grid_values() for p in paths]
            combos = list(itertools.product(*columns)) if math.prod(map(len, columns)) <= MAX_POINTS else None
            if combos is None:
                raise SweepError(
                    f"{self.source}: the grid has {math.prod(map(len, columns))} points, above {MAX_POINTS}"
                )
            return [dict(zip(paths, combo)) for combo in combos]
        if spec.points > MAX_POINTS:
            raise SweepError(f"{self.source}: points ({spec.points}) is above {MAX_POINTS}")
        if spec.sampling == "random":
            unit = np.random.default_rng(spec.sampling_seed).random((spec.points, len(paths)))
        else:
            unit = _latin_hypercube(len(paths), spec.points, spec.sampling_seed)
        return [{p: spec.axes[p].from_unit(float(u)) for p, u in zip(paths, row)} for row in unit]

    def _point(self, index: int, values: dict[str, Any]) -> SweepPoint:
        overrides = {**self.spec.fixed, **values}
        try:
            scenario = self.base.with_overrides(overrides)
        except ScenarioError as exc:
            seed = self._point_seed(overrides)
            ident = _digest({"overrides": overrides, "error": True, "seed": seed, "servesim": __version__})
            return SweepPoint(index, values, ident, seed, None, error=f"ScenarioError: {exc}")
        raw = scenario.raw
        seed = self._point_seed(overrides)
        ident = _digest({"scenario": raw, "seed": seed, "requests": self.spec.requests, "servesim": __version__})
        from sim.metrics.load import offered_load

        loads = offered_load(scenario)
        return SweepPoint(index, values, ident, seed, raw, offered_load=max(loads.values(), default=math.nan))

    def _point_seed(self, overrides: dict[str, Any]) -> int:
        """The scenario seed at every point (common random numbers: differences between points are the
        axes', not the dice's), or a seed derived from the point's overrides when asked `independent`."""
        if self.spec.random_numbers == "common":
            return self.seed
        return int(_digest({"seed": self.seed, "overrides": overrides}), 16) % (2**63)


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep YAML file; every problem becomes one SweepError naming its field."""
    path = Path(path)
    try:
        check_data_file(path, "sweep file", limit=MAX_SWEEP_BYTES)
    except DataFileError as exc:
        raise SweepError(str(exc)) from None
    text = path.read_text(encoding="utf-8", errors="replace")
    raw = parse_yaml(text, shown(path), SweepError)
    return parse_sweep(raw, base_dir=path.parent, source=shown(path))


def parse_sweep(raw: Any, base_dir: str | Path = ".", source: str = "sweep") -> Sweep:
    """Validate a sweep given as a mapping; `scenario` (a path) resolves relative to `base_dir`."""
    base_dir = Path(base_dir).resolve()
    if not isinstance(raw, dict):
        raise SweepError(f"{source}: a sweep is a mapping with name, scenario, axes (and replications, metrics)")
    try:
        spec = SweepSpec.model_validate(raw)
    except ValidationError as exc:
        problems = [_describe(error) for error in exc.errors()]
        raise SweepError(f"{source}: invalid sweep\n" + "\n".join(f"  {p}" for p in problems)) from None
    base, scenario_dir = _base_scenario(spec, base_dir, source)
    sweep = Sweep(spec, base, scenario_dir, source)
    _check_against_scenario(sweep)
    return sweep


def stage_metrics(scenario: Scenario) -> list[str]:
    """The per-stage metric names of a scenario: stages.<stage>[_queue].<stat>."""
    from sim.metrics.summary import stage_columns

    return [f"stages.{c.removesuffix('_ms')}.{s}" for c in stage_columns(scenario) for s in STAGE_STATS]


def _base_scenario(spec: SweepSpec, base_dir: Path, source: str) -> tuple[Scenario, Path]:
    try:
        if isinstance(spec.scenario, dict):
            return parse_scenario(spec.scenario, base_dir=base_dir, source=f"{source}: scenario"), base_dir
        # The same allowed folders as any file a scenario names: the sweep's folder and the shipped data.
        path = resolve_path(spec.scenario, {"base_dir": base_dir, "owner": "the sweep's"})
    except ValueError as exc:
        raise SweepError(f"{source}: scenario: {exc}") from None
    try:
        return load_scenario(path), path.parent
    except ScenarioError as exc:
        raise SweepError(f"{source}: scenario: {str(exc).replace(str(path), shown(path))}") from None


def _check_against_scenario(sweep: Sweep) -> None:
    """Every fixed override, axis value (or range end), metric and plot must make sense for the scenario."""
    source, spec, base = sweep.source, sweep.spec, sweep.base
    problems: list[str] = []
    try:
        fixed = base.with_overrides(spec.fixed) if spec.fixed else base
    except ScenarioError as exc:
        problems.append(f"set: {_scenario_problem(exc)}")
        fixed = base
    for path, axis in spec.axes.items():
        if path in spec.fixed:
            problems.append(f"axes.{path}: also fixed under set; remove one")
            continue
        for value in axis.endpoints():
            try:
                fixed.with_overrides({path: value})
            except ScenarioError as exc:
                problems.append(f"axes.{path}: value {value!r}: {_scenario_problem(exc)}")
                break
    known = [*SCALAR_METRICS, *stage_metrics(base)]
    for metric in spec.metrics:
        if metric not in known:
            hint = difflib.get_close_matches(metric, known, n=1)
            problems.append(
                f"metrics: unknown metric {metric!r}"
                + (f" (did you mean {hint[0]!r}?)" if hint else f"; known: {', '.join(known)}")
            )
    for i, plot in enumerate(spec.plots or []):
        if plot.metric not in spec.metrics:
            problems.append(f"plots.{i}.metric: {plot.metric!r} is not among the sweep's metrics")
        for key in ("x", "by"):
            axis = getattr(plot, key)
            if axis is not None and axis not in spec.axes:
                problems.append(f"plots.{i}.{key}: {axis!r} is not an axis (axes: {', '.join(spec.axes)})")
        for axis in plot.where:
            if axis not in spec.axes or axis in (plot.x, plot.by):
                problems.append(f"plots.{i}.where: {axis!r} is not an axis other than x and by")
    if problems:
        raise SweepError(f"{source}: invalid sweep\n" + "\n".join(f"  {p}" for p in problems))


def _scenario_problem(exc: ScenarioError) -> str:
    """A scenario error without its 'scenario: invalid scenario' header, on one line."""
    lines = [line.strip() for line in str(exc).splitlines()]
    if len(lines) > 1 and lines[0].endswith("invalid scenario"):
        lines = lines[1:]
    return "; ".join(lines)


def _describe(error: dict) -> str:
    path = ".".join(str(loc) for loc in error["loc"] if not str(loc).startswith("function-"))
    path = path or "(top level)"
    kind = error["type"]
    if kind == "extra_forbidden":
        known = [*SweepSpec.model_fields, "set", *Axis.model_fields, *PlotSpec.model_fields]
        hint = difflib.get_close_matches(str(error["loc"][-1]), known, n=1)
        return f"{path}: unknown field" + (f" (did you mean {hint[0]!r}?)" if hint else "")
    if kind == "missing":
        return f"{path}: required field is missing"
    if kind == "too_short" and error["loc"] and error["loc"][-1] == "axes":
        return "axes: give at least one axis (a dotted scenario path and its values)"
    return f"{path}: " + error["msg"].removeprefix("Value error, ")


def _latin_hypercube(dimensions: int, n: int, seed: int) -> np.ndarray:
    from scipy.stats import qmc

    try:
        sampler = qmc.LatinHypercube(d=dimensions, rng=np.random.default_rng(seed))
    except TypeError:  # scipy < 1.15 names it seed
        sampler = qmc.LatinHypercube(d=dimensions, seed=np.random.default_rng(seed))
    return sampler.random(n)


def _dedupe(values: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for value in values:
        if value not in seen:
            seen.append(value)
    return seen


def _digest(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
