"""Closed-form queueing results used as oracles for the engine (exact formulas, each with its source).

Units: any consistent pair works - rates per second with times in seconds, or rates per millisecond
with times in milliseconds. Callers convert (the engine works in ms and requests/s, so pass
``arrival_rate = rate_rps / 1000`` with times in ms, or rates in 1/s with times in s).
"service" always means a service *time*; "offered_load" is in Erlangs (arrival rate x mean service).

Waiting time ("wait") is the time from arrival until the customer's own service starts; sojourn is
wait + service. All queues are FCFS and in steady state.

General references:
  [GH]  D. Gross, J. F. Shortle, J. M. Thompson, C. M. Harris, *Fundamentals of Queueing Theory*,
        4th ed., Wiley 2008 (ch. 2 M/M/c, M/M/c/c; ch. 3 bulk service; ch. 5 M/G/1).
  [K75] L. Kleinrock, *Queueing Systems, Vol. 1: Theory*, Wiley 1975 (ch. 3 M/M/c; ch. 5 M/G/1).
  [A03] S. Asmussen, *Applied Probability and Queues*, 2nd ed., Springer 2003 (Cramér-Lundberg tail).
"""

from __future__ import annotations

import math
from typing import Callable

import mpmath
import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import brentq

from sim.errors import ServesimError

__all__ = [
    "TheoryInputError",
    "erlang_b",
    "erlang_c",
    "mmc_wait_mean",
    "mmc_sojourn_mean",
    "mmc_mean_number_in_system",
    "mmc_wait_cdf",
    "mmc_wait_quantile",
    "mmc_sojourn_cdf",
    "mmc_sojourn_quantile",
    "pk_mean_wait",
    "md1_mean_wait",
    "md1_wait_cdf",
    "md1_wait_quantile",
    "md1_wait_tail_asymptote",
    "bulk_service_root",
    "bulk_service_mean_wait",
    "bulk_service_wait_cdf",
    "bulk_service_wait_quantile",
    "bulk_service_sojourn_quantile",
    "zipf_probabilities",
    "che_characteristic_time",
    "che_lru_hit_rate",
    "mg1_setup_mean_wait",
    "mm1_setup_mean_wait",
]


class TheoryInputError(ServesimError):
    """A parameter outside a formula's domain (e.g. a load >= 1: the queue has no steady state)."""


def _positive(name: str, value: float) -> float:
    if not (isinstance(value, (int, float, np.integer, np.floating)) and math.isfinite(value) and value > 0):
        raise TheoryInputError(f"{name}: must be a finite number > 0, got {value!r}")
    return float(value)


def _servers(servers: int) -> int:
    if isinstance(servers, bool) or not isinstance(servers, (int, np.integer)) or servers < 1:
        raise TheoryInputError(f"servers: must be an integer >= 1, got {servers!r}")
    return int(servers)


def _probability(name: str, q: float) -> float:
    if not 0.0 <= q < 1.0:
        raise TheoryInputError(f"{name}: must be in [0, 1), got {q!r}")
    return float(q)


def _stable(load: float, what: str) -> None:
    if load >= 1.0:
        raise TheoryInputError(
            f"{what} = {load:.6g} >= 1: the queue is unstable (grows without bound), no steady state"
        )


def _root(f: Callable[[float], float], q: float, hi: float) -> float:
    """Smallest t >= 0 with f(t) >= q for a continuous non-decreasing CDF f (bracket grown from hi)."""
    while f(hi) < q:
        hi *= 2.0
    return float(brentq(lambda t: f(t) - q, 0.0, hi, xtol=1e-13, rtol=1e-13, maxiter=500))


# --- Erlang B / C, M/M/c -------------------------------------------------------------------------


def erlang_b(servers: int, offered_load: float) -> float:
    """Blocking probability of M/M/c/c (Erlang's loss formula), offered load a = lambda/mu in Erlangs.

    Stable recursion B(0) = 1, B(k) = a B(k-1) / (k + a B(k-1)) [GH section 2.6; K75 section 3.7].
    Insensitive to the service distribution (holds for M/G/c/c).
    """
    c = _servers(servers)
    a = _positive("offered_load", offered_load)
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return b


