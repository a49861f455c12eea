"""The page's state, in one place: knob widget keys scoped to the scenario shown, the address bar, knob
defaults, and each tab's inputs and results kept per scenario.

Session keys (every one the page uses is named here):
  _scenario_generation  counts scenario changes; scopes the keys of scenario-bound widgets
  _knobs_for            the identity of the scenario the knobs were drawn for ("shipped:NAME", "upload:...")
  _address_read         the scenario the address named on the session's first run
  _address_unknown      a scenario name the address gave that is not shipped (said on the page)
  _url_knobs            knob and tab values read from the address, for the scenario it names
  _knob_defaults        each knob's scenario value this run: the address records only what differs
  _tab_inputs           {identity: {input name: value}}: tab inputs that outlive their tab being closed
  _tab_defaults         {input name: default}: the address records only tab inputs that differ
  _tab_results          {identity: {result name: (inputs key, result)}}: a sizing, a comparison, advice
  _precise              {(scenario YAML, seed): (summary, run log)}: the last precise runs (a few)
  _work                 {identity: {name: ...}}: long work under way or cancelled, with its steps so far
  _speed                {scenario YAML: simulated requests per wall second}: the time estimates' speed
  view                  the open tab
Nothing outside this module reads or writes st.session_state by key.
"""

from __future__ import annotations

import os

import json
import math
from pathlib import Path
from typing import Any, Callable

import streamlit as st

# `servesim plan FILE` sets SERVESIM_SCENARIO_FILE (sim/cli/plan.py): the page offers that file first, by this
# label, beside the shipped scenarios.
LOCAL_FILE = os.environ.get("SERVESIM_SCENARIO_FILE") or None
LOCAL_LABEL = f"{Path(LOCAL_FILE).name} (local file)" if LOCAL_FILE else None
# The scenario a session opens on: `servesim plan NAME` sets SERVESIM_SCENARIO, `plan FILE` the file.
DEFAULT_SCENARIO = os.environ.get("SERVESIM_SCENARIO") or LOCAL_LABEL or "vision-a100"


KNOB = "knob."  # prefix of every knob's widget key


GENERATION = "_scenario_generation"  # counts scenario changes; scopes the keys of scenario-bound widgets


URL_KNOBS = "_url_knobs"  # knob values read from the page's address, for the scenario it names


DEFAULTS = "_knob_defaults"  # each knob's scenario value this run: the address records only what differs
TAB_INPUTS = "_tab_inputs"
TAB_DEFAULTS = "_tab_defaults"
TAB_RESULTS = "_tab_results"
UNKNOWN = "_address_unknown"


def read_address(names: list[str]) -> str:
    """The scenario to open first: the one the address names (a shared link), else the default. On the
    session's first run the address's knob values and tab are kept for that scenario's knobs."""
    params = st.query_params
    named = params.get("scenario")
    chosen = named if named in names else (DEFAULT_SCENARIO if DEFAULT_SCENARIO in names else names[0])
    if "_address_read" not in st.session_state:
        st.session_state["_address_read"] = chosen
        if named is not None and named not in names:
            st.session_state[UNKNOWN] = named
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
    elif identity.startswith("file:") and LOCAL_LABEL:  # reopens on this server, which serves that file
        params["scenario"] = LOCAL_LABEL
    for name, default in (st.session_state.get(DEFAULTS) or {}).items():
        value = st.session_state.get(knob_key(name))
        if value is not None and value != default:
            params[name] = json.dumps(value)
    kept = (st.session_state.get(TAB_INPUTS) or {}).get(identity) or {}
    for name, default in (st.session_state.get(TAB_DEFAULTS) or {}).items():
        value = kept.get(name)
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


def identity() -> str:
    """The identity of the scenario shown ("shipped:NAME" or "upload:NAME:SHA256")."""
    return str(st.session_state.get("_knobs_for", ""))


def unknown_address_scenario() -> str | None:
    """The scenario name a link gave that is not a shipped scenario (None: it named a known one, or none)."""
    return st.session_state.get(UNKNOWN)


def tab_input(
    widget: Callable[..., Any],
    name: str,
    default: Any,
    *args: Any,
    fixed_key: bool = False,
    valid: Callable[[Any], bool] | None = None,
    **kwargs: Any,
) -> Any:
    """A tab's input widget whose value is kept per scenario while the tab is closed (Streamlit forgets
    the state of a widget it does not draw) and travels in the address bar when it differs from `default`.
    `widget` is the st function (st.number_input, col.text_area, ...); its value comes from the state.
    `fixed_key`: the widget key is `name` itself, for an input whose default is not the scenario's;
    `valid`: whether a kept or linked value fits the widget (options, bounds), else the default is used."""
    inputs = st.session_state.setdefault(TAB_INPUTS, {}).setdefault(identity(), {})
    st.session_state.setdefault(TAB_DEFAULTS, {})[name] = default
    key = name if fixed_key else scoped(name)
    if key not in st.session_state:
        value = inputs.get(name, _from_address(name, default))
        st.session_state[key] = value if valid is None or valid(value) else default
    value = widget(*args, key=key, **kwargs)
    inputs[name] = value
    return value


