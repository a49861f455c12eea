"""Replaying the scenario's cache tiers over a replication (see sim/spec/caching.py for the semantics):
which requests hit, which stages a hit skips or replaces, and what a lookup costs. The engine writes
`<name>_hit` and `<name>_lookup_ms` log columns (NaN lookup for a request that never consulted the cache)
that sim/metrics/caches.py summarises."""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Callable

import numpy as np
import pandas as pd

from sim.errors import ScenarioError
from sim.spec.caching import FeatureCache, ZipfKeys, skipped_stages
from sim.streams import stream

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
            f"{where}: the arrival trace has no column {spec.column!r}"
            + (f" (has: {have})" if have else " (keys from a column need a trace)")
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
