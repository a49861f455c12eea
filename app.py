"""servesim capacity planner: `streamlit run app.py`.

Widgets (sidebar knobs) → overrides of the chosen scenario → one pure, cached run → views drawn from its
request log. Runs are pure functions of (scenario YAML, seed), so they are cached by that text. Each view
is a small function `view_x(ctx)` listed in VIEWS; a capability that lands adds one function and one row.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pandas as pd
import streamlit as st

from sim.analysis import compare, planner
from sim.present import charts, plots
from sim.present.units import fmt_interval, horizon_cost_text
from sim.present.windows import window_verdict
from sim.analysis.simulate import RunResult, run_log_zip
from sim.engine.runlog import RunLog
from sim.metrics.llm import stage_results
from sim.errors import ServesimError
from sim.metrics.summary import stage_columns
from sim.spec.datafiles import shipped_data_roots
from sim.spec.scenario import Scenario, load_scenario, parse_scenario_text, time_dependent

ROOT = Path(__file__).resolve().parent
SCENARIOS = ROOT / "scenarios"
DEFAULT_SCENARIO = "vision-a100"
UPLOAD_LIMIT_BYTES = 1_000_000
PROGRESS_AFTER_S = 2.0  # runs expected to take longer show what they simulate, elapsed time and progress
KNOB = "knob."  # prefix of every knob's widget key
GENERATION = "_scenario_generation"  # counts scenario changes; scopes the keys of scenario-bound widgets
URL_KNOBS = "_url_knobs"  # knob values read from the page's address, for the scenario it names
DEFAULTS = "_knob_defaults"  # each knob's scenario value this run: the address records only what differs


_MARKDOWN = re.compile(r"([\\`*_\[\]()<>#!|~$])")


def as_text(value: object) -> str:
    """Text from a scenario (its name, stage names, notes, messages embedding them) for a Markdown
    element: every Markdown and Streamlit-directive character escaped and lines joined, so it shows as
    typed and never becomes an image, a link or a heading (an uploaded name must not fetch a URL)."""
    return _MARKDOWN.sub(r"\\\1", str(value)).replace("\r", " ").replace("\n", " ")


def as_code(value: object) -> str:
    """Text in a fenced block whose fence is longer than any run of backticks in it (it cannot close it)."""
    text = str(value)
    fence = "`" * max(3, max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    return f"\n\n{fence}\n{text}\n{fence}\n"


@contextmanager
def shown_inline(what: str) -> Iterator[None]:
    """Any error in the block becomes an inline st.error saying what failed and why; the rest of the page
    still renders. Streamlit's own stop / rerun signals are BaseExceptions and pass through."""
    try:
        yield
    except ServesimError as exc:
        st.error(f"**{as_text(what)}** failed:{as_code(exc)}")
    except Exception as exc:  # a bug rather than bad input: still a message, not a traceback box
        st.error(f"**{as_text(what)}** failed with an unexpected {type(exc).__name__}: {as_text(exc)}")


# --- pure, cached computations --------------------------------------------------------------------------


@st.cache_data(max_entries=64, show_spinner=False)
def cached_run(
    yaml_text: str,
    base_dir: str,
    requests: int | None,
    replications: int | None,
    horizon_budget: int | None,
    seed: int,
    _progress: bool = False,
) -> tuple[dict, RunLog]:
    scenario = parse_scenario_text(yaml_text, base_dir=base_dir)
    # Created inside the cached function, so that a cache hit replays it (and its removal) harmlessly.
    bar = st.progress(0.0, text="Replication 1 …") if _progress else None
    result = planner.run(
        scenario,
        planner.RunSize(requests, replications, horizon_budget),
        seed=seed,
        on_replication=(lambda done, total: bar.progress(done / total, text=f"Replication {done} of {total} done"))
        if bar is not None
        else None,
    )
    if bar is not None:
        bar.empty()
    return result.summary, result.run


def run_cached(scenario: Scenario, size: planner.RunSize, seed: int) -> RunResult:
    """A cached run; one expected to take more than a couple of seconds shows its progress."""
    long = planner.estimated_seconds(scenario, size) > PROGRESS_AFTER_S
    summary, run = cached_run(
        scenario.to_yaml(),
        str(base_dir(scenario)),
        size.requests,
        size.replications,
        size.horizon_budget,
        seed,
        _progress=long and planner.plan(scenario, size).replications > 1,
    )
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


# --- scenario choice -----------------------------------------------------------------------------------


def shipped_scenarios() -> dict[str, Path]:
    return {path.stem: path for path in sorted(SCENARIOS.glob("*.yaml"))}


def choose_scenario() -> tuple[Scenario, str]:
    """The scenario the knobs start from, and its identity (knobs reset when it changes)."""
    shipped = shipped_scenarios()
    names = list(shipped)
    with st.sidebar:
        st.header("Scenario")
        upload = st.file_uploader(
            "Upload a scenario (YAML)",
            type=["yaml", "yml"],
            key="upload",
            help="Validated before anything runs; the shipped scenarios are examples.",
        )
        index = names.index(read_address(names))
        choice = st.selectbox("Shipped scenario", names, index=index, key="scenario", disabled=upload is not None)
        st.caption(
            "The address bar keeps the scenario, the knobs you change and the open tab: copy it to share this page."
        )
    if upload is not None:
        scenario = parse_upload(upload.name, upload.getvalue())
        if scenario is not None:
            return scenario, f"upload:{upload.name}:{hashlib.sha256(upload.getvalue()).hexdigest()}"
    try:
        return load_scenario(shipped[choice]), f"shipped:{choice}"
    except ServesimError as exc:
        st.error(f"Shipped scenario {as_text(choice)} does not load:{as_code(exc)}")
        st.stop()


def read_address(names: list[str]) -> str:
    """The scenario to open first: the one the address names (a shared link), else the default. On the
    session's first run the address's knob values and tab are kept for that scenario's knobs."""
    params = st.query_params
    named = params.get("scenario")
    chosen = named if named in names else (DEFAULT_SCENARIO if DEFAULT_SCENARIO in names else names[0])
    if "_address_read" not in st.session_state:
        st.session_state["_address_read"] = chosen
        if named == chosen:
            st.session_state[URL_KNOBS] = {k: v for k, v in params.items() if k not in ("scenario", "view")}
            if params.get("view"):
                st.session_state["view"] = params["view"]
    return st.session_state["_address_read"]


def write_address(identity: str) -> None:
    """The address bar holds the shipped scenario, every knob that differs from it and the open tab, so
    that a copied link reopens this page (an uploaded scenario cannot travel in a link: knobs only)."""
    params: dict[str, str] = {}
    if identity.startswith("shipped:"):
        params["scenario"] = identity.removeprefix("shipped:")
    for name, default in (st.session_state.get(DEFAULTS) or {}).items():
        value = st.session_state.get(knob_key(name))
        if value is not None and value != default:
            params[name] = json.dumps(value)
    if st.session_state.get("view"):
        params["view"] = str(st.session_state["view"])
    if dict(st.query_params) != params:
        st.query_params.from_dict(params)


