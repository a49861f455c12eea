"""LLM serving metrics from an LLM stage log, named as vLLM's `bench serve` names them.

`ttft_ms` (time to first token), `tpot_ms` (mean time per output token after the first, per request),
`itl_ms` (every inter-token gap), `e2el_ms` (end-to-end latency of the stage), each with mean, p50, p90,
p95, p99 and 95% confidence intervals by batch means (the run split into 10 consecutive groups of
requests, a t interval over the groups' percentiles — honest for the autocorrelated output of a queue);
output tokens/s, requests/s, goodput (requests/s meeting the TTFT and TPOT SLOs), preemptions, batch size
and KV-cache utilisation (time-weighted, idle time counting as empty). Nothing here draws or prints.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd

from sim.engine.llm.stage import LLMStageResult
from sim.engine.runlog import LLM_KEYS, RunLog
from sim.metrics.invariants import LLM_BACKLOG
from sim.metrics.stats import ci95, ci95_columns, within
from sim.spec.scenario import time_varying_load

_BACKLOG_WAIT_MS = 1000.0  # a wait to be scheduled this long means the batch is full (vLLM waits one step)
QUANTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99}
CI_GROUPS = 10


def distribution(values: np.ndarray, groups: np.ndarray | None = None) -> tuple[dict, dict]:
    """(mean and percentiles, 95% CIs) of `values`; `groups` (0..CI_GROUPS-1, in run order) for batch means."""
    values = np.asarray(values, dtype=float)
    finite = np.isfinite(values)
    values = values[finite]
    parts = _by_group(values, np.asarray(groups)[finite]) if groups is not None and len(values) else []
    return _described(values, parts)


def _described(values: np.ndarray, parts: list[np.ndarray]) -> tuple[dict, dict]:
    """(mean and percentiles, 95% CIs by batch means over `parts`) of the finite `values`."""
    if len(values) == 0:
        return {"mean": None, **{k: None for k in QUANTILES}}, {}
    point = {"mean": float(values.mean())}
    point.update({k: float(v) for k, v in zip(QUANTILES, np.quantile(values, list(QUANTILES.values())))})
    cis: dict[str, list[float]] = {}
    if len(parts) >= 3:
        per_group = np.array([[part.mean(), *np.quantile(part, list(QUANTILES.values()))] for part in parts])
        low, high = np.clip(ci95_columns(per_group), values.min(), values.max())  # within the times measured
        for k, key in enumerate(["mean", *QUANTILES]):
            cis[key] = [float(low[k]), float(high[k])]
    return point, cis


def gap_distribution(result: LLMStageResult, done: np.ndarray, group: np.ndarray) -> tuple[dict, dict]:
    """`distribution` of the inter-token gaps of the `done` requests, batch means by their requests' `group`
    (as `distribution(itl_ms[mask], group[itl_request[mask]])`) — from the gaps' per-request counts and,
    where the groups follow request order, slices of the gaps: no column of millions of gap rows."""
    counts, values = result.itl_counts, result.itl_ms
    values = _gaps_of(values, counts, done)
    counts, groups = counts[done], group[done]
    if np.any(groups[1:] < groups[:-1]) or not np.isfinite(values).all():
        return distribution(values, np.repeat(groups, counts))
    starts = np.concatenate(([0], np.cumsum(counts)))  # the first gap of each request, then the end
    bounds = starts[np.searchsorted(groups, np.arange(CI_GROUPS + 1))]
    parts = [values[bounds[g] : bounds[g + 1]] for g in range(CI_GROUPS) if bounds[g + 1] > bounds[g]]
    return _described(values, parts)


def _gaps_of(values: np.ndarray, counts: np.ndarray, done: np.ndarray) -> np.ndarray:
    """The gaps (request after request, `counts[i]` of request i) of the `done` requests: a slice where
    they lie together (every request, or all but the warm-up at the start), else a copy."""
    talking = counts > 0
    rows = np.flatnonzero(done & talking)
    if len(rows) == np.count_nonzero(talking):
        return values
    if len(rows) and np.count_nonzero(talking[rows[0] : rows[-1] + 1]) == len(rows):
        return values[counts[: rows[0]].sum() : counts[: rows[-1] + 1].sum()]
    return values[np.repeat(done, counts)]


def _by_group(values: np.ndarray, groups: np.ndarray) -> list[np.ndarray]:
    """The values of each group 0..CI_GROUPS-1 present, each in run order (as `values[groups == g]`), from
    one stable sort by group, or none where the groups already run in order (millions of token gaps)."""
    if len(groups) > 1 and not np.all(groups[1:] >= groups[:-1]):
        order = np.argsort(groups, kind="stable")
        values, groups = values[order], groups[order]
    bounds = np.searchsorted(groups, np.arange(CI_GROUPS + 1))
    return [values[bounds[g] : bounds[g + 1]] for g in range(CI_GROUPS) if bounds[g + 1] > bounds[g]]


def llm_summary(
    result: LLMStageResult,
    *,
    ttft_slo_ms: float | None = None,
    tpot_slo_ms: float | None = None,
    include: np.ndarray | None = None,
    sections: bool = True,
) -> dict:
    """The `llm` key of `servesim run --json`. `include` masks the requests counted (e.g. after warm-up);
    `sections` False: no batch-means CIs (a load that follows the clock: its sections are not exchangeable)."""
    log = result.requests
    n = len(log)
    include = np.ones(n, dtype=bool) if include is None else np.asarray(include, dtype=bool)
    done = include & ~log.rejected.to_numpy()
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(log.ready_ms.to_numpy(), kind="stable")] = np.arange(n)
    group = (rank * CI_GROUPS) // max(n, 1) if sections else np.full(n, -1)
    start_ms = float(log.ready_ms[done].min()) if done.any() else 0.0
    end_ms = float(log.done_ms[done].max()) if done.any() else 0.0
    span_s = max(end_ms - start_ms, 1e-9) / 1000.0

    out: dict = {
        "requests": int(include.sum()),
        "completed": int(done.sum()),
        "rejected": int((include & log.rejected.to_numpy()).sum()),
    }
    cis: dict = {}
    for key, column in (("ttft_ms", "ttft_ms"), ("tpot_ms", "tpot_ms"), ("e2el_ms", "e2e_ms")):
        out[key], cis[key] = distribution(log[column].to_numpy()[done], group[done])
    out["itl_ms"], cis["itl_ms"] = gap_distribution(result, done, group)
    out["ci95"] = cis

    output_tokens = int(log.output_tokens[done].sum())
    out["duration_s"] = span_s
    out["output_tokens_per_s"] = output_tokens / span_s
    out["requests_per_s"] = int(done.sum()) / span_s
    if ttft_slo_ms is not None or tpot_slo_ms is not None:
        good = done.copy()
        if ttft_slo_ms is not None:
            good &= log.ttft_ms.to_numpy() <= ttft_slo_ms
        if tpot_slo_ms is not None:
            good &= ~(log.tpot_ms.to_numpy() > tpot_slo_ms)  # single-token outputs have no TPOT
        out["goodput"] = {
            "ttft_slo_ms": ttft_slo_ms,
            "tpot_slo_ms": tpot_slo_ms,
            "requests_per_s": int(good.sum()) / span_s,
            "attainment": float(good.sum() / max(done.sum(), 1)),
        }
    out["preemptions"] = int(log.preemptions[include].sum())
    out["preempted_requests"] = int((log.preemptions[include] > 0).sum())
    out.update(_occupancy(result, start_ms, end_ms))
    if result.prefill_replicas:
        out.update(pool_figures(result, start_ms, end_ms, done))
    profile = result.stage.cost.profile
    if profile.estimated:  # costs transferred to unmeasured hardware (calibrate/transfer.py): say so, with the band
        out["costs_estimated"] = {
            "hardware": profile.hardware,
            **{k: profile.estimate.get(k) for k in ("from", "interval_pct")},
        }
    out["warnings"] = extrapolation_warnings(result) + _keeping_up(log, done, out["requests_per_s"])
    out["warnings"] += _too_long(result, include, out)
    return out


def _too_long(result: LLMStageResult, include: np.ndarray, out: dict) -> list[str]:
    """Prompts above vLLM's prompt limit are ignored by its scheduler (rejected here); say how many."""
    if result.prompt_too_long is None:
        return []
    count = int((result.prompt_too_long & include).sum())
    if count == 0:
        return []
    out["rejected_prompt_too_long"] = count
    longest = int(result.requests.prompt_tokens.to_numpy()[result.prompt_too_long & include].max())
    return [
        f"{result.stage.name}: {count} requests ({100 * count / max(int(include.sum()), 1):.2f}%) rejected: prompt longer "
        f"than the limit of {result.prompt_limit} tokens (up to {longest}; vLLM ignores such prompts — raise "
        "max_num_batched_tokens / max_model_len, or turn on chunked_prefill)"
    ]


