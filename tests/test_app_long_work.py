"""The Sizing and Compare tabs under a click that stops long work (issue 21): the page says how far the
sizing got, and a finished comparison leaves no Cancel button or marker behind."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")


def opened(view: str, scenario: str = "mm3") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params["scenario"] = scenario
    at.query_params["view"] = view
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_sizing_a_click_stopped_says_how_far_it_got():
    at = opened("Sizing")
    identity = at.session_state["_knobs_for"]
    # As a sizing leaves it when a click reruns the page mid-search: begun, two probes noted, never finished.
    at.session_state["_work"] = {
        identity: {"sizing": {"inputs": "k", "notes": ["Probe 1: a", "Probe 2: b"], "cancelled": False}}
    }
    at.run()
    assert any(w.value.startswith("Sizing stopped after 2 probes") for w in at.warning), [w.value for w in at.warning]
    at.run()
    assert not any("stopped after" in w.value for w in at.warning)  # said once


def test_a_finished_comparison_leaves_no_cancel_button_nor_marker():
    at = opened("Compare", "search-ranker")
    assert not at.exception, [e.value for e in at.exception]
    assert at.markdown and any("p99 latency" in m.value for m in at.markdown)
    assert not [b for b in at.button if b.key == "compare.cancel"]
    assert not (at.session_state["_work"] or {}).get(at.session_state["_knobs_for"])
