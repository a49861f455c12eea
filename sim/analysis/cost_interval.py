"""The estimated costs' interval in the latency CIs. An LLM profile transferred to hardware it was not
measured on (calibrate/transfer.py, `estimated: true`) carries a 95% interval per term group, prefill and
decode. A run on it runs its replications at the estimate itself, then once more at each end of the
interval: every estimated profile's prefill and decode costs at the fast end together, then at the slow end
together, on replication 0's streams (so an end differs from the run by its costs alone). Each 95% CI the
run reports is then widened to cover the figure at both ends: the hull of the traffic's CI and the range
the costs allow.

Why the ends and not a draw per replication: latency never falls as a cost rises, so the costs' 2.5% and
97.5% points map to the ends of the latency's range over the costs (exactly where prefill and decode move
together, conservatively where they need not). A CI over per-replication draws estimates the *mean* over
the costs instead: with two replications t = 12.7 spreads it from 0 to several times the figure, and with
many it shrinks to nothing, while how little is known about the hardware does not shrink with replications.
Measured profiles, and the band's edge profiles (`--band`, already an end), run and report as they are.

A model stage on an estimated batch-cost profile (calibrate/transfer_model.py: one interval for every
batch's cost) is moved to its ends the same way, together with any LLM stage's: its `speedup` divided by
exp(±half-width), which scales every batch cost it draws (sim/spec/transforms.py `stage_time_overrides`).
The top-level `cost_interval` key names those stages (`llm.cost_interval` the LLM profiles).
"""

from __future__ import annotations

import math

from sim.spec.llm_cost import LLMCost, LLMProfile
from sim.spec.profile import ModelProfile
from sim.spec.scenario import ModelStage, Scenario, _load_profile
from sim.spec.transforms import stage_time_overrides

PREFILL_TERMS = ("floor_ms", "intercept_ms", "per_token_ms", "attention_ms_per_mtoken2", "per_extra_seq_ms")
ENDS = ("fast", "slow")
LLM_KEYS = ("ttft_ms", "tpot_ms", "itl_ms", "e2el_ms")


def scaled_profile(profile: LLMProfile, prefill: float, decode: float) -> LLMProfile:
    """The profile with every prefill term × `prefill` and the decode step table × `decode` (the KV read
    stays its roofline, as in `calibrate.transfer.band`)."""
    p, d = profile.prefill, profile.decode
    return profile.model_copy(
        update={
            "prefill": p.model_copy(update={name: getattr(p, name) * prefill for name in PREFILL_TERMS}),
            "decode": d.model_copy(update={"step_ms": [v * decode for v in d.step_ms]}),
        }
    )


def has_interval(profile: LLMProfile | ModelProfile) -> bool:
    """Whether the profile is an estimate with an interval (and not already one of its ends)."""
    estimate = profile.estimate or {}
    return bool(profile.estimated and estimate.get("interval_log_half_width") and not estimate.get("band_edge"))


def multipliers(profile: LLMProfile | ModelProfile, end: str) -> dict[str, float]:
    """The cost multipliers at the interval's `end` ("fast" or "slow"): {prefill, decode} of an LLM
    profile, {batch} of a batch-cost profile."""
    widths = profile.estimate["interval_log_half_width"]
    sign = -1.0 if end == "fast" else 1.0
    if isinstance(profile, ModelProfile):
        return {"batch": math.exp(sign * float(widths))}
    return {q: math.exp(sign * float(widths.get(q, 0.0))) for q in ("prefill", "decode")}


def _estimated_profiles(stage) -> dict[str, LLMProfile]:
    """The stage's estimated profiles by key: the stage's own, and a disaggregated decode pool's own."""
    out = {}
    if has_interval(stage.cost.profile):
        out[stage.name] = stage.cost.profile
    split = getattr(stage, "disaggregated", None)
    if split is not None and split.decode.profile is not None and has_interval(stage.decode_cost.profile):
        out[f"{stage.name}.decode"] = stage.decode_cost.profile
    return out


