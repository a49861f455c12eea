"""What a run will cost before it starts: request-log bytes and event counts, refused above a limit.

A run that keeps its log (the planner, plots, `--log`) holds every replication's: memory grows as
requests × replications × log columns, times WORKING_COPIES (per-replication logs, their concatenation,
the summary's working copies; conservative). A run that drops it (`servesim run` without --timeline,
with or without --log, `simulate(keep_log=False)`) holds one replication's log at a time: requests × log columns ×
STREAMED_COPIES, measured (peak RSS above the interpreter, 1.5M requests a replication) at 1.18–1.34 ×
the estimated log bytes for recsys-caches, vision-a100 and reference, up to 2.0 × for short runs of
300k requests, where fixed costs weigh more.

Work is budgeted beside memory: requests × replications × the stages' weights (`estimate_run_work`), in
work units of about a third of a microsecond of CPU each (reference, 950k requests × 8 units a request:
2.5 s; llm-chat-continuous, 18.4k requests × 502 units: 3 s), refused above WORK_LIMIT_UNITS (2e9: about
10 minutes of CPU), which SERVESIM_WORK_LIMIT raises. Replicas do not enter: the engine's cost hardly grows
with them (mm3 at 80% load, 200k requests: 1.25 s with 3 replicas, 1.46 s with 10,000).
"""

from __future__ import annotations

import math
import numbers
import os

import numpy as np
import pandas as pd

from sim.errors import ScenarioError
from sim.spec.bounds import MAX_S

WORK_LIMIT_UNITS = 2e9
WORK_LIMIT_ENV = "SERVESIM_WORK_LIMIT"
# Engine work a request costs in each stage kind, in units (a delay stage's vectorised draw = 1): a model
# stage walks its queue; an LLM stage schedules its request, then every output token (`llm_work_per_request`).
_WORK_PER_KIND = {"delay": 1, "pool": 2, "model": 4}
LLM_WORK_PER_REQUEST = 100
LLM_WORK_PER_TOKEN = 1.5
LLM_BYTES_PER_REQUEST = 5_000
LLM_BYTES_PER_TOKEN = 190
_TOKEN_SAMPLE = 4096  # draws that estimate a token distribution's mean (fixed seed: the estimate is stable)
_WORK_PER_CACHE = 1
MEMORY_LIMIT_BYTES = int(float(os.environ.get("SERVESIM_MEMORY_LIMIT_GB", "4")) * 1e9)
BYTES_PER_CELL = 8
WORKING_COPIES = 4.5
STREAMED_COPIES = 2.0
# Bytes a request of every replication keeps in a run that drops its logs: arrival time and latency for
# the per-window SLO verdict (8 + 8), twice while the windows are judged (they are concatenated).
WINDOW_POINT_BYTES = 32
MAX_CONTROL_TICKS = 20_000_000
MAX_THINNING_DRAWS = 50_000_000  # about 10 s of numpy draws
MAX_ON_OFF_PERIODS = 2_000_000
# Log columns each stage kind adds (times, queue waits, batch size, replica, ...), measured on the
# shipped scenarios and rounded up.
_COLUMNS_BASE = 9
_COLUMNS_PER_KIND = {"delay": 2, "pool": 3, "model": 8, "llm": 14}
_COLUMNS_PER_CACHE = 3


def log_columns(scenario) -> int:
    """Columns the request log of `scenario` will have, approximately (an upper estimate)."""
    stages = sum(_COLUMNS_PER_KIND.get(stage.kind, 8) for stage in scenario.stages)
    return _COLUMNS_BASE + stages + _COLUMNS_PER_CACHE * len(scenario.caches)


def expected_requests(scenario, requests: int | None = None) -> tuple[float, str]:
    """Requests per replication and the field that sets them."""
    if requests is not None:
        return float(requests), "--requests"
    count, horizon_ms = scenario.workload.length()
    if count is not None:
        return float(count), "workload.requests"
    return horizon_ms / 1000.0 * scenario.workload.arrival.mean_rate_rps, "workload.duration_s"


def mean_output_tokens(scenario, requests: float) -> float:
    """Output tokens an LLM request generates on average: the mean of the trace column's first `requests`
    values, or of a fixed-seed sample of the distribution. 1 when the tokens cannot be read: the engine
    then refuses the run, naming the field."""
    tokens = scenario.workload.tokens
    if tokens is None:
        return 1.0
    if tokens.output is not None:
        return float(np.mean(tokens.output.sample(np.random.default_rng(0), _TOKEN_SAMPLE)))
    frame = getattr(scenario.workload.arrival, "_frame", None)
    if frame is None or tokens.output_column not in frame().columns:
        return 1.0
    column = frame()[tokens.output_column]
    keep = int(min(max(requests, 1), len(column)))
    values = pd.to_numeric(column.iloc[:keep], errors="coerce").to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    return float(max(values.mean(), 1.0)) if len(values) else 1.0