def _from_address(name: str, default: Any) -> Any:
    """The address's value of tab input `name` when it has the default's type, else the default."""
    raw = (st.session_state.get(URL_KNOBS) or {}).get(name)
    if raw is None:
        return default
    try:
        value = json.loads(raw)
    except ValueError:
        return default
    if isinstance(default, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) and value >= 0 else default
    if isinstance(default, tuple) and isinstance(value, list):  # JSON has no tuples: a range comes back a list
        value = tuple(value)
    return value if type(value) is type(default) else default


def kept_result(name: str, inputs: Any) -> Any:
    """The result a tab kept for this scenario under `name`, if it was computed for exactly `inputs`."""
    stored = ((st.session_state.get(TAB_RESULTS) or {}).get(identity()) or {}).get(name)
    return stored[1] if stored is not None and stored[0] == inputs else None


def keep_result(name: str, inputs: Any, result: Any) -> None:
    """Keep a tab's result for this scenario (one per name: the latest inputs')."""
    st.session_state.setdefault(TAB_RESULTS, {}).setdefault(identity(), {})[name] = (inputs, result)


# Long work (a sizing, a comparison) that a click can stop: Streamlit reruns the page on any click, and the
# run under way stops at its next progress update. What it did so far is noted here, so the next run can say
# where it stopped; a cancelled comparison does not start again by itself.
WORK = "_work"  # {identity: {name: {"inputs": ..., "notes": [...], "cancelled": bool}}}


def _work() -> dict:
    return st.session_state.setdefault(WORK, {}).setdefault(identity(), {})


def start_work(name: str, inputs: Any) -> None:
    """Long work `name` begins for `inputs` (it is under way until `finish_work`)."""
    _work()[name] = {"inputs": inputs, "notes": [], "cancelled": False}


def note_work(name: str, note: str) -> None:
    """One step of work `name` done (a probe, a variant)."""
    if name in _work():
        _work()[name]["notes"].append(note)


def finish_work(name: str) -> None:
    _work().pop(name, None)


def stopped_work(name: str) -> tuple[Any, list[str]] | None:
    """Work `name` that began and never finished (a click stopped it): (its inputs, its notes), forgotten
    once read unless it was cancelled (then `cancelled_work` keeps saying so)."""
    work = _work().get(name)
    if work is None:
        return None
    if not work["cancelled"]:
        _work().pop(name)
    return work["inputs"], list(work["notes"])


def cancel_work(name: str) -> None:
    """The planner cancelled work `name`: it stays stopped until `start_work` again."""
    if name in _work():
        _work()[name]["cancelled"] = True


def cancelled_work(name: str, inputs: Any) -> list[str] | None:
    """The notes of work `name` cancelled for exactly `inputs`, else None."""
    work = _work().get(name)
    return list(work["notes"]) if work is not None and work["cancelled"] and work["inputs"] == inputs else None


PRECISE_KEPT = 4  # precise runs kept per session (each holds a whole run log)


def precise_run(key: tuple[str, int]) -> tuple[dict, Any] | None:
    """The precise run kept for (scenario YAML, seed): (summary, run log), or None."""
    return (st.session_state.get("_precise") or {}).get(key)


def keep_precise_run(key: tuple[str, int], summary: dict, run: Any) -> None:
    """Keep a precise run (the oldest of PRECISE_KEPT goes)."""
    store = st.session_state.setdefault("_precise", {})
    if key not in store and len(store) >= PRECISE_KEPT:
        store.pop(next(iter(store)))
    store[key] = (summary, run)


def measured_speed(yaml_text: str) -> float | None:
    """Simulated requests per wall second measured for the scenario of `yaml_text`, if any."""
    return (st.session_state.get("_speed") or {}).get(yaml_text)


def keep_speed(yaml_text: str, requests_per_s: float) -> None:
    st.session_state.setdefault("_speed", {})[yaml_text] = requests_per_s


def reset_knob_defaults() -> None:
    """Forget the knob defaults of the last run: `initial` fills them again as this run draws the knobs."""
    st.session_state[DEFAULTS] = {}