def _keeping_up(log: pd.DataFrame, done: np.ndarray, completed_rps: float) -> list[str]:
    """Requests finish slower than they arrive: the queue grows for the whole run (the figures then grow
    with the run's length rather than describe a steady state).

    Two signs must agree. (1) Over the second half of the arrivals, fewer requests finish than arrive.
    Alone this misleads on a short stable run: completions lag arrivals by the time in service, which grows
    while the batch fills. (2) The wait before a request is first scheduled grows: vLLM schedules every
    arrival at the next step while the batch has room (waits of milliseconds), so a wait that rises to
    seconds, and to several times its early level, means the batch is full and the waiting queue grows."""
    stage = log.columns[0].removesuffix("_queue_ms")
    done = done & np.isfinite(log.done_ms.to_numpy())
    order = np.argsort(log.ready_ms.to_numpy()[done], kind="stable")
    ready = log.ready_ms.to_numpy()[done][order]
    finished = log.done_ms.to_numpy()[done][order]
    waits = log[f"{stage}_queue_ms"].to_numpy()[done][order]
    if len(ready) < 50 or ready[-1] <= ready[0]:
        return []
    middle, end = (ready[0] + ready[-1]) / 2, ready[-1]
    span_s = (end - middle) / 1000.0
    arrival_rps = np.count_nonzero(ready >= middle) / span_s
    departure_rps = np.count_nonzero((finished >= middle) & (finished <= end)) / span_s
    fifth = len(waits) // 5
    early_wait, late_wait = float(waits[fifth : 2 * fifth].mean()), float(waits[-fifth:].mean())
    if departure_rps >= 0.95 * arrival_rps or late_wait < max(_BACKLOG_WAIT_MS, 3 * early_wait):
        return []
    return [
        f"{stage}: requests finish at {departure_rps:.2f}/s but arrive at {arrival_rps:.2f}/s and the wait to be "
        f"scheduled rises from {early_wait:,.0f} ms to {late_wait:,.0f} ms — {LLM_BACKLOG} (unstable: add replicas "
        "or change the batching)"
    ]


