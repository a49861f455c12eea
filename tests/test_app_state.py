"""State that survives (issue 21): a tab's inputs and result outlive the tab being closed, per scenario,
and travel in the address bar; a link naming an unknown scenario says so; an uploaded scenario's page
says its link cannot reopen it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")

# A small M/M/c: sizing it takes a few short probes.
SMALL = """
name: small-sizing
seed: 3
replications: 2
workload:
  arrival: {process: poisson, rate_rps: 100}
  requests: 2000
stages:
  - name: forward
    kind: model
    service_ms: {dist: exponential, mean: 20}
deployment:
  replicas: 4
  hardware: {name: t4, usd_per_hour: 0.526}
slo: {p99_ms: 120}
"""


def started(**params: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300)
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def tab(at: AppTest, name: str) -> AppTest:
    at.session_state["view"] = name
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def size_input(at: AppTest, name: str):
    return at.number_input(key=f"size.{name}@{at.session_state['_scenario_generation']}")


def test_sizing_inputs_survive_leaving_the_tab_and_travel_in_the_address():
    at = tab(started(), "Sizing")
    size_input(at, "slo").set_value(55.0).run()
    tab(tab(at, "Stage details"), "Sizing")
    assert size_input(at, "slo").value == 55.0  # was back to the scenario's 100 ms
    params = dict(at.query_params)
    assert json.loads(params["size.slo"]) == 55.0
    again = tab(started(**params), "Sizing")
    assert size_input(again, "slo").value == 55.0


def test_a_sizing_result_survives_leaving_the_tab():
    at = started()
    at.file_uploader(key="upload").upload("small.yaml", SMALL.encode(), "application/x-yaml").run()
    tab(at, "Sizing")
    size_input(at, "slo").set_value(150.0).run()  # not the scenario's own: lost with the tab before
    at.multiselect(key=f"size.candidates@{at.session_state['_scenario_generation']}").set_value(["as configured"]).run()
    at.button(key="size.run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    chosen = [m for m in at.metric if m.label.startswith("Smallest replicas")][-1].value
    tab(tab(at, "Stage details"), "Sizing")
    assert [m for m in at.metric if m.label.startswith("Smallest replicas")][-1].value == chosen
    assert not any(i.value.startswith("Press *Size*") for i in at.info)


def test_a_link_to_an_unknown_scenario_says_so():
    at = started(scenario="nope")
    assert any("nope" in w.value and "not shipped" in w.value for w in at.warning), [w.value for w in at.warning]
    assert at.title[0].value == "vision-a100"


def test_an_uploaded_scenarios_page_says_its_link_cannot_reopen_it():
    at = started()
    at.file_uploader(key="upload").upload("small.yaml", SMALL.encode(), "application/x-yaml").run()
    assert at.title[0].value == "small-sizing"
    assert any("cannot be reopened from a link" in c.value for c in at.sidebar.caption)
    assert "scenario" not in dict(at.query_params)


def test_trade_off_and_cost_inputs_survive_leaving_their_tabs():
    at = tab(started(), "Trade-off")
    at.multiselect(key="tradeoff.sizes").set_value([1, 4]).run()
    tab(tab(at, "Stage details"), "Trade-off")
    assert at.multiselect(key="tradeoff.sizes").value == [1, 4]
    tab(at, "Cost vs replicas")
    cost_range = at.slider(key=f"cost.range@{at.session_state['_scenario_generation']}")
    low, high = cost_range.value
    cost_range.set_value((low, high + 2)).run()
    tab(tab(at, "Stage details"), "Cost vs replicas")
    assert at.slider(key=f"cost.range@{at.session_state['_scenario_generation']}").value == (low, high + 2)


def test_a_link_with_values_a_tab_input_cannot_take_opens_the_defaults():
    at = tab(started(**{"compare.baseline": '"gone"', "advise.stack": "7", "tradeoff.sizes": "[3]"}), "Compare")
    assert at.selectbox(key=f"compare.baseline@{at.session_state['_scenario_generation']}").value == "as configured"
    tab(at, "Advisor")
    assert at.selectbox(key="advise.stack").value == 2
    tab(at, "Trade-off")
    assert at.multiselect(key="tradeoff.sizes").value == [1, 8, 32]
