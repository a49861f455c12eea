"""Shareable state (issue 12): the page's scenario, changed knobs and open tab round-trip through the
address (query parameters). A link opens the same numbers; a bad link opens the defaults, never an error."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from sim.analysis import planner  # noqa: E402
from sim.spec.scenario import load_scenario  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")


def opened(**params: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300)
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def knob(at: AppTest, label: str):
    return next(w for w in at.number_input if w.label == label)


def headline_p99(at: AppTest) -> str:
    return next(m for m in at.metric if m.label.startswith("p99 latency")).value


def expected_p99(scenario) -> str:
    return f"{planner.run(scenario, planner.QUICK, seed=scenario.seed).summary['latency_ms']['p99']:,.1f} ms"


def test_a_link_opens_its_scenario_knobs_and_tab_with_the_cli_numbers():
    at = opened(scenario="search-ranker", replicas="7", slo="80.0", view="Data & downloads")
    assert at.title[0].value == "search-ranker"
    assert knob(at, "Replicas").value == 7 and knob(at, "p99 SLO (ms)").value == 80.0
    assert at.session_state["view"] == "Data & downloads"
    shared = load_scenario(ROOT / "scenarios" / "search-ranker.yaml").with_overrides(
        {"deployment.replicas": 7, "slo.p99_ms": 80.0}
    )
    assert headline_p99(at) == expected_p99(shared)


def test_changed_knobs_travel_in_the_address_and_reopen_the_same_page():
    at = opened()
    knob(at, "Replicas").set_value(knob(at, "Replicas").value + 2).run()
    knob(at, "p99 SLO (ms)").set_value(55.0).run()
    params = dict(at.query_params)
    assert params["scenario"] == "vision-a100" and set(params) >= {"replicas", "slo"}
    again = opened(**params)
    assert knob(again, "Replicas").value == knob(at, "Replicas").value
    assert knob(again, "p99 SLO (ms)").value == 55.0
    assert headline_p99(again) == headline_p99(at)


def test_a_switch_drops_the_links_knobs():
    at = opened(scenario="search-ranker", replicas="7")
    at.selectbox(key="scenario").set_value("mm3").run()
    mm3 = load_scenario(ROOT / "scenarios" / "mm3.yaml")
    assert knob(at, "Replicas").value == mm3.deployment.replicas
    assert dict(at.query_params).get("scenario") == "mm3" and "replicas" not in at.query_params


@pytest.mark.parametrize(
    "params",
    [
        {"scenario": "../../etc/passwd"},
        {"scenario": "mm3", "replicas": "-3"},
        {"scenario": "mm3", "replicas": "abc", "slo": "1e999"},
        {"scenario": "mm3", "routing": '"teleport"', "view": "no such tab"},
    ],
)
def test_a_bad_link_opens_the_scenarios_own_values(params):
    at = opened(**params)
    name = params["scenario"] if params["scenario"] == "mm3" else "vision-a100"
    own = load_scenario(ROOT / "scenarios" / f"{name}.yaml")
    assert at.title[0].value == own.name
    assert knob(at, "Replicas").value == own.deployment.replicas
    clean = opened(scenario=name)  # the scenario opened by a plain link: the same page, the same messages
    assert [e.value for e in at.error] == [e.value for e in clean.error]
    assert headline_p99(at) == headline_p99(clean)
