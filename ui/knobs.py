"""Sidebar knobs: each reads the scenario and returns the overrides that change it, built only by the typed
transforms of sim/spec/transforms.py (which know each field's spelling: Knative's min_scale, a measured
profile's speedup). An autoscaled scenario has no Replicas knob: the autoscaler sets the count."""

from __future__ import annotations

import math
from typing import Any, Callable

import streamlit as st

from sim.analysis import planner
from sim.errors import ServesimError
from sim.spec import transforms
from sim.spec.scenario import Scenario
from ui.state import enter_scenario, initial, knob_key, reset_knob_defaults
from ui.text import as_code, as_text


def knob_traffic(scenario: Scenario) -> dict[str, Any]:
    st.subheader("Traffic")
    knob = transforms.rate_field(scenario)
    if knob is not None:
        _, label, value = knob
        new = st.number_input(
            label,
            min_value=min(0.01, value),
            value=initial("rate", value, low=min(0.01, value)),
            step=max(round(value / 10, 2), 0.01),
            format="%g",
            key=knob_key("rate"),
        )
        return transforms.rate_overrides(scenario, new)
    factor = st.slider(
        "Load (× the scenario's rates)", 0.1, 5.0, initial("load", 1.0, low=0.1), 0.05, key=knob_key("load")
    )
    return transforms.load_overrides(scenario, factor) if factor != 1 else {}


def knob_deployment(scenario: Scenario) -> dict[str, Any]:
    from sim.spec.hardware import load_catalogue

    st.subheader("Deployment")
    deployment = scenario.deployment
    overrides: dict[str, Any] = {}
    if deployment.autoscaling is None:
        replicas = st.number_input(
            "Replicas", 1, None, initial("replicas", deployment.replicas, low=1), key=knob_key("replicas")
        )
        if replicas != deployment.replicas:
            overrides.update(transforms.replica_overrides(scenario, int(replicas)))
    else:  # a fixed count would be ignored: the autoscaler sets it, between the bounds below
        st.caption(
            f"Replicas: set by the {as_text(deployment.autoscaling.policy)} autoscaler, between the bounds below."
        )
    try:
        catalogue = load_catalogue()
    except ServesimError:
        catalogue = {}
    own = deployment.hardware.name or "as in scenario"
    from sim.analysis.hardware_options import moved_overrides, movable_hardware

    movable = movable_hardware(scenario, catalogue)  # an LLM: only hardware with a profile of its model
    options = [own] + [name for name in movable if name != own]
    label = {name: f"{name} — {text}" for name, text in movable.items()}
    if deployment.hardware.usd_per_hour is not None:
        label[own] = f"{own} — ${deployment.hardware.usd_per_hour:g}/h"
    llm = any(stage.kind == "llm" for stage in scenario.stages)
    hardware = st.selectbox(
        "Hardware (price per replica)",
        options,
        index=options.index(initial("hardware", own, options)),
        format_func=lambda n: label.get(n, n),
        key=knob_key("hardware"),
        help="An LLM stage moves to that hardware's profile (measured, or estimated by calibrate transfer) and its "
        "price."
        if llm
        else "Sets the price; a model stage on a GPU runs at the datasheet roofline ratio to the scenario's own GPU "
        "(the lower of memory bandwidth and FP16: the Sizing tab's estimate, labelled). Hardware with no such "
        "ratio (CPUs, a scenario naming no hardware) is not offered: give stages.NAME.speedup instead.",
    )
    if hardware != own:
        moved = moved_overrides(scenario, hardware, catalogue)
        hardware_fields = moved.pop("deployment.hardware")
        overrides.update(moved)
        overrides.update(transforms.hardware_overrides(scenario, hardware_fields))
    routes = list(transforms.ROUTINGS)
    routing = st.selectbox(
        "Routing", routes, index=routes.index(initial("routing", deployment.routing, routes)), key=knob_key("routing")
    )
    overrides.update(transforms.routing_overrides(scenario, routing))
    return overrides


