"""Each closed form in sim.theory against published numbers AND an independent computation.

Independent methods: truncated CTMCs solved numerically (numpy), numerical integration (scipy),
vectorised Monte Carlo (Lindley's recursion, the Pollaczek-Khinchine/Benes geometric sum), literal
event-by-event simulations, and limit cases (c = 1 is M/M/1, B = 1 is M/M/1, setup 0 is P-K).
Monte Carlo tolerances are 4-5 standard errors (binomial, or batch means) with fixed seeds.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import pytest
from scipy import integrate, sparse, stats
from scipy.sparse.linalg import spsolve

from sim.errors import ServesimError
from sim.theory import (
    bulk_service_mean_wait,
    bulk_service_root,
    bulk_service_sojourn_quantile,
    bulk_service_wait_cdf,
    bulk_service_wait_quantile,
    che_characteristic_time,
    che_lru_hit_rate,
    erlang_b,
    erlang_c,
    md1_mean_wait,
    md1_wait_cdf,
    md1_wait_quantile,
    md1_wait_tail_asymptote,
    mg1_setup_mean_wait,
    mm1_setup_mean_wait,
    mmc_mean_number_in_system,
    mmc_sojourn_cdf,
    mmc_sojourn_mean,
    mmc_sojourn_quantile,
    mmc_wait_cdf,
    mmc_wait_mean,
    mmc_wait_quantile,
    pk_mean_wait,
    zipf_probabilities,
)


# --- helpers: independent machinery --------------------------------------------------------------


def ctmc_stationary(rates: dict[tuple[int, int], float], n_states: int) -> np.ndarray:
    """Stationary law of a finite CTMC from its transition rates {(i, j): rate}, by a sparse linear solve."""
    rows, cols, vals = [], [], []
    for (i, j), r in rates.items():
        rows += [j, i]  # transposed generator: column i holds the rates out of state i
        cols += [i, i]
        vals += [r, -r]
    a = sparse.coo_matrix((vals, (rows, cols)), shape=(n_states, n_states)).tolil()
    a[n_states - 1, :] = np.ones(n_states)  # pi Q = 0 has rank n - 1: replace one equation by sum(pi) = 1
    b = np.zeros(n_states)
    b[-1] = 1.0
    return spsolve(a.tocsr(), b)


def mmc_ctmc(c: int, lam: float, mu: float, n_max: int = 400) -> np.ndarray:
    """Number-in-system law of M/M/c truncated at n_max (birth-death generator, solved numerically)."""
    rates = {}
    for n in range(n_max):
        rates[(n, n + 1)] = lam
        rates[(n + 1, n)] = min(n + 1, c) * mu
    return ctmc_stationary(rates, n_max + 1)


def batch_means_se(x: np.ndarray, n_batches: int = 50) -> float:
    """Standard error of the mean of a correlated series by batch means."""
    m = np.array([b.mean() for b in np.array_split(x, n_batches)])
    return float(m.std(ddof=1) / math.sqrt(n_batches))


def lindley_waits(interarrivals: np.ndarray, services: np.ndarray) -> np.ndarray:
    """FCFS single-server waits W_n = X_n - min_{k<=n} X_k, X_n = sum_{i<n} (S_i - A_{i+1}) (Lindley)."""
    x = np.concatenate([[0.0], np.cumsum(services[:-1] - interarrivals[1:])])
    return x - np.minimum.accumulate(x)


# --- Erlang B / C ---------------------------------------------------------------------------------


def test_erlang_b_published_value():
    # B(3, 2.5) = 0.2822 (Erlang loss table)
    assert erlang_b(3, 2.5) == pytest.approx(0.2822, abs=5e-5)


@pytest.mark.parametrize("c, a", [(3, 2.5), (1, 0.3), (10, 7.0), (50, 40.0), (200, 210.0)])
def test_erlang_b_equals_truncated_poisson_and_loss_ctmc(c, a):
    # Erlang B = P(N = c) for the M/M/c/c birth-death chain = truncated Poisson(a) mass at c.
    assert erlang_b(c, a) == pytest.approx(stats.poisson.pmf(c, a) / stats.poisson.cdf(c, a), rel=1e-10)
    if c <= 50:
        pi = ctmc_stationary(
            {**{(n, n + 1): a for n in range(c)}, **{(n + 1, n): float(n + 1) for n in range(c)}}, c + 1
        )
        assert erlang_b(c, a) == pytest.approx(pi[c], rel=1e-8)


@pytest.mark.parametrize("c, lam, mu", [(3, 2.5, 1.0), (1, 0.7, 1.0), (8, 6.0, 1.0), (2, 1.0, 1.0)])
def test_erlang_c_and_mean_wait_against_mmc_ctmc(c, lam, mu):
    pi = mmc_ctmc(c, lam, mu)
    n = np.arange(pi.size)
    assert erlang_c(c, lam / mu) == pytest.approx(pi[c:].sum(), rel=1e-9)  # PASTA: P(wait) = P(N >= c)
    lq = np.sum(np.maximum(n - c, 0) * pi)
    assert mmc_wait_mean(c, lam, mu) == pytest.approx(lq / lam, rel=1e-9)  # Little's law on the queue
    assert mmc_mean_number_in_system(c, lam, mu) == pytest.approx(np.sum(n * pi), rel=1e-9)


# --- M/M/c sojourn and wait distributions --------------------------------------------------------


def test_mm3_sojourn_quantiles_published():
    # M/M/3, lambda = 2.5/s, mu = 1/s: p50 1.8191 s, p95 6.6500 s, p99 9.8856 s
    for q, expected in [(0.50, 1.8191), (0.95, 6.6500), (0.99, 9.8856)]:
        assert mmc_sojourn_quantile(q, 3, 2.5, 1.0) == pytest.approx(expected, abs=5e-5)


def ctmc_sojourn_cdf(t: float, c: int, lam: float, mu: float) -> float:
    """P(T <= t) from the CTMC: an arrival seeing n >= c waits Erlang(n - c + 1, c mu), then Exp(mu)."""
    pi = mmc_ctmc(c, lam, mu)
    k = np.arange(1, pi.size - c + 1)

    def wait_cdf(u: float) -> float:
        return pi[:c].sum() + float(np.sum(pi[c:] * stats.gamma.cdf(u, k, scale=1.0 / (c * mu))))

    conv, _ = integrate.quad(lambda s: mu * math.exp(-mu * s) * wait_cdf(t - s), 0.0, t, epsabs=1e-12, limit=200)
    return conv


@pytest.mark.parametrize("c, lam, mu", [(3, 2.5, 1.0), (2, 1.0, 1.0), (4, 2.0, 0.8)])
def test_mmc_sojourn_cdf_against_ctmc_convolution(c, lam, mu):
    # (2, 1, 1) is the special case c mu - lambda = mu (Erlang-2 branch).
    for t in (0.3, 1.0, 2.5, 6.0):
        assert mmc_sojourn_cdf(t, c, lam, mu) == pytest.approx(ctmc_sojourn_cdf(t, c, lam, mu), abs=1e-8)


def test_mmc_sojourn_special_case_is_continuous():
    # c mu - lambda = mu exactly vs. a hair either side: no jump, no cancellation blow-up.
    t = np.array([0.1, 1.0, 5.0, 20.0])
    exact = mmc_sojourn_cdf(t, 2, 1.0, 1.0)
    for lam in (1.0 - 1e-7, 1.0 + 1e-7, 1.0 - 1e-10):
        assert np.allclose(mmc_sojourn_cdf(t, 2, lam, 1.0), exact, atol=1e-6)
    assert mmc_sojourn_quantile(0.99, 2, 1.0, 1.0) == pytest.approx(
        mmc_sojourn_quantile(0.99, 2, 1.0 + 1e-6, 1.0), rel=1e-5
    )


def test_mmc_sojourn_density_integrates_to_mean():
    # E[T] = integral of the survival function (numerical quadrature) = Wq + 1/mu.
    for c, lam, mu in [(3, 2.5, 1.0), (2, 1.0, 1.0), (1, 0.9, 1.0)]:
        mean, _ = integrate.quad(lambda t: 1.0 - mmc_sojourn_cdf(t, c, lam, mu), 0.0, np.inf, epsabs=1e-11)
        assert mean == pytest.approx(mmc_sojourn_mean(c, lam, mu), rel=1e-8)


def test_mm1_limit_sojourn_is_exponential():
    # M/M/1 sojourn ~ Exp(mu - lambda) (Kleinrock vol. 1, section 3.2); wait mean rho / (mu - lambda).
    lam, mu = 0.7, 1.0
    for q in (0.5, 0.9, 0.99, 0.999):
        assert mmc_sojourn_quantile(q, 1, lam, mu) == pytest.approx(-math.log(1 - q) / (mu - lam), rel=1e-10)
    assert mmc_wait_mean(1, lam, mu) == pytest.approx(0.7 / 0.3, rel=1e-12)
    assert mmc_wait_quantile(0.9, 1, lam, mu) == pytest.approx(math.log(0.7 / 0.1) / 0.3, rel=1e-12)
    assert mmc_wait_quantile(0.2, 1, lam, mu) == 0.0  # below the atom 1 - rho = 0.3


def test_mmc_wait_quantile_inverts_wait_cdf():
    for q in (0.4, 0.9, 0.999):
        t = mmc_wait_quantile(q, 3, 2.5, 1.0)
        assert mmc_wait_cdf(t, 3, 2.5, 1.0) == pytest.approx(q, abs=1e-12)
    assert mmc_wait_cdf(0.0, 3, 2.5, 1.0) == pytest.approx(1 - erlang_c(3, 2.5))


# --- M/G/1 (Pollaczek-Khinchine) and M/D/1 --------------------------------------------------------


def test_pk_reduces_to_mm1_and_md1():
    assert pk_mean_wait(0.7, 1.0, 2.0) == pytest.approx(mmc_wait_mean(1, 0.7, 1.0), rel=1e-12)
    assert pk_mean_wait(0.8, 1.0, 1.0) == pytest.approx(2.0, rel=1e-12)
    assert md1_mean_wait(0.8, 3.0) == pytest.approx(pk_mean_wait(0.8 / 3.0, 3.0, 9.0), rel=1e-12)


def test_pk_against_lindley_monte_carlo_gamma_service():
    # M/G/1 with gamma service (mean 1, cv 1.5), rho = 0.6: P-K 0.6 * 3.25 / 0.8 = 2.4375.
    rng = np.random.default_rng(20261129)
    n, lam, cv = 2_000_000, 0.6, 1.5
    shape = 1.0 / cv**2
    services = rng.gamma(shape, 1.0 / shape, size=n)
    waits = lindley_waits(rng.exponential(1.0 / lam, size=n), services)[n // 20 :]
    expected = pk_mean_wait(lam, 1.0, 1.0 + cv**2)
    assert expected == pytest.approx(2.4375, rel=1e-12)
    assert abs(waits.mean() - expected) < 5 * batch_means_se(waits)


def test_md1_published_values():
    # rho = 0.8: mean wait 2.000 D, wait p99 = 10.3559 D (here D = 1 and D = 7 ms)
    assert md1_mean_wait(0.8, 1.0) == pytest.approx(2.000, abs=5e-4)
    assert md1_wait_quantile(0.99, 0.8, 1.0) == pytest.approx(10.3559, abs=5e-5)
    assert md1_wait_quantile(0.99, 0.8, 7.0) == pytest.approx(7 * 10.3559, abs=7 * 5e-5)


def test_md1_cdf_integrates_to_pk_mean():
    # E[W] = integral of P(W > t): Gauss-Legendre on each [k, k+1] (the CDF has kinks at multiples of D),
    # plus the exponential tail beyond 40 D integrated in closed form (< 1e-7 of the total here).
    nodes, weights = np.polynomial.legendre.leggauss(10)
    for rho in (0.5, 0.8):
        total = 0.0
        for k in range(40):
            t = k + (nodes + 1) / 2
            total += 0.5 * np.sum(weights * (1.0 - md1_wait_cdf(t, rho, 1.0)))
        tail_40, tail_41 = md1_wait_tail_asymptote(40.0, rho, 1.0), md1_wait_tail_asymptote(41.0, rho, 1.0)
        total += tail_40 / math.log(tail_40 / tail_41)
        assert total == pytest.approx(md1_mean_wait(rho, 1.0), rel=1e-9)


def test_md1_cdf_against_benes_monte_carlo():
    # P-K / Benes: W = sum of N i.i.d. residual service times (Uniform(0, D)), N ~ Geometric, P(N = n) =
    # (1 - rho) rho^n. I.i.d. samples, so each empirical CDF value has binomial standard error.
    rng = np.random.default_rng(7)
    rho, n = 0.8, 1_000_000
    counts = rng.geometric(1.0 - rho, size=n) - 1
    u = rng.uniform(0.0, 1.0, size=int(counts.sum()))
    owner = np.repeat(np.arange(n), counts)
    w = np.bincount(owner, weights=u, minlength=n)
    for t in (0.0, 0.5, 1.0, 2.5, 5.0, 10.3559):
        p = float(md1_wait_cdf(t, rho, 1.0))
        emp = float(np.mean(w <= t))
        assert abs(emp - p) < 5 * math.sqrt(p * (1 - p) / n) + 1e-12, (t, emp, p)


def test_md1_cdf_against_lindley_deterministic_service():
    rng = np.random.default_rng(11)
    rho, n = 0.5, 1_000_000
    waits = lindley_waits(rng.exponential(1.0 / rho, size=n), np.ones(n))
    assert abs(waits.mean() - md1_mean_wait(rho, 1.0)) < 5 * batch_means_se(waits)
    assert np.mean(waits == 0.0) == pytest.approx(1 - rho, abs=0.005)
    # quantiles of the MC sample vs. the formula (tolerance ~5 binomial SE over the local density)
    assert np.quantile(waits, 0.9) == pytest.approx(md1_wait_quantile(0.9, rho, 1.0), abs=0.03)


def test_md1_asymptote_matches_exact_in_the_tail_and_at_the_switch():
    for rho in (0.3, 0.8, 0.99):
        x = 10.0 if rho < 0.5 else 20.0
        exact_tail = 1.0 - md1_wait_cdf(x, rho, 1.0)
        assert md1_wait_tail_asymptote(x, rho, 1.0) == pytest.approx(exact_tail, rel=1e-5)
    # the exact sum (<= 200 D) and the asymptote (> 200 D) agree where they meet
    below, above = md1_wait_cdf([199.9999, 200.0001], 0.99, 1.0)
    assert abs(above - below) < 1e-6
    # the decay rate solves the Cramér-Lundberg equation rho (e^s - 1) = s
    sigma = -math.log(md1_wait_tail_asymptote(1.0, 0.8, 1.0) / md1_wait_tail_asymptote(0.0, 0.8, 1.0))
    assert 0.8 * math.expm1(sigma) == pytest.approx(sigma, rel=1e-10)


def test_md1_quantile_edges():
    assert md1_wait_cdf(0.0, 0.8, 1.0) == pytest.approx(0.2, abs=1e-15)  # atom at 0 is 1 - rho
    assert md1_wait_quantile(0.15, 0.8, 1.0) == 0.0
    t = md1_wait_quantile(0.9999, 0.99, 1.0)  # deep tail, asymptote branch
    assert md1_wait_cdf(t, 0.99, 1.0) == pytest.approx(0.9999, abs=1e-10)


# --- bulk service M/M^[B]/1 ------------------------------------------------------------------------


def bulk_ctmc(lam: float, mu: float, b: int, n_max: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """(P(idle), P(busy, n waiting) for n = 0..n_max) of the take-up-to-B server, solved numerically.

    State 0 = idle; state n + 1 = busy with n waiting. Arrivals: idle -> busy(0), busy(n) -> busy(n+1).
    Completion (rate mu): busy(0) -> idle, busy(n >= 1) -> busy(n - min(n, B)).
    """
    rates = {(0, 1): lam}
    for n in range(n_max + 1):
        if n < n_max:
            rates[(n + 1, n + 2)] = lam
        rates[(n + 1, 0 if n == 0 else n - min(n, b) + 1)] = mu
    pi = ctmc_stationary(rates, n_max + 2)
    return pi[0], pi[1:]


def test_bulk_service_published_value():
    # lambda = 3, mu = 1, B = 4: mean wait 2.5525
    assert bulk_service_mean_wait(3.0, 1.0, 4) == pytest.approx(2.5525, abs=5e-5)
    r = bulk_service_root(3.0, 1.0, 4)
    assert 1.0 * r**5 - 4.0 * r + 3.0 == pytest.approx(0.0, abs=1e-13)
    assert 0 < r < 1


@pytest.mark.parametrize("lam, mu, b", [(3.0, 1.0, 4), (1.5, 0.5, 8), (0.9, 1.0, 2), (7.5, 1.0, 8)])
def test_bulk_service_against_ctmc_little(lam, mu, b):
    idle, busy = bulk_ctmc(lam, mu, b)
    n = np.arange(busy.size)
    assert bulk_service_mean_wait(lam, mu, b) == pytest.approx(np.sum(n * busy) / lam, rel=1e-8)
    # wait law: an arrival seeing (busy, n) waits Erlang(ceil((n + 1) / B), mu)  (PASTA)
    stages = -(-(n + 1) // b)
    for t in (0.5, 2.0, 6.0):
        expected = idle + float(np.sum(busy * stats.gamma.cdf(t, stages, scale=1.0 / mu)))
        assert bulk_service_wait_cdf(t, lam, mu, b) == pytest.approx(expected, abs=1e-9)


def test_bulk_service_b1_is_mm1():
    assert bulk_service_mean_wait(0.7, 1.0, 1) == pytest.approx(mmc_wait_mean(1, 0.7, 1.0), rel=1e-10)
    assert bulk_service_sojourn_quantile(0.99, 0.7, 1.0, 1) == pytest.approx(
        mmc_sojourn_quantile(0.99, 1, 0.7, 1.0), rel=1e-9
    )


def test_bulk_service_against_literal_simulation():
    # Event-by-event: when the server frees up it takes up to B of those who have arrived; if nobody
    # has, the next arrival starts a batch of one. Waits = batch start - arrival.
    rng = np.random.default_rng(3)
    lam, mu, b, n = 3.0, 1.0, 4, 300_000
    arrivals = np.cumsum(rng.exponential(1.0 / lam, size=n))
    services = rng.exponential(1.0 / mu, size=n)
    waits = np.empty(n)
    i, free_at, k = 0, 0.0, 0
    while i < n:
        start = max(free_at, arrivals[i])
        j = min(i + b, int(np.searchsorted(arrivals, start, side="right")))
        waits[i:j] = start - arrivals[i:j]
        free_at = start + services[k]
        i, k = j, k + 1
    waits = waits[n // 20 :]
    assert abs(waits.mean() - bulk_service_mean_wait(lam, mu, b)) < 5 * batch_means_se(waits)
    q90 = bulk_service_wait_quantile(0.9, lam, mu, b)
    assert np.mean(waits <= q90) == pytest.approx(0.9, abs=0.01)


# --- Che's approximation ---------------------------------------------------------------------------


def test_zipf_probabilities():
    p = zipf_probabilities(4, 1.0)
    h = 1 + 1 / 2 + 1 / 3 + 1 / 4
    assert np.allclose(p, [1 / h, 1 / (2 * h), 1 / (3 * h), 1 / (4 * h)], rtol=1e-14)
    assert np.allclose(zipf_probabilities(5, 0.0), 0.2)


def test_che_uniform_is_exact_and_edges():
    # Uniform popularity: LRU hit rate is exactly C / n, and Che's equation gives exactly that.
    p = np.full(500, 1 / 500)
    assert che_lru_hit_rate(p, 50) == pytest.approx(0.1, rel=1e-10)
    assert che_lru_hit_rate(p, 500) == 1.0
    assert che_lru_hit_rate(p, 0) == 0.0
    q = zipf_probabilities(1000, 0.9)
    t = che_characteristic_time(q, 120)
    assert np.sum(-np.expm1(-q * t)) == pytest.approx(120, rel=1e-10)


def test_che_against_lru_simulation():
    # Che is an approximation, accurate to ~1% for Zipf (Fricker, Robert & Roberts 2012).
    rng = np.random.default_rng(5)
    n_keys, capacity, exponent, n_req = 1000, 100, 0.8, 200_000
    p = zipf_probabilities(n_keys, exponent)
    keys = rng.choice(n_keys, size=n_req, p=p)
    cache: OrderedDict[int, None] = OrderedDict()
    hits = np.zeros(n_req, dtype=bool)
    for i, key in enumerate(keys.tolist()):
        if key in cache:
            cache.move_to_end(key)
            hits[i] = True
        else:
            cache[key] = None
            if len(cache) > capacity:
                cache.popitem(last=False)
    measured = hits[20_000:].mean()
    assert che_lru_hit_rate(p, capacity) == pytest.approx(measured, abs=0.01)


# --- setup times ------------------------------------------------------------------------------------


def test_mm1_setup_published_value():
    # lambda = 0.5, mean service 1, deterministic setup 2: mean wait 2.5
    assert mm1_setup_mean_wait(0.5, 1.0, 2.0, 4.0) == pytest.approx(2.5, abs=1e-12)


def test_setup_limits():
    assert mm1_setup_mean_wait(0.6, 1.0, 0.0, 0.0) == pytest.approx(mmc_wait_mean(1, 0.6, 1.0), rel=1e-12)
    assert mg1_setup_mean_wait(0.5, 1.0, 1.0, 0.0, 0.0) == pytest.approx(md1_mean_wait(0.5, 1.0), rel=1e-12)
    # Welch's exceptional-first-service form, written out independently (S0 = I + S):
    lam, es, es2, ei, ei2 = 0.4, 1.5, 3.0, 2.0, 6.0
    rho = lam * es
    es0, es02 = ei + es, ei2 + 2 * ei * es + es2
    welch = lam * es2 / (2 * (1 - rho)) + lam * (es02 - es2) / (2 * (1 - rho + lam * es0))
    p_empty = (1 - rho) / (1 - rho + lam * es0)
    assert mg1_setup_mean_wait(lam, es, es2, ei, ei2) == pytest.approx(welch + p_empty * ei, rel=1e-12)


@pytest.mark.parametrize("lam, mu, gamma", [(0.5, 1.0, 0.5), (0.8, 1.0, 2.0), (0.3, 1.0, 0.1)])
def test_mm1_exponential_setup_against_ctmc(lam, mu, gamma):
    # States: 0 off; (n, setting up) n >= 1; (n, on) n >= 1. Everyone waits during setup; n - 1 wait when on.
    n_max = 500

    def setup(n):
        return n

    def on(n):
        return n_max + n

    rates = {(0, setup(1)): lam}
    for n in range(1, n_max + 1):
        rates[(setup(n), on(n))] = gamma
        rates[(on(n), on(n - 1) if n > 1 else 0)] = mu
        if n < n_max:
            rates[(setup(n), setup(n + 1))] = lam
            rates[(on(n), on(n + 1))] = lam
    pi = ctmc_stationary(rates, 2 * n_max + 1)
    n = np.arange(1, n_max + 1)
    lq = np.sum(n * pi[1 : n_max + 1]) + np.sum((n - 1) * pi[n_max + 1 :])
    m = 1.0 / gamma
    assert mm1_setup_mean_wait(lam, mu, m, 2 * m * m) == pytest.approx(lq / lam, rel=1e-8)


def test_mm1_deterministic_setup_against_simulation():
    rng = np.random.default_rng(13)
    lam, mu, setup, n = 0.5, 1.0, 2.0, 300_000
    arrivals = np.cumsum(rng.exponential(1.0 / lam, size=n)).tolist()
    services = rng.exponential(1.0 / mu, size=n).tolist()
    waits = np.empty(n)
    free_at = -1.0
    for i, (a, s) in enumerate(zip(arrivals, services)):
        start = free_at if a < free_at else a + setup  # server off when found empty: set up first
        waits[i] = start - a
        free_at = start + s
    waits = waits[n // 20 :]
    assert abs(waits.mean() - mm1_setup_mean_wait(lam, mu, setup, setup**2)) < 5 * batch_means_se(waits)


# --- input errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda: erlang_c(3, 3.0),
        lambda: mmc_sojourn_quantile(0.99, 2, 2.5, 1.0),
        lambda: pk_mean_wait(1.0, 1.0, 2.0),
        lambda: md1_wait_quantile(0.5, 1.0, 1.0),
        lambda: bulk_service_mean_wait(4.0, 1.0, 4),
        lambda: mm1_setup_mean_wait(1.2, 1.0, 1.0, 1.0),
    ],
)
def test_unstable_load_is_a_clear_error(call):
    with pytest.raises(ServesimError, match="unstable"):
        call()


def test_bad_parameters_name_the_field():
    with pytest.raises(ServesimError, match="servers"):
        erlang_b(0, 1.0)
    with pytest.raises(ServesimError, match="q"):
        mmc_sojourn_quantile(1.0, 3, 2.5, 1.0)
    with pytest.raises(ServesimError, match="second_moment_service"):
        pk_mean_wait(0.5, 1.0, 0.5)
    with pytest.raises(ServesimError, match="probabilities"):
        che_lru_hit_rate([0.5, 0.6], 1)
    with pytest.raises(ServesimError, match="max_batch"):
        bulk_service_mean_wait(1.0, 1.0, 0)