def initial(name: str, default: Any, options: list | None = None, low: float | None = None) -> Any:
    """A knob's first value: the scenario's own, or the shared link's when it is a valid one."""
    st.session_state.setdefault(DEFAULTS, {})[name] = default
    raw = (st.session_state.get(URL_KNOBS) or {}).get(name)
    if raw is None:
        return default
    try:
        value = json.loads(raw)
    except ValueError:
        return default
    if options is not None:
        return value if value in options else default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return default
    if low is not None and value < low:
        return default
    if isinstance(default, int) and not isinstance(default, bool):
        return int(value) if float(value).is_integer() else default
    return float(value)


def parse_upload(name: str, data: bytes) -> Scenario | None:
    """The uploaded scenario, or None after showing why it is not valid (field by field)."""
    if len(data) > UPLOAD_LIMIT_BYTES:
        st.error(f"**{as_text(name)}** is {len(data):,} bytes; scenarios are limited to {UPLOAD_LIMIT_BYTES:,} bytes.")
        return None
    try:
        # An upload may name shipped data files only (models/, scenarios/), never other host files.
        return parse_scenario_text(
            data.decode("utf-8", errors="replace"), base_dir=SCENARIOS, source=name, allowed_roots=shipped_data_roots()
        )
    except ServesimError as exc:
        st.error(f"**{as_text(name)}** is not a valid scenario — showing the shipped scenario instead.{as_code(exc)}")
    except Exception as exc:  # e.g. a structure the schema's own checks did not foresee
        st.error(
            f"**{as_text(name)}** could not be read ({type(exc).__name__}: {as_text(exc)}) — showing the shipped scenario instead."
        )
    return None


# --- knobs: each returns overrides ----------------------------------------------------------------------


def knob_traffic(scenario: Scenario) -> dict[str, Any]:
    st.subheader("Traffic")
    knob = planner.load_knob(scenario)
    if knob is not None:
        path, label, value = knob
        new = st.number_input(
            label,
            min_value=min(0.01, value),
            value=initial("rate", value, low=min(0.01, value)),
            step=max(round(value / 10, 2), 0.01),
            format="%g",
            key=knob_key("rate"),
        )
        return {path: new} if new != value else {}
    factor = st.slider(
        "Load (× the scenario's rates)", 0.1, 5.0, initial("load", 1.0, low=0.1), 0.05, key=knob_key("load")
    )
    return planner.scale_load(scenario, factor) if factor != 1 else {}


def knob_deployment(scenario: Scenario) -> dict[str, Any]:
    from sim.spec.hardware import load_catalogue

    st.subheader("Deployment")
    deployment = scenario.deployment
    overrides: dict[str, Any] = {}
    replicas = st.number_input(
        "Replicas", 1, None, initial("replicas", deployment.replicas, low=1), key=knob_key("replicas")
    )
    if replicas != deployment.replicas:
        overrides["deployment.replicas"] = int(replicas)
    try:
        catalogue = load_catalogue()
    except ServesimError:
        catalogue = {}
    own = deployment.hardware.name or "as in scenario"
    options = [own] + [name for name in catalogue if name != own]
    label = {name: f"{name} — ${hw.usd_per_hour:g}/h" for name, hw in catalogue.items()}
    if deployment.hardware.usd_per_hour is not None:
        label[own] = f"{own} — ${deployment.hardware.usd_per_hour:g}/h"
    hardware = st.selectbox(
        "Hardware (price per replica)",
        options,
        index=options.index(initial("hardware", own, options)),
        format_func=lambda n: label.get(n, n),
        key=knob_key("hardware"),
        help="Sets the price. Speed comes from the stage costs (or a calibrated profile).",
    )
    if hardware != own:
        overrides["deployment.hardware"] = {"name": hardware, "usd_per_hour": catalogue[hardware].usd_per_hour}
    routes = ["shared_queue", "round_robin", "least_outstanding", "power_of_two", "random"]
    routing = st.selectbox(
        "Routing", routes, index=routes.index(initial("routing", deployment.routing, routes)), key=knob_key("routing")
    )
    if routing != deployment.routing:
        overrides["deployment.routing"] = routing
    return overrides


def knob_batching(scenario: Scenario) -> dict[str, Any]:
    stage_name = planner.model_stage_name(scenario)
    if stage_name is None:
        return {}
    st.subheader(f"Batching ({as_text(stage_name)})")
    current = next(s for s in scenario.raw["stages"] if s["name"] == stage_name).get("batching", {"policy": "none"})
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
    return {} if new == current else {f"stages.{stage_name}.batching": new}


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
    overrides = planner.stage_cost_overrides(scenario, stage, 1.0 / speedup)
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
                if workers != stage.workers:
                    overrides[f"stages.{stage.name}.workers"] = int(workers)
        for name in planner.scalable_stages(scenario):
            factors = [0.25, 0.33, 0.5, 0.67, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0]
            factor = st.select_slider(
                f"{name}: time ×",
                options=factors,
                value=initial(f"cost.{name}", 1.0, factors),
                key=knob_key(f"cost.{name}"),
                help="0.5 = the stage takes half as long",
            )
            overrides.update(planner.stage_cost_overrides(scenario, name, factor))
    return overrides


def knob_slo(scenario: Scenario) -> dict[str, Any]:
    st.subheader("Latency budget")
    value = st.number_input(
        "p99 SLO (ms)",
        min_value=0.0,
        value=initial("slo", scenario.slo.p99_ms, low=0.0),
        step=5.0,
        key=knob_key("slo"),
        placeholder="none",
    )
    if value is None or value == 0:
        return {"slo.p99_ms": None} if scenario.slo.p99_ms is not None else {}
    return {"slo.p99_ms": float(value)} if value != scenario.slo.p99_ms else {}


def knob_autoscaling(scenario: Scenario) -> dict[str, Any]:
    keys = planner.autoscaling_keys(scenario)
    if keys is None:
        return {}
    policy = scenario.deployment.autoscaling
    st.subheader(f"Autoscaling ({policy.policy})")
    low, high = keys
    overrides: dict[str, Any] = {}
    new_low = st.number_input(
        "Min replicas", 0, None, initial("min_replicas", policy.min_replicas, low=0), key=knob_key("min_replicas")
    )
    new_high = st.number_input(
        "Max replicas", 1, None, initial("max_replicas", policy.max_replicas, low=1), key=knob_key("max_replicas")
    )
    if new_low != policy.min_replicas:
        overrides[f"deployment.autoscaling.{low}"] = int(new_low)
    if new_high != policy.max_replicas:
        overrides[f"deployment.autoscaling.{high}"] = int(new_high)
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
        overrides.update(planner.cold_start_overrides(scenario, new_cold))
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


def scoped(name: str) -> str:
    """Widget key of a widget whose default comes from the scenario: a new scenario gets a new widget.

    Streamlit's frontend keeps its own value for a widget it already shows, even when `value=` changes or
    the server deletes the key from session state, and sends that stale value back on the next click; only
    a new key (a new widget id) makes it draw the new default."""
    return f"{name}@{st.session_state.get(GENERATION, 0)}"


def knob_key(name: str) -> str:
    return scoped(KNOB + name)


def enter_scenario(identity: str) -> None:
    """Start a new generation of scenario-bound widgets when the scenario changes (switch or upload)."""
    if st.session_state.get("_knobs_for") == identity:
        return
    if "_knobs_for" in st.session_state:  # a switch or an upload: the shared link's knobs were for another
        st.session_state.pop(URL_KNOBS, None)
    st.session_state[GENERATION] = st.session_state.get(GENERATION, -1) + 1
    st.session_state["_knobs_for"] = identity


