"""Scenario files: the pydantic schema of the YAML, validation with clear errors, dotted-path overrides.

This is the only module that knows the file syntax. Everything downstream receives a validated, frozen
`Scenario`. Paths inside a scenario (traces, profiles, samples) resolve relative to the scenario file.
"""

from __future__ import annotations

import copy
import difflib
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import numpy as np
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from sim.spec.arrivals import ArrivalProcess, TimeVarying, Trace
from sim.spec.autoscaling import AutoscalingPolicy
from sim.spec.batch_cost import AffineCost, AffineSpec, BatchCost, ProfileCost, ScaledSingle, SpedUp
from sim.spec.bounds import (
    MAX_INT_DIGITS,
    Instances,
    Number,
    PositiveMs,
    PositiveSeconds,
    QueueSize,
    Replicas,
    Replications,
    Requests,
    RequestsOrZero,
    Seconds,
    Seed,
    Speedup,
    UsdPerHour,
    Workers,
    booleans_taken_as_numbers,
    plain_data_problems,
)
from sim.spec.batching import BatchingPolicy, NoBatching
from sim.spec.correlated import RegimeCost, RegimeSpec, ReplayCost, ReplaySpec
from sim.spec.caching import CacheTier, validate_caches
from sim.spec.datafiles import FileAccess, default_access, parse_yaml, resolve_path, shown
from sim.spec.distributions import Distribution
from sim.errors import ScenarioError, ServesimError
from sim.spec.llm_schema import ContinuousLLMBatching, LLMStage, PrefixCache, StaticLLMBatching, TokenSpec
from sim.spec.profile import HostShare

MAX_SCENARIO_BYTES = 1_000_000
DEFAULT_REQUESTS = 100_000
DEFAULT_WARMUP_SHARE = 0.05  # of a run discarded as warm-up when the scenario names none


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, populate_by_name=True)


class DelayStage(_Model):
    """A pure delay with no contention: network round trip, serialisation, a remote call with headroom."""

    name: str
    kind: Literal["delay"]
    service_ms: Distribution


class PoolStage(_Model):
    """A limited worker pool served first come, first served: preprocessing on `workers` CPU workers (per
    replica unless `per_replica: false`), tokenisation, JPEG decode, a feature fetch."""

    name: str
    kind: Literal["pool"]
    workers: Workers
    per_replica: bool = True
    service_ms: Distribution


