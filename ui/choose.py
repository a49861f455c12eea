"""Choosing the scenario: a shipped one (by name, or from the address) or an uploaded one."""

from __future__ import annotations

import hashlib
from pathlib import Path

import streamlit as st

from sim.errors import ServesimError
from sim.spec.datafiles import shipped_data_roots
from sim.spec.scenario import Scenario, load_scenario, parse_scenario_text
from ui.runs import SCENARIOS
from ui import state
from ui.state import unknown_address_scenario, read_address
from ui.text import as_code, as_text

UPLOAD_LIMIT_BYTES = 1_000_000


def shipped_scenarios() -> dict[str, Path]:
    return {path.stem: path for path in sorted(SCENARIOS.glob("*.yaml"))}


def choose_scenario() -> tuple[Scenario, str]:
    """The scenario the knobs start from, and its identity (knobs reset when it changes)."""
    shipped = shipped_scenarios()
    local = state.LOCAL_LABEL  # `servesim plan FILE`: that file first
    names = ([local] if local else []) + list(shipped)
    with st.sidebar:
        st.header("Scenario")
        upload = st.file_uploader(
            "Upload a scenario (YAML)",
            type=["yaml", "yml"],
            key="upload",
            help="Validated before anything runs; the shipped scenarios are examples.",
        )
        index = names.index(read_address(names))
        choice = st.selectbox(
            "Scenario" if local else "Shipped scenario", names, index=index, key="scenario", disabled=upload is not None
        )
        st.caption(
            "The address bar keeps the scenario, the knobs you change and the open tab: copy it to share this page."
            if upload is None
            else "An uploaded scenario cannot be reopened from a link: the address bar opens the shipped "
            "scenario with these knobs. Download the scenario (Data & downloads) to share it."
        )
    unknown = unknown_address_scenario()
    if unknown is not None and upload is None:
        st.warning(
            f"The link names a scenario **{as_text(unknown)}** that is not shipped "
            f"({', '.join(map(as_text, names))}): showing **{as_text(choice)}** instead."
        )
    if upload is not None:
        scenario = parse_upload(upload.name, upload.getvalue())
        if scenario is not None:
            return scenario, f"upload:{upload.name}:{hashlib.sha256(upload.getvalue()).hexdigest()}"
    if local and choice == local:
        try:
            return load_scenario(state.LOCAL_FILE), f"file:{state.LOCAL_FILE}"
        except ServesimError as exc:  # changed since `servesim plan` checked it
            st.error(f"{as_text(local)} does not load:{as_code(exc)}")
            st.stop()
    try:
        return load_scenario(shipped[choice]), f"shipped:{choice}"
    except ServesimError as exc:
        st.error(f"Shipped scenario {as_text(choice)} does not load:{as_code(exc)}")
        st.stop()


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