def erlang_c(servers: int, offered_load: float) -> float:
    """Probability that an arrival waits in M/M/c (Erlang's delay formula), a = lambda/mu < c.

    C = c B / (c - a (1 - B)) with B = erlang_b(c, a) [GH section 2.3; K75 eq. for M/M/m].
    """
    c = _servers(servers)
    a = _positive("offered_load", offered_load)
    _stable(a / c, "utilization offered_load/servers")
    b = erlang_b(c, a)
    return c * b / (c - a * (1.0 - b))


def _mmc(servers: int, arrival_rate: float, service_rate: float) -> tuple[int, float, float, float, float]:
    """Validated (c, lambda, mu, C, theta) with theta = c mu - lambda, the rate of the conditional wait."""
    c = _servers(servers)
    lam = _positive("arrival_rate", arrival_rate)
    mu = _positive("service_rate", service_rate)
    _stable(lam / (c * mu), "utilization arrival_rate/(servers*service_rate)")
    return c, lam, mu, erlang_c(c, lam / mu), c * mu - lam


def mmc_wait_mean(servers: int, arrival_rate: float, service_rate: float) -> float:
    """Mean wait in queue of M/M/c FCFS: Wq = C / (c mu - lambda) [GH section 2.3]. M/M/1: rho/(mu-lambda)."""
    _, _, _, p_wait, theta = _mmc(servers, arrival_rate, service_rate)
    return p_wait / theta


def mmc_sojourn_mean(servers: int, arrival_rate: float, service_rate: float) -> float:
    """Mean sojourn (wait + service) of M/M/c FCFS: W = Wq + 1/mu [GH section 2.3]."""
    return mmc_wait_mean(servers, arrival_rate, service_rate) + 1.0 / float(service_rate)


def mmc_mean_number_in_system(servers: int, arrival_rate: float, service_rate: float) -> float:
    """Mean number in system of M/M/c: L = lambda W (Little's law)."""
    return float(arrival_rate) * mmc_sojourn_mean(servers, arrival_rate, service_rate)


def mmc_wait_cdf(t: ArrayLike, servers: int, arrival_rate: float, service_rate: float) -> np.ndarray | float:
    """P(Wq <= t) of M/M/c FCFS: 1 - C exp(-(c mu - lambda) t) for t >= 0 [GH section 2.3; K75 section 3.5]."""
    _, _, _, p_wait, theta = _mmc(servers, arrival_rate, service_rate)
    t = np.asarray(t, dtype=float)
    out = np.where(t < 0, 0.0, 1.0 - p_wait * np.exp(-theta * np.maximum(t, 0.0)))
    return float(out) if out.ndim == 0 else out


def mmc_wait_quantile(q: float, servers: int, arrival_rate: float, service_rate: float) -> float:
    """q-quantile of the M/M/c wait: 0 if q <= 1 - C, else ln(C / (1 - q)) / (c mu - lambda)."""
    q = _probability("q", q)
    _, _, _, p_wait, theta = _mmc(servers, arrival_rate, service_rate)
    return 0.0 if q <= 1.0 - p_wait else math.log(p_wait / (1.0 - q)) / theta