def apply_knobs(scenario: Scenario, identity: str) -> Scenario:
    enter_scenario(identity)
    st.session_state[DEFAULTS] = {}  # filled by `initial` as the knobs shown this run are drawn
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


# --- the run and the verdict ---------------------------------------------------------------------------


@dataclass
class Context:
    scenario: Scenario
    result: RunResult
    size: planner.RunSize
    seed: int

    @property
    def summary(self) -> dict:
        return self.result.summary

    @property
    def slo_ms(self) -> float | None:
        return self.scenario.slo.p99_ms

    @property
    def key(self) -> tuple[str, str, int]:
        return self.scenario.to_yaml(), str(base_dir(self.scenario)), self.seed


def run_for_display(scenario: Scenario) -> Context:
    seed = scenario.seed
    key = (scenario.to_yaml(), seed)
    precise = st.session_state.setdefault("_precise", {})
    if key in precise:
        summary, run = precise[key]
        return Context(scenario, RunResult(scenario, run, summary), planner.PRECISE, seed)
    seconds = planner.estimated_seconds(scenario, planner.QUICK)
    text = (
        f"Simulating {planner.describe(scenario, planner.QUICK)}: about {seconds:,.0f} s…"
        if seconds > PROGRESS_AFTER_S
        else "Simulating…"
    )
    with st.spinner(text, show_time=seconds > PROGRESS_AFTER_S):
        result = run_cached(scenario, planner.QUICK, seed)
    return Context(scenario, result, planner.QUICK, seed)


def run_precise(scenario: Scenario) -> None:
    seconds = planner.estimated_seconds(scenario, planner.PRECISE)
    bar = st.progress(0.0, text="Precise run…")
    with st.spinner(
        f"Precise run: {planner.plan(scenario, planner.PRECISE).expected_requests:,.0f} requests × "
        f"{planner.plan(scenario, planner.PRECISE).replications} replications, about {seconds:,.0f} s…",
        show_time=True,
    ):
        result = planner.run(
            scenario,
            planner.PRECISE,
            on_replication=lambda done, total: bar.progress(done / total, text=f"Replication {done} of {total}"),
        )
    bar.empty()
    store = st.session_state.setdefault("_precise", {})
    if len(store) >= 4:
        store.pop(next(iter(store)))
    store[(scenario.to_yaml(), scenario.seed)] = (result.summary, result.run)


def ci_text(summary: dict, key: str) -> str:
    """The 95% CI of latency `key` as '[low, high]' (ms), or 'n/a' where the run gives none."""
    return fmt_interval((summary.get("latency_ms_ci95") or {}).get(key), lambda v: f"{v:,.{_decimals(v)}f}")


def _decimals(value: float) -> int:
    return 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2


# Warnings shown beside the verdict rather than folded into the run's notes.
LOUD_WARNINGS = ("unstable", "no confidence intervals")


def show_verdict(ctx: Context) -> None:
    summary = ctx.summary
    budgets = (summary.get("slo") or {}).get("budgets") or {}
    cards = st.columns(6)
    for card, key in zip(cards, ("p50", "p95", "p99")):
        value = summary["latency_ms"][key]
        interval = ci_text(summary, key)
        budget = budgets.get(f"{key}_ms")
        card.metric(
            f"{key} latency {interval if interval != 'n/a' else '[CI n/a]'}",
            f"{value:,.1f} ms",
            f"{value - budget:+,.1f} ms" if budget else None,
            delta_color="inverse",
            border=True,
            help=f"[low, high] is the 95% confidence interval (ms) over {summary.get('replications')} replication(s)"
            + (" (sections of one run: batch means)" if summary.get("replications") == 1 else "")
            + "; n/a where the run gives no honest interval (see the warning)"
            + (f"; the delta is the distance to the {key} SLO of {budget:g} ms" if budget else ""),
        )
    offered = ctx.scenario.workload.arrival.mean_rate_rps
    cards[3].metric(
        "Throughput",
        f"{summary['throughput_rps']:,.1f}/s",
        border=True,
        delta=f"{(summary.get('rejected_fraction') or 0):.1%} rejected" if summary.get("rejected_fraction") else None,
        delta_color="inverse",
        help=f"requests served per second; offered {offered:,.1f} req/s",
    )
    cost = summary.get("cost") or {}
    per_1m = cost.get("usd_per_1m_queries")
    per_hour = cost.get("usd_per_hour")
    beside = [f"${per_hour:,.2f}/h"] if per_hour else []
    horizon = horizon_cost_text(cost)  # the CLI table's words for the same figure
    cards[4].metric(
        "$ per 1M queries",
        f"${per_1m:,.2f}" if per_1m is not None else "–",
        border=True,
        delta=" · ".join(beside + ([horizon] if horizon else [])) or None,
        delta_color="off",
        delta_arrow="off",
        help="hardware $/hour × replicas ÷ queries served per hour"
        + ("; a day's (or the measured horizon's) replica-hours × $/hour" if horizon else ""),
    )
    loads = summary.get("offered_load") or {}
    if loads:
        busiest = max(loads, key=loads.get)
        cards[5].metric(
            "Busiest stage",
            f"{loads[busiest]:.0%}",
            busiest,
            delta_color="off",
            delta_arrow="off",
            border=True,
            help="offered load ρ of the stage closest to saturation (≥ 100%: the queue grows without bound)",
        )

    slo = summary.get("slo") or {}
    p99, slo_ms = summary["latency_ms"]["p99"], ctx.slo_ms
    if slo.get("met") is None:
        st.info(f"No latency budget set: p99 is {plots.fmt_ms(p99)}. Set a p99 SLO in the sidebar to get a verdict.")
    else:
        low, high = (summary.get("latency_ms_ci95") or {}).get("p99") or (math.nan, math.nan)
        close = math.isfinite(low) and low <= (slo_ms or 0) <= high
        note = " The SLO is inside the 95% CI: too close to call on this run — run precisely." if close else ""
        attained = slo.get("attainment")
        share = f" ({attained:.1%} of requests within {slo_ms:g} ms)" if attained is not None else ""
        if slo["met"]:
            st.success(f"**Meets the SLO**: p99 {plots.fmt_ms(p99)} ≤ {slo_ms:g} ms{share}.{note}")
        else:
            failed = [k for k, ok in (slo.get("checks") or {}).items() if not ok]
            st.error(f"**Misses the SLO** ({', '.join(failed)}): p99 {plots.fmt_ms(p99)} > {slo_ms:g} ms{share}.{note}")
    per_window = window_verdict(slo.get("windows"))
    if per_window:  # the same sentence as `servesim run` (sim.present.windows)
        (st.error if (slo.get("windows") or {}).get("met") is False else st.info)(f"**Per window:** {per_window}.")
    for warning in summary.get("warnings") or []:
        if warning.startswith(LOUD_WARNINGS):
            text = as_text(warning)
            if warning.startswith("no confidence intervals") and ctx.scenario.replications > 1:
                text += f" (*Run precisely* runs the scenario's {ctx.scenario.replications})"
            st.warning(text)
    quiet = [w for w in summary.get("warnings") or [] if not w.startswith(LOUD_WARNINGS)]
    if quiet:
        with st.expander(f"{len(quiet)} note(s) on this run"):
            for warning in quiet:
                st.caption(as_text(warning))


