"""Knob state belongs to the scenario (issue 12): switching the shipped scenario, or uploading one, resets
every sidebar knob to that scenario's own values, in what the browser shows and in what the next click
sends back, and the headline p99 is the engine's p99 for that scenario.

AppTest reads widget values from the server's session state, which a browser does not: Streamlit's
frontend keeps its own value for a widget it already shows and takes the server's only when the server
pushes one (`set_value`) or the widget is new (a new id). `Browser` adds that rule, so that a stale
knob the browser would send on the next click is sent here too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from sim.analysis import planner  # noqa: E402
from sim.present.units import fmt_ms  # noqa: E402
from sim.spec.scenario import Scenario, load_scenario, parse_scenario_text  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
SCENARIOS = ROOT / "scenarios"
TIMEOUT_S = 300
KNOB = "knob."
WIDGET_KINDS = (
    "number_input",
    "selectbox",
    "slider",
    "select_slider",
    "radio",
    "text_area",
    "text_input",
    "multiselect",
    "checkbox",
)


class Browser:
    """An AppTest driven with the frontend's widget-state rule (see the module docstring)."""

    def __init__(self) -> None:
        self.at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)

    def widgets(self) -> list:
        return [w for kind in WIDGET_KINDS for w in getattr(self.at, kind)]

    def run(self) -> "Browser":
        shown = {w.id: w.value for w in self.widgets()}  # what the page shows, user edits included
        self.at.run()
        assert not self.at.exception, [e.value for e in self.at.exception]
        for widget in self.widgets():
            if widget.id in shown and not widget.proto.set_value and widget.value != shown[widget.id]:
                widget.set_value(shown[widget.id])  # the browser keeps, shows and sends its own value
        return self

    def knob(self, name: str):
        """The sidebar widget of knob `name` (its key is scoped to the scenario it was drawn for)."""
        found = [w for w in self.widgets() if str(w.key).startswith(KNOB) and knob_name(w.key) == name]
        assert len(found) == 1, (name, [w.key for w in found])
        return found[0]

    def knobs(self) -> dict[str, object]:
        return {knob_name(w.key): w.value for w in self.widgets() if str(w.key).startswith(KNOB)}

    def p99_card(self) -> str:
        """The headline end-to-end p99 (an LLM page shows it after TTFT / TPOT, as "End-to-end p99")."""
        return next(m for m in self.at.metric if m.label.startswith(("p99 latency", "End-to-end p99"))).value


def knob_name(key: str) -> str:
    """`knob.workers.preprocess@3` -> `workers.preprocess` (the scope is the scenario's generation)."""
    return str(key)[len(KNOB) :].split("@")[0]


def expected_knobs(scenario: Scenario) -> dict[str, object]:
    """Every sidebar knob and the value it must show for `scenario`, read from the scenario itself."""
    raw = scenario.raw
    arrival = raw["workload"]["arrival"]
    knobs: dict[str, object] = {}
    if arrival.get("process") in ("poisson", "gamma", "constant"):
        knobs["rate"] = float(arrival["rate_rps"])
    elif arrival.get("process") == "trace":
        knobs["rate"] = float(arrival.get("rate_scale", 1.0))
    else:
        knobs["load"] = 1.0
    deployment = scenario.deployment
    if deployment.autoscaling is None:  # autoscaled: the autoscaler sets the count, no Replicas knob
        knobs["replicas"] = deployment.replicas
    knobs["hardware"] = deployment.hardware.name or "as in scenario"
    knobs["routing"] = deployment.routing
    if deployment.autoscaling is not None:
        knobs["min_replicas"] = deployment.autoscaling.min_replicas
        knobs["max_replicas"] = deployment.autoscaling.max_replicas
        cold = deployment.cold_start_ms
        knobs["cold_start"] = cold.mean / 1000.0 if cold is not None else 0.0
    model = next((s for s in scenario.stages if s.kind == "model"), None)
    if model is not None:
        batching = next(s for s in raw["stages"] if s["name"] == model.name).get("batching", {"policy": "none"})
        knobs["policy"] = batching.get("policy", "none")
        if knobs["policy"] == "dynamic":
            knobs["max_batch"] = batching["max_batch_size"]
            knobs["delay"] = float(batching.get("max_queue_delay_ms", 0.0))
        elif knobs["policy"] == "static":
            knobs["batch"] = batching["batch_size"]
            knobs["timeout"] = float(batching.get("timeout_ms") or 0.0)
        knobs["lever"] = "none"
    for stage in scenario.stages:
        if stage.kind == "pool":
            knobs[f"workers.{stage.name}"] = stage.workers
    for name in planner.scalable_stages(scenario):
        knobs[f"cost.{name}"] = 1.0
    if any(stage.kind == "llm" for stage in scenario.stages):
        knobs["ttft_ms"], knobs["tpot_ms"] = scenario.slo.ttft_ms, scenario.slo.tpot_ms
    knobs["slo"] = scenario.slo.p99_ms
    return knobs