def _mixture_sojourn_sf(t: np.ndarray, p_wait: float, wait_rate: float, service_rate: float) -> np.ndarray:
    """P(W + S > t) with S ~ Exp(mu) and W = 0 w.p. 1 - p, W ~ Exp(theta) w.p. p (independent).

    P(E_theta + E_mu > t) = (theta e^{-mu t} - mu e^{-theta t}) / (theta - mu) (hypoexponential), and in
    the limit theta = mu it is the Erlang-2 tail (1 + mu t) e^{-mu t}. Near the limit the difference
    quotient is evaluated with expm1 to avoid cancellation.
    """
    mu = service_rate
    lo, hi = min(wait_rate, service_rate), max(wait_rate, service_rate)
    t = np.maximum(t, 0.0)
    d = hi - lo
    if d <= 1e-9 * hi:
        both = (1.0 + lo * t) * np.exp(-lo * t)
    else:
        # (hi e^{-lo t} - lo e^{-hi t}) / d = e^{-lo t} [1 - lo (e^{-d t} - 1) / d]: no overflow, no cancellation
        both = np.exp(-lo * t) * (1.0 - lo * np.expm1(-d * t) / d)
    return (1.0 - p_wait) * np.exp(-mu * t) + p_wait * both


def mmc_sojourn_cdf(t: ArrayLike, servers: int, arrival_rate: float, service_rate: float) -> np.ndarray | float:
    """P(sojourn <= t) of M/M/c FCFS (sojourn = wait + own service).

    Exact: the wait is 0 w.p. 1 - C and Exp(c mu - lambda) w.p. C, independent of the customer's own
    Exp(mu) service, so the sojourn is Exp(mu) mixed with a hypoexponential(c mu - lambda, mu)
    [GH section 2.3; K75 section 3.5]. The case c mu - lambda = mu is handled (Erlang-2).
    """
    _, _, mu, p_wait, theta = _mmc(servers, arrival_rate, service_rate)
    t = np.asarray(t, dtype=float)
    out = np.where(t < 0, 0.0, 1.0 - _mixture_sojourn_sf(t, p_wait, theta, mu))
    return float(out) if out.ndim == 0 else out


def mmc_sojourn_quantile(q: float, servers: int, arrival_rate: float, service_rate: float) -> float:
    """q-quantile of the M/M/c FCFS sojourn time (root of mmc_sojourn_cdf)."""
    q = _probability("q", q)
    _, _, mu, _, _ = _mmc(servers, arrival_rate, service_rate)
    return _root(lambda t: mmc_sojourn_cdf(t, servers, arrival_rate, service_rate), q, 10.0 / mu)


# --- M/G/1 and M/D/1 -----------------------------------------------------------------------------


def pk_mean_wait(arrival_rate: float, mean_service: float, second_moment_service: float) -> float:
    """Pollaczek-Khinchine mean wait of M/G/1 FCFS: Wq = lambda E[S^2] / (2 (1 - rho)), rho = lambda E[S].

    [K75 section 5.6; GH section 5.1]. E[S^2] = Var(S) + E[S]^2 (deterministic D: D^2; exponential: 2/mu^2).
    """
    lam = _positive("arrival_rate", arrival_rate)
    es = _positive("mean_service", mean_service)
    es2 = _positive("second_moment_service", second_moment_service)
    if es2 < es * es * (1.0 - 1e-12):
        raise TheoryInputError(f"second_moment_service: must be >= mean_service^2 = {es * es:.6g}, got {es2:.6g}")
    rho = lam * es
    _stable(rho, "utilization arrival_rate*mean_service")
    return lam * es2 / (2.0 * (1.0 - rho))


def md1_mean_wait(rho: float, service: float) -> float:
    """Mean wait of M/D/1: rho D / (2 (1 - rho)) (P-K with E[S^2] = D^2)."""
    rho = _positive("rho", rho)
    _stable(rho, "rho")
    return rho * _positive("service", service) / (2.0 * (1.0 - rho))


_MD1_EXACT_MAX_X = 200.0  # beyond t = 200 D the Cramér-Lundberg asymptote is exact to double precision


def _md1_decay(rho: float) -> float:
    """sigma > 0 with rho (e^sigma - 1) = sigma: the tail decay rate of the M/D/1 wait, per unit D."""
    # f(s) = rho (e^s - 1) - s is convex, f(0) = 0, negative just right of 0 and positive beyond the
    # root; e^s - 1 >= s + s^2 / 2 puts the root below 2 (1 - rho) / rho, and f(2 ln(1/rho) + 2) > 0.
    lo = 1e-3 * (1.0 - rho)
    hi = min(2.02 * (1.0 - rho) / rho, 2.0 * math.log(1.0 / rho) + 2.0)
    return float(brentq(lambda s: rho * math.expm1(s) - s, lo, hi, xtol=1e-300, rtol=1e-15, maxiter=500))


