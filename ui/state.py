"""The page's state: knob widget keys scoped to the scenario shown, the address bar, knob defaults."""

from __future__ import annotations

import json
import math
from typing import Any

import streamlit as st

DEFAULT_SCENARIO = "vision-a100"


KNOB = "knob."  # prefix of every knob's widget key


GENERATION = "_scenario_generation"  # counts scenario changes; scopes the keys of scenario-bound widgets


URL_KNOBS = "_url_knobs"  # knob values read from the page's address, for the scenario it names


DEFAULTS = "_knob_defaults"  # each knob's scenario value this run: the address records only what differs


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