def show_where_latency_lives(ctx: Context) -> None:
    left, right = st.columns([1, 1])
    latency = ctx.summary["latency_ms"]  # one p50 / p99 per page: the cards' (sim.metrics.summary)
    shares = plots.stage_shares(ctx.result.log, stage_columns(ctx.scenario), totals=latency)
    with left:
        st.markdown("#### Where latency lives")
        st.caption(dominant_stage_sentence(shares))
        st.altair_chart(charts.stage_breakdown_chart(shares), width="stretch")
    with right:
        st.markdown("#### Latency distribution")
        st.caption("CDF of end-to-end latency; the dot is p99, the dashed line the p99 SLO.")
        st.altair_chart(charts.cdf_chart(ctx.result.log, ctx.slo_ms, p99_ms=latency["p99"]), width="stretch")
    if time_dependent(ctx.scenario):
        show_per_window(ctx)


def show_per_window(ctx: Context) -> None:
    """The run's p99 window by window, beside the one p99 of the cards (a load that changes over time)."""
    from sim.metrics.timeline import windowed
    from sim.metrics.windows import readable_window_s

    log = ctx.result.log
    window_s = readable_window_s(float(log["arrival_ms"].max()) / 1000.0)
    st.markdown("#### Over time")
    st.caption(
        f"The p99 on the cards ({ctx.summary['latency_ms']['p99']:,.1f} ms) is the whole run's; here "
        f"each {planner.format_duration(window_s)} window's own (every request arriving in it, warm-up "
        "included, pooled over replications)."
    )
    st.dataframe(per_window_table(windowed(ctx.result.run, ctx.scenario, window_s)), width="stretch", hide_index=True)


def per_window_table(windows: pd.DataFrame) -> pd.DataFrame:
    """`sim.metrics.timeline.windowed` as the page shows it."""
    columns = {
        "start_s": "from",
        "arrival_rps": "req/s",
        "paid_replicas": "paid replicas",
        "p50_ms": "p50 (ms)",
        "p99_ms": "p99 (ms)",
        "rejected_fraction": "rejected",
        "usd_per_hour": "$/h",
    }
    table = windows[[c for c in columns if c in windows]].rename(columns=columns)
    table["from"] = [clock_time(s) for s in windows["start_s"]]
    return table.round(2)


def clock_time(seconds: float) -> str:
    from sim.present.windows import clock

    return clock(seconds, with_seconds=seconds % 60 != 0)


def dominant_stage_sentence(shares: pd.DataFrame) -> str:
    """'At p99, preprocess takes 71% of the time (6% of it queueing).'"""
    if shares.empty or "p99" not in shares.index:
        return ""
    row = shares.loc["p99"]
    grouped: dict[str, float] = {}
    for column, value in row.items():
        grouped[column.removesuffix("_queue")] = grouped.get(column.removesuffix("_queue"), 0.0) + value
    total = sum(grouped.values())
    if total <= 0:
        return ""
    stage = max(grouped, key=grouped.get)
    queue = row.get(f"{stage}_queue", 0.0)
    queue_note = f" ({queue / total:.0%} of the total queueing for it)" if queue / total >= 0.02 else ""
    return (
        f"At p99, **{as_text(stage)}** takes {grouped[stage] / total:.0%} of a request's {total:,.1f} ms{queue_note}."
    )


# --- views (tabs) --------------------------------------------------------------------------------------


def view_stages(ctx: Context) -> None:
    stages = ctx.summary.get("stages") or {}
    loads = ctx.summary.get("offered_load") or {}
    if stages:
        table = pd.DataFrame(stages).T.rename(columns=lambda c: f"{c} (ms)")
        table.index = [name.replace("_queue", " (queue)") for name in table.index]
        table["offered load"] = [f"{loads[name]:.0%}" if name in loads else "" for name in table.index]
        table.index.name = "stage"
        st.dataframe(table.style.format(precision=2), width="stretch")
    utilization = ctx.summary.get("utilization")
    if utilization is not None and math.isfinite(utilization):
        st.caption(f"Model instances busy {utilization:.0%} of the time. Queue rows are waits before the stage.")
    log = plots.measured(ctx.result.log)
    if "batch_size" in log and (log["batch_size"] > 1).any():
        counts = log.loc[log["batch_size"] > 0, "batch_size"].value_counts(normalize=True).sort_index()
        st.markdown("**Batch sizes** (share of requests by the size of the batch they rode in)")
        st.bar_chart(counts.rename("share of requests"), height=220)


def view_compare(ctx: Context) -> None:
    stage = planner.model_stage_name(ctx.scenario)
    default = (
        "\n".join(
            [
                "no batching: batching=none",
                "static 8: batching=static(batch_size=8,timeout_ms=20)",
                "dynamic 8/2ms: batching=dynamic(max_batch_size=8,max_queue_delay_ms=2)",
                "dynamic 32/5ms: batching=dynamic(max_batch_size=32,max_queue_delay_ms=5)",
            ]
        )
        if stage
        else "\n".join(
            f"{n} replicas: replicas={n}"
            for n in (ctx.scenario.deployment.replicas, ctx.scenario.deployment.replicas + 1)
        )
    )
    st.caption(
        "Two to four variants of the scenario shown above, on the same traffic and seed. One per line, "
        "`NAME: SETTING, ...` — the syntax of `servesim compare --variant`."
    )
    text = st.text_area("Variants", default, height=120, key=scoped("compare.variants"))
    lines = [line for line in text.splitlines() if line.strip()]
    if not 2 <= len(lines) <= 4:
        st.warning("Give two to four variants, one per line.")
        return
    try:
        variants = compare.parse_variants(lines, ctx.scenario)
    except ServesimError as exc:
        st.error(as_text(exc))
        return
    names = [variant.name for variant in variants]
    baseline = st.selectbox("Baseline (deltas are against it)", names, key=scoped("compare.baseline"))
    with st.spinner(f"Running {len(variants)} variants on seed {ctx.seed}…", show_time=True):
        comparison = compare.run_comparison(
            ctx.scenario,
            variants,
            size=planner.QUICK,
            seed=ctx.seed,
            runner=lambda s, size, seed: run_cached(s, size, seed),
        )
    cells = planner.comparison_cells(comparison, baseline or names[0])
    # Variant names head the columns: escaped as text (markdown_table escapes the `|` itself).
    cells.columns = [as_text(name).replace("\\|", "|") for name in cells.columns]
    st.markdown(compare.markdown_table(cells))
    shaky = [r.variant.name for r in comparison.results if planner.unstable(r.summary)]
    st.caption(
        f"★ best per metric among the stable variants (ties within {compare.TIE_RELATIVE:.0%}); [low, high] is the "
        f"95% CI; Δ is the difference from **{baseline}**, ✱ significant at 5% (Welch's t-test on the "
        f"per-replication values, or non-overlapping 95% CIs for a single replication), n.s. not; "
        f"{planner.describe(ctx.scenario, planner.QUICK)} per variant."
    )
    for name in shaky:
        st.warning(
            f"**{as_text(name)}** is unstable: a queue grows without bound, so its latencies depend only on how long "
            "the run is. It is left out of the charts and of the stars."
        )
    drawn = [r for r in comparison.results if r.variant.name not in shaky]
    if drawn:
        left, right = st.columns(2)
        with left:
            st.markdown("**Latency CDF by variant**")
            p99 = {r.variant.name: r.summary["latency_ms"]["p99"] for r in drawn}
            st.altair_chart(
                charts.cdf_chart({r.variant.name: r.result.log for r in drawn}, ctx.slo_ms, p99_ms=p99),
                width="stretch",
            )
        with right:
            st.markdown("**Where latency lives, by variant**")
            shares = {
                r.variant.name: plots.stage_shares(
                    r.result.log, stage_columns(r.scenario), totals=r.summary["latency_ms"]
                )
                for r in drawn
            }
            st.altair_chart(charts.stage_breakdown_chart(shares), width="stretch")
    from sim.present.report import report_zip

    # Deferred: the PNGs of the report are drawn only when the button is clicked.
    st.download_button(
        "Download the comparison report (Markdown + PNGs, .zip)",
        lambda: report_zip(comparison),
        file_name=f"{ctx.scenario.name}-compare.zip",
        mime="application/zip",
        on_click="ignore",
        key="compare.download",
    )


