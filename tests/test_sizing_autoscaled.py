"""Sizing an autoscaled fleet end to end on a short day: a 20-minute time profile with a spike, Ray Serve's
autoscaler and 20 s cold starts. Every probe simulates the whole horizon and is judged window by window;
the answer lies above the written max_replicas, which the search raises with min_replicas."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from sim.analysis import sizing
from sim.analysis.sizing import SEARCH_SPAN, parse_candidates, size
from sim.spec.scenario import parse_scenario_text

ROOT = Path(__file__).resolve().parent.parent
SLO_MS = 300.0
MAX_REPLICAS = 3

# The day's shape compressed into 20 minutes: 4 req/s at night, 14 req/s at the peak (10:00 of the day's
# 20 minutes), a 2.5x spike for a minute at the peak. Forward pass lognormal, median 80 ms, p99 160 ms.
DAY = f"""
name: short-day
seed: 5
replications: 3
workload:
  arrival:
    process: time_varying
    period_s: 1200
    points: [[0, 4], [300, 4], [600, 14], [900, 8], [1200, 4]]
    spikes: [{{at_s: 600, duration_s: 60, multiplier: 2.5}}]
  duration_s: 1200
  warmup_s: 60
stages:
  - name: forward
    kind: model
    service_ms: {{dist: lognormal, median: 80, p99: 160}}
deployment:
  replicas: 1
  cold_start_ms: {{dist: lognormal, median: 20000, p99: 40000}}
  autoscaling:
    policy: ray_serve
    min_replicas: 1
    max_replicas: {MAX_REPLICAS}
    target_ongoing_requests: 2
    upscale_delay_s: 30
    downscale_delay_s: 120
  hardware: {{name: l4, usd_per_hour: 0.80}}
slo:
  p99_ms: {SLO_MS:g}
"""


def short_day():
    return parse_scenario_text(DAY, base_dir=ROOT / "scenarios")


def spike_load_per_replica(replicas: int) -> float:
    """Offered load per replica during the spike: 14 x 2.5 req/s of a lognormal (median 80 ms, p99 160 ms)
    whose mean is median x exp(sigma^2 / 2), sigma = ln(p99 / median) / z(0.99)."""
    sigma = math.log(160 / 80) / 2.3263478740408408
    return 14 * 2.5 * 0.080 * math.exp(sigma**2 / 2) / replicas


@pytest.fixture(scope="module")
def sized():
    """The sizing of the short day, with what each probe simulated (requests asked, horizon in seconds)."""
    simulated: list[tuple[int | None, float | None]] = []
    real = sizing.simulate

    def spy(scenario, **options):
        simulated.append((options.get("requests"), scenario.workload.duration_s))
        return real(scenario, **options)

    day = short_day()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sizing, "simulate", spy)
        result = size(day, SLO_MS, parse_candidates(None, day, {}), replications=3)
    return result, simulated


def test_every_probe_simulates_the_whole_day(sized):
    result, simulated = sized
    assert len(simulated) == len(result.probes) + 2  # the search's probes and the two fresh-seed re-checks
    assert set(simulated) == {(None, 1200.0)}


def test_the_spike_saturates_the_written_max_replicas_so_the_answer_lies_above_it(sized):
    result, _ = sized
    # Three replicas at the spike run at 98% load: the queue builds for its whole minute.
    assert spike_load_per_replica(MAX_REPLICAS) == pytest.approx(0.98, abs=0.01)
    chosen = result.chosen
    assert chosen is not None and chosen.replicas > MAX_REPLICAS
    assert result.ranges["l4"].ceiling == SEARCH_SPAN - 1 and result.ranges["l4"].max_replicas == MAX_REPLICAS
    scaling = result.chosen_scenario.deployment.autoscaling
    assert scaling.min_replicas == chosen.replicas and scaling.max_replicas >= chosen.replicas  # max raised with it
    assert any("max_replicas raised" in note for note in result.notes)


def test_the_choice_meets_in_every_window_and_one_fewer_fails(sized):
    result, _ = sized
    chosen = result.chosen
    assert chosen.verdict == "meets" and chosen.worst_window_p99_ms <= SLO_MS and chosen.p99_ci95[1] <= SLO_MS
    fewer = {p.replicas: p for p in result.probes}[chosen.replicas - 1]  # probed on the search's seeds
    assert fewer.verdict != "meets"
    assert result.recheck.verdict == "meets"
    assert result.one_fewer_recheck.replicas == chosen.replicas - 1 and result.one_fewer_recheck.verdict != "meets"


def test_the_frontier_carries_every_probes_evidence(sized):
    result, _ = sized
    frontier = result.frontier()
    assert list(frontier["replicas"]) == sorted(frontier["replicas"])
    assert frontier["worst_window_p99_ms"].notna().all()  # every probe judged window by window
    for column in ("p99_ms", "p99_ci95", "usd_per_hour", "usd_per_day", "verdict"):
        assert column in frontier
    # Each count that misses is a count the search saw fail: none below the choice meets.
    assert all(p.verdict != "meets" for p in result.probes if p.replicas < result.chosen.replicas)


def test_size_refuses_requests_on_a_time_profile_naming_the_option(tmp_path: Path, capsys):
    from sim.cli.main import main

    path = tmp_path / "day.yaml"
    path.write_text(DAY)
    assert main(["size", str(path), "--requests", "2000", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("servesim: error: --requests: ") and "changes over time" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()