def engine_p99_card(scenario: Scenario) -> str:
    """The headline p99 as the page must print it, computed by the engine directly (quick run, scenario seed)."""
    summary = planner.run(scenario, planner.QUICK, seed=scenario.seed).summary
    p99 = summary["latency_ms"]["p99"]
    return fmt_ms(p99) if "llm" in summary else f"{p99:,.1f} ms"


def disturb(browser: Browser) -> None:
    """A planner's edits on the scenario shown: more replicas (a higher minimum when autoscaled), an SLO of 1 ms."""
    replicas = browser.knob("replicas" if "replicas" in browser.knobs() else "min_replicas")
    replicas.set_value(replicas.value + 3)
    browser.knob("slo").set_value(1.0)


def assert_shows(browser: Browser, scenario: Scenario, p99: str) -> None:
    assert browser.at.title[0].value == scenario.name
    assert browser.knobs() == expected_knobs(scenario)
    assert browser.p99_card() == p99


def shipped() -> list[str]:
    return sorted(path.stem for path in SCENARIOS.glob("*.yaml"))


def switch_through(browser: Browser, order: list[str]) -> None:
    """Edit knobs, switch, check; then the next click, check again — for each scenario in turn."""
    for name in order:
        scenario = load_scenario(SCENARIOS / f"{name}.yaml")
        p99 = engine_p99_card(scenario)
        disturb(browser)
        browser.at.selectbox(key="scenario").set_value(name)
        browser.run()
        assert_shows(browser, scenario, p99)
        browser.run()  # the next click: the browser sends back what it shows
        assert_shows(browser, scenario, p99)


@pytest.mark.slow  # the whole-day quick run of autoscale-diurnal takes about a minute, twice
def test_switching_through_every_shipped_scenario_resets_every_knob():
    browser = Browser().run()
    default = browser.at.title[0].value
    # Start from the default, visit every other scenario and come back to the default.
    switch_through(browser, [n for n in shipped() if n != default] + [default])


def test_switching_between_quick_scenarios_resets_every_knob():
    browser = Browser().run()
    switch_through(browser, ["search-ranker", "bert-cpu", "mm3", "vision-a100"])


TINY = """
name: tiny-upload
seed: 3
workload:
  arrival: {process: poisson, rate_rps: 50}
  requests: 2000
stages:
  - name: prep
    kind: pool
    workers: 2
    service_ms: {dist: exponential, mean: 5}
  - name: forward
    kind: model
    service_ms: {dist: exponential, mean: 10}
    batching: {policy: dynamic, max_batch_size: 4, max_queue_delay_ms: 3}
deployment:
  replicas: 1
  hardware: {name: t4, usd_per_hour: 0.526}
slo: {p99_ms: 100}
"""


def test_an_upload_and_its_removal_reset_every_knob():
    browser = Browser().run()
    default = browser.at.title[0].value
    for text in (TINY, TINY.replace("replicas: 1", "replicas: 2").replace("workers: 2", "workers: 3")):
        scenario = parse_scenario_text(text, base_dir=SCENARIOS, source="tiny.yaml")
        disturb(browser)
        browser.at.file_uploader(key="upload").upload("tiny.yaml", text.encode(), "application/x-yaml")
        browser.run()
        assert_shows(browser, scenario, engine_p99_card(scenario))
        browser.run()
        assert_shows(browser, scenario, engine_p99_card(scenario))
    disturb(browser)
    browser.at.file_uploader(key="upload").clear()
    browser.run()
    scenario = load_scenario(SCENARIOS / f"{default}.yaml")
    assert_shows(browser, scenario, engine_p99_card(scenario))
    browser.run()
    assert_shows(browser, scenario, engine_p99_card(scenario))