def view_load_curve(ctx: Context) -> None:
    st.caption(
        "p99 as the request rate grows towards the rate that saturates the busiest stage "
        f"({planner.describe(ctx.scenario, planner.SWEEP)} per point; shaded: 95% CI)."
    )
    if not long_sweep_confirmed(ctx, len(compare.LOAD_FRACTIONS), "load_curve"):
        return
    with st.spinner("Sweeping the request rate…", show_time=True):
        curve = cached_load_curve(*ctx.key)
    knee = compare.knee_index(curve["rate_rps"], curve["p99"])
    best = compare.max_rate_within_slo(curve, ctx.slo_ms)
    capacity = planner.capacity_rps(ctx.scenario)
    cols = st.columns(3)
    cols[0].metric("Saturation rate", f"{capacity:,.0f} req/s" if math.isfinite(capacity) else "–", border=True)
    cols[1].metric("Knee", f"{curve['rate_rps'].iloc[knee]:,.0f} req/s" if knee is not None else "–", border=True)
    cols[2].metric(
        "Max rate within SLO",
        f"{best:,.0f} req/s" if best is not None else ("–" if ctx.slo_ms is None else "none"),
        border=True,
    )
    st.pyplot(
        plots.load_curve_figure(curve, ctx.slo_ms, {"": knee}, ctx.scenario.workload.arrival.mean_rate_rps),
        clear_figure=True,
    )


def view_tradeoff(ctx: Context) -> None:
    stage = planner.model_stage_name(ctx.scenario)
    if stage is None:
        st.info("This scenario has no model stage to batch.")
        return
    sizes = st.multiselect(
        "Dynamic batching: max batch sizes", [1, 2, 4, 8, 16, 32, 64, 128], [1, 8, 32], key="tradeoff.sizes"
    )
    delay = st.number_input("Max queue delay (ms)", 0.0, 1000.0, 2.0, 0.5, key="tradeoff.delay")
    policies = tuple(
        (
            f"B={b}, W={delay:g} ms" if b > 1 else "no batching",
            f"{{policy: dynamic, max_batch_size: {b}, max_queue_delay_ms: {delay}}}" if b > 1 else "{policy: none}",
        )
        for b in sorted(sizes)
    )
    if not policies:
        return
    if not long_sweep_confirmed(ctx, len(policies) * len(compare.LOAD_FRACTIONS), "tradeoff"):
        return
    with st.spinner("Sweeping load for each batching setting…", show_time=True):
        try:
            curves = cached_tradeoff(*ctx.key, policies)
        except ServesimError as exc:
            st.error(as_text(exc))
            return
    st.caption(
        "Bigger batches raise the throughput a replica sustains and cost tail latency at low load; "
        "the best setting is the one whose curve stays under the SLO furthest to the right."
    )
    st.pyplot(plots.tradeoff_figure(curves, ctx.slo_ms), clear_figure=True)
    bottleneck = busiest_stage(ctx.scenario)
    if bottleneck and bottleneck != stage:
        st.info(
            f"The busiest stage is **{bottleneck}**, not {stage}: past the batch size that relieves {stage}, "
            f"bigger batches cannot raise the capacity — curves that coincide say so. Add {bottleneck} capacity first."
        )


COST_POINTS = 16  # replica counts simulated per sweep; a wider range is sampled evenly


def replica_counts(ctx: Context) -> tuple[list[int], int]:
    """The replica counts the cost sweep simulates (from one below the smallest stable count, at most
    COST_POINTS of them, no ceiling), and that smallest stable count."""
    import numpy as np

    from sim.analysis.sizing import smallest_stable

    first = smallest_stable(ctx.scenario)
    current = ctx.scenario.deployment.replicas
    upper = max(64, 4 * first, 2 * current)
    default = (max(1, first - 1), max(first + 7, math.ceil(1.5 * first), min(2 * current, upper)))
    low, high = st.slider(
        "Replicas from / to",
        1,
        upper,
        default,
        key=scoped("cost.range"),
        help=f"The smallest count that keeps up with the load is {first}.",
    )
    low = max(low, first - 1, 1)  # all counts further below are unstable too: one such bar says it
    if high < low:
        st.info(f"Every count up to {high} is unstable: at least {first} replicas are needed.")
        return [], first
    counts = sorted({int(round(x)) for x in np.linspace(low, high, min(COST_POINTS, high - low + 1))})
    return counts, first


LONG_SWEEP_S = 10.0  # a sweep expected to take longer waits for the planner to ask for it


def long_sweep_confirmed(ctx: Context, points: int, name: str) -> bool:
    """True when a sweep of `points` short runs is quick, or the planner has asked for a long one."""
    seconds = planner.estimated_seconds(ctx.scenario, planner.SWEEP) * points
    if seconds <= LONG_SWEEP_S:
        return True
    return st.checkbox(
        f"Run this sweep: {points} runs of {planner.describe(ctx.scenario, planner.SWEEP)}, about {seconds:,.0f} s",
        key=scoped(f"{name}.go"),
    )


def busiest_stage(scenario: Scenario) -> str | None:
    from sim.metrics.load import offered_load

    loads = offered_load(scenario)
    return max(loads, key=loads.get) if loads else None


def view_cost(ctx: Context) -> None:
    counts, first = replica_counts(ctx)
    if not counts:
        return
    if not long_sweep_confirmed(ctx, len(counts), "cost"):
        return
    with st.spinner(f"Sweeping {len(counts)} replica counts…", show_time=True):
        curve = cached_replicas_curve(*ctx.key, tuple(counts))
    top = counts[-1]
    if first > 1:
        st.caption(
            f"Below {first} replica{'s' if first != 1 else ''} the offered load exceeds what the replicas serve "
            f"(unstable: the queue grows without bound); the sweep starts at {counts[0]}."
        )
    st.pyplot(plots.cost_replicas_figure(curve, ctx.slo_ms), clear_figure=True)
    stable = curve[curve["stable"]]
    if ctx.slo_ms and not stable.empty and not (stable["p99"] <= ctx.slo_ms).any():
        floor = stable["p99"].min()
        st.info(
            f"No replica count up to {top} meets the p99 SLO of {ctx.slo_ms:g} ms: p99 levels off near "
            f"{floor:,.0f} ms. Replicas remove queueing; the rest is service time — see *Where latency lives* "
            "and try the stage costs in the sidebar."
        )
    st.dataframe(cost_table(curve), hide_index=True, width="stretch")