def md1_wait_tail_asymptote(t: float, rho: float, service: float) -> float:
    """Exponential tail of the M/D/1 wait: P(W > t) ~ K e^{-sigma t / D} for large t.

    Cramér-Lundberg for M/G/1 [A03 ch. XIII]: P(W > t) ~ (1 - rho) / (lambda E[S e^{sS}] - 1) e^{-s t}
    with lambda (E[e^{sS}] - 1) = s. For S = D: sigma = sD solves rho (e^sigma - 1) = sigma and
    K = (1 - rho) / (rho e^sigma - 1).
    """
    rho = _positive("rho", rho)
    _stable(rho, "rho")
    d = _positive("service", service)
    sigma = _md1_decay(rho)
    k = (1.0 - rho) / (sigma - (1.0 - rho))  # rho e^sigma - 1 = sigma - (1 - rho), without cancellation
    return k * math.exp(-sigma * float(t) / d)


def _md1_cdf_scalar(x: float, rho: float) -> float:
    """Erlang's formula in units of D: P(W <= xD) = (1 - rho) sum_{k <= x} (rho (k - x))^k / k! e^{rho (x - k)}."""
    if x < 0:
        return 0.0
    if x > _MD1_EXACT_MAX_X:
        return 1.0 - md1_wait_tail_asymptote(x, rho, 1.0)
    # Terms alternate and reach e^{2 rho x} in size while the sum is <= 1: carry that many extra digits.
    with mpmath.workdps(25 + int(math.ceil(0.87 * rho * x))):
        r, xx = mpmath.mpf(rho), mpmath.mpf(x)
        total = mpmath.mpf(0)
        for k in range(int(math.floor(x)) + 1):
            y = r * (k - xx)
            total += (y**k if k else 1) / mpmath.factorial(k) * mpmath.exp(-y)
        return float((1 - r) * total)


def md1_wait_cdf(t: ArrayLike, rho: float, service: float) -> np.ndarray | float:
    """P(W <= t) of M/D/1 FCFS with utilization rho and deterministic service time D = service.

    Erlang's formula (Erlang 1909; as the c = 1 case in J. Franx, "A simple solution for the M/D/c
    waiting time distribution", Oper. Res. Letters 29 (2001) 221-229):
        P(W <= t) = (1 - rho) sum_{k=0}^{floor(t/D)} [lambda (kD - t)]^k / k! e^{-lambda (kD - t)},
    lambda = rho / D. The alternating sum is evaluated with mpmath at a precision that covers its
    cancellation; beyond t = 200 D the exponential-tail asymptote (md1_wait_tail_asymptote) is used.
    Atom P(W = 0) = 1 - rho.
    """
    rho = _positive("rho", rho)
    _stable(rho, "rho")
    d = _positive("service", service)
    x = np.asarray(t, dtype=float) / d
    out = np.vectorize(lambda v: _md1_cdf_scalar(float(v), rho), otypes=[float])(x)
    return float(out) if out.ndim == 0 else out


def md1_wait_quantile(q: float, rho: float, service: float) -> float:
    """q-quantile of the M/D/1 wait (0 when q <= 1 - rho, the atom at zero); root of md1_wait_cdf."""
    q = _probability("q", q)
    rho = _positive("rho", rho)
    _stable(rho, "rho")
    d = _positive("service", service)
    if q <= 1.0 - rho:
        return 0.0
    return d * _root(lambda x: _md1_cdf_scalar(x, rho), q, 1.0)


# --- bulk service M/M^[B]/1 ------------------------------------------------------------------------