def estimated_llm(scenario: Scenario) -> dict[str, LLMProfile]:
    """Every LLM profile of the scenario whose interval the CIs carry, by key (a stage, or STAGE.decode)."""
    out: dict[str, LLMProfile] = {}
    for stage in scenario.stages:
        if stage.kind == "llm":
            out.update(_estimated_profiles(stage))
    return out


def estimated_models(scenario: Scenario) -> dict[str, ModelProfile]:
    """Every model stage's batch-cost profile whose interval the CIs carry, by stage."""
    out = {}
    for stage in scenario.stages:
        if isinstance(stage, ModelStage) and stage.profile is not None:
            profile = _load_profile(stage.profile)  # loaded once per path, as the stage's cost loads it
            if has_interval(profile):
                out[stage.name] = profile
    return out


def estimated_stages(scenario: Scenario) -> dict[str, LLMProfile | ModelProfile]:
    """Every profile of the scenario whose interval the CIs carry: model stages', then LLM ones'."""
    return {**estimated_models(scenario), **estimated_llm(scenario)}


def at_end(scenario: Scenario, end: str) -> Scenario:
    """The scenario with every estimated profile at the interval's `end` (the scenario is not changed)."""
    overrides: dict = {}
    for name, profile in estimated_models(scenario).items():
        overrides.update(stage_time_overrides(scenario, name, multipliers(profile, end)["batch"]))
    if overrides:
        scenario = scenario.with_overrides(overrides)
    stages = []
    for stage in scenario.stages:
        profiles = _estimated_profiles(stage) if stage.kind == "llm" else {}
        if not profiles:
            stages.append(stage)
            continue
        copy = stage.model_copy()
        shared = stage.decode_cost is stage.cost
        for key, profile in profiles.items():
            k = multipliers(profile, end)
            scaled = scaled_profile(profile, k["prefill"], k["decode"])
            cost = LLMCost(scaled.model_copy(update={"estimate": {**profile.estimate, "band_edge": end}}))
            # The engine reads the stage's (cached) cost properties; the copy holds the scaled ones.
            copy.__dict__["decode_cost" if key.endswith(".decode") else "cost"] = cost
            if shared and not key.endswith(".decode"):
                copy.__dict__["decode_cost"] = cost
        stages.append(copy)
    return scenario.model_copy(update={"stages": stages})


def end_figures(scenario: Scenario, seed: int, requests: int | None) -> dict[str, dict]:
    """The run's figures at each end of the interval: replication 0 at the end's costs, summarised."""
    from sim.engine.run import simulate_replication
    from sim.metrics.summary import summarize

    figures = {}
    for end in ENDS:
        edge = at_end(scenario, end)
        summary = summarize(simulate_replication(edge, 0, seed=seed, requests=requests), edge)
        llm = summary.get("llm") or {}
        figures[end] = {
            "latency_ms": dict(summary["latency_ms"]),
            "stages": {name: dict(figures) for name, figures in summary["stages"].items()},
            **{key: dict(llm[key]) for key in LLM_KEYS if isinstance(llm.get(key), dict)},
        }
    return figures


def _hull(ci, value, ends: list) -> list | None:
    """The CI widened to cover the figure at the interval's ends (from the figure itself where the run gave
    no CI); None where nothing is finite."""
    known = [v for v in ends if v is not None and math.isfinite(v)]
    if not known:
        return None if ci is None else list(ci)
    low, high = ci if ci is not None else (math.nan, math.nan)
    if not (math.isfinite(low) and math.isfinite(high)):
        low = high = value if value is not None and math.isfinite(value) else known[0]
    return [float(min(low, *known)), float(max(high, *known))]