def knob_batching(scenario: Scenario) -> dict[str, Any]:
    stage_name = planner.model_stage_name(scenario)
    if stage_name is None:
        return {}
    st.subheader(f"Batching ({as_text(stage_name)})")
    current = scenario.raw_stage(stage_name).get("batching", {"policy": "none"})
    policies = ["none", "static", "dynamic"]
    policy = st.radio(
        "Policy",
        policies,
        index=policies.index(initial("policy", current.get("policy", "none"), policies)),
        horizontal=True,
        key=knob_key("policy"),
    )
    new: dict[str, Any] = {"policy": policy}
    if policy == "dynamic":
        max_batch = int(current.get("max_batch_size", 8))
        new["max_batch_size"] = st.slider(
            "Max batch size",
            1,
            max(128, max_batch),
            initial("max_batch", max_batch, list(range(1, max(128, max_batch) + 1))),
            key=knob_key("max_batch"),
        )
        # The schema's default delay is 0; 2 ms is only a suggestion when switching to dynamic batching.
        delay = current.get("max_queue_delay_ms", 0.0) if current.get("policy") == "dynamic" else 2.0
        new["max_queue_delay_ms"] = st.number_input(
            "Max queue delay (ms)", 0.0, None, initial("delay", float(delay), low=0.0), step=0.5, key=knob_key("delay")
        )
        if current.get("policy") == "dynamic" and current.get("preferred_batch_sizes"):
            preferred = [b for b in current["preferred_batch_sizes"] if b <= new["max_batch_size"]]
            if preferred:
                new["preferred_batch_sizes"] = preferred
    elif policy == "static":
        batch = int(current.get("batch_size", current.get("max_batch_size", 8)))
        new["batch_size"] = st.slider(
            "Batch size",
            1,
            max(128, batch),
            initial("batch", batch, list(range(1, max(128, batch) + 1))),
            key=knob_key("batch"),
        )
        timeout = float(current.get("timeout_ms") or 0.0) if current.get("policy") == "static" else 10.0
        timeout = st.number_input(
            "Timeout (ms, 0 = wait for a full batch)",
            0.0,
            None,
            initial("timeout", timeout, low=0.0),
            step=1.0,
            key=knob_key("timeout"),
        )
        if timeout > 0:
            new["timeout_ms"] = timeout
    return transforms.batching_overrides(scenario, stage_name, new)


def knob_lever(scenario: Scenario) -> dict[str, Any]:
    """An optimisation lever (INT8, distillation, ...) as a speed-up of the model stage's forward pass."""
    from sim.spec.levers import LEVERS

    stage = planner.model_stage_name(scenario)
    if stage is None:
        return {}
    names = ["none", *LEVERS]
    choice = st.selectbox(
        f"Optimisation lever ({stage})",
        names,
        index=names.index(initial("lever", "none", names)),
        key=knob_key("lever"),
        help="Typical forward-pass speed-ups from the field; measure and fit the real model as soon as it exists.",
    )
    if choice == "none":
        return {}
    lever = LEVERS[choice]
    low, high = lever.speedup_range
    speedup = st.slider(
        "Speed-up of the forward pass (×)",
        float(low),
        float(high),
        initial("speedup", float(low), low=float(low)),
        0.1,
        key=knob_key("speedup"),
    )
    st.caption(f"Accuracy cost: {lever.accuracy_cost}. Relative to {lever.baseline}.")
    overrides = transforms.stage_time_overrides(scenario, stage, 1.0 / speedup)
    if not overrides:
        st.caption(
            f"{stage} uses a measured profile: derive the lever profile with `servesim calibrate` and point the stage at it."
        )
    return overrides