def _bulk(arrival_rate: float, service_rate: float, max_batch: int) -> tuple[float, float, int, float]:
    lam = _positive("arrival_rate", arrival_rate)
    mu = _positive("service_rate", service_rate)
    if isinstance(max_batch, bool) or not isinstance(max_batch, (int, np.integer)) or max_batch < 1:
        raise TheoryInputError(f"max_batch: must be an integer >= 1, got {max_batch!r}")
    b = int(max_batch)
    _stable(lam / (b * mu), "utilization arrival_rate/(max_batch*service_rate)")
    return lam, mu, b, bulk_service_root(lam, mu, b)


def bulk_service_root(arrival_rate: float, service_rate: float, max_batch: int) -> float:
    """r0 in (0, 1): the root of mu z^(B+1) - (lambda + mu) z + lambda = 0 [GH section 3.2, bulk service].

    Dividing out the root z = 1 leaves mu (z + z^2 + ... + z^B) = lambda, increasing on (0, 1), with a
    unique root there when lambda < B mu.
    """
    lam, mu, b = float(arrival_rate), float(service_rate), int(max_batch)
    powers = np.arange(1, b + 1)
    return float(brentq(lambda z: mu * float(np.sum(z**powers)) - lam, 0.0, 1.0, xtol=1e-15, rtol=1e-15))


def _bulk_wait_law(arrival_rate: float, service_rate: float, max_batch: int) -> tuple[float, float, float]:
    """(P(wait > 0), rate of the conditional exponential wait, mu) for the take-up-to-B bulk server."""
    lam, mu, b, r = _bulk(arrival_rate, service_rate, max_batch)
    p_wait = lam / (lam + mu * (1.0 - r))
    return p_wait, mu * (1.0 - r**b), mu


def bulk_service_mean_wait(arrival_rate: float, service_rate: float, max_batch: int) -> float:
    """Mean wait of M/M^[B]/1 "take up to B": Wq = r0 / ((1 - r0)(lambda + mu (1 - r0))).

    Model: Poisson arrivals (rate lambda) queue FCFS for one server; whenever the server is free and
    the queue is not empty it starts a batch with the first min(queue, B) customers (an arrival to an
    idle server starts a batch of one at once); batch service time ~ Exp(mu) whatever the batch size;
    customers arriving during a batch do not join it. "Wait" = time from arrival until the batch the
    customer rides in starts (the customer's own service time is not included).

    Derivation (states: idle, and busy with n >= 0 waiting; balance equations as in [GH section 3.2]):
      busy, n >= 1:  (lambda + mu) q_n = lambda q_{n-1} + mu q_{n+B}
      busy, n = 0:   (lambda + mu) q_0 = lambda I + mu (q_1 + ... + q_B)
      idle:          lambda I = mu q_0
    q_n = A r0^n solves the first for the root r0 of mu z^(B+1) - (lambda + mu) z + lambda = 0 in
    (0, 1); the second then reduces to the third, so I = mu A / lambda and normalisation gives
    A = lambda (1 - r0) / (lambda + mu (1 - r0)). Little's law on the waiting line:
    Wq = Lq / lambda = A r0 / (lambda (1 - r0)^2). B = 1 gives M/M/1: rho / (mu - lambda).
    """
    lam, mu, _, r = _bulk(arrival_rate, service_rate, max_batch)
    return r / ((1.0 - r) * (lam + mu * (1.0 - r)))


def bulk_service_wait_cdf(t: ArrayLike, arrival_rate: float, service_rate: float, max_batch: int) -> np.ndarray | float:
    """P(wait <= t) of M/M^[B]/1 "take up to B" (model and states as in bulk_service_mean_wait).

    An arrival finding the server busy with n waiting (probability A r0^n, PASTA) rides in the batch
    that starts at the ceil((n+1)/B)-th service completion, so its wait is Erlang(ceil((n+1)/B), mu).
    Grouping n by that index gives a geometric number (parameter 1 - r0^B) of Exp(mu) phases, so
    P(wait > t) = P(busy) exp(-mu (1 - r0^B) t), P(busy) = lambda / (lambda + mu (1 - r0)).
    """
    p_wait, rate, _ = _bulk_wait_law(arrival_rate, service_rate, max_batch)
    t = np.asarray(t, dtype=float)
    out = np.where(t < 0, 0.0, 1.0 - p_wait * np.exp(-rate * np.maximum(t, 0.0)))
    return float(out) if out.ndim == 0 else out


