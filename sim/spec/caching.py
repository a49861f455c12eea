"""Cache tiers: which requests hit, which stages a hit skips or replaces, and what a lookup costs.

Tiers (the scenario's `caches:` list, one small class each behind `_Cache`):
- `output`: a hit answers from the cache and skips the pipeline (by default every stage that is not
  `kind: delay`); its keys include the model version, so `deploys_s` invalidate it (a cold cache).
- `embedding`: a hit skips the encoder stage(s) named in `skips`.
- `feature`: a hit turns `stage` (a remote feature fetch) into a local lookup of `hit_ms`.

Hits are either a fixed `hit_rate` (independent Bernoulli draws) or emerge from request keys (a Zipf
popularity law or a trace column) replayed through an LRU / LFU / TTL-only cache of `capacity` entries.
Simplifications, stated once: each tier draws its keys (or Bernoulli hits) from its own stream, so
tiers are independent; given the stages, a request consults the caches in pipeline order and one that an
earlier hit spared (an output hit skips the stage an embedding cache sits before) neither pays that
lookup nor touches that cache (`reached_masks`); lookups happen at arrival time; a missed key is
inserted at lookup time, not when the recomputed value is ready (no miss-in-flight window, i.e.
concurrent misses on one key are coalesced); TTL expiry is lazy (an expired entry keeps its slot until
evicted or looked up again, as in Redis / memcached) and a hit does not extend it.

The engine calls `cache_outcomes`, `reached_masks`, `skip_masks`, `replacement_delays` and
`lookup_delays`, and writes `<name>_hit` and `<name>_lookup_ms` log columns (NaN lookup for a request
that never consulted the cache) that `cache_summary` reads back.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Annotated, Callable, Literal, Union

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from sim.spec.bounds import Exponent, Keys, PositiveSeconds, Seconds
from sim.spec.distributions import Constant, Distribution
from sim.errors import ScenarioError
from sim.streams import stream


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, populate_by_name=True)


class ZipfKeys(_Spec):
    """Keys 0..n_keys-1 drawn independently with P(rank i) proportional to i^(-exponent)."""

    popularity: Literal["zipf"]
    exponent: Exponent
    n_keys: Keys

    def probabilities(self) -> np.ndarray:
        from sim.theory import zipf_probabilities

        return zipf_probabilities(self.n_keys, self.exponent)


class ColumnKeys(_Spec):
    """Keys taken from a column of the arrival trace (e.g. `user_id`)."""

    column: str


def _key_kind(value: object) -> str:
    if isinstance(value, ColumnKeys) or (isinstance(value, dict) and "column" in value):
        return "column"
    return "zipf"


KeySpec = Annotated[
    Union[Annotated[ZipfKeys, Tag("zipf")], Annotated[ColumnKeys, Tag("column")]], Discriminator(_key_kind)
]

_NO_LOOKUP = Constant(dist="constant", value=0.0)
_EMERGENT_ONLY = ("capacity", "eviction", "ttl_s", "deploys_s")


class _Cache(_Spec):
    """What every tier shares: a name, a lookup cost paid on hit and miss, and the hit behaviour."""

    name: str
    lookup_ms: Distribution = _NO_LOOKUP
    hit_rate: float | None = Field(default=None, ge=0, le=1)
    keys: KeySpec | None = None
    capacity: Keys | None = None
    eviction: Literal["lru", "lfu", "ttl"] = "lru"
    ttl_s: PositiveSeconds | None = None

    @model_validator(mode="after")
    def _hit_behaviour(self) -> "_Cache":
        if (self.hit_rate is None) == (self.keys is None):
            raise ValueError(
                "give either hit_rate (a fixed rate) or keys (+ capacity / ttl_s) for hits that emerge from "
                "key popularity" + (", not both" if self.keys is not None else "")
            )
        if self.hit_rate is not None:
            given = [f for f in _EMERGENT_ONLY if f in self.model_fields_set and getattr(self, f, None)]
            if given:
                raise ValueError(
                    f"a fixed hit_rate takes no {', '.join(given)} (those shape hits that emerge from keys:); "
                    "drop them or drop hit_rate"
                )
            return self
        if self.eviction == "ttl":
            if self.ttl_s is None:
                raise ValueError("eviction ttl needs ttl_s (how long an entry lives, in seconds)")
            if self.capacity is not None:
                raise ValueError("eviction ttl has no capacity limit: drop capacity, or use eviction lru with ttl_s")
        elif self.capacity is None:
            raise ValueError(f"eviction {self.eviction} needs capacity (entries)")
        return self

    @property
    def deploy_times_ms(self) -> np.ndarray:
        return np.array([], dtype=float)


class OutputCache(_Cache):
    """The response cache in front of the service; a new model version (`deploys_s`) invalidates it."""

    tier: Literal["output"]
    deploys_s: list[Seconds] = Field(default_factory=list, max_length=10_000)
    skips: list[str] | None = None

    @property
    def deploy_times_ms(self) -> np.ndarray:
        return np.sort(np.asarray(self.deploys_s, dtype=float)) * 1000.0


class EmbeddingCache(_Cache):
    """Cached embeddings: a hit skips the encoder stage(s) named in `skips`."""

    tier: Literal["embedding"]
    skips: list[str] | None = None


class FeatureCache(_Cache):
    """A local feature cache: on a hit, `stage` (the remote fetch) costs `hit_ms` instead, with no queueing."""

    tier: Literal["feature"]
    stage: str
    hit_ms: Distribution


CacheTier = Annotated[Union[OutputCache, EmbeddingCache, FeatureCache], Field(discriminator="tier")]
CACHE_TIERS = ("output", "embedding", "feature")


# --- validation against the pipeline -------------------------------------------------------------


def validate_caches(caches: list, stage_names: list[str], stage_kinds: dict[str, str]) -> None:
    """Check cache specs against the stages; raises ScenarioError (a ValueError) naming `caches.<name>.<field>`."""
    names = [c.name for c in caches]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ScenarioError(f"caches: names must be unique; repeated: {', '.join(repeated)}")
    listed = ", ".join(stage_names)
    replaced: dict[str, str] = {}
    for cache in caches:
        where = f"caches.{cache.name}"
        if isinstance(cache, EmbeddingCache) and not cache.skips:
            raise ScenarioError(
                f"{where}.skips: an embedding cache must name the encoder stage(s) a hit skips, e.g. skips: [encoder]"
            )
        for stage in getattr(cache, "skips", None) or []:
            if stage not in stage_kinds:
                raise ScenarioError(f"{where}.skips: unknown stage {stage!r} (stages: {listed})")
        if isinstance(cache, OutputCache) and cache.skips is not None and not cache.skips:
            raise ScenarioError(f"{where}.skips: an output cache hit must skip at least one stage")
        if isinstance(cache, FeatureCache):
            if cache.stage not in stage_kinds:
                raise ScenarioError(f"{where}.stage: unknown stage {cache.stage!r} (stages: {listed})")
            if stage_kinds[cache.stage] not in ("delay", "pool"):
                raise ScenarioError(
                    f"{where}.stage: {cache.stage!r} is a {stage_kinds[cache.stage]} stage; a feature cache "
                    "replaces a fetch stage (kind delay or pool)"
                )
            if cache.stage in replaced:
                raise ScenarioError(
                    f"{where}.stage: stage {cache.stage!r} already has feature cache {replaced[cache.stage]!r}"
                )
            replaced[cache.stage] = cache.name


def skipped_stages(cache, stage_names: list[str], stage_kinds: dict[str, str]) -> list[str]:
    """The stages a hit of `cache` skips (output default: every stage that is not `kind: delay`)."""
    if isinstance(cache, OutputCache) and cache.skips is None:
        return [s for s in stage_names if stage_kinds[s] != "delay"]
    return list(getattr(cache, "skips", None) or [])


# --- hits -------------------------------------------------------------------------------------------


def lookup_stage(cache, stage_names: list[str], stage_kinds: dict[str, str]) -> str:
    """The stage before which `cache` is looked up: the first stage its hit skips or replaces."""
    affected = set(skipped_stages(cache, stage_names, stage_kinds)) | {getattr(cache, "stage", None)}
    return next((name for name in stage_names if name in affected), stage_names[0])


def _lookup_order(caches: list, stage_names: list[str], stage_kinds: dict[str, str]) -> list[int]:
    """Caches in the order requests consult them: by lookup stage in the pipeline, then as listed."""
    position = {name: i for i, name in enumerate(stage_names)}
    return sorted(range(len(caches)), key=lambda i: (position[lookup_stage(caches[i], stage_names, stage_kinds)], i))


def _unreached(cache, earlier: list, hits: dict[str, np.ndarray], n: int, stage_names, stage_kinds) -> np.ndarray:
    """Requests that never consult `cache`: an earlier-consulted cache hit and skips its lookup stage."""
    where = lookup_stage(cache, stage_names, stage_kinds)
    out = np.zeros(n, dtype=bool)
    for other in earlier:
        if where in skipped_stages(other, stage_names, stage_kinds):
            out |= hits[other.name]
    return out


def cache_outcomes(
    caches: list,
    arrival_ms: np.ndarray,
    columns: dict[str, np.ndarray],
    seed: int,
    replication: int,
    *,
    stage_names: list[str] | None = None,
    stage_kinds: dict[str, str] | None = None,
) -> dict[str, np.ndarray]:
    """Cache name -> boolean hit per request (arrival order), each tier from its own `cache` stream.

    Without the stages, every tier sees every request. With `stage_names` and `stage_kinds`, a request
    consults the caches in pipeline order (`lookup_stage`) and never reaches a cache whose lookup stage an
    earlier hit skipped (an output hit spares the embedding and feature lookups): that cache records a
    miss for it, and an emergent cache replays only the keys that reached it. `reached_masks` says which.
    """
    arrival_ms = np.asarray(arrival_ms, dtype=float)
    n = len(arrival_ms)
    staged = stage_names is not None and stage_kinds is not None
    order = _lookup_order(caches, stage_names, stage_kinds) if staged else range(len(caches))
    hits: dict[str, np.ndarray] = {}
    done: list = []
    for i in order:
        cache = caches[i]
        rng = stream(seed, replication, "cache", cache.name)
        unreached = _unreached(cache, done, hits, n, stage_names, stage_kinds) if staged else np.zeros(n, bool)
        if cache.hit_rate is not None:
            hit = rng.random(n) < cache.hit_rate  # drawn for all, so reach never shifts the stream
        else:
            keys = _draw_keys(cache, rng, n, columns)
            hit = np.zeros(n, dtype=bool)
            hit[~unreached] = replay(cache, keys[~unreached], arrival_ms[~unreached])
        hits[cache.name] = hit & ~unreached
        done.append(cache)
    return {cache.name: hits[cache.name] for cache in caches}


def reached_masks(
    caches: list, hits: dict[str, np.ndarray], stage_names: list[str], stage_kinds: dict[str, str]
) -> dict[str, np.ndarray]:
    """Cache name -> requests that consult it (pay its lookup): not spared by an earlier cache's hit."""
    n = len(next(iter(hits.values()))) if hits else 0
    reached, done = {}, []
    for i in _lookup_order(caches, stage_names, stage_kinds):
        reached[caches[i].name] = ~_unreached(caches[i], done, hits, n, stage_names, stage_kinds)
        done.append(caches[i])
    return {cache.name: reached[cache.name] for cache in caches}


