"""The summary as a typed object whose dict is the JSON: `Summary.of(summary).to_dict()` is the
`servesim run --json` contract (DESIGN.md) exactly — same keys, same order, same values (`Real` keeps a
number as it came: an int stays an int, a NaN the same NaN), so readers use attributes instead of chains
of `.get`, and the contract does not move.

A key the summary leaves out stays out (`to_dict` dumps only the keys that were given), a key given as
null stays null, and a key this file does not know yet is kept (extra keys ride along, after the known
ones): a later capability that adds a key does not break the view.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, PlainValidator


def _real(value: Any) -> Any:
    """A number, kept as given (no int → float coercion, no copy of a NaN)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise ValueError(f"expected a number, got {value!r}")
    return value


Real = Annotated[float, PlainValidator(_real)]
Interval = list[Real | None]  # [low, high]; NaN (or null in JSON) where no honest interval exists


class _View(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    @classmethod
    def of(cls, value):
        """The typed view of a dict (a view given is returned as is)."""
        return value if isinstance(value, cls) else cls.model_validate(value)

    def to_dict(self) -> dict:
        """The keys given, in the contract's order (unknown keys last), values as given."""
        return self.model_dump(exclude_unset=True)


class Percentiles(_View):
    """Mean and percentiles in ms (latency: all six; a stage: mean, p50, p95, p99; LLM: no p999)."""

    mean: Real | None = None
    p50: Real | None = None
    p90: Real | None = None
    p95: Real | None = None
    p99: Real | None = None
    p999: Real | None = None

    def at(self, key: str) -> float | None:
        """The figure named `key` ('p99'), None when absent."""
        return getattr(self, key, None)


class Intervals(_View):
    """95% confidence intervals [low, high] of the same figures."""

    mean: Interval | None = None
    p50: Interval | None = None
    p90: Interval | None = None
    p95: Interval | None = None
    p99: Interval | None = None
    p999: Interval | None = None

    def at(self, key: str) -> list | None:
        return getattr(self, key, None)


class Cost(_View):
    usd_per_hour: Real | None = None
    usd_per_1m_queries: Real | None = None
    mean_replicas: Real | None = None
    usd_per_day: Real | None = None  # a load that follows the clock: the cost of its horizon
    usd_for_horizon: Real | None = None
    horizon_s: Real | None = None


class MissedWindow(_View):
    from_s: Real
    to_s: Real
    worst_ms: Real


class Windows(_View):
    """The per-window SLO verdict of a load that follows the clock (sim/metrics/windows.py)."""

    window_s: Real
    quantile: str
    judged: int
    too_few: int
    min_requests: int
    met: bool | None = None
    worst_ms: Real | None = None
    missed: list[MissedWindow] = []


class Slo(_View):
    p99_ms: Real | None = None
    met: bool | None = None
    attainment: Real | None = None
    budgets: dict[str, Real] | None = None  # 'p99_ms': 500.0
    checks: dict[str, bool] | None = None  # 'p99': True
    windows: Windows | None = None


class Autoscaling(_View):
    policy: str
    mean_replicas: Real | None = None
    mean_replicas_ci95: Interval | None = None
    mean_warm_replicas: Real | None = None
    max_replicas: int | None = None
    cold_starts_per_replication: Real | None = None


class Cache(_View):
    tier: str
    reached_fraction: Real | None = None
    hit_rate: Real | None = None
    hit_rate_ci95: Interval | None = None
    hit_rate_per_minute: list[Real | None] = []
    lookup_ms_mean: Real | None = None


class Share(_View):
    """Time-weighted mean and maximum (KV-cache use as a share of blocks; batch size in sequences)."""

    mean: Real | None = None
    max: Real | None = None


class Goodput(_View):
    ttft_slo_ms: Real | None = None
    tpot_slo_ms: Real | None = None
    requests_per_s: Real | None = None
    attainment: Real | None = None


class Pool(_View):
    """One pool of a disaggregated LLM stage: its replicas and occupancy over its own KV blocks."""

    replicas: int
    kv_cache_utilization: Share = Share()
    batch_size: Share = Share()
    busy_fraction: Real | None = None
    num_gpu_blocks: int | None = None
    block_size: int | None = None


class Pools(_View):
    prefill: Pool
    decode: Pool


class CostsEstimated(_View):
    hardware: str | None = None


class Llm(_View):
    """The `llm` key (sim/metrics/llm.py): the first LLM stage over the measured requests."""

    stage: str | None = None
    requests: int | None = None
    completed: int | None = None
    rejected: int | None = None
    ttft_ms: Percentiles = Percentiles()
    tpot_ms: Percentiles = Percentiles()
    e2el_ms: Percentiles = Percentiles()
    itl_ms: Percentiles = Percentiles()
    ci95: dict[str, Intervals] = {}
    duration_s: Real | None = None
    output_tokens_per_s: Real | None = None
    requests_per_s: Real | None = None
    goodput: Goodput | None = None
    preemptions: int | None = None
    preempted_requests: int | None = None
    kv_cache_utilization: Share = Share()
    batch_size: Share = Share()
    busy_fraction: Real | None = None
    num_gpu_blocks: int | None = None
    block_size: int | None = None
    pools: Pools | None = None  # a disaggregated stage
    kv_transfer_ms: Percentiles | None = None  # ... the KV transfer each request waited for
    costs_estimated: CostsEstimated | None = None  # costs transferred to unmeasured hardware
    warnings: list[str] = []

    def interval(self, metric: str, key: str) -> list | None:
        """The 95% CI of `metric`'s `key` ('ttft_ms', 'p99'), None where there is none."""
        intervals = self.ci95.get(metric)
        return intervals.at(key) if intervals is not None else None


class Summary(_View):
    """The `servesim run --json` object (sim/metrics/summary.py `summarize`)."""

    scenario: str | None = None
    replications: int | None = None
    requests: int | None = None
    served: int | None = None
    throughput_rps: Real | None = None
    latency_ms: Percentiles = Percentiles()
    latency_ms_ci95: Intervals = Intervals()
    stages: dict[str, Percentiles] = {}
    utilization: Real | None = None  # left out where no single share says how full it is (an LLM stage)
    offered_load: dict[str, Real] = {}
    rejected_fraction: Real | None = None
    cost: Cost = Cost()
    slo: Slo = Slo()
    warnings: list[str] = []
    autoscaling: Autoscaling | None = None
    caches: dict[str, Cache] | None = None
    llm: Llm | None = None
    status: str = "ok"
    status_reasons: list[str] = []

    def __contains__(self, key: str) -> bool:
        """Whether the JSON has `key` (`"llm" in summary`)."""
        return key in self.model_fields_set or key in (self.model_extra or {})


def finite(value: float | None) -> bool:
    """A number that is neither None nor NaN nor infinite."""
    return value is not None and math.isfinite(value)
