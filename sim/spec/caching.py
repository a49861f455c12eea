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

This module holds the tiers as scenario values; sim/engine/caching.py replays them (hits, lookups, what
a hit does to each stage) and sim/metrics/caches.py summarises the `<name>_hit` / `<name>_lookup_ms`
columns it writes.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

import numpy as np

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from sim.spec.bounds import Exponent, Keys, PositiveSeconds, Seconds
from sim.errors import ScenarioError
from sim.spec.distributions import Constant, Distribution


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