def _draw_keys(cache, rng: np.random.Generator, n: int, columns: dict[str, np.ndarray]) -> np.ndarray:
    spec = cache.keys
    if isinstance(spec, ZipfKeys):
        cdf = np.cumsum(spec.probabilities())
        return np.minimum(np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right"), spec.n_keys - 1)
    where = f"caches.{cache.name}.keys.column"
    if spec.column not in columns:
        have = ", ".join(sorted(k for k in columns if k not in ("request", "replication", "arrival_ms")))
        raise ScenarioError(
            f"{where}: the arrival trace has no column {spec.column!r}" + (f" (has: {have})" if have else
                                                                          " (keys from a column need a trace)")
        )
    values = pd.Series(np.asarray(columns[spec.column])[:n])
    if values.isna().any():
        raise ScenarioError(f"{where}: column {spec.column!r} has {int(values.isna().sum())} missing values")
    codes, _ = pd.factorize(values)
    return codes


def replay(cache, keys: np.ndarray, arrival_ms: np.ndarray) -> np.ndarray:
    """Hit per request when `keys` arrive at `arrival_ms` (sorted) through the cache; deploys flush it."""
    hits = np.zeros(len(keys), dtype=bool)
    ttl_ms = cache.ttl_s * 1000.0 if cache.ttl_s is not None else math.inf
    bounds = np.searchsorted(arrival_ms, cache.deploy_times_ms, side="left")
    edges = [0, *bounds.tolist(), len(keys)]
    policy = {"lru": _replay_lru, "lfu": _replay_lfu, "ttl": _replay_ttl}[cache.eviction]
    for a, b in zip(edges, edges[1:]):
        if b > a:
            hits[a:b] = policy(keys[a:b].tolist(), arrival_ms[a:b].tolist(), cache.capacity, ttl_ms)
    return hits


def _replay_lru(keys: list, times: list, capacity: int, ttl_ms: float) -> list[bool]:
    """Least recently used: a hit moves the entry to the front; a miss inserts it, evicting the back."""
    entries: OrderedDict = OrderedDict()  # key -> insertion time
    out = [False] * len(keys)
    for i, (k, t) in enumerate(zip(keys, times)):
        inserted = entries.get(k)
        if inserted is not None and t - inserted < ttl_ms:
            out[i] = True
            entries.move_to_end(k)
            continue
        entries[k] = t
        entries.move_to_end(k)
        if len(entries) > capacity:
            entries.popitem(last=False)
    return out


def _replay_lfu(keys: list, times: list, capacity: int, ttl_ms: float) -> list[bool]:
    """In-cache least frequently used (counts kept while cached; ties evict the least recent), O(1) per request."""
    count: dict = {}
    inserted: dict = {}
    buckets: dict[int, OrderedDict] = {}
    lowest = 0
    out = [False] * len(keys)
    for i, (k, t) in enumerate(zip(keys, times)):
        c = count.get(k)
        if c is not None and t - inserted[k] < ttl_ms:
            out[i] = True
            bucket = buckets[c]
            del bucket[k]
            if not bucket:
                del buckets[c]
                if lowest == c:
                    lowest = c + 1
            count[k] = c + 1
            buckets.setdefault(c + 1, OrderedDict())[k] = None
            continue
        if c is not None:  # expired: drop it, then insert afresh
            bucket = buckets[c]
            del bucket[k]
            if not bucket:
                del buckets[c]
            del count[k]
        elif len(count) >= capacity:
            if lowest not in buckets:
                lowest = min(buckets)
            victim, _ = buckets[lowest].popitem(last=False)
            if not buckets[lowest]:
                del buckets[lowest]
            del count[victim], inserted[victim]
        count[k] = 1
        inserted[k] = t
        buckets.setdefault(1, OrderedDict())[k] = None
        lowest = 1
    return out


def _replay_ttl(keys: list, times: list, capacity: int | None, ttl_ms: float) -> list[bool]:
    """TTL only: a miss stores the entry for ttl_ms (no capacity limit); a hit does not extend it."""
    expires: dict = {}
    out = [False] * len(keys)
    for i, (k, t) in enumerate(zip(keys, times)):
        if expires.get(k, -math.inf) > t:
            out[i] = True
        else:
            expires[k] = t + ttl_ms
    return out


# --- what hits do to the pipeline -----------------------------------------------------------------


def skip_masks(
    caches: list, hits: dict[str, np.ndarray], stage_names: list[str], stage_kinds: dict[str, str]
) -> dict[str, np.ndarray]:
    """Stage name -> requests that skip it entirely (an output or embedding hit); only stages some cache skips."""
    masks: dict[str, np.ndarray] = {}
    for cache in caches:
        for stage in skipped_stages(cache, stage_names, stage_kinds):
            hit = np.asarray(hits[cache.name], dtype=bool)
            masks[stage] = masks[stage] | hit if stage in masks else hit.copy()
    return masks


def replacement_delays(
    caches: list, hits: dict[str, np.ndarray], rng_for: Callable[[str], np.random.Generator]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Stage name -> (requests whose stage a feature-cache hit replaces, hit_ms per request: NaN off the mask).

    `rng_for(sub)` gives the generator of a cache sub-stream, e.g. `stream(seed, rep, "cache", sub)`; the
    hit_ms draws use sub-stream `<name>:hit_ms`. A stage that a request skips stays skipped (skip wins).
    """
    out = {}
    for cache in caches:
        if isinstance(cache, FeatureCache):
            mask = np.asarray(hits[cache.name], dtype=bool)
            draws = cache.hit_ms.sample(rng_for(f"{cache.name}:hit_ms"), len(mask))
            out[cache.stage] = (mask.copy(), np.where(mask, draws, np.nan))
    return out


def lookup_delays(caches: list, n: int, rng_for: Callable[[str], np.random.Generator]) -> dict[str, np.ndarray]:
    """Cache name -> lookup time (ms) of each of the n requests, hit or miss (sub-stream `<name>:lookup`)."""
    return {cache.name: cache.lookup_ms.sample(rng_for(f"{cache.name}:lookup"), n) for cache in caches}


# --- summary ----------------------------------------------------------------------------------------


def cache_summary(log: pd.DataFrame, caches: list) -> dict:
    """The `caches` entry of `run --json`, from the log's `<name>_hit` / `<name>_lookup_ms` columns.

    Per cache, over the requests that consulted it (a NaN `<name>_lookup_ms` marks one that did not):
    tier, reached_fraction and hit_rate over measured requests (not warm-up), the hit rate's 95% CI over
    replications (or sections of a single one, as in sim/metrics/summary.py), mean lookup_ms, and hit_rate_per_minute: every request (warm-up included, it is a
    timeline) pooled over replications by minute of arrival, minute 0 first; None for a minute without any.
    """
    from sim.metrics.summary import ci95, measurement_groups

    minute = (log["arrival_ms"].to_numpy() // 60_000).astype(np.int64)
    minutes = int(minute.max()) + 1 if len(minute) else 0
    measured_rows = ~log["warmup"].to_numpy(dtype=bool)
    summary = {}
    for cache in caches:
        column, lookup = f"{cache.name}_hit", f"{cache.name}_lookup_ms"
        if column not in log:
            continue
        reached = log[lookup].notna().to_numpy() if lookup in log else np.ones(len(log), dtype=bool)
        hit = log[column].to_numpy(dtype=float)
        rows = log[measured_rows & reached]
        lo, hi = ci95(np.array([_hit_rate(group, column, lookup) for group in measurement_groups(log)]))
        total = np.bincount(minute[reached], minlength=minutes)
        hits = np.bincount(minute[reached], weights=hit[reached], minlength=minutes)
        entry = {
            "tier": cache.tier,
            "reached_fraction": float(reached[measured_rows].mean()) if measured_rows.any() else math.nan,
            "hit_rate": float(rows[column].mean()) if len(rows) else math.nan,
            "hit_rate_ci95": [lo, hi],
            "hit_rate_per_minute": [float(h / t) if t else None for h, t in zip(hits, total)],
        }
        if lookup in log:
            entry["lookup_ms_mean"] = float(rows[lookup].mean()) if len(rows) else math.nan
        summary[cache.name] = entry
    return summary


def _hit_rate(rows: pd.DataFrame, column: str, lookup: str) -> float:
    if lookup in rows:
        rows = rows[rows[lookup].notna().to_numpy()]
    return float(rows[column].mean()) if len(rows) else math.nan