class ModelStage(_Model):
    """The replica-bound, batched forward pass. Its batch cost is one of: `service_ms` (a batch of one,
    scaled by `1 + per_item × (n − 1)` for a batch of n), `batch_cost` {base_ms, per_item_ms, cv}, or a
    measured `profile: models/NAME.yaml`. `speedup` divides it (faster hardware, INT8, TensorRT...).
    On shared hosts, `slowdown` (slow regimes lasting seconds) or `replay` (a measured service-time
    sequence, in order) makes successive service times correlated (sim/spec/correlated.py); `host`
    (with a profile measured under co-load) slows the kernel by what runs beside it (sim/spec/profile.py)."""

    name: str
    kind: Literal["model"]
    service_ms: Distribution | None = None
    per_item: Number = Field(default=1.0, ge=0, le=1000)
    batch_cost: AffineSpec | None = None
    profile: str | None = None
    speedup: Speedup = 1.0
    batching: BatchingPolicy = Field(default_factory=lambda: NoBatching(policy="none"))
    slowdown: RegimeSpec | None = None
    replay: ReplaySpec | None = None
    host: HostShare | None = None

    @field_validator("profile")
    @classmethod
    def _profile_loads(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        path = resolve_path(value, info.context)
        _load_profile(str(path))
        return str(path)

    @model_validator(mode="after")
    def _one_cost(self) -> "ModelStage":
        given = [k for k in ("service_ms", "batch_cost", "profile") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "a model stage needs exactly one of service_ms, batch_cost, profile"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.slowdown is not None and self.replay is not None:
            raise ValueError("give slowdown or replay, not both (a replayed sequence already holds its slow regimes)")
        if self.host is not None and self.host.slowdown_applies:
            if self.profile is None or not _load_profile(self.profile).co_load:
                raise ValueError(
                    "host: a shared host needs a profile with co_load rows (servesim calibrate measure --co-load-rps)"
                )
        if self.profile is not None:
            limit = _load_profile(self.profile).max_batch_size
            if self.batching.max_batch_size > limit:
                raise ValueError(
                    f"batching asks batches of {self.batching.max_batch_size} but the profile was measured "
                    f"up to {limit}"
                )
        return self

    @cached_property
    def cost(self) -> BatchCost:
        if self.service_ms is not None:
            base: BatchCost = ScaledSingle(self.service_ms, self.per_item)
        elif self.batch_cost is not None:
            base = AffineCost(self.batch_cost)
        else:
            base = ProfileCost(_load_profile(self.profile))
        if self.slowdown is not None:
            base = RegimeCost(base, self.slowdown)
        elif self.replay is not None:
            base = ReplayCost(base, self.replay)
        # A shared host slows the kernel by its measured co-load factor: a speed-up below 1, so every
        # engine path (which peels speed-ups off, sim/engine/service_draws.py) applies it alike.
        shared = self.host is not None and self.host.slowdown_applies
        speedup = self.speedup / (self.host.slowdown(_load_profile(self.profile)) if shared else 1.0)
        return base if speedup == 1.0 else SpedUp(base, speedup)


_PROFILES: dict[str, Any] = {}


def _load_profile(path: str):
    if path not in _PROFILES:
        from sim.spec.profile import load_profile

        try:
            _PROFILES[path] = load_profile(path)
        except ServesimError as exc:
            raise ValueError(str(exc)) from None
    return _PROFILES[path]


Stage = Annotated[Union[DelayStage, PoolStage, ModelStage, LLMStage], Field(discriminator="kind")]
STAGE_KINDS = ("delay", "pool", "model", "llm")


class Hardware(_Model):
    """What one replica runs on and what it costs per hour, on demand; a catalogue name alone
    (models/hardware.yaml) brings its catalogue price."""

    name: str | None = None
    usd_per_hour: UsdPerHour | None = None

    @model_validator(mode="after")
    def _catalogue_price(self) -> "Hardware":
        if self.usd_per_hour is None and self.name:
            from sim.spec.hardware import load_catalogue

            catalogue = load_catalogue()
            if self.name not in catalogue:
                hint = difflib.get_close_matches(self.name, list(catalogue), n=1)
                raise ValueError(
                    f"{self.name!r} is not in the hardware catalogue and has no usd_per_hour"
                    + (f" (did you mean {hint[0]!r}?)" if hint else f" (catalogue: {', '.join(catalogue)})")
                )
            object.__setattr__(self, "usd_per_hour", catalogue[self.name].usd_per_hour)
        return self


Routing = Literal["shared_queue", "round_robin", "least_outstanding", "random", "power_of_two"]


class Deployment(_Model):
    """Replicas (fixed, or managed by `autoscaling`), model instances per replica, routing between
    replicas, Triton's `max_queue_size`, the hardware price, and how long a new replica takes to serve."""

    replicas: Replicas = 1
    instances: Instances = 1
    routing: Routing = "shared_queue"
    max_queue_size: QueueSize | None = None
    hardware: Hardware = Field(default_factory=Hardware)
    autoscaling: AutoscalingPolicy | None = None
    cold_start_ms: Distribution | None = None

    @model_validator(mode="after")
    def _autoscaling_routes_through_one_queue(self) -> "Deployment":
        if self.autoscaling is not None and self.routing != "shared_queue":
            raise ValueError(
                "autoscaling needs routing: shared_queue (the router / activator queue new replicas pull from)"
            )
        return self


class Slo(_Model):
    """Latency budgets on end-to-end latency, in ms."""

    p50_ms: PositiveMs | None = None
    p95_ms: PositiveMs | None = None
    p99_ms: PositiveMs | None = None
    ttft_ms: PositiveMs | None = Field(default=None, description="LLM stages: time-to-first-token budget (goodput)")
    tpot_ms: PositiveMs | None = Field(default=None, description="LLM stages: time-per-output-token budget (goodput)")

    def budgets(self) -> dict[float, float]:
        """Quantile -> budget in ms, for the budgets that were given."""
        given = {0.50: self.p50_ms, 0.95: self.p95_ms, 0.99: self.p99_ms}
        return {q: ms for q, ms in given.items() if ms is not None}


class Workload(_Model):
    arrival: ArrivalProcess
    tokens: TokenSpec | None = None
    requests: Requests | None = None
    duration_s: PositiveSeconds | None = None
    warmup_requests: RequestsOrZero | None = None
    warmup_s: Seconds | None = None

    @model_validator(mode="after")
    def _length_and_warmup(self) -> "Workload":
        if self.requests is not None and self.duration_s is not None:
            raise ValueError("give requests or duration_s, not both")
        if self.warmup_requests is not None and self.warmup_s is not None:
            raise ValueError("give warmup_requests or warmup_s, not both")
        if self.requests is not None and self.warmup_requests is not None and self.warmup_requests >= self.requests:
            raise ValueError(f"warmup_requests ({self.warmup_requests}) must be below requests ({self.requests})")
        if self.duration_s is not None and self.warmup_s is not None and self.warmup_s >= self.duration_s:
            raise ValueError(f"warmup_s ({self.warmup_s}) must be below duration_s ({self.duration_s})")
        if self.requests is not None and isinstance(self.arrival, TimeVarying) and self.arrival.varies:
            raise ValueError(
                f"requests ({self.requests}): a time_varying arrival runs over a horizon, not for a count of "
                "requests (the first N requests are the start of the curve, not the curve); give duration_s"
            )
        return self

    def warmup_share(self) -> float:
        """The share of a run discarded as warm-up — the one warm-up rule of every command: the scenario's
        warm-up count over its request count, its warm-up time over its horizon (or over the requests
        expected in it), else DEFAULT_WARMUP_SHARE."""
        count, horizon_ms = self.length()
        if self.warmup_requests is not None:
            if count:
                return self.warmup_requests / count
            expected = (horizon_ms or 0.0) / 1000.0 * self.arrival.mean_rate_rps  # over a horizon: its expected count
            return min(self.warmup_requests / expected, 0.5) if expected > 0 else 0.0
        if self.warmup_s is not None:
            if horizon_ms:
                return self.warmup_s * 1000.0 / horizon_ms
            return min(self.warmup_s * self.arrival.mean_rate_rps / count, 0.5)
        return DEFAULT_WARMUP_SHARE

    def warmup_mask(self, arrival_ms: np.ndarray, own_length: bool = True) -> np.ndarray:
        """Which of a replication's requests (in arrival order) are warm-up: those arriving before
        `warmup_s` when the run has the scenario's own length, else the first `warmup_share` of them
        (at least one request is always measured)."""
        n = len(arrival_ms)
        if self.warmup_s is not None and own_length:
            return arrival_ms < self.warmup_s * 1000.0
        mask = np.zeros(n, dtype=bool)
        mask[: min(round(self.warmup_share() * n), max(n - 1, 0))] = True
        return mask

    def length(self) -> tuple[int | None, float | None]:
        """(request count, horizon in ms): exactly one is set. A trace defaults to its whole length, a
        time_varying arrival to its curve's (one period, else up to its last point)."""
        if self.duration_s is not None:
            return None, self.duration_s * 1000.0
        if self.requests is not None:
            return self.requests, None
        if isinstance(self.arrival, Trace):
            return self.arrival.length, None
        if isinstance(self.arrival, TimeVarying) and self.arrival.span_s > 0:
            return None, self.arrival.span_s * 1000.0
        return DEFAULT_REQUESTS, None


class Scenario(_Model):
    name: str
    description: str | None = None
    seed: Seed = 0
    replications: Replications = 5
    workload: Workload
    stages: list[Stage] = Field(min_length=1, max_length=100)
    deployment: Deployment = Field(default_factory=Deployment)
    slo: Slo = Field(default_factory=Slo)
    caches: list[CacheTier] = Field(default_factory=list, max_length=20)

    _raw: dict = PrivateAttr(default_factory=dict)
    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _file_access: FileAccess | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _stage_names(self) -> "Scenario":
        names = [stage.name for stage in self.stages]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"stage names must be unique; repeated: {', '.join(duplicates)}")
        if any(stage.kind == "llm" for stage in self.stages) and self.workload.tokens is None:
            raise ValueError(
                "workload.tokens: an llm stage needs token counts: {prompt: DIST, output: DIST} or, with a trace, "
                "{prompt_column: NAME, output_column: NAME}"
            )
        if not any(stage.kind in ("model", "llm") for stage in self.stages):
            raise ValueError("stages need a model stage (kind: model), the replica-bound forward pass")
        if self.caches:
            validate_caches(self.caches, names, {stage.name: stage.kind for stage in self.stages})
        for stage in self.stages:
            split = getattr(stage, "disaggregated", None)
            if split is None:
                continue
            if self.deployment.autoscaling is not None:
                raise ValueError(
                    f"deployment.autoscaling: stage {stage.name!r} is disaggregated; its pools have fixed sizes"
                )
            if self.deployment.replicas != split.replicas:
                raise ValueError(
                    f"deployment.replicas: stage {stage.name!r} is disaggregated into {split.prefill_replicas} prefill "
                    f"+ {split.decode.replicas} decode replicas; set deployment.replicas: {split.replicas}"
                )
        return self

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)

    @property
    def raw(self) -> dict:
        """The scenario as the user wrote it (after overrides), for saving and further overrides."""
        return copy.deepcopy(self._raw)

    def raw_stage(self, name: str) -> dict:
        """One stage as the user wrote it."""
        return copy.deepcopy(self._raw["stages"][_list_index(self._raw["stages"], name, f"stages.{name}")])

    def with_overrides(self, overrides: dict[str, Any]) -> "Scenario":
        """A new scenario with fields replaced by dotted path, e.g. {"workload.arrival.rate_rps": 3,
        "stages.forward.batching": {"policy": "none"}, "deployment.replicas": 4}."""
        raw = self.raw
        for path, value in overrides.items():
            set_path(raw, path, value)
        return parse_scenario(raw, base_dir=self._base_dir, allowed_roots=self._file_access and self._file_access.roots)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.raw, sort_keys=False)

    @property
    def base_dir(self) -> Path:
        """The folder the scenario's relative file names are read from."""
        return self._base_dir