def bulk_service_wait_quantile(q: float, arrival_rate: float, service_rate: float, max_batch: int) -> float:
    """q-quantile of the M/M^[B]/1 wait (see bulk_service_wait_cdf)."""
    q = _probability("q", q)
    p_wait, rate, _ = _bulk_wait_law(arrival_rate, service_rate, max_batch)
    return 0.0 if q <= 1.0 - p_wait else math.log(p_wait / (1.0 - q)) / rate


def bulk_service_sojourn_quantile(q: float, arrival_rate: float, service_rate: float, max_batch: int) -> float:
    """q-quantile of M/M^[B]/1 sojourn = wait + the Exp(mu) service of the customer's batch.

    The batch's service time is drawn when the batch starts, so it is independent of the wait.
    """
    q = _probability("q", q)
    p_wait, rate, mu = _bulk_wait_law(arrival_rate, service_rate, max_batch)
    return _root(lambda t: 1.0 - float(_mixture_sojourn_sf(np.asarray(t), p_wait, rate, mu)), q, 10.0 / mu)


# --- caches ---------------------------------------------------------------------------------------


def zipf_probabilities(n_keys: int, exponent: float) -> np.ndarray:
    """Zipf popularity p_i proportional to i^(-exponent), i = 1..n_keys (exponent 0: uniform)."""
    if isinstance(n_keys, bool) or not isinstance(n_keys, (int, np.integer)) or n_keys < 1:
        raise TheoryInputError(f"n_keys: must be an integer >= 1, got {n_keys!r}")
    if not (math.isfinite(exponent) and exponent >= 0):
        raise TheoryInputError(f"exponent: must be a finite number >= 0, got {exponent!r}")
    w = np.arange(1, int(n_keys) + 1, dtype=float) ** (-float(exponent))
    return w / w.sum()


def _popularity(probabilities: ArrayLike) -> np.ndarray:
    p = np.asarray(probabilities, dtype=float)
    if p.ndim != 1 or p.size == 0 or not np.all(np.isfinite(p)) or np.any(p < 0):
        raise TheoryInputError("probabilities: must be a non-empty 1-D array of finite numbers >= 0")
    if abs(p.sum() - 1.0) > 1e-6:
        raise TheoryInputError(f"probabilities: must sum to 1, sum is {p.sum():.9g}")
    return p[p > 0] / p.sum()


def che_characteristic_time(probabilities: ArrayLike, capacity: float) -> float:
    """Che's characteristic time T_C (in requests): the root of sum_i (1 - e^{-p_i T}) = C.

    H. Che, Y. Tung, Z. Wang, "Hierarchical Web caching systems: modeling, design and experimental
    results", IEEE JSAC 20(7), 2002; C. Fricker, P. Robert, J. Roberts, "A versatile and accurate
    approximation for LRU cache performance", ITC 24, 2012. Infinite when C >= number of keys.
    """
    p = _popularity(probabilities)
    c = float(capacity)
    if not (math.isfinite(c) and c >= 0):
        raise TheoryInputError(f"capacity: must be a finite number >= 0, got {capacity!r}")
    if c >= p.size:
        return math.inf
    if c == 0:
        return 0.0

    def excess(t: float) -> float:
        return float(-np.expm1(-p * t).sum()) - c

    hi = 1.0 / p.max()
    while excess(hi) < 0:
        hi *= 2.0
    return float(brentq(excess, 0.0, hi, xtol=1e-12, rtol=1e-13, maxiter=500))