def cost_table(curve: pd.DataFrame) -> pd.DataFrame:
    """The replicas curve as display strings: an unstable count says so instead of showing numbers."""

    def number(value: Any, spec: str) -> str:
        return "–" if value is None or pd.isna(value) else format(value, spec)

    rows = []
    for _, point in curve.iterrows():
        ok = bool(point.get("stable", True))
        met = point.get("slo_met")
        rows.append(
            {
                "replicas": int(point["replicas"]),
                "busiest stage load": number(point["offered_load"], ".0%"),
                "p50 (ms)": number(point.get("p50"), ",.1f") if ok else "unstable",
                "p99 (ms)": number(point.get("p99"), ",.1f") if ok else "unstable",
                "throughput (req/s)": number(point.get("throughput_rps"), ",.1f") if ok else "unstable",
                "$ per 1M queries": number(point.get("usd_per_1m_queries"), ",.3f") if ok else "unstable",
                "SLO met": ("yes" if met else "no" if met is not None and not pd.isna(met) else "–")
                if ok
                else "no (unstable)",
            }
        )
    return pd.DataFrame(rows)


def view_sizing(ctx: Context) -> None:
    """`servesim size` in the planner: the smallest replicas (min_replicas when autoscaled) and the cheapest
    hardware meeting a p99 SLO at a target rate, by the same search (sim.analysis.sizing.size)."""
    from sim.analysis.sizing import parse_candidates, size
    from sim.spec.hardware import load_catalogue

    scenario = ctx.scenario
    knob = "min_replicas" if scenario.deployment.autoscaling is not None else "replicas"
    mean_rps = scenario.workload.arrival.mean_rate_rps
    cols = st.columns([1, 1, 1, 2, 1], vertical_alignment="bottom")
    target = cols[0].number_input(
        "Target rate (req/s, mean)",
        min_value=min(0.01, mean_rps),
        value=float(mean_rps),
        format="%g",
        key=scoped("size.rate"),
        help="The scenario's traffic scaled to this mean rate",
    )
    slo = cols[1].number_input(
        "p99 SLO (ms)", min_value=0.0, value=float(ctx.slo_ms or 0.0), step=5.0, key=scoped("size.slo")
    )
    p95 = cols[2].number_input(
        "p95 SLO (ms)",
        min_value=0.0,
        value=float(scenario.slo.p95_ms or 0.0),
        step=5.0,
        key=scoped("size.p95"),
        help="Optional (0: none): judged beside the p99",
    )
    catalogue = load_catalogue()
    own = scenario.deployment.hardware.name
    hardware = cols[3].text_input(
        "Hardware candidates",
        own if own in catalogue else "",
        key=scoped("size.hardware"),
        help="NAME[@SPEEDUP],... from the catalogue (the `servesim size --hardware` syntax); "
        "@2 = a forward pass twice as fast. Empty: the scenario's own hardware.",
    )
    go = cols[4].button("Size", type="primary", key="size.run")
    if not slo and not p95:
        st.info("Set a p99 (or p95) SLO to size against.")
        return
    budget = budget_text(slo, p95)
    candidates = parse_candidates(hardware.strip() or None, scenario, catalogue)
    sized = (
        scenario
        if math.isclose(target, mean_rps)
        else scenario.with_overrides(planner.scale_load(scenario, target / mean_rps))
    )
    run_plan = planner.plan(sized, planner.QUICK)
    replications = max(2, run_plan.replications)  # sizing judges by the CI's upper end: it needs two at least
    key = (sized.to_yaml(), slo, p95, hardware, ctx.seed)
    if go:
        probes: list[str] = []
        with st.status(f"Sizing {knob} for {budget} at {target:,.4g} req/s…", expanded=False) as status:

            def shown(probe) -> None:
                probes.append(
                    f"Probe {len(probes) + 1}: {probe.hardware}, {knob} = {probe.replicas}: "
                    f"p99 {plots.fmt_ms(probe.p99_ms)} → {probe.verdict}"
                )

            def progress(state) -> None:
                status.update(label=" · ".join([*probes[-1:], sizing_eta(state)]))

            result = size(
                sized,
                slo or None,
                candidates,
                slo_p95_ms=p95 or None,
                replications=replications,
                requests=run_plan.requests,
                seed=ctx.seed,
                on_probe=shown,
                on_progress=progress,
                workers=min(2, os.cpu_count() or 1),  # each probe's replications side by side (same answer)
            )
            status.update(label=f"Sized: {len(probes)} probes", state="complete")
        st.session_state["_sizing"] = (key, result)
    stored = st.session_state.get("_sizing")
    if not stored or stored[0] != key:
        windows = " and every window's p99 (the load changes over time)" if planner.time_dependent(sized) else ""
        st.info(
            f"Press *Size* to search {knob} on each candidate, galloping up (+1, +2, +4, …) to its ceiling until "
            f"the 95% CI upper end{windows} is within {budget}, then bisecting "
            f"({describe_probe(sized, run_plan, replications)} per probe); then re-check on fresh seeds."
        )
        return
    show_sizing(stored[1], knob, slo, p95)


def sizing_eta(state) -> str:
    """'about 4 probes left (at most 9): about 2 min (at most 4 min)' for a sizing's SizingProgress."""
    left = f"about {state.probes_expected:.0f} probes left (at most {state.probes_left})"
    if state.eta_s is None:
        return left
    return f"{left}: about {duration_text(state.expected_eta_s)} (at most {duration_text(state.eta_s)})"


def duration_text(seconds: float) -> str:
    return f"{seconds / 60:,.0f} min" if seconds >= 90 else f"{seconds:,.0f} s"


def budget_text(p99_ms: float, p95_ms: float) -> str:
    """'p99 ≤ 100 ms and p95 ≤ 50 ms' for the budgets set (0: none)."""
    given = (("p99", p99_ms), ("p95", p95_ms))
    return " and ".join(f"{label} ≤ {value:g} ms" for label, value in given if value)


def describe_probe(scenario: Scenario, run_plan: planner.RunPlan, replications: int) -> str:
    what = f"{run_plan.requests:,} requests" if run_plan.requests is not None else "the whole horizon"
    return f"{what} × {replications} replications"


