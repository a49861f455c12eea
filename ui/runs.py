"""Runs for the page: pure, cached by (scenario YAML, seed); the context every view draws from."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd
import streamlit as st

from sim.analysis import compare, planner
from sim.analysis.simulate import RunResult
from sim.shipped import shipped_root
from sim.engine.runlog import RunLog
from sim.metrics.summary_view import Summary
from sim.spec.scenario import Scenario, parse_scenario_text
from ui.state import keep_precise_run, keep_speed, measured_speed, precise_run, scoped


SCENARIOS = shipped_root("scenarios") or Path("scenarios")  # the checkout's, or the installed package's


PROGRESS_AFTER_S = 2.0  # runs expected to take longer show what they simulate, elapsed time and progress


@st.cache_data(max_entries=64, show_spinner=False)
def cached_run(
    yaml_text: str,
    base_dir: str,
    requests: int | None,
    replications: int | None,
    horizon_budget: int | None,
    seed: int,
    _progress: bool = False,
) -> tuple[dict, RunLog, float]:
    scenario = parse_scenario_text(yaml_text, base_dir=base_dir)
    # Created inside the cached function, so that a cache hit replays it (and its removal) harmlessly.
    bar = st.progress(0.0, text="Replication 1 …") if _progress else None
    size = planner.RunSize(requests, replications, horizon_budget)
    started = time.perf_counter()
    result = planner.run(
        scenario,
        size,
        seed=seed,
        on_replication=(lambda done, total: bar.progress(done / total, text=f"Replication {done} of {total} done"))
        if bar is not None
        else None,
    )
    elapsed_s = time.perf_counter() - started  # kept with the result: a cache hit still knows how long it took
    if bar is not None:
        bar.empty()
    return result.summary, result.run, elapsed_s


def run_cached(scenario: Scenario, size: planner.RunSize, seed: int) -> RunResult:
    """A cached run; one expected to take more than a couple of seconds shows its progress."""
    long = eta_s(scenario, size) > PROGRESS_AFTER_S
    summary, run, elapsed_s = cached_run(
        scenario.to_yaml(),
        str(base_dir(scenario)),
        size.requests,
        size.replications,
        size.horizon_budget,
        seed,
        _progress=long and planner.plan(scenario, size).replications > 1,
    )
    measure_speed(scenario.to_yaml(), scenario, size, elapsed_s)
    return RunResult(scenario=scenario, run=run, summary=summary)


@st.cache_data(max_entries=32, show_spinner=False)
def cached_load_curve(yaml_text: str, base_dir: str, seed: int) -> pd.DataFrame:
    return compare.load_curve(parse_scenario_text(yaml_text, base_dir=base_dir), seed=seed)


@st.cache_data(max_entries=32, show_spinner=False)
def cached_replicas_curve(yaml_text: str, base_dir: str, seed: int, replicas: tuple[int, ...]) -> pd.DataFrame:
    return compare.replicas_curve(parse_scenario_text(yaml_text, base_dir=base_dir), list(replicas), seed=seed)


@st.cache_data(max_entries=32, show_spinner=False)
def cached_tradeoff(
    yaml_text: str, base_dir: str, seed: int, policies: tuple[tuple[str, str], ...]
) -> dict[str, pd.DataFrame]:
    import yaml

    scenario = parse_scenario_text(yaml_text, base_dir=base_dir)
    return compare.batching_tradeoff(scenario, {name: yaml.safe_load(p) for name, p in policies}, seed=seed)


def base_dir(scenario: Scenario) -> Path:
    return getattr(scenario, "_base_dir", SCENARIOS)


@dataclass
class Context:
    scenario: Scenario
    result: RunResult
    size: planner.RunSize
    seed: int

    @cached_property
    def summary(self) -> Summary:
        """The run's summary, typed (its `to_dict()` is the `servesim run --json` object)."""
        return Summary.of(self.result.summary)

    @property
    def slo_ms(self) -> float | None:
        return self.scenario.slo.p99_ms

    @property
    def key(self) -> tuple[str, str, int]:
        return self.scenario.to_yaml(), str(base_dir(self.scenario)), self.seed


def run_for_display(scenario: Scenario) -> Context:
    seed = scenario.seed
    key = (scenario.to_yaml(), seed)
    kept = precise_run(key)
    if kept is not None:
        summary, run = kept
        return Context(scenario, RunResult(scenario, run, summary), planner.PRECISE, seed)
    seconds = eta_s(scenario, planner.QUICK)
    text = (
        f"Simulating {planner.describe(scenario, planner.QUICK)}: about {seconds:,.0f} s…"
        if seconds > PROGRESS_AFTER_S
        else "Simulating…"
    )
    with st.spinner(text, show_time=seconds > PROGRESS_AFTER_S):
        result = run_cached(scenario, planner.QUICK, seed)
    return Context(scenario, result, planner.QUICK, seed)


def measure_speed(yaml_text: str, scenario: Scenario, size: planner.RunSize, elapsed_s: float) -> None:
    """Remember how fast the scenario of `yaml_text` simulates on this machine, from a run of `size` that
    took `elapsed_s` (measured where it ran, and kept with a cached result): the time estimates of its runs
    and sweeps use it (the default speed is only a bound). A short run's fixed costs make it look slower:
    the estimates err long."""
    if elapsed_s > 0:
        keep_speed(yaml_text, planner.simulated_requests(scenario, size) / elapsed_s)


def eta_s(scenario: Scenario, size: planner.RunSize) -> float:
    """Seconds a run of `size` of `scenario` should take: at its measured speed when the page has timed
    a run of it, else at the default speed."""
    return planner.estimated_seconds(scenario, size, measured_speed(scenario.to_yaml()))


def run_precise(scenario: Scenario) -> None:
    seconds = eta_s(scenario, planner.PRECISE)
    bar = st.progress(0.0, text="Precise run…")
    with st.spinner(
        f"Precise run: {planner.plan(scenario, planner.PRECISE).expected_requests:,.0f} requests × "
        f"{planner.plan(scenario, planner.PRECISE).replications} replications, about {seconds:,.0f} s…",
        show_time=True,
    ):
        started = time.perf_counter()
        result = planner.run(
            scenario,
            planner.PRECISE,
            on_replication=lambda done, total: bar.progress(done / total, text=f"Replication {done} of {total}"),
        )
        measure_speed(scenario.to_yaml(), scenario, planner.PRECISE, time.perf_counter() - started)
    bar.empty()
    keep_precise_run((scenario.to_yaml(), scenario.seed), result.summary, result.run)


LONG_SWEEP_S = 10.0  # a sweep expected to take longer waits for the planner to ask for it


def long_sweep_confirmed(ctx: Context, points: int, name: str) -> bool:
    """True when a sweep of `points` short runs is quick, or the planner has asked for a long one."""
    seconds = eta_s(ctx.scenario, planner.SWEEP) * points
    if seconds <= LONG_SWEEP_S:
        return True
    return st.checkbox(
        f"Run this sweep: {points} runs of {planner.describe(ctx.scenario, planner.SWEEP)}, about {seconds:,.0f} s",
        key=scoped(f"{name}.go"),
    )
