"""The Sizing tab on a disaggregated scenario sizes the prefill and decode pools (sim.analysis.sizing_split)
and leads with the same one-line answer as `servesim size` (sim.present.headline.split_answer)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from sim.analysis import planner  # noqa: E402
from sim.analysis.sizing import Budgets  # noqa: E402
from sim.analysis.sizing_split import size_split  # noqa: E402
from sim.present.headline import split_answer  # noqa: E402
from sim.spec.scenario import load_scenario  # noqa: E402
from ui.views.sizing_split import split_table  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")


@pytest.mark.slow
def test_the_sizing_tab_sizes_both_pools_and_says_what_size_says():
    # Before: the tab called the fleet sizing, which a disaggregated stage refuses (one error line).
    at = AppTest.from_file(APP, default_timeout=600)
    at.query_params["scenario"] = "llm-chat-disaggregated"
    at.query_params["view"] = "Sizing"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    next(n for n in at.number_input if n.label == "TTFT p99 (ms)").set_value(2000.0)
    next(c for c in at.checkbox if c.label == "Also size colocated").uncheck()
    at.run()
    next(b for b in at.button if b.label == "Size").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    (headline,) = [m.value for m in at.markdown if m.value.startswith("### ") and "prefill" in m.value]
    # The same search outside the page, with the page's run plan and seed, gives the same answer.
    scenario = load_scenario(ROOT / "scenarios" / "llm-chat-disaggregated.yaml")
    run_plan = planner.plan(scenario, planner.QUICK)
    direct = size_split(
        scenario,
        Budgets(ttft_p99_ms=2000.0, tpot_p99_ms=100.0),
        replications=max(2, run_plan.replications),
        requests=run_plan.requests,
        seed=scenario.seed,
        with_colocated=False,
    )
    assert headline.replace("\\$", "$") == f"### {split_answer(direct)}"
    table = at.dataframe[-1].value
    assert set(table["search"]) == {"prefill", "decode", "re-check"}
    assert table.equals(split_table(direct))