def widen(summary: dict, scenario: Scenario, figures: dict[str, dict]) -> dict:
    """Every latency CI of `summary` widened to the figures at the interval's ends; `cost_interval` (model
    stages), `llm.cost_interval` (LLM profiles) and a warning line say so."""
    cis = summary.setdefault("latency_ms_ci95", {})
    for q, value in summary["latency_ms"].items():
        widened = _hull(cis.get(q), value, [figures[end]["latency_ms"].get(q) for end in ENDS])
        if widened is not None:
            cis[q] = widened
    llm_profiles, models = estimated_llm(scenario), estimated_models(scenario)
    llm = summary.get("llm")
    if isinstance(llm, dict):
        llm_cis = llm.setdefault("ci95", {})
        for key in LLM_KEYS:
            if not isinstance(llm.get(key), dict):
                continue
            per_key = llm_cis.setdefault(key, {})
            for q, value in llm[key].items():
                widened = _hull(per_key.get(q), value, [figures[end].get(key, {}).get(q) for end in ENDS])
                if widened is not None:
                    per_key[q] = widened
        if llm_profiles:
            llm["cost_interval"] = _llm_interval(llm_profiles, figures)
    if models:
        summary["cost_interval"] = _model_interval(models, figures)
    named = [
        f"{name} ({profile.name}, estimated from {profile.estimate.get('source_hardware', 'other hardware')}; "
        f"95% interval per batch {profile.estimate.get('interval_pct', '?')}%)"
        for name, profile in models.items()
    ]
    keys = ["cost_interval"] * bool(models) + ["llm.cost_interval"] * bool(llm_profiles)
    summary.setdefault("warnings", []).append(
        f"{', '.join(named + list(llm_profiles))}: estimated costs: every 95% CI spans the costs' interval too "
        f"(the run repeated at its fast and slow ends, {', '.join(keys)})"
    )
    return summary


def _ends(profile: LLMProfile | ModelProfile) -> dict[str, dict[str, float]]:
    return {end: {q: round(v, 4) for q, v in multipliers(profile, end).items()} for end in ENDS}


def _llm_interval(profiles: dict[str, LLMProfile], figures: dict[str, dict]) -> dict:
    return {
        "profiles": {
            key: {"hardware": profile.hardware, "interval_pct": profile.estimate.get("interval_pct"), **_ends(profile)}
            for key, profile in profiles.items()
        },
        "ends": {
            end: {f"{key}_p99": figures[end].get(key, {}).get("p99") for key in ("latency_ms", "ttft_ms", "tpot_ms")}
            for end in ENDS
        },
        "method": "each CI is the hull of the traffic's 95% CI and the figure re-run at the costs' interval's "
        "fast and slow ends (prefill and decode together, replication 0's streams)",
    }


def _model_interval(profiles: dict[str, ModelProfile], figures: dict[str, dict]) -> dict:
    """The top-level `cost_interval`, one row per fact and one entry per model stage on an estimated profile
    (so the text report's section table shows every row): its profile, hardware, the hardware the costs
    were measured on, the interval, the batch-cost multiplier at each end, and the run's p50 / p99 and the
    stage's p99 re-run at each end."""
    out: dict = {
        row: {name: value(profile) for name, profile in profiles.items()}
        for row, value in (
            ("profile", lambda p: p.name),
            ("hardware", lambda p: p.hardware),
            ("source_hardware", lambda p: p.estimate.get("source_hardware")),
            ("interval_pct", lambda p: p.estimate.get("interval_pct")),
            ("batch_cost_x_fast", lambda p: round(multipliers(p, "fast")["batch"], 4)),
            ("batch_cost_x_slow", lambda p: round(multipliers(p, "slow")["batch"], 4)),
        )
    }
    for end in ENDS:
        out[f"{end}_end"] = {
            "latency_ms_p50": figures[end]["latency_ms"].get("p50"),
            "latency_ms_p99": figures[end]["latency_ms"].get("p99"),
            **{f"{name}_p99": figures[end]["stages"].get(name, {}).get("p99") for name in profiles},
        }
    out["method"] = (
        "each latency CI is the hull of the traffic's 95% CI and the figure re-run at the interval's fast and "
        "slow ends (every estimated batch cost together, replication 0's streams)"
    )
    return out


def with_cost_interval(summary: dict, scenario: Scenario, seed: int, requests: int | None) -> dict:
    """`widen` the summary of a run on estimated costs (a run on measured costs is returned as it was)."""
    if not estimated_stages(scenario):
        return summary
    return widen(summary, scenario, end_figures(scenario, seed, requests))