def _occupancy(result: LLMStageResult, start_ms: float, end_ms: float) -> dict:
    """Time-weighted over [start_ms, end_ms] (iterations clipped to it); idle time counts as empty."""
    it = result.iterations
    span_ms = max(end_ms - start_ms, 1e-9) * result.replicas
    blocks = {"num_gpu_blocks": int(result.num_gpu_blocks), "block_size": int(result.block_size)}
    if it.empty:
        return {
            "kv_cache_utilization": {"mean": 0.0, "max": 0.0},
            "batch_size": {"mean": 0.0, "max": 0},
            "busy_fraction": 0.0,
            **blocks,
        }
    begin = it.time_ms.to_numpy()
    inside = np.clip(np.minimum(begin + it.duration_ms.to_numpy(), end_ms) - np.maximum(begin, start_ms), 0, None)
    seen = inside > 0
    kv = it.kv_blocks_used.to_numpy() / result.num_gpu_blocks
    batch = it.batch_size.to_numpy()
    busy = float(inside.sum())
    return {
        "kv_cache_utilization": {
            "mean": float((kv * inside).sum() / span_ms),
            "max": float(kv[seen].max()) if seen.any() else 0.0,
        },
        "batch_size": {
            "mean": float((batch * inside).sum() / max(busy, 1e-9)),
            "max": int(batch[seen].max()) if seen.any() else 0,
        },
        "busy_fraction": busy / span_ms,
        **blocks,
    }


