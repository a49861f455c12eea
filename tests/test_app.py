"""The Streamlit planner through Streamlit's own testing API (no browser): it starts on the default
scenario, knobs move the numbers the right way, a bad upload is an inline error, the compare tab runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TIMEOUT_S = 120

# A small scenario for uploads: one M/M/1-like model stage, short enough for a precise run in a test.
SMALL = """
name: tiny-upload
seed: 3
replications: 2
workload:
  arrival: {process: poisson, rate_rps: 50}
  requests: 2000
stages:
  - name: forward
    kind: model
    service_ms: {dist: exponential, mean: 10}
deployment:
  replicas: 1
  hardware: {name: t4, usd_per_hour: 0.526}
slo: {p99_ms: 100}
"""


def started() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def scoped(at: AppTest, kind: str, name: str):
    """The widget of kind `kind` whose key is `name` scoped to the scenario shown (see app.scoped)."""
    return getattr(at, kind)(key=f"{name}@{at.session_state['_scenario_generation']}")


def knob(at: AppTest, kind: str, name: str):
    return scoped(at, kind, f"knob.{name}")


def metric(at: AppTest, label: str) -> float:
    """The number shown on the verdict card whose label starts with `label`."""
    card = next(m for m in at.metric if m.label.startswith(label))
    return float(re.search(r"[\d,]+\.?\d*", card.value).group(0).replace(",", ""))


def test_starts_on_the_default_scenario_with_a_verdict():
    at = started()
    assert at.title[0].value == "vision-a100"
    labels = [m.label for m in at.metric]
    for wanted in ("p50 latency", "p95 latency", "p99 latency", "Throughput", "$ per 1M queries"):
        assert any(label.startswith(wanted) for label in labels), labels
    p50, p95, p99 = metric(at, "p50"), metric(at, "p95"), metric(at, "p99")
    assert 0 < p50 < p95 < p99
    # The verdict sentence names the SLO of the scenario file (p99 100 ms).
    verdicts = [e.value for e in at.error] + [s.value for s in at.success]
    assert any("SLO" in v and "100 ms" in v for v in verdicts), verdicts
    # The default scenario's lesson: the CPU-side preprocessing is where a p99 request spends its time.
    assert any("**preprocess**" in c.value for c in at.caption), [c.value for c in at.caption]


def test_more_replicas_lower_the_p99_and_double_the_price_per_query():
    at = started()
    before_p99, before_cost = metric(at, "p99"), metric(at, "$ per 1M")
    replicas = knob(at, "number_input", "replicas")
    replicas.set_value(replicas.value * 2).run()
    assert not at.exception
    # Same arrivals (same seed): twice the replicas halves the queueing, the bill per query doubles.
    assert metric(at, "p99") < before_p99
    assert metric(at, "$ per 1M") == pytest.approx(2 * before_cost, rel=0.02)


def test_more_traffic_raises_the_p99():
    at = started()
    before = metric(at, "p99")
    rate = knob(at, "number_input", "rate")
    rate.set_value(rate.value * 2).run()
    assert not at.exception
    assert metric(at, "p99") > before


def test_an_invalid_upload_is_an_inline_error_naming_the_field():
    at = started()
    bad = SMALL.replace("replicas: 1", "replicas: 0").replace("seed: 3", "seed: 3\nstagez: []")
    at.file_uploader(key="upload").upload("broken.yaml", bad.encode(), "application/x-yaml").run()
    assert not at.exception, [e.value for e in at.exception]
    errors = " ".join(e.value for e in at.error)
    assert "broken.yaml" in errors
    assert "deployment.replicas" in errors
    assert "stagez: unknown field" in errors
    assert "Traceback" not in errors
    # The page still answers, on the shipped scenario.
    assert at.title[0].value == "vision-a100"


def test_a_valid_upload_is_simulated_and_a_precise_run_replaces_the_quick_one():
    at = started()
    at.file_uploader(key="upload").upload("tiny.yaml", SMALL.encode(), "application/x-yaml").run()
    assert not at.exception
    assert at.title[0].value == "tiny-upload"
    assert any("quick run" in c.value for c in at.caption)
    at.button(key="precise").click().run()
    assert not at.exception
    assert any(c.value.startswith("precise run") for c in at.caption), [c.value for c in at.caption]


def test_the_compare_tab_runs_the_variants_and_names_a_winner():
    at = started()
    at.session_state["view"] = "Compare"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    tables = [m.value for m in at.markdown if m.value.startswith("| metric |")]
    assert tables, "no comparison table"
    table = tables[0]
    for name in ("no batching", "static 8", "dynamic 8/2ms", "dynamic 32/5ms"):
        assert name in table.splitlines()[0]
    p99_row = next(line for line in table.splitlines() if line.startswith("| p99 latency"))
    assert p99_row.count("★") >= 1


def test_a_bad_variant_line_is_an_error_not_an_exception():
    at = started()
    at.session_state["view"] = "Compare"
    at.run()
    scoped(at, "text_area", "compare.variants").set_value("a: batching=none\nb: batching=sideways(3)").run()
    assert not at.exception
    assert any("sideways" in e.value for e in at.error), [e.value for e in at.error]


AUTOSCALED = """
name: spiky
seed: 2
workload:
  arrival: {process: time_varying, points: [[0, 20], [40, 20]], spikes: [{at_s: 10, duration_s: 10, multiplier: 4}]}
  duration_s: 40