def show_sizing(result, knob: str, slo: float, p95: float = 0.0) -> None:
    import altair as alt

    from sim.present.sizing_plot import searched_text

    chosen = result.chosen
    if chosen is None:
        st.error(f"No candidate meets {budget_text(slo, p95)}.")
    else:
        cards = st.columns(4)
        cards[0].metric(
            f"Smallest {knob}", f"{chosen.replicas}", chosen.hardware, delta_color="off", delta_arrow="off", border=True
        )
        cards[1].metric(
            "p99",
            plots.fmt_ms(chosen.p99_ms),
            f"95% CI {chosen.p99_ci95[0]:,.1f}–{chosen.p99_ci95[1]:,.1f} ms",
            delta_color="off",
            delta_arrow="off",
            border=True,
        )
        cards[2].metric(
            "$ per hour", f"${chosen.usd_per_hour:,.2f}" if chosen.usd_per_hour is not None else "–", border=True
        )
        cards[3].metric(
            "$ per 1M queries",
            f"${chosen.usd_per_1m_queries:,.2f}" if chosen.usd_per_1m_queries is not None else "–",
            border=True,
        )
        recheck = result.recheck
        st.success(
            f"**{chosen.hardware}, {knob} = {chosen.replicas}** meets {budget_text(slo, p95)}; re-checked on fresh seeds: "
            f"p99 {plots.fmt_ms(recheck.p99_ms)} → {recheck.verdict}."
        )
        fewer = result.one_fewer_recheck
        if fewer is not None:
            worst = (
                f", worst window p99 {plots.fmt_ms(fewer.worst_window_p99_ms)}"
                if fewer.worst_window_p99_ms is not None
                else ""
            )
            st.caption(
                f"One fewer ({knob} = {fewer.replicas}) on fresh seeds: p99 {plots.fmt_ms(fewer.p99_ms)} "
                f"[{fewer.p99_ci95[0]:,.1f}, {fewer.p99_ci95[1]:,.1f}]{worst} → {fewer.verdict}."
            )
    for note in result.notes:
        st.warning(as_text(note))
    st.caption(searched_text(result.ranges, result.knob) + ".")
    frontier = result.frontier()
    if frontier.empty:
        return
    frontier = frontier.assign(
        p99_low=frontier["p99_ci95"].map(lambda ci: ci[0]), p99_high=frontier["p99_ci95"].map(lambda ci: ci[1])
    )
    base = alt.Chart(frontier).encode(
        x=alt.X("replicas:Q", title=knob, scale=alt.Scale(zero=False)),
        color=alt.Color("hardware:N", legend=alt.Legend(orient="bottom", title=None)),
    )
    latency = base.mark_line(point=True).encode(
        y=alt.Y("p99_ms:Q", title="p99 latency (ms)", scale=alt.Scale(type="log"))
    ) + base.mark_errorbar().encode(y="p99_low:Q", y2="p99_high:Q")
    if slo:
        latency += alt.Chart(pd.DataFrame({"slo": [slo]})).mark_rule(strokeDash=[4, 3], color="red").encode(y="slo:Q")
    cost = base.mark_line(point=True).encode(y=alt.Y("usd_per_1m_queries:Q", title="$ per 1M queries"))
    left, right = st.columns(2)
    left.altair_chart(latency.properties(title="p99 by " + knob, height=260), width="stretch")
    right.altair_chart(cost.properties(title="cost by " + knob, height=260), width="stretch")
    shown = [
        "hardware",
        "replicas",
        "p99_ms",
        "p99_low",
        "p99_high",
        *(["worst_window_p99_ms"] if frontier["worst_window_p99_ms"].notna().any() else []),
        *(["p95_ms"] if p95 else []),
        "usd_per_hour",
        *(["usd_per_day"] if frontier["usd_per_day"].notna().any() else []),
        "usd_per_1m_queries",
        "verdict",
    ]
    st.dataframe(
        frontier[shown]
        .rename(
            columns={
                "replicas": knob,
                "p99_ms": "p99 (ms)",
                "p99_low": "CI low",
                "p99_high": "CI high",
                "worst_window_p99_ms": "worst window p99 (ms)",
                "p95_ms": "p95 (ms)",
                "usd_per_hour": "$/h",
                "usd_per_day": "$/day",
                "usd_per_1m_queries": "$/1M",
            }
        )
        .style.format(precision=2),
        hide_index=True,
        width="stretch",
    )


LLM_METRICS = {"ttft_ms": "TTFT", "tpot_ms": "TPOT", "itl_ms": "ITL", "e2el_ms": "end-to-end"}


def view_llm(ctx: Context) -> None:
    """TTFT / TPOT / ITL (vLLM `bench serve` vocabulary), tokens/s and goodput from the summary's `llm` key;
    distributions and the batch / KV-cache timeline when the run kept the LLM stage's own log."""
    llm = ctx.summary.get("llm") or {}
    cols = st.columns(4)
    for card, key in zip(cols, ("ttft_ms", "tpot_ms")):
        p99 = (llm.get(key) or {}).get("p99")
        card.metric(f"{LLM_METRICS[key]} p99", plots.fmt_ms(p99), border=True)
    tokens = llm.get("output_tokens_per_s")
    cols[2].metric("Output tokens/s", f"{tokens:,.0f}" if tokens is not None else "–", border=True)
    goodput = llm.get("goodput") or {}
    cols[3].metric(
        "Goodput",
        f"{goodput['requests_per_s']:,.2f} req/s" if "requests_per_s" in goodput else "–",
        border=True,
        help="requests per second meeting both the TTFT and the TPOT SLO" if goodput else "no TTFT / TPOT SLO set",
    )
    rows = {LLM_METRICS[k]: llm[k] for k in LLM_METRICS if isinstance(llm.get(k), dict)}
    if rows:
        st.dataframe(
            pd.DataFrame(rows).T.rename(columns=lambda c: f"{c} (ms)").style.format(precision=1), width="stretch"
        )
    stage = next((s for s in ctx.scenario.stages if s.name == llm.get("stage")), None) if ctx.scenario else None
    runs = stage_results(ctx.result.run, stage) if stage is not None else []
    if runs:
        from sim.present import llm_charts

        results = {"": runs[0][1]}
        left, right = st.columns(2)
        left.altair_chart(llm_charts.distributions_chart(results, "ttft_ms"), width="stretch")
        right.altair_chart(llm_charts.distributions_chart(results, "tpot_ms"), width="stretch")
        st.altair_chart(llm_charts.timeseries_chart(results), width="stretch")
    for warning in llm.get("warnings") or []:
        st.warning(as_text(warning))


def view_autoscaling(ctx: Context) -> None:
    scaling = ctx.summary.get("autoscaling") or {}
    cols = st.columns(4)
    cols[0].metric(
        "Mean replicas paid",
        f"{scaling.get('mean_replicas', math.nan):,.2f}",
        border=True,
        help="time-weighted: starting, warm and draining replicas all cost money",
    )
    cols[1].metric("Mean warm replicas", f"{scaling.get('mean_warm_replicas', math.nan):,.2f}", border=True)
    cols[2].metric("Peak replicas", f"{scaling.get('max_replicas', '–')}", border=True)
    cols[3].metric("Cold starts per run", f"{scaling.get('cold_starts_per_replication', math.nan):,.1f}", border=True)
    timeline = ctx.result.run.timeline
    if timeline is None or timeline.empty:
        st.info("This run recorded no replica timeline.")
        return
    from sim.present.timeline import timeline_figure

    span_s = float(ctx.result.log["arrival_ms"].max()) / 1000.0
    window_s = max(1.0, round(span_s / 48.0))
    st.pyplot(timeline_figure(ctx.result.run, ctx.scenario, window_s), clear_figure=True)