def knob_stages(scenario: Scenario) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    with st.expander("Stage costs and workers"):
        for stage in scenario.stages:
            if stage.kind == "pool":
                workers = st.number_input(
                    f"{stage.name}: workers" + (" per replica" if stage.per_replica else ""),
                    1,
                    None,
                    initial(f"workers.{stage.name}", stage.workers, low=1),
                    key=knob_key(f"workers.{stage.name}"),
                )
                overrides.update(transforms.workers_overrides(scenario, stage.name, int(workers)))
        for name in transforms.scalable_stages(scenario):
            factors = [0.25, 0.33, 0.5, 0.67, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0]
            factor = st.select_slider(
                f"{name}: time ×",
                options=factors,
                value=initial(f"cost.{name}", 1.0, factors),
                key=knob_key(f"cost.{name}"),
                help="0.5 = the stage takes half as long",
            )
            overrides.update(transforms.stage_time_overrides(scenario, name, factor))
    return overrides


def knob_slo(scenario: Scenario) -> dict[str, Any]:
    """Latency budgets: TTFT and TPOT first on an LLM scenario (what its users feel), then the p99."""
    st.subheader("Latency budget")
    values: dict[str, float | None] = {}
    if any(stage.kind == "llm" for stage in scenario.stages):
        for name, label in (("ttft_ms", "TTFT p99 budget (ms)"), ("tpot_ms", "TPOT p99 budget (ms)")):
            values[name] = st.number_input(
                label,
                min_value=0.0,
                value=initial(name, getattr(scenario.slo, name), low=0.0),
                step=10.0,
                key=knob_key(name),
                placeholder="none",
                help="0 or empty: none. Judged on the p99's 95% CI upper end; goodput counts requests within both",
            )
    values["p99_ms"] = st.number_input(
        "p99 SLO (ms)" if not values else "End-to-end p99 SLO (ms)",
        min_value=0.0,
        value=initial("slo", scenario.slo.p99_ms, low=0.0),
        step=5.0,
        key=knob_key("slo"),
        placeholder="none",
    )
    return transforms.budget_overrides(scenario, **values)


def knob_autoscaling(scenario: Scenario) -> dict[str, Any]:
    policy = scenario.deployment.autoscaling
    if policy is None:
        return {}
    st.subheader(f"Autoscaling ({policy.policy})")
    new_low = st.number_input(
        "Min replicas", 0, None, initial("min_replicas", policy.min_replicas, low=0), key=knob_key("min_replicas")
    )
    new_high = st.number_input(
        "Max replicas", 1, None, initial("max_replicas", policy.max_replicas, low=1), key=knob_key("max_replicas")
    )
    overrides = transforms.autoscaling_bounds_overrides(scenario, int(new_low), int(new_high))
    cold = getattr(scenario.deployment, "cold_start_ms", None)
    mean_s = cold.mean / 1000.0 if cold is not None else 0.0
    new_cold = st.number_input(
        "Cold start, mean (s)",
        0.0,
        None,
        initial("cold_start", float(mean_s), low=0.0),
        step=1.0,
        key=knob_key("cold_start"),
    )
    if not math.isclose(new_cold, mean_s):
        overrides.update(transforms.cold_start_overrides(scenario, new_cold))
    return overrides


KNOBS: list[Callable[[Scenario], dict[str, Any]]] = [
    knob_traffic,
    knob_deployment,
    knob_autoscaling,
    knob_batching,
    knob_lever,
    knob_stages,
    knob_slo,
]


def apply_knobs(scenario: Scenario, identity: str) -> Scenario:
    enter_scenario(identity)
    reset_knob_defaults()
    # Knobs apply in turn, each to the result of the previous ones, so that two knobs acting on one field
    # compose (a lever's 2× speed-up and a "time × 0.8" on the same stage make 0.4).
    with st.sidebar:
        for knob in KNOBS:
            try:
                overrides = knob(scenario)
                if overrides:
                    scenario = scenario.with_overrides(overrides)
            except ServesimError as exc:
                st.error(f"This setting does not make a valid scenario (ignored):{as_code(exc)}")
            except Exception as exc:  # a knob that cannot handle this scenario must not take the page down
                st.error(f"This setting could not be applied (ignored): {type(exc).__name__}: {as_text(exc)}")
    return scenario
