"""Replications over cost draws: an LLM profile transferred to hardware it was not measured on
(calibrate/transfer.py, `estimated: true`) carries a 95% interval per iteration, prefill and decode. Each
replication runs at its own draw from that interval, so the spread across replications — and so every
latency CI — includes how little is known about the costs, not only the traffic's randomness.

A draw is one multiplier per term group, lognormal with median 1 and `exp(±half_width)` as its 2.5% and
97.5% points (`estimate.interval_log_half_width`), prefill and decode independent: every prefill term is
multiplied by the prefill draw, the decode step table by the decode draw (the KV read stays its roofline,
as in `calibrate.transfer.band`). Draws come from the `cost_draws` stream of (seed, replication, stage),
so a run is reproducible and adding replications never changes the earlier ones. Measured profiles, and
the band's edge profiles (already an end of the interval), run unchanged.
"""

from __future__ import annotations

import math

from sim.spec.llm_cost import LLMCost, LLMProfile
from sim.spec.scenario import Scenario
from sim.streams import stream

Z95 = 1.959964
PREFILL_TERMS = ("floor_ms", "intercept_ms", "per_token_ms", "attention_ms_per_mtoken2", "per_extra_seq_ms")


def scaled_profile(profile: LLMProfile, prefill: float, decode: float) -> LLMProfile:
    """The profile with every prefill term × `prefill` and the decode step table × `decode`."""
    p, d = profile.prefill, profile.decode
    return profile.model_copy(
        update={
            "prefill": p.model_copy(update={name: getattr(p, name) * prefill for name in PREFILL_TERMS}),
            "decode": d.model_copy(update={"step_ms": [v * decode for v in d.step_ms]}),
        }
    )


def drawn(profile: LLMProfile) -> bool:
    """Whether replications draw this profile's costs: estimated, with an interval, not a band edge."""
    estimate = profile.estimate or {}
    return bool(profile.estimated and estimate.get("interval_log_half_width") and not estimate.get("band_edge"))


def log_sd(profile: LLMProfile) -> dict[str, float]:
    """The lognormal's log-sd per term group: the interval's log half-width / 1.96."""
    widths = profile.estimate["interval_log_half_width"]
    return {q: float(widths.get(q, 0.0)) / Z95 for q in ("prefill", "decode")}


def draw(profile: LLMProfile, seed: int, replication: int, key: str) -> dict[str, float]:
    """One replication's cost multipliers {prefill, decode} for the profile of `key` (a stage or pool)."""
    sd = log_sd(profile)
    z = stream(seed, replication, "cost_draws", key).standard_normal(2)
    return {"prefill": math.exp(sd["prefill"] * z[0]), "decode": math.exp(sd["decode"] * z[1])}


def _drawn_profiles(stage) -> dict[str, LLMProfile]:
    """The stage's estimated profiles by key: the stage's own, and a disaggregated decode pool's own."""
    out = {}
    if drawn(stage.cost.profile):
        out[stage.name] = stage.cost.profile
    split = getattr(stage, "disaggregated", None)
    if split is not None and split.decode.profile is not None and drawn(stage.decode_cost.profile):
        out[f"{stage.name}.decode"] = stage.decode_cost.profile
    return out


def estimated_stages(scenario: Scenario) -> dict[str, LLMProfile]:
    """Every profile of the scenario whose costs replications draw, by key."""
    out: dict[str, LLMProfile] = {}
    for stage in scenario.stages:
        if stage.kind == "llm":
            out.update(_drawn_profiles(stage))
    return out


def with_cost_draw(scenario: Scenario, replication: int, seed: int) -> Scenario:
    """The scenario as replication `replication` runs it: each estimated LLM profile at that replication's
    draw; the scenario itself (the same object) when it has none."""
    if not estimated_stages(scenario):
        return scenario
    stages = []
    for stage in scenario.stages:
        profiles = _drawn_profiles(stage) if stage.kind == "llm" else {}
        if not profiles:
            stages.append(stage)
            continue
        copy = stage.model_copy()
        shared = stage.decode_cost is stage.cost
        for key, profile in profiles.items():
            k = draw(profile, seed, replication, key)
            cost = LLMCost(scaled_profile(profile, k["prefill"], k["decode"]))
            # The engine reads the stage's (cached) cost properties; the copy holds the drawn ones.
            copy.__dict__["decode_cost" if key.endswith(".decode") else "cost"] = cost
            if shared and not key.endswith(".decode"):
                copy.__dict__["decode_cost"] = cost
        stages.append(copy)
    return scenario.model_copy(update={"stages": stages})


def draws_summary(scenario: Scenario, seed: int, replications: int) -> dict | None:
    """What the summary says about the draws (None without an estimated profile): the multipliers each
    replication ran at, and whether the CIs include the interval (they do across two replications or more)."""
    profiles = estimated_stages(scenario)
    if not profiles:
        return None
    per_key = {}
    for key, profile in profiles.items():
        draws = [draw(profile, seed, rep, key) for rep in range(replications)]
        per_key[key] = {
            "hardware": profile.hardware,
            "interval_pct": profile.estimate.get("interval_pct"),
            "log_sd": {q: round(v, 4) for q, v in log_sd(profile).items()},
            "prefill_scale": [round(d["prefill"], 4) for d in draws],
            "decode_scale": [round(d["decode"], 4) for d in draws],
        }
    return {
        "ci_includes_cost_interval": replications >= 2,
        "replications": replications,
        "distribution": "lognormal per replication, median 1, the 95% interval's ends as its 2.5% / 97.5% points; "
        "prefill and decode independent",
        "profiles": per_key,
    }


def label(summary: dict, scenario: Scenario, seed: int, replications: int) -> dict:
    """Add `llm.cost_draws` and a line in `warnings` saying whether the latency CIs include the cost
    interval (a summary of a scenario without an estimated profile is returned as it was)."""
    draws = draws_summary(scenario, seed, replications)
    if draws is None:
        return summary
    if isinstance(summary.get("llm"), dict):
        summary["llm"]["cost_draws"] = draws
    stages = ", ".join(draws["profiles"])
    if draws["ci_includes_cost_interval"]:
        line = (
            f"{stages}: the 95% CIs include the estimated costs' interval: each of the {replications} replications "
            "ran at its own draw from it (llm.cost_draws)"
        )
    else:
        line = (
            f"{stages}: one replication ran at one draw from the estimated costs' interval; its CIs do NOT include "
            "that interval (run 2 or more replications)"
        )
    summary.setdefault("warnings", []).append(line)
    return summary
