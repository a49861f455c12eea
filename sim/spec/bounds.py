"""Upper bounds on every scenario number: a ~1 KB scenario must not ask for a billion workers.

Each limit is far beyond any real serving stack (a 10,000-replica fleet, batches of 4,096, a day-long
service time) yet small enough that the arrays and loops it sizes fit in memory and finish. Floats are
finite everywhere (`allow_inf_nan=False` on every spec model); these types add the ceilings, and pydantic
reports a breach as `field.path: Input should be less than or equal to LIMIT (got VALUE)`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

MAX_RATE_RPS = 10_000_000.0
MAX_MS = 1e9  # about 11.6 days: one service time, cold start, timeout or SLO
MAX_S = 1e10  # about 300 years: horizons, windows, TTLs ("never" in practice), points in time
MAX_CV = 30.0
MIN_CV = 1e-6  # a smaller positive CV squares to 0 (1 / cv² overflows); 0 means "fixed" where allowed
MAX_MULTIPLIER = 10_000.0
MAX_SPEEDUP = 10_000.0
MIN_SPEEDUP = 1e-4
MAX_REPLICAS = 10_000
MAX_INSTANCES = 1_000
MAX_WORKERS = 100_000
MAX_BATCH_SIZE = 4_096
MAX_KEYS = 10_000_000
MAX_TOKENS = 1_000_000
MAX_QUEUE_SIZE = 100_000_000
MAX_REQUESTS = 20_000_000
MAX_REPLICATIONS = 1_000
MAX_SEED = 2**63 - 1
MAX_USD_PER_HOUR = 1_000_000.0
MAX_LIST_ITEMS = 100_000
MAX_EXPONENT = 20.0

# Floats (finite via the models' config): times in ms / s, rates, CVs.
Ms = Annotated[float, Field(ge=0, le=MAX_MS)]
PositiveMs = Annotated[float, Field(gt=0, le=MAX_MS)]
Seconds = Annotated[float, Field(ge=0, le=MAX_S)]
PositiveSeconds = Annotated[float, Field(gt=0, le=MAX_S)]
RateRps = Annotated[float, Field(ge=0, le=MAX_RATE_RPS)]
PositiveRateRps = Annotated[float, Field(gt=0, le=MAX_RATE_RPS)]


def _zero_or_resolvable(cv: float) -> float:
    if 0 < cv < MIN_CV:
        raise ValueError(f"cv {cv:g} is below {MIN_CV:g}: use 0 for no variation")
    return cv


Cv = Annotated[float, Field(ge=0, le=MAX_CV), AfterValidator(_zero_or_resolvable)]
PositiveCv = Annotated[float, Field(ge=MIN_CV, le=MAX_CV)]
Multiplier = Annotated[float, Field(gt=0, le=MAX_MULTIPLIER)]
Speedup = Annotated[float, Field(ge=MIN_SPEEDUP, le=MAX_SPEEDUP)]
UsdPerHour = Annotated[float, Field(ge=0, le=MAX_USD_PER_HOUR)]
Exponent = Annotated[float, Field(ge=0, le=MAX_EXPONENT)]

# Counts that size arrays, heaps and loops.
Replicas = Annotated[int, Field(gt=0, le=MAX_REPLICAS)]
ReplicasOrZero = Annotated[int, Field(ge=0, le=MAX_REPLICAS)]
Instances = Annotated[int, Field(gt=0, le=MAX_INSTANCES)]
Workers = Annotated[int, Field(gt=0, le=MAX_WORKERS)]
BatchSize = Annotated[int, Field(gt=0, le=MAX_BATCH_SIZE)]
Keys = Annotated[int, Field(gt=0, le=MAX_KEYS)]
Tokens = Annotated[int, Field(gt=0, le=MAX_TOKENS)]
PositiveTokenFloat = Annotated[float, Field(gt=0, le=MAX_TOKENS)]
QueueSize = Annotated[int, Field(ge=0, le=MAX_QUEUE_SIZE)]
Requests = Annotated[int, Field(gt=0, le=MAX_REQUESTS)]
RequestsOrZero = Annotated[int, Field(ge=0, le=MAX_REQUESTS)]
Replications = Annotated[int, Field(gt=0, le=MAX_REPLICATIONS)]
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
# Control-loop periods: each tick is an event, so a period must not be vanishingly small.
IntervalSeconds = Annotated[float, Field(ge=0.01, le=MAX_S)]
Scale = Annotated[float, Field(ge=MIN_SPEEDUP, le=MAX_SPEEDUP)]