def set_path(raw: dict, dotted: str, value: Any) -> None:
    """Set a field of a raw scenario by dotted path; list items (stages) are named by `name` or index."""
    keys = dotted.split(".")
    node: Any = raw
    for depth, key in enumerate(keys):
        last = depth == len(keys) - 1
        where = ".".join(keys[: depth + 1])
        if isinstance(node, list):
            index = _list_index(node, key, where)
            if last:
                node[index] = value
                return
            node = node[index]
        elif isinstance(node, dict):
            if last:
                node[key] = value
                return
            if key not in node:
                node[key] = {}
            node = node[key]
        else:
            raise ScenarioError(f"{where}: cannot set a field inside {type(node).__name__} {node!r}")


def _list_index(items: list, key: str, where: str) -> int:
    for i, item in enumerate(items):
        if isinstance(item, dict) and item.get("name") == key:
            return i
    if key.isdigit() and int(key) < len(items):
        return int(key)
    names = [item.get("name") for item in items if isinstance(item, dict)]
    raise ScenarioError(f"{where}: no item named {key!r} (have: {', '.join(map(str, names))})")


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario YAML file; every problem becomes one ScenarioError."""
    path = Path(path)
    label = shown(path)  # never an absolute server path in a message
    if not path.is_file():
        raise ScenarioError(f"scenario file not found: {label} (`servesim scenarios` lists the shipped ones by name)")
    if path.stat().st_size > MAX_SCENARIO_BYTES:
        raise ScenarioError(f"{label}: scenario file is larger than {MAX_SCENARIO_BYTES} bytes")
    return parse_scenario_text(path.read_text(encoding="utf-8", errors="replace"), base_dir=path.parent, source=label)


def parse_scenario_text(
    text: str, base_dir: str | Path = ".", source: str = "scenario", allowed_roots=None
) -> Scenario:
    """Validate scenario YAML text. Files it names must lie inside `allowed_roots` (default: `base_dir`
    and the project's shipped scenarios/, models/, data/); a planner upload passes
    `allowed_roots=shipped_data_roots()` so that it can name shipped data only."""
    if len(text.encode("utf-8", errors="replace")) > MAX_SCENARIO_BYTES:
        raise ScenarioError(f"{source}: scenario is larger than {MAX_SCENARIO_BYTES} bytes")
    raw = parse_yaml_numbers(text, source, ScenarioError)
    if not isinstance(raw, dict):
        raise ScenarioError(f"{source}: a scenario is a mapping with name, workload, stages, deployment")
    problems = list(plain_data_problems(raw))
    if problems:
        raise ScenarioError(f"{source}: invalid scenario\n" + "\n".join(f"  {p}" for p in problems))
    return parse_scenario(raw, base_dir=base_dir, source=source, allowed_roots=allowed_roots)


def parse_yaml_numbers(text: str, source: str, error: type[ServesimError]) -> Any:
    """`parse_yaml`, with a number too long for Python to read (over 4,300 digits) refused as `error`."""
    try:
        return parse_yaml(text, source, error)
    except ServesimError:
        raise
    except ValueError:  # Python's own limit on the digits of a number it converts
        raise error(f"{source}: a number has more than {MAX_INT_DIGITS} digits, past every limit") from None


def parse_scenario(raw: dict, base_dir: str | Path = ".", source: str = "scenario", allowed_roots=None) -> Scenario:
    base_dir = Path(base_dir)
    access = default_access(base_dir) if allowed_roots is None else FileAccess.of(allowed_roots)
    problems = list(plain_data_problems(raw, tags=False))  # a 5,000-digit int cannot even be printed
    if not problems:
        try:
            scenario = Scenario.model_validate(raw, context={"base_dir": base_dir, "file_access": access})
        except ValidationError as exc:
            problems = [_describe(error, raw) for error in exc.errors()]
        else:
            problems = list(booleans_taken_as_numbers(raw, scenario))
    if problems:
        raise ScenarioError(f"{source}: invalid scenario\n" + "\n".join(f"  {p}" for p in problems)) from None
    scenario._raw = copy.deepcopy(raw)
    scenario._base_dir = base_dir
    scenario._file_access = access
    return scenario


def _describe(error: dict, raw: dict) -> str:
    """`field.path: problem`, with the path as the user wrote it (union tags dropped, stages by name)."""
    parts: list[str] = []
    node: Any = raw
    for loc in error["loc"]:
        if isinstance(node, list) and isinstance(loc, int) and loc < len(node):
            item = node[loc]
            parts.append(item["name"] if isinstance(item, dict) and isinstance(item.get("name"), str) else str(loc))
            node = item
        elif isinstance(node, dict) and loc in node:
            parts.append(str(loc))
            node = node[loc]
        elif error["type"] in ("missing", "extra_forbidden") and loc == error["loc"][-1]:
            parts.append(str(loc))
        # otherwise: a union tag or a function-validator label, not part of the user's path
    path = ".".join(parts) or "(top level)"
    if path == "(top level)" and error["msg"].removeprefix("Value error, ").startswith(
        ("caches", "stages", "workload")
    ):
        return error["msg"].removeprefix("Value error, ")
    kind = error["type"]
    if kind == "extra_forbidden":
        key = str(error["loc"][-1])
        # a name known elsewhere in the schema is no hint for itself (overrides name its real path)
        hint = difflib.get_close_matches(key, [k for k in _KNOWN_KEYS if k != key], n=1)
        return f"{path}: unknown field" + (f" (did you mean {hint[0]!r}?)" if hint else "")
    if kind == "missing":
        return f"{path}: required field is missing"
    message = error["msg"].removeprefix("Value error, ")
    given = error.get("input")
    if kind not in ("value_error", "assertion_error") and not isinstance(given, (dict, list)) and "input" in error:
        shown = repr(given)
        message += f" (got {shown if len(shown) <= 40 else shown[:37] + '...'})"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        expected = error.get("ctx", {}).get("expected_tags", "")
        tag = error.get("ctx", {}).get("discriminator", "").strip("'")
        message = f"{tag or 'type'} must be one of {expected}" if expected else message
    return f"{path}: {message}"


# Every field name the schema knows, for "did you mean" hints on typos.
_KNOWN_KEYS = sorted(
    {
        name
        for model in (
            Scenario,
            Workload,
            Deployment,
            Slo,
            Hardware,
            DelayStage,
            PoolStage,
            ModelStage,
            AffineSpec,
            LLMStage,
            TokenSpec,
            ContinuousLLMBatching,
            StaticLLMBatching,
            PrefixCache,
        )
        for name, field in model.model_fields.items()
        for name in (name, field.alias or name)
    }
    | {
        "rate_rps",
        "cv",
        "mean",
        "median",
        "p99",
        "value",
        "samples",
        "file",
        "column",
        "dist",
        "process",
        "max_batch_size",
        "max_queue_delay_ms",
        "preferred_batch_sizes",
        "batch_size",
        "timeout_ms",
        "policy",
        "rate_on_rps",
        "rate_off_rps",
        "mean_on_s",
        "mean_off_s",
        "points",
        "period_s",
        "spikes",
        "at_s",
        "multiplier",
        "time_column",
        "time_unit",
        "rate_scale",
        "low",
        "high",
        "tier",
        "lookup_ms",
        "hit_rate",
        "keys",
        "popularity",
        "exponent",
        "n_keys",
        "capacity",
        "eviction",
        "ttl_s",
        "deploys_s",
        "skips",
        "stage",
        "hit_ms",
        "caches",
        "autoscaling",
        "cold_start_ms",
        "min_replicas",
        "max_replicas",
        "initial_replicas",
        "target_ongoing_requests",
        "upscale_delay_s",
        "downscale_delay_s",
        "look_back_period_s",
        "min_scale",
        "max_scale",
        "target",
        "target_utilization",
        "stable_window_s",
        "scale_to_zero_grace_period_s",
    }
)


def time_varying_load(scenario: Scenario) -> bool:
    """The offered rate follows the clock (a time_varying arrival whose rate changes: a daily curve, a
    ramp, a spike). Consecutive sections of one run of it are not exchangeable, so no confidence interval
    comes from them; and the first N requests are the start of its horizon, not the horizon."""
    arrival = scenario.workload.arrival
    return isinstance(arrival, TimeVarying) and arrival.varies


def time_dependent(scenario: Scenario) -> bool:
    """Traffic or capacity that changes over time: a time profile, on/off, a trace, an autoscaler, or a
    cache whose contents expire or are flushed by a deploy."""
    process = scenario.raw["workload"]["arrival"].get("process")
    caches = scenario.raw.get("caches") or []
    return (
        process in ("time_varying", "on_off", "trace")
        or getattr(scenario.deployment, "autoscaling", None) is not None
        or any(isinstance(c, dict) and (c.get("ttl_s") or c.get("deploys_s")) for c in caches)
    )
