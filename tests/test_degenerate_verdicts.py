"""Verdicts follow from what was served: a run that served requests is never `no_service`, and a
degenerate trace (arrivals all on one instant, one row, timestamps too large to tell apart) is simulated
with a warning: its latency stands, its throughput / utilisation / cost are absent rather than 0, and the
verdict says why (unstable, exit 3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.analysis.simulate import simulate
from sim.metrics.invariants import ZERO_SPAN, classify, exit_code
from sim.spec.scenario import load_scenario

SCENARIO = """\
name: degenerate
seed: 7
workload:
  arrival: {{process: trace, file: trace.csv}}
  requests: {requests}
  warmup_requests: {warmup}
stages:
  - name: forward
    kind: model
    service_ms: {{dist: exponential, mean: 100}}
    batching: {{policy: none}}
deployment:
  replicas: 3
  hardware: {{usd_per_hour: 1.0}}
"""

TRACES = {
    "all timestamps equal": ["5.0"] * 600,
    "one row": ["5.0"],
    "1e300 + i": [repr(1e300 + i) for i in range(600)],
}


def degenerate_run(tmp_path: Path, times: list[str]):
    (tmp_path / "trace.csv").write_text("arrived_at\n" + "\n".join(times) + "\n")
    (tmp_path / "s.yaml").write_text(SCENARIO.format(requests=len(times), warmup=min(30, len(times) - 1)))
    return simulate(load_scenario(tmp_path / "s.yaml"), replications=2)


@pytest.mark.parametrize("case", TRACES)
def test_a_degenerate_trace_is_simulated_with_a_warning_never_no_service(tmp_path, case):
    summary = degenerate_run(tmp_path, TRACES[case]).summary
    assert summary["served"] > 0 and summary["latency_ms"]["p50"] > 0
    assert summary["status"] == "unstable" and exit_code(summary) == 3
    assert not any("no request was served" in reason for reason in summary["status_reasons"])
    assert f"throughput is not defined: the {ZERO_SPAN}" in summary["status_reasons"]
    assert f"the {ZERO_SPAN}" in summary["warnings"]
    # No rate over no time: absent, not 0 requests per second nor $0 an hour.
    assert summary["throughput_rps"] != summary["throughput_rps"]  # NaN -> null in JSON
    assert summary["cost"]["usd_per_hour"] is None and summary["cost"]["usd_per_1m_queries"] is None


def test_the_served_count_decides_no_service():
    assert classify({"served": 0, "requests": 10, "throughput_rps": 0.0}).status == "no_service"
    verdict = classify({"served": 570, "requests": 570, "throughput_rps": 0.0})
    assert verdict.status == "unstable" and "570 requests served" in verdict.reasons[0]
    verdict = classify({"served": 570, "requests": 570, "throughput_rps": float("nan")})
    assert verdict == classify({"served": 570, "requests": 570, "throughput_rps": None})
    assert verdict.status == "unstable" and verdict.reasons == ("throughput is not finite",)
