"""Any valid scenario opens in the planner (issue 12): widget ranges come from the schema or from the
scenario's own value, never from a fixed maximum; a bare-number `service_ms` is a valid constant; and bad
uploads are inline errors, never an exception box."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TIMEOUT_S = 300

LARGE = """
name: large-fleet
seed: 5
workload:
  arrival: {process: poisson, rate_rps: 2000}
  requests: 4000
stages:
  - name: decode
    kind: pool
    workers: 5000
    service_ms: {dist: exponential, mean: 2}
  - name: forward
    kind: model
    service_ms: {dist: exponential, mean: 20}
    batching: {policy: dynamic, max_batch_size: 256, max_queue_delay_ms: 5000}
deployment:
  replicas: 600
slo: {p99_ms: 10000}
"""

STATIC = """
name: big-static
seed: 5
workload:
  arrival: {process: poisson, rate_rps: 100}
  requests: 3000
stages:
  - name: forward
    kind: model
    service_ms: {dist: exponential, mean: 12}
    batching: {policy: static, batch_size: 300, timeout_ms: 20000}
deployment:
  replicas: 1
"""

BARE = """
name: bare-number
seed: 5
workload:
  arrival: {process: poisson, rate_rps: 10}
  requests: 3000
stages:
  - name: forward
    kind: model
    service_ms: 12
deployment:
  replicas: 1
"""

AUTOSCALED = """
name: slow-cold-start
seed: 5
workload:
  arrival: {process: poisson, rate_rps: 20}
  duration_s: 60
stages:
  - name: forward
    kind: model
    service_ms: 12
deployment:
  hardware: {name: t4, usd_per_hour: 0.526}
  autoscaling: {policy: ray_serve, min_replicas: 1, max_replicas: 600}
  cold_start_ms: {dist: constant, value: 7200000}
slo: {p99_ms: 100}
"""


def upload(text: str, name: str = "scenario.yaml") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
    at.run()
    at.file_uploader(key="upload").upload(name, text.encode(), "application/x-yaml").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metric(at: AppTest, label: str) -> str:
    return next(m for m in at.metric if m.label.startswith(label)).value


def knob(at: AppTest, kind: str, name: str):
    return getattr(at, kind)(key=f"knob.{name}@{at.session_state['_scenario_generation']}")


def test_a_large_fleet_opens_with_its_own_values():
    at = upload(LARGE)
    assert at.title[0].value == "large-fleet"
    assert knob(at, "number_input", "replicas").value == 600
    assert knob(at, "number_input", "workers.decode").value == 5000
    assert knob(at, "slider", "max_batch").value == 256
    assert knob(at, "number_input", "delay").value == 5000.0
    # and the knobs still move past the old maxima
    knob(at, "number_input", "replicas").set_value(700).run()
    assert not at.exception, [e.value for e in at.exception]
    assert knob(at, "number_input", "replicas").value == 700


def test_a_large_static_batch_and_a_long_timeout_open():
    at = upload(STATIC)
    assert at.title[0].value == "big-static"
    assert knob(at, "slider", "batch").value == 300
    assert knob(at, "number_input", "timeout").value == 20000.0


def test_a_bare_number_service_time_is_a_constant_the_cost_knob_scales():
    at = upload(BARE)
    assert at.title[0].value == "bare-number"
    # M/D/1 at load 0.12: P(no wait) = 0.88 > 0.5, so the median request waits 0 and takes exactly 12 ms.
    assert metric(at, "p50") == "12.0 ms"
    knob(at, "select_slider", "cost.forward").set_value(0.5).run()
    assert not at.exception, [e.value for e in at.exception]
    assert metric(at, "p50") == "6.0 ms"


def test_max_replicas_600_and_a_two_hour_cold_start_open():
    at = upload(AUTOSCALED)
    assert at.title[0].value == "slow-cold-start"
    assert knob(at, "number_input", "max_replicas").value == 600
    assert knob(at, "number_input", "cold_start").value == 7200.0
