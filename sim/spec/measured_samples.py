"""Non-parametric batch costs: resample the measured service times of a batch size, and interpolate the
quantile function between two measured sizes; plus a check for two-peaked timing distributions, which
a shifted lognormal cannot represent."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_SAMPLES = 30  # per batch size: fewer and the fitted spread is used instead
MIN_TEST_SAMPLES = 100  # the two-peak test says nothing below this: small samples of skewed data fool it
ASHMAN_D_TWO_PEAKS = 3.0  # Ashman et al. 1994 ask D > 2 to separate two normals; a flat (uniform) sample reaches 2.9
MIN_PEAK_SHARE = 0.05  # a "peak" holding fewer samples than this is an outlier tail, not a mode
MIN_BIC_GAIN = 10.0  # "very strong" evidence for the second component (Kass & Raftery 1995)
MAX_VALLEY_RATIO = 0.5  # the mixture's density between the peaks, over the lower peak's: a real dip


@dataclass(frozen=True)
class QuantileMix:
    """Service times at one batch size: the quantile function `(1 − w)·Q_low(u) + w·Q_high(u)` of the
    measured samples at the neighbouring measured sizes (w = 0: plain resampling of `low`)."""

    low: np.ndarray  # sorted, ms
    high: np.ndarray  # sorted, ms
    weight: float

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.weight == 0.0:
            return self.low[rng.integers(len(self.low), size=n)]
        u = rng.random(n)
        return (1 - self.weight) * np.quantile(self.low, u) + self.weight * np.quantile(self.high, u)

    def quantile(self, q: float) -> float:
        return float((1 - self.weight) * np.quantile(self.low, q) + self.weight * np.quantile(self.high, q))

    @property
    def mean(self) -> float:
        return float((1 - self.weight) * self.low.mean() + self.weight * self.high.mean())

    @property
    def median(self) -> float:
        return self.quantile(0.5)


def quantile_mixes(samples: dict[int, np.ndarray], n_max: int) -> dict[int, QuantileMix]:
    """For every batch size 1..n_max inside the measured range of sizes with >= MIN_SAMPLES samples, its
    QuantileMix; sizes outside that range are left to the fitted curve."""
    sizes = sorted(b for b, v in samples.items() if len(v) >= MIN_SAMPLES)
    ordered = {b: np.sort(np.asarray(samples[b], dtype=float)) for b in sizes}
    out: dict[int, QuantileMix] = {}
    for n in range(1, n_max + 1):
        if not sizes or n < sizes[0] or n > sizes[-1]:
            continue
        low = max(b for b in sizes if b <= n)
        high = min(b for b in sizes if b >= n)
        weight = 0.0 if high == low else (n - low) / (high - low)
        out[n] = QuantileMix(ordered[low], ordered[high], weight)
    return out


@dataclass(frozen=True)
class TwoPeaks:
    """A two-component normal mixture fitted to log service times, against one normal: how clearly the
    components separate (Ashman's D) and whether the second component earns its parameters (BIC)."""

    ashman_d: float
    share_low: float
    centre_low_ms: float
    centre_high_ms: float
    bic_gain: float  # BIC(one component) − BIC(two components): > 0 favours two
    valley_ratio: float  # lowest mixture density between the component means / the lower of its two peaks

    @property
    def two_peaked(self) -> bool:
        return (
            self.bic_gain > MIN_BIC_GAIN
            and self.ashman_d > ASHMAN_D_TWO_PEAKS
            and self.valley_ratio < MAX_VALLEY_RATIO
            and min(self.share_low, 1 - self.share_low) >= MIN_PEAK_SHARE
        )


def two_peak_test(values: np.ndarray, iterations: int = 300) -> TwoPeaks | None:
    """Fit one and two normal components to log(values) (EM, started from the exact 1-D 2-means split);
    Ashman's D = √2·|μ1 − μ2| / √(σ1² + σ2²) of the two components. None below MIN_TEST_SAMPLES values."""
    x = np.sort(np.log(np.asarray(values, dtype=float)))
    n = len(x)
    if n < MIN_TEST_SAMPLES:
        return None
    floor_var = max(1e-12, 1e-6 * x.var())  # keeps a component from collapsing onto repeated values
    k = np.arange(1, n)
    csum, csq = np.cumsum(x), np.cumsum(x * x)
    within = (csq[:-1] - csum[:-1] ** 2 / k) + ((csq[-1] - csq[:-1]) - (csum[-1] - csum[:-1]) ** 2 / (n - k))
    cut = int(np.argmin(within)) + 1
    weight = np.array([cut / n, 1 - cut / n])
    mean = np.array([x[:cut].mean(), x[cut:].mean()])
    var = np.maximum(np.array([x[:cut].var(), x[cut:].var()]), floor_var)
    for _ in range(iterations):
        log_density = -0.5 * ((x[:, None] - mean) ** 2 / var + np.log(2 * np.pi * var)) + np.log(weight)
        top = log_density.max(axis=1, keepdims=True)
        resp = np.exp(log_density - top)
        total = resp.sum(axis=1, keepdims=True)
        resp /= total
        mass = resp.sum(axis=0)
        if (mass < 1e-9).any():
            break
        weight = mass / n
        mean = (resp * x[:, None]).sum(axis=0) / mass
        var = np.maximum((resp * (x[:, None] - mean) ** 2).sum(axis=0) / mass, floor_var)
    loglik_two = float((top[:, 0] + np.log(total[:, 0])).sum())
    var_one = max(x.var(), floor_var)
    loglik_one = float(-0.5 * n * (np.log(2 * np.pi * var_one) + 1))
    bic_gain = (-2 * loglik_one + 2 * np.log(n)) - (-2 * loglik_two + 5 * np.log(n))
    low = int(np.argmin(mean))
    high = 1 - low
    d = float(np.sqrt(2) * abs(mean[high] - mean[low]) / np.sqrt(var[low] + var[high]))
    grid = np.linspace(mean[low], mean[high], 201)
    density = (weight * np.exp(-0.5 * (grid[:, None] - mean) ** 2 / var) / np.sqrt(var)).sum(axis=1)
    peaks = min(density[:101].max(), density[100:].max())
    valley = float(density[np.argmax(density[:101]) : 101 + np.argmax(density[100:])].min() / peaks)
    return TwoPeaks(d, float(weight[low]), float(np.exp(mean[low])), float(np.exp(mean[high])), float(bic_gain), valley)