def view_data(ctx: Context) -> None:
    st.caption(f"Shown: {as_text(planner.describe(ctx.scenario, ctx.size))}, seed {ctx.seed}.")
    cols = st.columns(3)
    cols[0].download_button(
        "Scenario (YAML)", ctx.scenario.to_yaml(), file_name=f"{ctx.scenario.name}.yaml", mime="text/yaml"
    )
    log = ctx.result.log
    cols[1].download_button(
        "Request log (CSV)",
        lambda: log.to_csv(index=False),
        file_name=f"{ctx.scenario.name}-log.csv",
        mime="text/csv",
        on_click="ignore",
        help="one row per request; the full run log is the zip",
    )
    cols[2].download_button(
        "Run log (Parquet frames + scenario, .zip)",
        lambda: run_log_zip(ctx.result),
        file_name=f"{ctx.scenario.name}-run.zip",
        mime="application/zip",
        on_click="ignore",
        help="`servesim summarize FOLDER` recomputes this page's summary from the unzipped folder",
    )
    with st.expander("Summary (the `servesim run --json` contract)"):
        st.json(ctx.summary)
    st.dataframe(ctx.result.log.head(200), width="stretch")


@dataclass(frozen=True)
class View:
    label: str
    render: Callable[[Context], None]
    available: Callable[[Context], bool] = lambda ctx: True


VIEWS = [
    View("Stage details", view_stages),
    View("Compare", view_compare),
    View("Load curve", view_load_curve),
    View("Trade-off", view_tradeoff, lambda ctx: planner.model_stage_name(ctx.scenario) is not None),
    View("Cost vs replicas", view_cost, lambda ctx: getattr(ctx.scenario.deployment, "autoscaling", None) is None),
    View("Autoscaling", view_autoscaling, lambda ctx: "autoscaling" in ctx.summary),
    View("LLM: TTFT / TPOT", view_llm, lambda ctx: "llm" in ctx.summary),
    View("Sizing", view_sizing),
    View("Advisor", lambda ctx: view_advisor(ctx)),
    View("Data & downloads", view_data),
]


def show_views(ctx: Context) -> None:
    views = [view for view in VIEWS if view.available(ctx)]
    # Lazy tabs: only the open one computes (a sweep takes seconds; the verdict above must not wait for it).
    tabs = st.tabs([view.label for view in views], key="view", on_change="rerun")
    for tab, view in zip(tabs, views):
        if tab.open:
            with tab, shown_inline(view.label):
                view.render(ctx)


# --- page ----------------------------------------------------------------------------------------------

# Six verdict cards share one row: a smaller value font keeps "125.4 ms" whole on a laptop screen.
CSS = """<style>
[data-testid="stMetricValue"] { font-size: 1.9rem; }
[data-testid="stMetricLabel"] p { font-size: 0.9rem; }
</style>"""


def main() -> None:
    st.set_page_config(page_title="servesim · capacity planner", page_icon="⏱", layout="wide")
    st.markdown(CSS, unsafe_allow_html=True)
    base, identity = choose_scenario()
    scenario = apply_knobs(base, identity)
    write_address(identity)
    head, button = st.columns([5, 1], vertical_alignment="bottom")
    with head:
        st.title(as_text(scenario.name))
        if scenario.description:
            st.caption(as_text(scenario.description))
    with button:
        precise = st.button(
            "Run precisely",
            help="The scenario's own length and replications: tighter CIs, seconds not milliseconds",
            key="precise",
        )
    if precise:
        with shown_inline("The precise run"):
            run_precise(scenario)
    with shown_inline(f"Simulating {scenario.name}"):
        ctx = run_for_display(scenario)
        st.caption(f"{as_text(planner.describe(ctx.scenario, ctx.size))} · seed {ctx.seed}")
        show_verdict(ctx)
        show_report_button(ctx)
        show_where_latency_lives(ctx)
        show_views(ctx)


def show_report_button(ctx: Context) -> None:
    """One click: the page as a report folder (Markdown + PNGs + scenario + summary), zipped; the PNGs are
    drawn only when the button is pressed."""
    from urllib.parse import urlencode

    from sim.present.page_report import page_report_zip

    link = "the planner's address + ?" + urlencode(dict(st.query_params)) if st.query_params else None
    described = planner.describe(ctx.scenario, ctx.size) + f", seed {ctx.seed}"
    st.download_button(
        "Report of this page (Markdown + PNGs, .zip)",
        lambda: page_report_zip(ctx.result, described=described, link=link),
        file_name=f"{ctx.scenario.name}-report.zip",
        mime="application/zip",
        on_click="ignore",
        key="page_report",
    )


def view_advisor(ctx: Context) -> None:
    """`servesim advise` in the planner: the profile, the ranked lever stacks and the recommendation, on
    demand (it runs a few dozen short simulations: seconds)."""
    from sim.analysis.advise import advise, verdict_table
    from sim.present.advise_report import pareto_figure, profile_text, waterfall_figure

    cols = st.columns([1, 1, 1, 2], vertical_alignment="bottom")
    slo = cols[0].number_input(
        "p99 SLO (ms)",
        min_value=0.0,
        value=float(ctx.slo_ms or 0.0),
        step=5.0,
        key=scoped("advise.slo"),
        help="0: no SLO, stacks ranked by p99",
    )
    stack = cols[1].selectbox("Levers per stack, up to", [1, 2, 3], index=1, key="advise.stack")
    hit_rate = cols[2].slider("Assumed cache hit rate", 0.05, 0.9, 0.3, 0.05, key="advise.hits")
    key = (ctx.scenario.to_yaml(), ctx.seed, slo, stack, hit_rate)
    if cols[3].button("Advise", type="primary", key="advise.run"):
        with st.spinner("Profiling, then evaluating lever stacks on common random numbers…"):
            st.session_state["_advice"] = (
                key,
                advise(
                    ctx.scenario,
                    slo_p99_ms=slo or None,
                    max_stack=stack,
                    seed=ctx.seed,
                    cache_hit_rate=hit_rate,
                    requests=2000,
                ),
            )
    stored = st.session_state.get("_advice")
    if not stored or stored[0] != key:
        st.info(
            "Profile the scenario, then rank stacks of levers (quantisation, GPU decode, batching, caches, "
            "replicas, hardware) by p99, cost and accuracy. Press *Advise*."
        )
        return
    advice = stored[1]
    st.success(f"**Recommendation:** {as_text(advice.recommendation)}")
    st.markdown("\n".join(f"- {as_text(line.strip())}" for line in profile_text(advice)[1:]))
    for note in advice.notes:
        st.info(as_text(note))
    st.dataframe(verdict_table(advice, 15), hide_index=True, width="stretch")
    left, right = st.columns(2)
    left.pyplot(waterfall_figure(advice), clear_figure=True)
    right.pyplot(pareto_figure(advice), clear_figure=True)
    with st.expander("Warnings, skipped and not offered levers"):
        lines = [f"- #{row.rank} {as_text(row.label)}: {as_text(w)}" for row in advice.rows[:15] for w in row.warnings]
        lines += [f"- skipped {as_text(name)}: {as_text(why)}" for name, why in advice.skipped]
        lines += [f"- not offered {as_text(name)}: {as_text(why)}" for name, why in advice.not_offered]
        st.markdown("\n".join(lines) or "none")


# Streamlit (and its AppTest) run this file as __main__; importing it (tests, benchmarks) does not start the page.
if __name__ == "__main__":
    main()
