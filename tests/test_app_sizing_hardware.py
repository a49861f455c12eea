"""The Sizing tab offers catalogue hardware with its speed stated and sourced, and sizes an LLM on an
estimated profile, priced per 1M output tokens (issue 21)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")


def sizing_tab(scenario: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=600)
    at.query_params["scenario"] = scenario
    at.query_params["view"] = "Sizing"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def candidates(at: AppTest):
    return at.multiselect(key=f"size.candidates@{at.session_state['_scenario_generation']}")


def test_the_tab_offers_catalogue_gpus_with_their_speed_and_preselects_alternatives():
    at = sizing_tab("search-ranker")
    box = candidates(at)
    assert box.value == ["as configured", "l4"]  # not the own hardware alone
    l4 = next(label for label in box.options if label.startswith("l4 (estimated)"))
    assert "memory bandwidth ×" in l4 and "FP16 ×" in l4 and "/h a replica" in l4
    sources = " ".join(m.value for m in at.markdown)
    assert "datasheet ratio" in sources and "https://" in sources  # each chosen speed names its source


def test_an_llm_is_sized_on_an_estimated_profile_and_priced_per_output_token():
    at = sizing_tab("llm-chat-continuous")
    box = candidates(at)
    labels = box.options
    h200 = next(label for label in labels if label.startswith("h200 (estimated)"))
    assert "95%: prefill" in h200 and "decode" in h200
    assert any(label.startswith("h100-80gb —") for label in labels)  # measured: no "(estimated)"
    box.set_value(["h200"]).run()
    at.button(key="size.run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    chosen = [m for m in at.metric if m.label.startswith("Smallest replicas")][-1]
    assert chosen.delta == "h200 (estimated)"
    per_token = [m for m in at.metric if m.label == "$ per 1M output tokens"][-1].value
    assert per_token.startswith("$") and per_token != "–"
