"""The LLM page (issue 21): llm-chat-continuous sets TTFT 1,000 / TPOT 100 ms budgets; the page leads with
TTFT / TPOT p50 / p99 against them (not "No latency budget set" over end-to-end cards), goodput, tokens/s
and $ per 1M output tokens, equal to the engine's figures for the same scenario and seed; the budgets are
sidebar inputs that move the verdict."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from sim.analysis import planner  # noqa: E402
from sim.present.units import fmt_ms  # noqa: E402
from sim.spec.scenario import load_scenario  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
SCENARIO = "llm-chat-continuous"


@pytest.fixture(scope="module")
def page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params["scenario"] = SCENARIO
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture(scope="module")
def engine() -> dict:
    scenario = load_scenario(ROOT / "scenarios" / f"{SCENARIO}.yaml")
    return planner.run(scenario, planner.QUICK, seed=scenario.seed).summary


def card(at: AppTest, label: str):
    return next(m for m in at.metric if m.label == label)


def test_the_llm_page_leads_with_ttft_and_tpot_against_the_scenarios_budgets(page, engine):
    llm = engine["llm"]
    labels = [m.label for m in page.metric]
    assert labels[:4] == ["TTFT p50", "TTFT p99", "TPOT p50", "TPOT p99"], labels
    assert card(page, "TTFT p99").value == fmt_ms(llm["ttft_ms"]["p99"])
    assert card(page, "TPOT p99").value == fmt_ms(llm["tpot_ms"]["p99"])
    assert card(page, "TTFT p99").delta.endswith("1,000 ms")
    assert card(page, "TPOT p99").delta.endswith(" 100 ms")
    assert card(page, "Goodput").value == f"{llm['goodput']['requests_per_s']:,.2f} req/s"
    per_token = engine["cost"]["usd_per_hour"] / (llm["output_tokens_per_s"] * 3600) * 1e6
    assert card(page, "$ per 1M output tokens").value == f"${per_token:,.2f}"
    assert card(page, "End-to-end p99").value == fmt_ms(engine["latency_ms"]["p99"])
    infos = [i.value for i in page.info]
    assert not any("No latency budget set" in text for text in infos), infos
    # Both p99s are over their budgets on this scenario: the verdict says so, naming each.
    expected = llm["ttft_ms"]["p99"] > 1000 or llm["tpot_ms"]["p99"] > 100
    verdicts = " ".join(e.value for e in page.error)
    assert ("Misses the LLM budgets" in verdicts) == expected and "TTFT p99" in verdicts


def test_ttft_and_tpot_budgets_are_sidebar_inputs_that_move_the_verdict(page, engine):
    llm = engine["llm"]
    ttft = next(w for w in page.sidebar.number_input if w.label.startswith("TTFT"))
    tpot = next(w for w in page.sidebar.number_input if w.label.startswith("TPOT"))
    assert (ttft.value, tpot.value) == (1000.0, 100.0)
    ttft.set_value(round(llm["ttft_ms"]["p99"] * 3, -2))
    tpot.set_value(round(llm["tpot_ms"]["p99"] * 3, -1)).run()
    assert not page.exception
    assert any("Meets the LLM budgets" in s.value for s in page.success), [e.value for e in page.error]
    assert not any("Misses the LLM budgets" in e.value for e in page.error)


def test_the_sizing_tab_sizes_an_llm_on_ttft_and_tpot_as_servesim_size_does():
    from sim.analysis.sizing import parse_candidates, size
    from sim.spec.hardware import load_catalogue

    scenario = load_scenario(ROOT / "scenarios" / "llm-code-continuous.yaml")
    at = AppTest.from_file(APP, default_timeout=600)
    at.query_params["scenario"] = "llm-code-continuous"
    at.query_params["view"] = "Sizing"
    at.run()
    generation = at.session_state["_scenario_generation"]
    assert at.number_input(key=f"size.ttft@{generation}").value == scenario.slo.ttft_ms
    assert at.number_input(key=f"size.tpot@{generation}").value == scenario.slo.tpot_ms
    at.multiselect(key=f"size.candidates@{generation}").set_value(["as configured"]).run()  # as the call below
    at.button(key="size.run").click().run()
    assert not at.exception, [e.value for e in at.exception]

    catalogue = load_catalogue()
    own = scenario.deployment.hardware.name
    run_plan = planner.plan(scenario, planner.QUICK)
    direct = size(
        scenario,
        None,
        parse_candidates(own if own in catalogue else None, scenario, catalogue),
        ttft_p99_ms=scenario.slo.ttft_ms,
        tpot_p99_ms=scenario.slo.tpot_ms,
        replications=max(2, run_plan.replications),
        requests=run_plan.requests,
        seed=scenario.seed,
    )
    shown = [m for m in at.metric if m.label.startswith("Smallest replicas")][-1].value
    assert int(shown) == direct.chosen.replicas
    # The chosen count's cards are what it was judged on: TTFT / TPOT p99, and $ per 1M output tokens.
    assert [m for m in at.metric if m.label == "TTFT p99"][-1].value == fmt_ms(direct.chosen.ttft_p99_ms)
    assert [m for m in at.metric if m.label == "TPOT p99"][-1].value == fmt_ms(direct.chosen.tpot_p99_ms)
    per_token = [m for m in at.metric if m.label == "$ per 1M output tokens"][-1].value
    assert per_token == f"${direct.chosen.usd_per_1m_tokens:,.2f}"
    frontier = at.dataframe[-1].value
    assert {"TTFT p99 (ms)", "TPOT p99 (ms)", "$/1M output tokens"} <= set(frontier.columns)
    answer = next(m.value for m in at.markdown if m.value.startswith("### "))
    assert f"{direct.chosen.usd_per_1m_tokens:,.2f} per 1M output tokens" in answer.replace("\\", "")