stages:
  - name: forward
    kind: model
    service_ms: {dist: exponential, mean: 50}
deployment:
  replicas: 1
  hardware: {name: t4, usd_per_hour: 0.526}
  autoscaling: {policy: ray_serve, min_replicas: 1, max_replicas: 8, upscale_delay_s: 2, downscale_delay_s: 10}
  cold_start_ms: {dist: constant, value: 5000}
slo: {p99_ms: 500}
"""


def test_autoscaling_knobs_and_timeline():
    from sim.spec.scenario import Deployment

    if "autoscaling" not in Deployment.model_fields:
        pytest.skip("the scenario schema has no deployment.autoscaling yet")
    at = started()
    at.file_uploader(key="upload").upload("spiky.yaml", AUTOSCALED.encode(), "application/x-yaml").run()
    assert not at.exception, [e.value for e in at.exception]
    # A spike must not be cut out of the quick run: the scenario keeps its 40 s horizon.
    assert any("the scenario's own" in c.value for c in at.caption), [c.value for c in at.caption]
    at.session_state["view"] = "Autoscaling"
    at.run()
    assert not at.exception
    cold_starts = metric(at, "Cold starts")
    # Keeping 4 replicas warm from the start leaves fewer replicas to start when the spike comes.
    knob(at, "number_input", "min_replicas").set_value(4).run()
    assert not at.exception
    assert metric(at, "Cold starts") < cold_starts


def test_halving_the_dominant_stage_meets_the_slo_and_a_lever_shows_its_accuracy_cost():
    at = started()
    assert not at.success  # the default scenario misses its p99 SLO: preprocessing dominates
    knob(at, "select_slider", "cost.preprocess").set_value(0.5).run()
    assert not at.exception
    assert any("Meets the SLO" in s.value for s in at.success), [e.value for e in at.error]
    before = metric(at, "p50")
    knob(at, "selectbox", "lever").set_value("int8").run()
    assert not at.exception
    assert metric(at, "p50") < before  # a faster forward pass on top of the faster preprocessing
    assert any(c.value.startswith("Accuracy cost") for c in at.sidebar.caption)


def test_llm_view_renders_ttft_tpot_and_the_pages_end_to_end_row_from_the_summary():
    """The LLM tab draws from the summary alone (vLLM bench vocabulary); its end-to-end row is the page's
    one end-to-end latency (`latency_ms`, the cards'), not the LLM stage's own e2el."""
    root = str(Path(APP).parent)
    percentiles = "{'mean': 100.0, 'p50': 90.0, 'p90': 150.0, 'p95': 180.0, 'p99': 250.0, 'p999': 400.0}"
    e2el = "{'mean': 1000.0, 'p50': 900.0, 'p90': 1500.0, 'p95': 1800.0, 'p99': 2500.0}"
    latency = "{'mean': 1040.0, 'p50': 940.0, 'p90': 1540.0, 'p95': 1840.0, 'p99': 2540.0}"
    script = f"""
import sys
sys.path.insert(0, {root!r})
import pandas as pd
import app
from sim.analysis import planner
from sim.analysis.simulate import RunResult

llm = {{"stage": "llm", "ttft_ms": {percentiles}, "tpot_ms": {percentiles}, "e2el_ms": {e2el},
       "output_tokens_per_s": 1234.0, "goodput": {{"requests_per_s": 3.5}}, "warnings": ["KV cache full 12% of the time"]}}
from sim.engine.runlog import RunLog
log = RunLog(pd.DataFrame({{"replication": [0], "warmup": [False], "rejected": [False]}}))
summary = {{"llm": llm, "latency_ms": {latency}}}
app.view_llm(app.Context(scenario=None, result=RunResult(None, log, summary), size=planner.QUICK, seed=1))
"""
    at = AppTest.from_string(script, default_timeout=TIMEOUT_S).run()
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value
    assert table.loc["TTFT", "p99 (ms)"] == 250.0
    assert table.loc["end-to-end", "p99 (ms)"] == 2540.0  # the cards' p99, not e2el's 2,500
    assert [w.value for w in at.warning] == ["KV cache full 12% of the time"]
