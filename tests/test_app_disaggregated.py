"""The LLM tab of a disaggregated scenario shows each pool (issue 21: the page gave the decode pool's
figures alone)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")


def llm_tab(scenario: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params["scenario"] = scenario
    at.query_params["view"] = "LLM: TTFT / TPOT"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def pool_frames(at: AppTest):
    return [d.value for d in at.dataframe if list(d.value.index) == ["prefill", "decode"]]


def test_the_llm_tab_of_a_disaggregated_scenario_has_a_per_pool_table():
    at = llm_tab("llm-chat-disaggregated")
    (pools,) = pool_frames(at)
    assert pools["replicas"].tolist() == ["4", "2"]
    assert "busy" in pools.columns and "KV cache use (mean / max)" in pools.columns
    assert any("KV transfer after each prefill: p50" in c.value for c in at.caption)


def test_a_colocated_scenario_has_none():
    assert pool_frames(llm_tab("llm-chat-continuous")) == []