def pool_figures(result: LLMStageResult, start_ms: float, end_ms: float, done: np.ndarray) -> dict:
    """A disaggregated stage (sim/engine/llm/disaggregated.py): each pool's occupancy over its own replicas and
    KV blocks (the stage-wide figures are the decode pool's: the KV cache lives there), and what the KV
    transfers exposed after each prefill."""
    split = result.prefill_replicas
    replica = result.iterations.replica.to_numpy()
    pools = {}
    for name, rows, replicas, blocks in (
        ("prefill", replica < split, split, result.prefill_gpu_blocks),
        ("decode", replica >= split, result.replicas - split, result.num_gpu_blocks),
    ):
        part = LLMStageResult(
            requests=result.requests,
            iterations=result.iterations[rows],
            itl_ms=result.itl_ms,
            itl_counts=result.itl_counts,
            num_gpu_blocks=blocks,
            block_size=result.block_size,
            replicas=replicas,
            stage=result.stage,
        )
        pools[name] = {"replicas": replicas, **_occupancy(part, start_ms, end_ms)}
    transfer = result.requests["transfer_ms"].to_numpy()[done]
    point, _ = distribution(transfer)
    decode = pools["decode"]
    return {
        "pools": pools,
        "kv_transfer_ms": point,
        "kv_cache_utilization": decode["kv_cache_utilization"],
        "batch_size": decode["batch_size"],
        "busy_fraction": decode["busy_fraction"],
        "num_gpu_blocks": decode["num_gpu_blocks"],
    }


def extrapolation_warnings(result: LLMStageResult) -> list[str]:
    """Where the run used the profile beyond what was measured (the costs there are extrapolated)."""
    profile = result.stage.cost.profile
    it = result.iterations
    warnings = []
    if profile.estimated:
        band = profile.estimate.get("interval_pct", {})
        warnings.append(
            f"{result.stage.name}: costs ESTIMATED for {profile.hardware} (transferred from "
            f"{profile.estimate.get('from', 'another profile')}, not measured): 95% interval per iteration "
            f"prefill {band.get('prefill', '?')}%, decode {band.get('decode', '?')}%"
        )
    if it.empty:
        return warnings
    decode = it.decode_tokens.to_numpy()
    beyond = decode > profile.decode.max_measured_batch
    if beyond.any():
        warnings.append(
            f"{result.stage.name}: {beyond.mean():.1%} of iterations decode more than {profile.decode.max_measured_batch} "
            f"sequences (up to {decode.max()}), beyond the profile's measured batch sizes: decode cost extrapolated"
        )
    prefill = it.prefill_tokens.to_numpy()
    if prefill.max() > profile.prefill.max_measured_tokens:
        warnings.append(
            f"{result.stage.name}: prefill iterations of up to {prefill.max()} tokens, beyond the measured "
            f"{profile.prefill.max_measured_tokens}: prefill cost extrapolated"
        )
    served = result.requests.prompt_tokens[~result.requests.rejected]  # rejected prompts cost nothing
    longest = int(served.max()) if len(served) else 0
    if longest > profile.prefill.max_measured_prompt:
        share = float((served > profile.prefill.max_measured_prompt).mean())
        warnings.append(
            f"{result.stage.name}: {share:.2%} of prompts are longer than the measured {profile.prefill.max_measured_prompt} "
            f"tokens (up to {longest}): their prefill cost is extrapolated"
        )
    return warnings