def work_per_request(scenario, requests: float = 1.0) -> float:
    """Work units one request costs the engine, summed over the stages and caches (an LLM stage's grow
    with the output tokens of the first `requests` requests)."""
    llm = sum(stage.kind == "llm" for stage in scenario.stages)
    stages = sum(_WORK_PER_KIND.get(stage.kind, 4) for stage in scenario.stages if stage.kind != "llm")
    if llm:
        stages += llm * (LLM_WORK_PER_REQUEST + LLM_WORK_PER_TOKEN * mean_output_tokens(scenario, requests))
    return stages + _WORK_PER_CACHE * len(scenario.caches)


def estimate_run_work(scenario, requests: int | None = None, replications: int | None = None) -> float:
    """Work units of a run: requests per replication × replications × `work_per_request`."""
    n, _ = expected_requests(scenario, requests)
    reps = scenario.replications if replications is None else replications
    return n * reps * work_per_request(scenario, n)


def work_limit() -> float:
    """The work ceiling: WORK_LIMIT_UNITS, or SERVESIM_WORK_LIMIT (a positive number of units) when set."""
    text = os.environ.get(WORK_LIMIT_ENV)
    if text is None:
        return WORK_LIMIT_UNITS
    try:
        value = float(text) if len(text) <= 40 else math.nan
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ScenarioError(f"{WORK_LIMIT_ENV}: expected a positive number of work units, e.g. 5e9")
    return value


def check_run_work(scenario, requests: int | None = None, replications: int | None = None) -> None:
    """Refuse, naming the field and the ceiling, a run that would take more than the work limit."""
    n, field = expected_requests(scenario, requests)
    reps = scenario.replications if replications is None else replications
    work = estimate_run_work(scenario, requests, reps)
    limit = work_limit()
    if not math.isfinite(work) or work > limit:
        per = work_per_request(scenario, n)
        stages = f"{len(scenario.stages)} stage" + ("s" if len(scenario.stages) != 1 else "")
        raise ScenarioError(
            f"{field}: {n:.3g} requests × {reps} replications × {per:.3g} work units a request ({stages}) is "
            f"{work:.3g} units of simulation, above the work limit of {limit:.3g} (about "
            f"{limit / 3e6 / 60:.0f} CPU minutes); lower the requests or replications, or "
            f"raise the limit with {WORK_LIMIT_ENV}=UNITS"
        )


def llm_bytes_per_request(scenario, requests: float) -> float:
    """Bytes an LLM stage holds for one request of a replication until the summary: its records, its decode
    steps and its token times (`LLM_BYTES_PER_REQUEST` + `LLM_BYTES_PER_TOKEN` × mean output tokens)."""
    llm = sum(stage.kind == "llm" for stage in scenario.stages)
    if not llm:
        return 0.0
    return llm * (LLM_BYTES_PER_REQUEST + LLM_BYTES_PER_TOKEN * mean_output_tokens(scenario, requests))


def streams_replications(scenario) -> bool:
    """A run that does not keep its log holds one replication's at a time — except an LLM stage's log,
    which its summary reads whole (sim/metrics/llm.py)."""
    return not any(stage.kind == "llm" for stage in scenario.stages)


def estimate_run_bytes(
    scenario, requests: int | None = None, replications: int | None = None, keep_log: bool = True
) -> float:
    """Peak memory of a run in bytes: requests × replications × log columns × 8 bytes × working copies;
    a run that does not keep its log (and streams: `streams_replications`) counts one replication's log,
    plus the arrival time and latency every replication keeps for a per-window SLO verdict."""
    n, _ = expected_requests(scenario, requests)
    reps = scenario.replications if replications is None else replications
    log_bytes = log_columns(scenario) * BYTES_PER_CELL
    if keep_log or not streams_replications(scenario):
        return n * reps * (log_bytes * WORKING_COPIES + llm_bytes_per_request(scenario, n))
    from sim.spec.scenario import time_dependent

    kept = WINDOW_POINT_BYTES if scenario.slo.budgets() and time_dependent(scenario) else 0
    return n * log_bytes * STREAMED_COPIES + n * reps * kept


def check_run_options(
    scenario, requests: int | None, seed: int | None, replications: int | None, keep_log: bool = True
) -> None:
    """Run options from the command line or an API caller, within the schema's bounds, then the budget."""
    from sim.spec.bounds import MAX_REPLICATIONS, MAX_REQUESTS, MAX_SEED

    for name, value, low, high in (
        ("--requests", requests, 1, MAX_REQUESTS),
        ("--seed", seed, 0, MAX_SEED),
        ("--replications", replications, 1, MAX_REPLICATIONS),
    ):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= value <= high:
            raise ScenarioError(f"{name}: {value!r} must be a whole number from {low} to {high}")
    if requests is not None:
        check_whole_horizon(scenario, "--requests")
    check_run_budget(scenario, requests, replications, keep_log=keep_log)