def che_lru_hit_rate(probabilities: ArrayLike, capacity: float) -> float:
    """LRU hit rate under the independent reference model by Che's approximation.

    hit = sum_i p_i (1 - e^{-p_i T_C}) with T_C from che_characteristic_time; capacity is in items.
    Exact for uniform popularity (hit = C / n); accurate to about 1% for Zipf-like laws (Fricker et al.).
    """
    p = _popularity(probabilities)
    t_c = che_characteristic_time(p, capacity)
    if math.isinf(t_c):
        return 1.0
    return float(np.sum(p * -np.expm1(-p * t_c)))


# --- setup times (scale-to-zero / cold start) ----------------------------------------------------


def mg1_setup_mean_wait(
    arrival_rate: float,
    mean_service: float,
    second_moment_service: float,
    setup_mean: float,
    setup_second_moment: float,
) -> float:
    """Mean wait of M/G/1 FCFS whose server switches off when empty and needs a setup time I
    (started by the first arrival of a busy period) before it can serve.

    Result (decomposition): Wq = lambda E[S^2] / (2 (1 - rho)) + (2 E[I] + lambda E[I^2]) / (2 (1 + lambda E[I])).

    Derivation from P. D. Welch, "On a generalized M/G/1 queuing process in which the first customer of
    each busy period receives exceptional service", Oper. Res. 12(5) 1964: with exceptional first
    service S0 = I + S (E[S0] = E[I] + E[S], E[S0^2] = E[I^2] + 2 E[I] E[S] + E[S^2]) Welch's mean wait is
        W_Welch = lambda E[S^2] / (2 (1 - rho)) + lambda (E[S0^2] - E[S^2]) / (2 (1 - rho + lambda E[S0])),
    which counts the first customer's wait as 0. Here that customer waits the setup, so add
    P(arrival finds the system empty) E[I] = (1 - rho) / (1 + lambda E[I]) E[I] (the empty fraction of a
    regenerative cycle of idle 1/lambda plus busy period (E[I] + E[S]) / (1 - rho)). Since
    1 - rho + lambda E[S0] = 1 + lambda E[I], the two extra terms sum to the one above - the
    Fuhrmann-Cooper decomposition (S. W. Fuhrmann, R. B. Cooper, Oper. Res. 33(5) 1985) of the wait into
    the M/G/1 wait plus an independent setup-induced delay.
    Deterministic setup D: E[I] = D, E[I^2] = D^2; exponential setup of mean m: E[I^2] = 2 m^2.
    Setup 0 recovers Pollaczek-Khinchine.
    """
    lam = _positive("arrival_rate", arrival_rate)
    base = pk_mean_wait(lam, mean_service, second_moment_service)
    ei, ei2 = float(setup_mean), float(setup_second_moment)
    if not (math.isfinite(ei) and math.isfinite(ei2) and ei >= 0 and ei2 >= ei * ei * (1.0 - 1e-12)):
        raise TheoryInputError(
            f"setup_mean / setup_second_moment: need 0 <= setup_mean and setup_second_moment >= setup_mean^2,"
            f" got {setup_mean!r}, {setup_second_moment!r}"
        )
    return base + (2.0 * ei + lam * ei2) / (2.0 * (1.0 + lam * ei))


def mm1_setup_mean_wait(
    arrival_rate: float, service_rate: float, setup_mean: float, setup_second_moment: float
) -> float:
    """Mean wait of M/M/1 with setup times (see mg1_setup_mean_wait; E[S] = 1/mu, E[S^2] = 2/mu^2).

    Wq = rho / (mu - lambda) + (2 E[I] + lambda E[I^2]) / (2 (1 + lambda E[I])). Also the M/M/1 case of
    A. Gandhi, S. Doroudi, M. Harchol-Balter, A. Scheller-Wolf, "Exact analysis of the M/M/k/setup class of
    Markov chains via recursive renewal reward", Queueing Systems 77 (2014).
    """
    mu = _positive("service_rate", service_rate)
    return mg1_setup_mean_wait(arrival_rate, 1.0 / mu, 2.0 / mu**2, setup_mean, setup_second_moment)