def llm_timeseries(result: LLMStageResult, bin_s: float = 10.0) -> pd.DataFrame:
    """Per time bin (and over all replicas): mean batch size, KV-cache utilisation, decode tokens/s —
    time-weighted from the iteration log, for plots."""
    it = result.iterations
    if it.empty:
        return pd.DataFrame(columns=["time_s", "batch_size", "kv_cache_utilization", "decode_tokens_per_s"])
    bin_ms = bin_s * 1000.0
    start = it.time_ms.to_numpy()
    duration = it.duration_ms.to_numpy()
    which = (start // bin_ms).astype(np.int64)
    frame = (
        pd.DataFrame(
            {
                "bin": which,
                "batch_time": it.batch_size.to_numpy() * duration,
                "kv_time": it.kv_blocks_used.to_numpy() / result.num_gpu_blocks * duration,
                "tokens": it.decode_tokens.to_numpy(),
                "busy": duration,
            }
        )
        .groupby("bin")
        .sum()
    )
    span = bin_ms * result.replicas
    return pd.DataFrame(
        {
            "time_s": frame.index.to_numpy() * bin_s,
            "batch_size": frame.batch_time / frame.busy.clip(lower=1e-9),
            "kv_cache_utilization": frame.kv_time / span,
            "decode_tokens_per_s": frame.tokens / bin_s,
        }
    ).reset_index(drop=True)


def stage_results(run: RunLog, stage) -> list[tuple[np.ndarray, LLMStageResult]]:
    """An LLM stage's log per replication: (which rows of the replication's request log reached the stage,
    the stage's result) — as the engine left it, or rebuilt from the run log's llm frames (a log read back);
    either way holding what the frames hold, no more."""
    if run.llm_logs:
        logs = sorted((log for log in run.llm_logs if log.stage == stage.name), key=lambda log: log.replication)
        # What the frames do not keep is worked out again from the scenario, so a fresh run and its log read
        # back summarise alike: the stage as written, the prompt-limit rejections.
        return [(log.index, with_prompt_limit(replace(log.result, stage=stage), stage)) for log in logs]
    if run.llm_requests is None:
        return []
    out = []
    sizing = run.llm_stages[run.llm_stages["stage"] == stage.name].sort_values("replication", kind="stable")
    whole = len(run.llm_stages) == 1  # one stage, one replication: every row of the llm frames is its
    for row in sizing.itertuples(index=False):

        def part(frame: pd.DataFrame) -> pd.DataFrame:
            if whole:  # no mask, no copy (millions of token gaps)
                return frame.drop(columns=list(LLM_KEYS)).reset_index(drop=True)
            mask = (frame["replication"].to_numpy() == row.replication) & (frame["stage"] == stage.name).to_numpy()
            return frame[mask].drop(columns=list(LLM_KEYS)).reset_index(drop=True)

        requests = part(run.llm_requests)
        index = requests.pop("request").to_numpy()
        gaps = part(run.llm_token_gaps)
        itl_ms, owner = gaps["itl_ms"].to_numpy(), _positions(index, gaps["request"].to_numpy())
        if np.any(owner[1:] < owner[:-1]):  # not request after request (the engine writes them so)
            order = np.argsort(owner, kind="stable")
            itl_ms, owner = itl_ms[order], owner[order]
        result = LLMStageResult(
            requests=requests,
            iterations=part(run.llm_iterations),
            itl_ms=itl_ms,
            itl_counts=np.bincount(owner, minlength=len(index)),
            num_gpu_blocks=int(row.num_gpu_blocks),
            block_size=int(row.block_size),
            replicas=int(row.replicas),
            stage=stage,
            prefill_replicas=int(getattr(row, "prefill_replicas", 0)) or None,
            prefill_gpu_blocks=int(getattr(row, "prefill_gpu_blocks", 0)) or None,
        )
        out.append((index, with_prompt_limit(result, stage)))
    return out


def with_prompt_limit(result: LLMStageResult, stage) -> LLMStageResult:
    """The result with its prompt-limit rejections: a prompt longer than vLLM's prompt limit under continuous
    batching is rejected (sim/engine/llm/stage.py), a rule of the scenario and the prompt alone, so it is
    worked out again here rather than kept in the frames."""
    from sim.spec.llm_schema import ContinuousLLMBatching

    limit = (
        stage.batching.prompt_limit(stage.max_model_len) if isinstance(stage.batching, ContinuousLLMBatching) else None
    )
    if limit is None:  # chunked prefill takes any prompt; static batching has no such limit
        return replace(result, prompt_too_long=None, prompt_limit=None)
    too_long = result.requests["prompt_tokens"].to_numpy() > limit
    return replace(result, prompt_too_long=too_long, prompt_limit=limit)


def _positions(index: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Where each of `rows` sits in `index` (sorted, distinct): the rows themselves when the index is every
    row 0..n-1 (every request reached the stage), as a search would find (millions of token gaps)."""
    if len(index) and index[0] == 0 and index[-1] == len(index) - 1:  # sorted and distinct: 0..n-1
        return rows
    return np.searchsorted(index, rows)


def summarize_llm_runs(
    runs: list[tuple[np.ndarray, LLMStageResult]],
    includes: list[np.ndarray] | None = None,
    *,
    ttft_slo_ms: float | None = None,
    tpot_slo_ms: float | None = None,
    sections: bool = True,
) -> dict:
    """The `llm` key over replications: one replication's summary as is; for several, every figure is the
    mean over replications and the percentile CIs are t intervals over the replications' values.
    `includes[i]` masks replication i's request rows counted (e.g. `~warmup`); `sections` False: a single
    replication (or identical ones) gets no batch-means CIs."""
    summaries = []
    for i, (index, result) in enumerate(runs):
        include = None if includes is None else np.asarray(includes[i], dtype=bool)[index]
        summaries.append(
            llm_summary(result, ttft_slo_ms=ttft_slo_ms, tpot_slo_ms=tpot_slo_ms, include=include, sections=sections)
        )
    if len(summaries) == 1:
        return summaries[0]
    if all(s == summaries[0] for s in summaries[1:]):  # a deterministic replay: one, with its sections' CIs
        return {**summaries[0], "replications": len(summaries), "identical_replications": True}
    # A replication says how many prompts were too long only where some were: the rest count none.
    too_long = [s.get("rejected_prompt_too_long", 0) for s in summaries]
    if any(too_long):
        summaries = [{**s, "rejected_prompt_too_long": count} for s, count in zip(summaries, too_long)]
    merged = _mean_of(summaries)
    merged["ci95"] = {}
    for key in ("ttft_ms", "tpot_ms", "itl_ms", "e2el_ms"):
        merged["ci95"][key] = {}
        for q in ("mean", *QUANTILES):
            values = np.array([s[key][q] for s in summaries if s[key][q] is not None], dtype=float)
            if len(values) >= 2:
                merged["ci95"][key][q] = list(within(ci95(values), 0.0, math.inf))  # a time is never negative
    merged["warnings"] = sorted({w for s in summaries for w in s["warnings"]})
    merged["replications"] = len(summaries)
    return merged


def llm_key(run: RunLog, scenario) -> dict | None:
    """The `llm` key of the summary: the first LLM stage's figures over the measured (non-warm-up)
    requests of every replication, with its name under `stage`."""
    stage = next((s for s in scenario.stages if s.kind == "llm"), None)
    if stage is None or run.llm_requests is None:
        return None
    runs = stage_results(run, stage)
    replication = run.requests["replication"].to_numpy()
    warmup = run.requests["warmup"].to_numpy()
    includes = [~warmup[replication == r] for r in np.unique(replication)]
    summary = summarize_llm_runs(
        runs,
        includes,
        ttft_slo_ms=scenario.slo.ttft_ms,
        tpot_slo_ms=scenario.slo.tpot_ms,
        sections=not time_varying_load(scenario),  # sections of a day are not exchangeable
    )
    return {"stage": stage.name, **summary}


def _mean_of(items: list):
    first = items[0]
    if isinstance(first, dict):
        return {key: _mean_of([item[key] for item in items]) for key in first if key != "ci95"}
    if isinstance(first, bool) or first is None or isinstance(first, (str, list)):
        return first
    if isinstance(first, int):
        return int(round(float(np.mean(items))))
    return float(np.mean([x for x in items if x is not None])) if any(x is not None for x in items) else None


def without_undefined_utilization(summary: dict) -> dict:
    """The summary without `utilization` where an LLM stage is the replica-bound stage and no model stage
    gives one: a continuous-batching engine steps whenever one sequence is active, so the share of time it
    computes (`llm.busy_fraction`, 0.998 for llm-chat-continuous with the KV cache 3% full) says nothing of
    headroom, and no single share does; `llm.kv_cache_utilization` and `llm.batch_size` say how full it is."""
    value = summary.get("utilization")
    if "llm" not in summary or (isinstance(value, float) and math.isfinite(value)):
        return summary
    return {key: item for key, item in summary.items() if key != "utilization"}