def check_whole_horizon(scenario, field: str) -> None:
    """Refuse, naming `field`, a run cut to a count of requests of a load that follows the clock: it
    would simulate the start of the horizon (20,000 requests of the diurnal day are 00:00-00:24, no
    morning ramp, no noon spike), not the horizon. A shorter horizon is asked for as one."""
    from sim.spec.scenario import time_varying_load

    if not time_varying_load(scenario):
        return
    _, horizon_ms = scenario.workload.length()
    raise ScenarioError(
        f"{field}: the arrival rate of {scenario.name!r} changes over time, so a count of requests would simulate "
        f"only the start of its {horizon_ms / 1000:,.6g} s horizon, not the horizon; run it whole, or shorten "
        "the horizon deliberately with --set workload.duration_s=SECONDS"
    )


def check_run_budget(
    scenario,
    requests: int | None = None,
    replications: int | None = None,
    limit_bytes: int | None = None,
    keep_log: bool = True,
) -> None:
    """Refuse, naming the field, a run that would take too long (`check_run_work`), whose log would not fit
    in memory or whose loops would not end."""
    check_run_work(scenario, requests, replications)
    limit = MEMORY_LIMIT_BYTES if limit_bytes is None else limit_bytes
    n, field = expected_requests(scenario, requests)
    reps = scenario.replications if replications is None else replications
    need = estimate_run_bytes(scenario, requests, reps, keep_log=keep_log)
    if not math.isfinite(need) or need > limit:
        raise ScenarioError(
            f"{field}: {n:.3g} requests × {reps} replications × {log_columns(scenario)} log columns needs about "
            f"{need / 1e9:.3g} GB, above the memory limit of {limit / 1e9:.3g} GB "
            "(lower the requests or replications; SERVESIM_MEMORY_LIMIT_GB raises the limit)"
            + (
                "; `servesim run` without --timeline holds one replication's log at a time"
                if keep_log and streams_replications(scenario)
                else ""
            )
        )
    rate = scenario.workload.arrival.mean_rate_rps
    horizon_s = n / rate if rate > 0 else math.inf
    if not math.isfinite(horizon_s) or horizon_s > MAX_S:
        # A vanishing rate puts arrivals past any float horizon (times overflow to infinity).
        raise ScenarioError(
            f"workload.arrival: {n:.3g} requests at a mean {rate:.3g} rps span {horizon_s:.3g} s, above the limit "
            f"of {MAX_S:.3g} s; raise the rate"
        )
    autoscaling = scenario.deployment.autoscaling
    if autoscaling is not None:
        interval_s = min(
            getattr(autoscaling, name)
            for name in ("control_interval_s", "metrics_interval_s", "tick_interval_s", "sync_period_s")
            if hasattr(autoscaling, name)
        )
        ticks = horizon_s / interval_s
        if not math.isfinite(ticks) or ticks > MAX_CONTROL_TICKS:
            raise ScenarioError(
                f"deployment.autoscaling: {horizon_s:.3g} s of traffic at a {interval_s:g} s control period is "
                f"{ticks:.3g} autoscaler ticks, above the limit of {MAX_CONTROL_TICKS:.3g} (fewer requests, "
                "a higher rate or a longer period)"
            )
    peak = getattr(scenario.workload.arrival, "peak_rate_rps", None)
    if peak is not None:
        draws = horizon_s * peak
        if not math.isfinite(draws) or draws > MAX_THINNING_DRAWS:
            raise ScenarioError(
                f"workload.arrival: a peak rate of {peak:.3g} rps over {horizon_s:.3g} s needs {draws:.3g} "
                f"candidate arrivals (thinning), above the limit of {MAX_THINNING_DRAWS:.3g}; lower the spike "
                "multiplier or the requests"
            )
    mean_on_s = getattr(scenario.workload.arrival, "mean_on_s", None)
    if mean_on_s is not None:
        periods = 2 * horizon_s / (mean_on_s + scenario.workload.arrival.mean_off_s)
        if not math.isfinite(periods) or periods > MAX_ON_OFF_PERIODS:
            raise ScenarioError(
                f"workload.arrival: {n:.3g} requests at a mean {rate:.3g} rps span {periods:.3g} on/off periods, "
                f"above the limit of {MAX_ON_OFF_PERIODS:.3g}; raise rate_on_rps or the mean_on_s / mean_off_s"
            )
