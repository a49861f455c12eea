"""Cache tiers: exact replays against independent definitions, emergent hit rates against closed forms
(Che's LRU approximation, the TTL renewal formula), deploy invalidation, the pipeline masks, the summary,
and clear errors. End-to-end checks through the engine (mixtures of hit and miss paths, Pollaczek-Khinchine
with thinned arrivals, deploys seen in the log) are in tests/test_caching_engine.py's section below.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from pydantic import TypeAdapter, ValidationError

from sim.engine.caching import cache_outcomes, lookup_delays, reached_masks, replacement_delays, replay, skip_masks
from sim.metrics.caches import cache_summary
from sim.spec.caching import CacheTier, validate_caches
from sim.errors import ScenarioError
from sim.streams import stream
from sim.theory import che_lru_hit_rate, zipf_probabilities

TIERS = TypeAdapter(list[CacheTier])


def caches(*specs: dict) -> list:
    return TIERS.validate_python(list(specs))


def cache(**spec) -> object:
    spec.setdefault("name", "c")
    spec.setdefault("tier", "output")
    return caches(spec)[0]


# --- exact replays --------------------------------------------------------------------------------


def lru_by_stack_distance(keys: list[int], capacity: int, segments: list[int]) -> np.ndarray:
    """LRU by its definition: request i hits iff its key was requested before in the same segment (between
    deploys) and fewer than `capacity` distinct other keys were requested since (Mattson et al., 1970)."""
    hits = np.zeros(len(keys), dtype=bool)
    for i, k in enumerate(keys):
        for j in range(i - 1, -1, -1):
            if segments[j] != segments[i]:
                break
            if keys[j] == k:
                hits[i] = len(set(keys[j + 1 : i])) < capacity
                break
    return hits


def test_lru_replay_matches_the_stack_distance_definition_across_deploys():
    rng = np.random.default_rng(7)
    n = 2_000
    keys = rng.zipf(1.3, size=n) % 60
    times_ms = np.sort(rng.uniform(0, 100_000, size=n))
    spec = cache(keys={"column": "user"}, capacity=8, deploys_s=[30, 70])
    hits = cache_outcomes([spec], times_ms, {"user": keys}, seed=1, replication=0)["c"]
    segments = np.searchsorted([30_000.0, 70_000.0], times_ms, side="right").tolist()
    expected = lru_by_stack_distance(keys.tolist(), 8, segments)
    np.testing.assert_array_equal(hits, expected)
    assert 0.2 < hits.mean() < 0.9  # the check above is not vacuous


def test_lfu_evicts_the_least_frequent_and_breaks_ties_by_recency():
    # capacity 2; by hand: a(1) a(2) hit, b(1), c evicts b (count 1), b evicts c, c evicts b, a(3) hit.
    spec = cache(keys={"column": "k"}, capacity=2, eviction="lfu")
    seq = ["a", "a", "b", "c", "b", "c", "a"]
    hits = replay(spec, pd.factorize(pd.Series(seq))[0], np.arange(len(seq), dtype=float))
    assert hits.tolist() == [False, True, False, False, False, False, True]
    # the same sequence under LRU: c evicts a (least recent), so b and c hit and a misses at the end
    lru = replay(cache(keys={"column": "k"}, capacity=2), pd.factorize(pd.Series(seq))[0], np.arange(7.0))
    assert lru.tolist() == [False, True, False, False, True, True, False]
    # equal counts: the least recently used of them goes (x, not y, when z arrives)
    seq = ["x", "y", "z", "y", "x"]
    hits = replay(spec, pd.factorize(pd.Series(seq))[0], np.arange(5.0))
    assert hits.tolist() == [False, False, False, True, False]


def test_ttl_only_entries_live_ttl_from_the_miss_and_hits_do_not_extend_them():
    spec = cache(keys={"column": "k"}, eviction="ttl", ttl_s=10)
    seq = ["a", "a", "b", "a", "a", "b"]
    times_s = [0.0, 5.0, 6.0, 10.0, 12.0, 15.9]
    hits = replay(spec, pd.factorize(pd.Series(seq))[0], np.array(times_s) * 1000)
    # a: miss (lives to 10 s), hit at 5, expired at exactly 10 (miss, lives to 20), hit at 12; b: 6 -> 16
    assert hits.tolist() == [False, True, False, False, True, True]


def test_lru_with_ttl_reduces_to_ttl_only_without_capacity_pressure_and_to_lru_without_expiry():
    rng = np.random.default_rng(3)
    keys = rng.integers(0, 300, size=20_000)
    times = np.cumsum(rng.exponential(50.0, size=20_000))
    both = replay(cache(keys={"column": "k"}, capacity=1_000, ttl_s=5), keys, times)
    ttl_only = replay(cache(keys={"column": "k"}, eviction="ttl", ttl_s=5), keys, times)
    np.testing.assert_array_equal(both, ttl_only)
    long_ttl = replay(cache(keys={"column": "k"}, capacity=50, ttl_s=1e9), keys, times)
    plain = replay(cache(keys={"column": "k"}, capacity=50), keys, times)
    np.testing.assert_array_equal(long_ttl, plain)
    assert 0 < both.mean() < 1 and 0 < plain.mean() < 1


def naive_replay(keys: list[int], times: list[float], capacity: int, ttl: float, lfu: bool) -> list[bool]:
    """A slow, direct reading of the policies: evict the entry with the smallest (count, last use) for
    LFU, the smallest last use for LRU; an entry older than ttl is dropped when looked up."""
    entries: dict[int, list] = {}  # key -> [count, last use, inserted at]
    out = []
    for i, (k, t) in enumerate(zip(keys, times)):
        if k in entries and t - entries[k][2] < ttl:
            entries[k][0] += 1
            entries[k][1] = i
            out.append(True)
            continue
        entries.pop(k, None)
        if len(entries) >= capacity:
            victim = min(entries, key=lambda e: (entries[e][0], entries[e][1]) if lfu else entries[e][1])
            del entries[victim]
        entries[k] = [1, i, t]
        out.append(False)
    return out


@pytest.mark.parametrize("eviction", ["lru", "lfu"])
def test_lru_and_lfu_replays_agree_with_a_naive_reading_of_the_policy(eviction):
    rng = np.random.default_rng(17)
    for trial in range(300):  # short sequences over few keys: full caches, ties, expiries at exactly ttl
        keys = rng.integers(0, 10, size=60)
        times = np.cumsum(rng.integers(0, 5, size=60)).astype(float) * 1000.0
        capacity, ttl_s = int(rng.integers(1, 7)), [None, 3, 7][trial % 3]
        spec = cache(keys={"column": "k"}, capacity=capacity, eviction=eviction, **({"ttl_s": ttl_s} if ttl_s else {}))
        ttl_ms = ttl_s * 1000.0 if ttl_s else math.inf
        expected = naive_replay(keys.tolist(), times.tolist(), capacity, ttl_ms, eviction == "lfu")
        assert replay(spec, keys, times).tolist() == expected, (trial, keys.tolist(), times.tolist(), capacity, ttl_s)


# --- emergent hit rates vs closed forms ------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(("exponent", "capacity"), [(0.8, 1_000), (0.8, 10_000), (1.0, 1_000)])
def test_lru_hit_rate_under_zipf_matches_che_approximation(exponent, capacity):
    """Che et al. (IEEE JSAC 2002): solve sum_i (1 - exp(-p_i T)) = C, hit = sum_i p_i (1 - exp(-p_i T)).
    Fricker, Robert & Roberts (ITC 2012) report it accurate to about 1% for Zipf laws and large key spaces."""
    n_keys, n = 100_000, 300_000
    spec = cache(keys={"popularity": "zipf", "exponent": exponent, "n_keys": n_keys}, capacity=capacity)
    hits = cache_outcomes([spec], np.arange(n, dtype=float), {}, seed=11, replication=0)["c"]
    measured = hits[n // 3 :].mean()  # the cache has filled long before a third of the run
    che = che_lru_hit_rate(zipf_probabilities(n_keys, exponent), capacity)
    assert abs(measured - che) < 0.01, (measured, che)


@pytest.mark.slow
def test_lfu_under_zipf_beats_lru_and_stays_below_the_top_c_bound():
    """Under independent references no demand cache beats holding the C most popular keys (the A0 bound);
    in-cache LFU approaches it, LRU sits below (Che)."""
    n_keys, capacity, n = 100_000, 1_000, 300_000
    keys = {"popularity": "zipf", "exponent": 0.8, "n_keys": n_keys}
    hits = cache_outcomes([cache(keys=keys, capacity=capacity, eviction="lfu")], np.arange(n, dtype=float), {}, 5, 0)
    measured = hits["c"][n // 3 :].mean()
    p = zipf_probabilities(n_keys, 0.8)
    top_c = np.sort(p)[::-1][:capacity].sum()
    assert che_lru_hit_rate(p, capacity) + 0.05 < measured < top_c


def test_ttl_only_hit_rate_matches_the_renewal_formula():
    """A key requested as a Poisson stream of rate r, its entry stored on a miss for T and not extended by
    hits: each miss opens a window with r*T hits on average, then the next request misses, so the key's hit
    rate is r T / (1 + r T) (Jung, Berger & Balakrishnan, "Modeling TTL-based Internet caches", INFOCOM 2003;
    Fofack et al., "Analysis of TTL-based cache networks", 2012). Keys drawn independently per request from
    a Poisson stream of rate lambda thin it into Poisson streams of rate lambda p_i."""
    rate_rps, ttl_s, n_keys, n = 50.0, 5.0, 1_000, 300_000
    rng = np.random.default_rng(2)
    arrival_ms = np.cumsum(rng.exponential(1000 / rate_rps, size=n))
    spec = cache(keys={"popularity": "zipf", "exponent": 0.8, "n_keys": n_keys}, eviction="ttl", ttl_s=ttl_s)
    measured = cache_outcomes([spec], arrival_ms, {}, seed=4, replication=0)["c"][n // 10 :].mean()
    r = rate_rps * zipf_probabilities(n_keys, 0.8)
    exact = float(np.sum(zipf_probabilities(n_keys, 0.8) * r * ttl_s / (1 + r * ttl_s)))
    assert abs(measured - exact) < 0.005, (measured, exact)


def test_fixed_hit_rates_are_bernoulli_and_independent_across_tiers():
    n = 200_000
    specs = caches(
        {"name": "out", "tier": "output", "hit_rate": 0.3},
        {"name": "emb", "tier": "embedding", "hit_rate": 0.6, "skips": ["encoder"]},
    )
    hits = cache_outcomes(specs, np.arange(n, dtype=float), {}, seed=9, replication=2)
    sd = lambda p: math.sqrt(p * (1 - p) / n)  # noqa: E731
    assert abs(hits["out"].mean() - 0.3) < 4 * sd(0.3)
    assert abs(hits["emb"].mean() - 0.6) < 4 * sd(0.6)
    assert abs((hits["out"] & hits["emb"]).mean() - 0.18) < 4 * sd(0.18)
    again = cache_outcomes(specs, np.arange(n, dtype=float), {}, seed=9, replication=2)
    np.testing.assert_array_equal(hits["out"], again["out"])
    other = cache_outcomes(specs, np.arange(n, dtype=float), {}, seed=9, replication=3)
    assert not np.array_equal(hits["out"], other["out"])


def test_a_deploy_empties_the_output_cache_and_it_recovers():
    rng = np.random.default_rng(1)
    arrival_ms = np.cumsum(rng.exponential(10.0, size=24_000))  # 100 rps for 4 minutes
    spec = cache(keys={"popularity": "zipf", "exponent": 0.9, "n_keys": 20_000}, capacity=2_000, deploys_s=[120])
    hits = cache_outcomes([spec], arrival_ms, {}, seed=3, replication=0)["c"]
    second = (arrival_ms // 1000).astype(int)
    rate = np.bincount(second, weights=hits) / np.bincount(second)
    first_after = np.searchsorted(arrival_ms, 120_000.0)
    assert not hits[first_after]
    before, just_after, recovered = rate[100:120].mean(), rate[120], rate[220:240].mean()
    assert just_after < 0.5 * before
    assert abs(recovered - before) < 0.05


# --- the pipeline masks ---------------------------------------------------------------------------

STAGES = ["network", "features", "encoder", "ranker", "postprocess"]
KINDS = {"network": "delay", "features": "pool", "encoder": "model", "ranker": "model", "postprocess": "delay"}


def test_output_hit_skips_every_non_delay_stage_and_embedding_hit_its_encoder():
    specs = caches(
        {"name": "out", "tier": "output", "hit_rate": 0.5},
        {"name": "emb", "tier": "embedding", "hit_rate": 0.5, "skips": ["encoder"]},
    )
    hits = {"out": np.array([True, False, False, True]), "emb": np.array([False, True, False, True])}
    masks = skip_masks(specs, hits, STAGES, KINDS)
    assert sorted(masks) == ["encoder", "features", "ranker"]
    assert masks["features"].tolist() == [True, False, False, True]
    assert masks["ranker"].tolist() == [True, False, False, True]
    assert masks["encoder"].tolist() == [True, True, False, True]
    explicit = caches({"name": "out", "tier": "output", "hit_rate": 0.5, "skips": ["ranker"]})
    assert sorted(skip_masks(explicit, {"out": hits["out"]}, STAGES, KINDS)) == ["ranker"]


def test_feature_hit_replaces_its_stage_with_hit_ms_draws_from_their_own_stream():
    specs = caches(
        {
            "name": "feat",
            "tier": "feature",
            "stage": "features",
            "hit_rate": 0.8,
            "hit_ms": {"dist": "exponential", "mean": 3},
            "lookup_ms": {"dist": "exponential", "mean": 1},
        }
    )
    n = 100_000
    hits = cache_outcomes(specs, np.arange(n, dtype=float), {}, seed=5, replication=0)
    rng_for = lambda sub: stream(5, 0, "cache", sub)  # noqa: E731
    ((stage, (mask, hit_ms)),) = replacement_delays(specs, hits, rng_for).items()
    assert stage == "features"
    np.testing.assert_array_equal(mask, hits["feat"])
    assert np.isnan(hit_ms[~mask]).all() and (hit_ms[mask] > 0).all()
    assert abs(hit_ms[mask].mean() - 3.0) < 4 * 3.0 / math.sqrt(mask.sum())
    lookup = lookup_delays(specs, n, rng_for)["feat"]
    assert abs(lookup.mean() - 1.0) < 4 / math.sqrt(n)
    # lookups, hit times and hits come from different streams: no shared uniforms
    assert abs(np.corrcoef(lookup[mask], hit_ms[mask])[0, 1]) < 0.02
    assert abs(np.corrcoef(lookup, hits["feat"])[0, 1]) < 0.02


def test_an_output_hit_spares_the_inner_caches_their_lookups_and_their_keys():
    rng = np.random.default_rng(8)
    n = 5_000
    users = rng.integers(0, 400, size=n)
    times = np.arange(n, dtype=float)
    specs = caches(
        {"name": "out", "tier": "output", "hit_rate": 0.4},
        {"name": "emb", "tier": "embedding", "keys": {"column": "user"}, "capacity": 50, "skips": ["encoder"]},
        {"name": "feat", "tier": "feature", "stage": "features", "hit_rate": 0.7, "hit_ms": 3},
    )
    hits = cache_outcomes(specs, times, {"user": users}, 4, 0, stage_names=STAGES, stage_kinds=KINDS)
    reached = reached_masks(specs, hits, STAGES, KINDS)
    np.testing.assert_array_equal(reached["out"], np.ones(n, dtype=bool))
    for inner in ("emb", "feat"):
        np.testing.assert_array_equal(reached[inner], ~hits["out"])
        assert not (hits[inner] & hits["out"]).any()
    # the embedding cache saw only the keys that reached it, in order
    alone = replay(specs[1], users[~hits["out"]], times[~hits["out"]])
    np.testing.assert_array_equal(hits["emb"][~hits["out"]], alone)
    # fixed-rate tiers keep their own stream: the same draws as without the stages, masked
    free = cache_outcomes(specs, times, {"user": users}, 4, 0)
    np.testing.assert_array_equal(hits["out"], free["out"])
    np.testing.assert_array_equal(hits["feat"], free["feat"] & ~hits["out"])
    # consulted in the order listed when two caches sit before the same stage
    first = caches(
        {"name": "feat", "tier": "feature", "stage": "features", "hit_rate": 0.7, "hit_ms": 3},
        {"name": "out", "tier": "output", "hit_rate": 0.4},
    )
    hits = cache_outcomes(first, times, {}, 4, 0, stage_names=STAGES, stage_kinds=KINDS)
    assert reached_masks(first, hits, STAGES, KINDS)["feat"].all()


def test_lookup_cost_defaults_to_zero():
    assert (
        lookup_delays(caches({"name": "o", "tier": "output", "hit_rate": 0.1}), 5, lambda s: None)["o"].tolist()
        == [0.0] * 5
    )


# --- summary ----------------------------------------------------------------------------------------


def test_cache_summary_reads_hit_rates_and_the_per_minute_timeline_from_the_log():
    log = pd.DataFrame(
        {
            "replication": [0, 0, 0, 0, 1, 1, 1, 1],
            "arrival_ms": [0, 30_000, 70_000, 200_000, 10_000, 65_000, 80_000, 190_000],
            "warmup": [True, False, False, False, True, False, False, False],
            "out_hit": [True, True, False, True, False, False, True, False],
            "out_lookup_ms": [1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0],
            "emb_hit": [False, True, False, False, False, True, True, False],
            "emb_lookup_ms": [np.nan, 0.5, np.nan, np.nan, 0.5, 0.5, 0.5, 0.5],  # NaN: never consulted
        }
    )
    summary = cache_summary(log, caches({"name": "out", "tier": "output", "hit_rate": 0.5}))["out"]
    assert summary["tier"] == "output"
    assert summary["hit_rate"] == pytest.approx(3 / 6)  # measured rows only
    assert summary["hit_rate_per_minute"] == [pytest.approx(2 / 3), pytest.approx(1 / 3), None, 0.5]
    assert summary["lookup_ms_mean"] == pytest.approx(1.5)
    lo, hi = summary["hit_rate_ci95"]
    # replications 2/3 and 1/3: mean 1/2 +- t(0.975, 1) * sd / sqrt(2), sd = sqrt(2) / 6
    half = 12.706204736174698 * (math.sqrt(2) / 6) / math.sqrt(2)
    assert half > 0.5  # two replications: the raw interval runs past both ends of [0, 1] ...
    assert (lo, hi) == (pytest.approx(max(0.0, 0.5 - half)), pytest.approx(min(1.0, 0.5 + half)))  # ... clipped
    emb = cache_summary(log, caches({"name": "emb", "tier": "embedding", "hit_rate": 0.5, "skips": ["x"]}))["emb"]
    assert emb["reached_fraction"] == pytest.approx(4 / 6)
    assert emb["hit_rate"] == pytest.approx(3 / 4)  # over the measured requests that consulted it
    assert emb["hit_rate_per_minute"] == [pytest.approx(1 / 2), 1.0, None, 0.0]


# --- errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ({"name": "o", "tier": "output"}, "give either hit_rate"),
        ({"name": "o", "tier": "output", "hit_rate": 0.3, "keys": {"column": "u"}}, "not both"),
        ({"name": "o", "tier": "output", "hit_rate": 0.3, "capacity": 10}, "a fixed hit_rate takes no capacity"),
        ({"name": "o", "tier": "output", "hit_rate": 0.3, "deploys_s": [60]}, "takes no deploys_s"),
        ({"name": "o", "tier": "output", "keys": {"column": "u"}}, "eviction lru needs capacity"),
        ({"name": "o", "tier": "output", "keys": {"column": "u"}, "eviction": "ttl"}, "needs ttl_s"),
        (
            {"name": "o", "tier": "output", "keys": {"column": "u"}, "eviction": "ttl", "ttl_s": 5, "capacity": 9},
            "no capacity limit",
        ),
        ({"name": "o", "tier": "output", "hit_rate": 1.5}, "less than or equal to 1"),
        ({"name": "o", "tier": "prefix", "hit_rate": 0.5}, "'output', 'embedding', 'feature'"),
    ],
)
def test_bad_cache_specs_are_refused_with_a_reason(spec, needle):
    with pytest.raises(ValidationError, match=needle):
        caches(spec)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"name": "e", "tier": "embedding", "hit_rate": 0.5},
            "caches.e.skips: an embedding cache must name the encoder stage(s)",
        ),
        (
            {"name": "o", "tier": "output", "hit_rate": 0.5, "skips": ["forward"]},
            "caches.o.skips: unknown stage 'forward' (stages: network, features, encoder, ranker, postprocess)",
        ),
        (
            {"name": "f", "tier": "feature", "hit_rate": 0.5, "stage": "fetch", "hit_ms": 3},
            "caches.f.stage: unknown stage 'fetch'",
        ),
        (
            {"name": "f", "tier": "feature", "hit_rate": 0.5, "stage": "ranker", "hit_ms": 3},
            "caches.f.stage: 'ranker' is a model stage",
        ),
    ],
)
def test_cache_specs_are_checked_against_the_stages(spec, message):
    with pytest.raises(ScenarioError) as info:
        validate_caches(caches(spec), STAGES, KINDS)
    assert message in str(info.value)


def test_duplicate_names_and_two_feature_caches_on_one_stage_are_refused():
    twice = caches({"name": "a", "tier": "output", "hit_rate": 0.1}, {"name": "a", "tier": "output", "hit_rate": 0.2})
    with pytest.raises(ScenarioError, match="caches: names must be unique; repeated: a"):
        validate_caches(twice, STAGES, KINDS)
    feature = {"tier": "feature", "hit_rate": 0.5, "stage": "features", "hit_ms": 3}
    with pytest.raises(ScenarioError, match="caches.g.stage: stage 'features' already has feature cache 'f'"):
        validate_caches(caches({"name": "f", **feature}, {"name": "g", **feature}), STAGES, KINDS)


def test_keys_from_a_missing_trace_column_name_the_column():
    spec = cache(keys={"column": "user_id"}, capacity=10)
    with pytest.raises(ScenarioError, match="caches.c.keys.column: the arrival trace has no column 'user_id'"):
        cache_outcomes([spec], np.arange(3.0), {"request": np.arange(3), "num_prefill_tokens": np.ones(3)}, 0, 0)


# --- through the engine --------------------------------------------------------------------------
# These need the engine's cache wiring (Scenario.caches; `<name>_hit` / `<name>_lookup_ms` log columns;
# skipped stages take no time and are not queued for; a replaced stage is a pure delay of hit_ms).


def pipeline(
    stages: list[dict], cache_specs: list[dict], *, rate_rps: float, requests: int, seed: int, replications: int = 5
) -> "Scenario":  # noqa: F821
    from sim.spec.scenario import parse_scenario

    return parse_scenario(
        {
            "name": "caching-test",
            "seed": seed,
            "replications": replications,
            "workload": {
                "arrival": {"process": "poisson", "rate_rps": rate_rps},
                "requests": requests,
                "warmup_requests": requests // 10,
            },
            "stages": stages,
            "caches": cache_specs,
        }
    )


def mixture_quantile(q: float, cdf, hi: float) -> float:
    from scipy.optimize import brentq

    return brentq(lambda x: cdf(x) - q, 0.0, hi, xtol=1e-9)


def per_rep(log: pd.DataFrame, column: str, statistic, rows=None) -> np.ndarray:
    measured = log[~log["warmup"].to_numpy() & ~log["rejected"].to_numpy()]
    if rows is not None:
        measured = measured[rows(measured)]
    return np.array([statistic(g[column].to_numpy(dtype=float)) for _, g in measured.groupby("replication")])


def assert_matches(values: np.ndarray, exact: float, rel: float, what: str) -> None:
    """The replications' mean is within a 99.5% Student-t interval of `exact` (several claims per test: the
    family stays below ~2.5% false alarms) and within `rel` of it; 1e-6 ms of slack for atoms of the law."""
    from scipy import stats

    values = np.asarray(values, dtype=float)
    estimate = float(values.mean())
    half = stats.t.ppf(0.9975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)) + 1e-6
    assert abs(estimate - exact) <= half, (what, estimate, half, exact)
    assert estimate == pytest.approx(exact, rel=rel), (what, estimate, exact)


@pytest.mark.slow
def test_output_cache_at_low_load_gives_the_exact_mixture_of_hit_and_miss_latency():
    """At 0.05 rps nothing queues, so latency = lookup + network (+ the model's service on a miss):
    F(x) = h P(L + 5 <= x) + (1 - h) P(L + 5 + S <= x), L ~ U(0.5, 1.5), S ~ Gamma(mean 20, cv 0.5)."""
    from scipy import integrate, stats

    h = 0.3
    scenario = pipeline(
        [
            {"name": "network", "kind": "delay", "service_ms": 5},
            {"name": "forward", "kind": "model", "service_ms": {"dist": "gamma", "mean": 20, "cv": 0.5}},
        ],
        [{"name": "out", "tier": "output", "hit_rate": h, "lookup_ms": {"dist": "uniform", "low": 0.5, "high": 1.5}}],
        rate_rps=0.05,
        requests=40_000,
        seed=21,
    )
    from sim.analysis.simulate import simulate

    log = simulate(scenario).log
    service = stats.gamma(a=4.0, scale=5.0)  # cv 0.5 -> shape 4; mean 20 -> scale 5

    def cdf(x: float) -> float:
        hit = float(np.clip(x - 5 - 0.5, 0, 1))
        miss = integrate.quad(lambda u: service.cdf(x - 5 - u), 0.5, 1.5)[0]
        return h * hit + (1 - h) * miss

    assert_matches(per_rep(log, "out_hit", np.mean), h, 0.02, "hit rate")
    assert_matches(per_rep(log, "latency_ms", np.mean), 1.0 + 5.0 + (1 - h) * 20.0, 0.01, "mean")
    for q in (0.5, 0.95, 0.99):
        exact = mixture_quantile(q, cdf, 200.0)
        assert_matches(per_rep(log, "latency_ms", lambda v: np.quantile(v, q)), exact, 0.02, f"p{q}")


@pytest.mark.slow
def test_feature_and_embedding_hits_at_low_load_give_the_four_path_mixture():
    """Independent tiers: the feature fetch costs 3 ms (hit, 0.8) or a lognormal 40 ms median (miss), the
    encoder 0 (hit, 0.5) or 7 ms; plus 5 ms network and 10 ms ranker. Four paths, exact mixture."""
    from scipy import stats

    fetch = {"dist": "lognormal", "median": 40.0, "p99": 120.0}
    scenario = pipeline(
        [
            {"name": "network", "kind": "delay", "service_ms": 5},
            {"name": "features", "kind": "pool", "workers": 8, "service_ms": fetch},
            {"name": "encoder", "kind": "pool", "workers": 4, "service_ms": 7},
            {"name": "forward", "kind": "model", "service_ms": 10},
        ],
        [
            {"name": "feat", "tier": "feature", "stage": "features", "hit_rate": 0.8, "hit_ms": 3},
            {"name": "emb", "tier": "embedding", "hit_rate": 0.5, "skips": ["encoder"]},
        ],
        rate_rps=0.05,
        requests=40_000,
        seed=22,
    )
    from sim.analysis.simulate import simulate

    log = simulate(scenario).log
    sigma = math.log(120.0 / 40.0) / stats.norm.ppf(0.99)
    miss = stats.lognorm(s=sigma, scale=40.0)

    def cdf(x: float) -> float:
        total = 0.0
        for encoder_ms, p_enc in ((0.0, 0.5), (7.0, 0.5)):
            rest = x - 15.0 - encoder_ms
            total += p_enc * (0.8 * float(rest >= 3.0) + 0.2 * miss.cdf(rest))
        return total

    mean = 15.0 + 0.5 * 7.0 + 0.8 * 3.0 + 0.2 * miss.mean()
    assert_matches(per_rep(log, "latency_ms", np.mean), mean, 0.01, "mean")
    for q in (0.5, 0.9, 0.99):
        exact = mixture_quantile(q, cdf, 1_000.0)
        assert_matches(per_rep(log, "latency_ms", lambda v: np.quantile(v, q)), exact, 0.02, f"p{q}")


@pytest.mark.slow
def test_model_wait_behind_an_output_cache_is_pollaczek_khinchine_with_the_mixed_service():
    """Hits skip the model, so it sees M/G/1 with service 0 w.p. h and S w.p. 1 - h. Pollaczek-Khinchine
    (Kleinrock, Queueing Systems I, eq. 5.105): W = lambda E[X^2] / (2 (1 - lambda E[X])), with the mixed
    moments E[X] = (1-h) E[S], E[X^2] = (1-h) E[S^2] - the same as the thinned Poisson stream of misses at
    rate (1-h) lambda. Misses see the time-average state (PASTA on the thinned stream)."""
    h, rate_rps = 0.4, 120.0
    scenario = pipeline(
        [{"name": "forward", "kind": "model", "service_ms": {"dist": "lognormal", "mean": 10.0, "cv": 1.5}}],
        [{"name": "out", "tier": "output", "hit_rate": h, "lookup_ms": 0.5}],
        rate_rps=rate_rps,
        requests=200_000,
        seed=23,
        replications=8,
    )
    from sim.analysis.simulate import simulate
    from sim.theory import pk_mean_wait

    service = scenario.stage("forward").service_ms
    log = simulate(scenario).log
    exact = pk_mean_wait(rate_rps / 1000, (1 - h) * service.mean, (1 - h) * service.second_moment)
    assert exact == pytest.approx(pk_mean_wait((1 - h) * rate_rps / 1000, service.mean, service.second_moment))
    misses = lambda frame: ~frame["out_hit"].to_numpy(dtype=bool)  # noqa: E731
    assert_matches(per_rep(log, "forward_queue_ms", np.mean, misses), exact, 0.06, "mean wait of misses")
    mean_latency = 0.5 + (1 - h) * (exact + service.mean)
    assert_matches(per_rep(log, "latency_ms", np.mean), mean_latency, 0.04, "mean latency")


@pytest.mark.slow
def test_a_deploy_empties_the_output_cache_and_the_log_shows_the_recovery():
    n_keys, capacity, exponent = 20_000, 2_000, 0.8
    scenario = pipeline(
        [{"name": "forward", "kind": "model", "service_ms": {"dist": "exponential", "mean": 5.0}}],
        [
            {
                "name": "out",
                "tier": "output",
                "keys": {"popularity": "zipf", "exponent": exponent, "n_keys": n_keys},
                "capacity": capacity,
                "deploys_s": [600],
            }
        ],
        rate_rps=20.0,
        requests=24_000,
        seed=24,
        replications=3,
    )
    from sim.analysis.simulate import simulate

    log = simulate(scenario).log
    per_minute = cache_summary(log, scenario.caches)["out"]["hit_rate_per_minute"]
    che = che_lru_hit_rate(zipf_probabilities(n_keys, exponent), capacity)
    before, after = np.mean(per_minute[6:10]), np.mean(per_minute[16:20])
    seconds = log["arrival_ms"].to_numpy() - 600_000
    # A cold cache's first m requests: request j hits iff its key was among the j before it (capacity does
    # not bind for m << C), so the expected hit rate is (1/m) sum_j sum_i p_i (1 - (1 - p_i)^j).
    m, p = 200, zipf_probabilities(n_keys, exponent)
    cold = float(np.mean([np.sum(p * -np.expm1(j * np.log1p(-p))) for j in range(m)]))
    right_after = log[seconds >= 0].groupby("replication")["out_hit"].apply(lambda v: v.iloc[:m].mean()).mean()
    assert abs(before - che) < 0.03 and abs(after - che) < 0.03, (before, after, che)
    assert abs(right_after - cold) < 0.04 and cold < 0.25 * che, (right_after, cold)
    # the minute after the deploy is a cold start like minute 0 of the run
    assert per_minute[10] < 0.7 * before and abs(per_minute[10] - per_minute[0]) < 0.04
    first = log[seconds >= 0].groupby("replication")["out_hit"].first()
    assert not first.any()


def test_shipped_recsys_scenario_validates_against_its_stages():
    import yaml

    raw = yaml.safe_load(open("scenarios/recsys-caches.yaml", encoding="utf-8"))
    specs = caches(*raw["caches"])
    kinds = {s["name"]: s["kind"] for s in raw["stages"]}
    validate_caches(specs, list(kinds), kinds)
    assert skip_masks(specs, {c.name: np.array([True]) for c in specs}, list(kinds), kinds).keys() == {
        "feature_fetch",
        "user_encoder",
        "ranker",
    }


def test_a_bad_cache_in_a_scenario_file_names_the_field():
    with pytest.raises(ScenarioError, match=r"caches\.out\.skips: unknown stage 'preprocess'"):
        pipeline(
            [{"name": "forward", "kind": "model", "service_ms": 5}],
            [{"name": "out", "tier": "output", "hit_rate": 0.5, "skips": ["preprocess"]}],
            rate_rps=1,
            requests=100,
            seed=0,
        )


def test_keys_from_a_trace_column_replay_exactly_as_lru_and_a_hit_costs_only_lookup_and_delays(tmp_path):
    """A trace with a user_id column, one request a second (nothing queues), constant times: a hit's latency
    is exactly lookup + network, a miss's adds the model's 10 ms; hits are LRU's by its definition."""
    from sim.analysis.simulate import simulate
    from sim.spec.scenario import parse_scenario

    rng = np.random.default_rng(12)
    users = rng.zipf(1.4, size=600) % 40
    pd.DataFrame({"arrived_at": np.arange(600.0), "user_id": users}).to_csv(tmp_path / "t.csv", index=False)
    scenario = parse_scenario(
        {
            "name": "trace-keys",
            "replications": 1,
            "workload": {"arrival": {"process": "trace", "file": "t.csv"}, "warmup_requests": 0},
            "stages": [
                {"name": "network", "kind": "delay", "service_ms": 5},
                {"name": "forward", "kind": "model", "service_ms": 10},
            ],
            "caches": [{"name": "out", "tier": "output", "keys": {"column": "user_id"}, "capacity": 6, "lookup_ms": 1}],
        },
        base_dir=tmp_path,
    )
    log = simulate(scenario).log
    expected = lru_by_stack_distance(users.tolist(), 6, [0] * len(users))
    np.testing.assert_array_equal(log["out_hit"].to_numpy(), expected)
    latency = log["latency_ms"].to_numpy()
    np.testing.assert_allclose(latency[expected], 6.0)
    np.testing.assert_allclose(latency[~expected], 16.0)
    assert 0.2 < expected.mean() < 0.9


def test_a_single_replication_gets_a_hit_rate_interval_from_sections_of_the_run():
    rng = np.random.default_rng(0)
    log = pd.DataFrame(
        {
            "replication": 0,
            "arrival_ms": np.arange(1_100.0) * 100,
            "warmup": np.arange(1_100) < 100,
            "out_hit": rng.random(1_100) < 0.3,
        }
    )
    summary = cache_summary(log, caches({"name": "out", "tier": "output", "hit_rate": 0.3}))["out"]
    lo, hi = summary["hit_rate_ci95"]
    sections = log["out_hit"].to_numpy()[100:].reshape(10, 100).mean(axis=1)  # 10 equal sections (batch means)
    assert (lo + hi) / 2 == pytest.approx(sections.mean()) == pytest.approx(summary["hit_rate"])
    assert hi - lo == pytest.approx(2 * 2.2621571627409915 * sections.std(ddof=1) / math.sqrt(10))
