"""Upper bounds on every scenario number: a ~1 KB scenario must not ask for a billion workers.

Each limit is far beyond any real serving stack (a 10,000-replica fleet, batches of 4,096, a day-long
service time) yet small enough that the arrays and loops it sizes fit in memory and finish. Floats are
finite everywhere (`allow_inf_nan=False` on every spec model); these types add the ceilings, and pydantic
reports a breach as `field.path: Input should be less than or equal to LIMIT (got VALUE)`.

Types are strict at the boundary: a boolean is not a number (pydantic would take `replicas: yes` as 1),
and a scenario holds plain data only — YAML's safe core of mappings, lists, text, numbers, true/false and
null; `!!binary`, `!!timestamp` (and bare dates), `!!set`, `!!omap` / `!!pairs` are refused
(`plain_data_problems`). Every number field of the scenario schema, whichever module declares it, is
checked for a boolean taken as a number (`booleans_taken_as_numbers`).
"""

from __future__ import annotations

import datetime
import numbers
from typing import Annotated, Any, Iterator

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field

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

MAX_INT_DIGITS = 30  # a whole number written with more digits is past every bound above
BOOLEAN_NOT_NUMBER = "a boolean is not a number; write the number"


def _not_boolean(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(BOOLEAN_NOT_NUMBER)
    return value


NotBoolean = BeforeValidator(_not_boolean)
Number = Annotated[float, NotBoolean]
WholeNumber = Annotated[int, NotBoolean]

# Floats (finite via the models' config): times in ms / s, rates, CVs.
Ms = Annotated[float, NotBoolean, Field(ge=0, le=MAX_MS)]
PositiveMs = Annotated[float, NotBoolean, Field(gt=0, le=MAX_MS)]
Seconds = Annotated[float, NotBoolean, Field(ge=0, le=MAX_S)]
PositiveSeconds = Annotated[float, NotBoolean, Field(gt=0, le=MAX_S)]
RateRps = Annotated[float, NotBoolean, Field(ge=0, le=MAX_RATE_RPS)]
PositiveRateRps = Annotated[float, NotBoolean, Field(gt=0, le=MAX_RATE_RPS)]


def _zero_or_resolvable(cv: float) -> float:
    if 0 < cv < MIN_CV:
        raise ValueError(f"cv {cv:g} is below {MIN_CV:g}: use 0 for no variation")
    return cv


Cv = Annotated[float, NotBoolean, Field(ge=0, le=MAX_CV), AfterValidator(_zero_or_resolvable)]
PositiveCv = Annotated[float, NotBoolean, Field(ge=MIN_CV, le=MAX_CV)]
Multiplier = Annotated[float, NotBoolean, Field(gt=0, le=MAX_MULTIPLIER)]
Speedup = Annotated[float, NotBoolean, Field(ge=MIN_SPEEDUP, le=MAX_SPEEDUP)]
UsdPerHour = Annotated[float, NotBoolean, Field(ge=0, le=MAX_USD_PER_HOUR)]
Exponent = Annotated[float, NotBoolean, Field(ge=0, le=MAX_EXPONENT)]

# Counts that size arrays, heaps and loops.
Replicas = Annotated[int, NotBoolean, Field(gt=0, le=MAX_REPLICAS)]
ReplicasOrZero = Annotated[int, NotBoolean, Field(ge=0, le=MAX_REPLICAS)]
Instances = Annotated[int, NotBoolean, Field(gt=0, le=MAX_INSTANCES)]
Workers = Annotated[int, NotBoolean, Field(gt=0, le=MAX_WORKERS)]
BatchSize = Annotated[int, NotBoolean, Field(gt=0, le=MAX_BATCH_SIZE)]
Keys = Annotated[int, NotBoolean, Field(gt=0, le=MAX_KEYS)]
Tokens = Annotated[int, NotBoolean, Field(gt=0, le=MAX_TOKENS)]
PositiveTokenFloat = Annotated[float, NotBoolean, Field(gt=0, le=MAX_TOKENS)]
QueueSize = Annotated[int, NotBoolean, Field(ge=0, le=MAX_QUEUE_SIZE)]
Requests = Annotated[int, NotBoolean, Field(gt=0, le=MAX_REQUESTS)]
RequestsOrZero = Annotated[int, NotBoolean, Field(ge=0, le=MAX_REQUESTS)]
Replications = Annotated[int, NotBoolean, Field(gt=0, le=MAX_REPLICATIONS)]
Seed = Annotated[int, NotBoolean, Field(ge=0, le=MAX_SEED)]
# Control-loop periods: each tick is an event, so a period must not be vanishingly small.
IntervalSeconds = Annotated[float, NotBoolean, Field(ge=0.01, le=MAX_S)]
Scale = Annotated[float, NotBoolean, Field(ge=MIN_SPEEDUP, le=MAX_SPEEDUP)]


# YAML's safe core as Python values; anything else came from a tag (or a bare date).
_PLAIN_SCALARS = (str, int, float, bool, type(None))
_TAG_OF = {
    bytes: "!!binary",
    datetime.date: "!!timestamp (a date or time)",
    set: "!!set",
    tuple: "!!omap / !!pairs",
}


def plain_data_problems(data: Any, path: tuple[str, ...] = (), tags: bool = True) -> Iterator[str]:
    """`field.path: problem` for every whole number longer than MAX_INT_DIGITS digits and, with `tags`
    (data read from YAML text), every value outside YAML's safe core (a tagged value)."""
    where = ".".join(path) or "(top level)"
    if isinstance(data, dict):
        for key, value in data.items():
            if tags and not isinstance(key, _PLAIN_SCALARS):
                yield f"{where}: a mapping key must be plain text or a number"
                continue
            yield from plain_data_problems(value, (*path, str(key)), tags)
    elif isinstance(data, (list, tuple)) and (not tags or isinstance(data, list)):
        for index, value in enumerate(data):
            label = value.get("name") if isinstance(value, dict) and isinstance(value.get("name"), str) else None
            yield from plain_data_problems(value, (*path, label or str(index)), tags)
    elif isinstance(data, int) and not isinstance(data, bool) and abs(data) >= 10**MAX_INT_DIGITS:
        yield f"{where}: a whole number of more than {MAX_INT_DIGITS} digits is past every limit"
    elif tags and not isinstance(data, _PLAIN_SCALARS):
        tag = next((name for kind, name in _TAG_OF.items() if isinstance(data, kind)), type(data).__name__)
        yield (
            f"{where}: a YAML {tag} value is not allowed; a scenario holds plain text, numbers, true/false, null, "
            "lists and mappings (quote text that looks like a date)"
        )


def booleans_taken_as_numbers(raw: Any, model: Any, path: tuple[str, ...] = ()) -> Iterator[str]:
    """`field.path: ...` for every true/false in `raw` that validated `model` holds as a number: pydantic
    takes `true` as 1 in a number field that no bound type above declares."""
    if isinstance(raw, bool):
        if isinstance(model, numbers.Number) and not isinstance(model, bool):
            yield f"{'.'.join(path)}: {BOOLEAN_NOT_NUMBER} (got {str(raw).lower()})"
    elif isinstance(raw, dict):
        if isinstance(model, BaseModel):
            fields = type(model).model_fields
            names = {field.alias: name for name, field in fields.items() if field.alias} | {n: n for n in fields}
            children = ((key, getattr(model, names[key], None)) for key in raw if key in names)
        elif isinstance(model, dict):
            children = ((key, model[key]) for key in raw if key in model)
        else:
            return
        for key, child in children:
            yield from booleans_taken_as_numbers(raw[key], child, (*path, str(key)))
    elif isinstance(raw, list) and isinstance(model, (list, tuple)) and len(raw) == len(model):
        for index, (item, child) in enumerate(zip(raw, model)):
            label = item.get("name") if isinstance(item, dict) and isinstance(item.get("name"), str) else None
            yield from booleans_taken_as_numbers(item, child, (*path, label or str(index)))
