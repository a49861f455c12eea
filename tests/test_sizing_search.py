"""The sizing search's honesty, on probes answered from a formula (no simulation): it gallops (+1, +2, +4,
...) to its ceiling unless a count meets, then bisects, so it finds an answer behind a plateau, probes an
unreachable SLO up to the ceiling in O(log ceiling) probes and says so, reports noise where the probes are
not monotone, and reaches past an autoscaler's max_replicas (raised with min_replicas) to a stated ceiling;
and its ETA is the plan's bound on the probes left at the time per replication measured so far."""

from __future__ import annotations

import math

import pytest

from sim.analysis import sizing
from sim.analysis.sizing import (
    SEARCH_SPAN,
    Budgets,
    Candidate,
    Probe,
    _search,
    search_range,
    size,
    verdict,
    with_replicas,
)
from sim.analysis.sizing_search import Search, SearchRange
from tests.helpers import model_scenario

SLO_MS = 100.0

# 6 Erlangs of Exp(1 s) service: the smallest stable fleet is 7 replicas, so a fixed fleet's search runs
# from 7 to 7 + SEARCH_SPAN - 1 = 46.
FIXED = model_scenario(
    arrival={"process": "poisson", "rate_rps": 6.0},
    service_ms={"dist": "exponential", "mean": 1000},
    hardware={"name": "x", "usd_per_hour": 1.0},
)


def autoscaled(policy: str = "ray_serve", max_replicas: int = 3):
    return model_scenario(
        arrival={"process": "poisson", "rate_rps": 6.0},
        service_ms={"dist": "exponential", "mean": 1000},
        cold_start_ms={"dist": "constant", "value": 1000},
        autoscaling={"policy": policy, "min_replicas": 1, "max_replicas": max_replicas},
    )


def synthetic_probe(count: int, p99_ms: float) -> Probe:
    """A probe whose p99 is `p99_ms` with a ±5% CI, judged against SLO_MS by the search's own verdict."""
    point = Probe("x", count, p99_ms, (p99_ms * 0.95, p99_ms * 1.05), 1.0, 1.0, None, "")
    point.verdict = verdict(point, Budgets(SLO_MS))
    return point


def synthetic(p99_of_count):
    """A `run(count)` for the search that answers from a formula instead of simulating, and its log."""
    asked: list[int] = []

    def run(count: int) -> Probe:
        asked.append(count)
        return synthetic_probe(count, p99_of_count(count))

    return run, asked


def test_the_search_brackets_and_bisects_to_the_smallest_count_that_meets():
    # p99 = 3000 / (count − 6) ms (stable from 7 replicas): meets 100 ms with its CI from 38 replicas on.
    run, asked = synthetic(lambda count: 3000.0 / (count - 6))
    notes: list[str] = []
    chosen = _search(FIXED, "x", False, SLO_MS, run, notes)
    exact = next(c for c in range(7, 100) if 3000.0 / (c - 6) * 1.05 <= SLO_MS)
    assert chosen.replicas == exact == 38
    # Gallop 7, 8, 10, 14, 22, 38 (meets), then bisect 22..38: 30, 34, 36, 37 -> 10 probes, not 32.
    assert asked == [7, 8, 10, 14, 22, 38, 30, 34, 36, 37]
    assert exact - 1 in asked and not notes


def test_a_curve_that_flattens_then_drops_below_the_slo_is_found():
    """p99 flat at 150 ms from 7 to 29 replicas (a plateau the old search took for a floor after two
    probes), then 60 ms from 30 on: the gallop runs on past the plateau and bisection finds 30."""
    run, asked = synthetic(lambda count: 150.0 if count < 30 else 60.0)
    notes: list[str] = []
    chosen = _search(FIXED, "x", False, SLO_MS, run, notes)
    assert chosen.replicas == 30
    assert asked[:6] == [7, 8, 10, 14, 22, 38] and 29 in asked
    assert not any("levelled off" in note or "do not help" in note for note in notes)


def test_an_unreachable_slo_is_probed_up_to_the_ceiling_in_log_probes_and_said_so():
    # p99 levels off at 180 ms, above the 100 ms SLO at any count.
    run, asked = synthetic(lambda count: 180.0 + 1.0 / count)
    notes: list[str] = []
    assert _search(FIXED, "x", False, SLO_MS, run, notes) is None
    ceiling = 7 + SEARCH_SPAN - 1
    assert asked == [7, 8, 10, 14, 22, 38, ceiling]
    assert len(asked) <= math.ceil(math.log2(ceiling - 7 + 1)) + 1
    (note,) = notes
    assert f"up to the search's ceiling ({ceiling})" in note
    assert f"p99 has levelled off (180.0 ms at 38, 180.0 ms (95% CI from 171.0 ms) at {ceiling})" in note
    assert "more replicas do not help" in note


def test_a_plateau_within_the_ci_is_probed_to_the_ceiling_and_called_too_close():
    # p99 falls to ~97 ms and stays there, its CI straddling the 100 ms SLO ("too close") at every count.
    run, asked = synthetic(lambda count: {7: 120.0}.get(count, 97.0))
    notes: list[str] = []
    assert _search(FIXED, "x", False, SLO_MS, run, notes) is None
    assert asked[-1] == 7 + SEARCH_SPAN - 1
    (note,) = notes
    assert "levelled off" in note and "too close to call" in note


def test_noise_that_breaks_monotonicity_is_reported_and_the_choice_has_one_fewer_failing():
    # 8 replicas are "too close" (97 ms), 10 miss (120 ms): more replicas did worse — noise. From 11 on
    # the p99 is 90 ms and meets.
    run, asked = synthetic(lambda count: {7: 130.0, 8: 97.0, 9: 96.0, 10: 120.0}.get(count, 90.0))
    notes: list[str] = []
    chosen = _search(FIXED, "x", False, SLO_MS, run, notes)
    assert asked == [7, 8, 10, 14, 12, 11]
    assert chosen.replicas == 11 and chosen.verdict == "meets"
    assert synthetic_probe(10, 120.0).verdict == "misses"  # its one fewer fails
    (note,) = notes
    assert "not monotone" in note and "97.0 ms (too close) at replicas 8" in note and "120.0 ms (misses) at 10" in note


def test_an_autoscaled_search_raises_max_replicas_with_min_replicas_up_to_a_stated_ceiling():
    scenario = autoscaled(max_replicas=3)
    span = search_range(scenario, autoscaled=True)
    # Ray Serve can scale from zero; the ceiling is the span above it, past max_replicas 3.
    assert span == SearchRange(start=0, ceiling=SEARCH_SPAN - 1, max_replicas=3)
    # The gallop lands on max_replicas (the last count the autoscaler's own max allows) on its way up.
    assert span.gallop() == [0, 1, 3, 7, 15, 31, SEARCH_SPAN - 1]
    # A min_replicas above max_replicas is probed with max raised to match.
    raised = with_replicas(scenario, 7).deployment.autoscaling
    assert (raised.min_replicas, raised.max_replicas) == (7, 7)
    # An SLO met only from 5 replicas on: found above max_replicas, and the note says max was raised.
    run, asked = synthetic(lambda count: 60.0 if count >= 5 else 500.0)
    notes: list[str] = []
    chosen = _search(scenario, "x", True, SLO_MS, run, notes)
    assert chosen.replicas == 5 and asked == [0, 1, 3, 7, 5, 4]
    assert any("max_replicas raised" in note and f"ceiling of {SEARCH_SPAN - 1}" in note for note in notes)


def test_an_autoscaled_ceiling_is_max_replicas_where_that_is_higher_and_the_hpa_starts_at_one():
    assert search_range(autoscaled(max_replicas=64), autoscaled=True) == SearchRange(0, 64, 64)
    assert search_range(autoscaled("hpa", max_replicas=3), autoscaled=True) == SearchRange(1, SEARCH_SPAN, 3)


def test_an_unreachable_slo_on_an_autoscaled_fleet_is_probed_to_the_ceiling():
    run, asked = synthetic(lambda count: 500.0 - count)  # still falling at the ceiling, never under 100 ms
    notes: list[str] = []
    assert _search(autoscaled(max_replicas=3), "x", True, SLO_MS, run, notes) is None
    assert asked == [0, 1, 3, 7, 15, 31, SEARCH_SPAN - 1]
    assert any(f"no min_replicas up to the search's ceiling ({SEARCH_SPAN - 1})" in note for note in notes)


@pytest.mark.parametrize(
    "gallop_from, below, expected",
    [
        # Nothing probed yet, from 7 to 46: the worst case is the gallop to 38 (5th) and bisecting 22..38 (4).
        (0, None, 6 + 4),
        # 7 probed and failed: 38 is the 5th count left, and 22..38 takes 4 more.
        (1, 7, 5 + 4),
        # 7..22 failed: 38 then 22..38 (1 + 4), or 38, 46 then 38..46 (2 + 3).
        (5, 22, 5),
    ],
)
def test_the_probes_left_are_the_gallop_still_to_come_and_the_bisection_of_its_gap(gallop_from, below, expected):
    search = Search(SearchRange(7, 46))
    assert search.planned == [7, 8, 10, 14, 22, 38, 46]
    for count in search.planned[:gallop_from]:
        search.record(synthetic_probe(count, 500.0))
    assert (search.below.replicas if search.below else None) == below
    assert search.left() == expected


def test_the_probes_expected_are_the_mean_over_where_the_first_count_may_meet_or_none():
    search = Search(SearchRange(7, 46))
    search.record(synthetic_probe(7, 500.0))
    # First meeting at 8, 10, 14, 22, 38 or 46: 1, 2 + 1, 3 + 2, 4 + 3, 5 + 4, 6 + 3 probes (gallop, then
    # bisecting the gap below); none meeting: the 6 gallop counts. Mean of the seven ends: 40 / 7.
    assert search.outcomes() == [1, 3, 5, 7, 9, 9, 6]
    assert search.expected_left() == pytest.approx(40 / 7)
    search.record(synthetic_probe(8, 500.0))
    search.record(synthetic_probe(10, 60.0))  # meets: only bisecting 8..10 is left
    assert search.outcomes() == [1] and search.expected_left() == 1


def test_the_eta_after_each_probe_is_the_last_probes_time_per_replication_times_the_replications_left(
    monkeypatch,
):
    """A fake clock: replication i takes i seconds. The SLO is met from 9 replicas on (probes 7, 8, 10, 9,
    then re-checks of 9 and 8 on fresh seeds): the ETA after k probes is the time per replication of probe k
    times the replications of the probes the plan may still run, at most and on average; before a probe
    ends, the time per replication is the mean so far."""
    replications = 2
    now = [0.0]
    ticks = iter(range(1, 1000))

    def fake_probe(scenario, hardware, count, budgets, *, seed, on_replication, **options):
        for done in range(1, replications + 1):
            now[0] += next(ticks)
            on_replication(done, replications)
        return synthetic_probe(count, 60.0 if count >= 9 else 500.0)

    monkeypatch.setattr(sizing, "probe", fake_probe)
    states = []
    result = size(
        FIXED, SLO_MS, [Candidate("x", 1.0)], replications=replications, clock=lambda: now[0], on_progress=states.append
    )
    assert [p.replicas for p in result.probes] == [7, 8, 9, 10] and result.chosen.replicas == 9
    # The first report, mid-probe: one replication of 1 s done; the plan from nothing (10 probes, see
    # above) and the 2 re-checks are 24 replications, less the 1 done, at 1 s each.
    first = states[0]
    assert (first.replications_done, first.elapsed_s, first.probes_left) == (1, 1.0, 10 + 2)
    assert first.eta_s == pytest.approx((replications * 12 - 1) * 1.0)
    # On average from nothing: ends at 7, 8, 10, 14, 22, 38, 46 after 1, 2, 4, 6, 8, 10, 10 probes, none
    # meeting after 7: 48 / 8 = 6, and the re-checks.
    assert first.probes_expected == 6 + 2
    assert first.expected_eta_s == pytest.approx((replications * 8 - 1) * 1.0)
    after_probe = [s for s in states if s.probes_done and s.replications_done == replications * s.probes_done]
    # Probes the plan may still run after each probe, re-checks included (2): after 7 fails, the gallop
    # to 46 and a bisection (see above: 9); after 8, 8; once 10 meets, bisecting 8..10 (1); then the re-checks.
    left = [9 + 2, 8 + 2, 1 + 2, 0 + 2, 1, 0]
    # On average: after 7, 40 / 7 (above); after 8, ends at 10, 14, 22, 38, 46 or none: (2 + 4 + 6 + 8 + 8
    # + 5) / 6; then as at most.
    expected = [40 / 7 + 2, 33 / 6 + 2, 1 + 2, 0 + 2, 1, 0]
    assert [s.probes_left for s in after_probe] == left
    assert [s.probes_expected for s in after_probe] == pytest.approx(expected)
    for k, state in enumerate(after_probe, start=1):
        assert state.elapsed_s == sum(range(1, replications * k + 1))  # replications 1..2k took 1, 2, ... s
        per_replication = ((2 * k - 1) + 2 * k) / replications  # probe k's replications took 2k - 1 and 2k s
        assert state.eta_s == pytest.approx(replications * left[k - 1] * per_replication)
        assert state.expected_eta_s == pytest.approx(replications * expected[k - 1] * per_replication)


def test_one_fewer_meeting_on_fresh_seeds_is_reported_as_noise(monkeypatch):
    def fake_probe(scenario, hardware, count, budgets, *, seed, **options):
        fresh = seed != scenario.seed
        return synthetic_probe(count, 60.0 if count >= (8 if fresh else 9) else 500.0)

    monkeypatch.setattr(sizing, "probe", fake_probe)
    result = size(FIXED, SLO_MS, [Candidate("x", 1.0)], replications=2)
    assert result.chosen.replicas == 9 and result.one_fewer_recheck.verdict == "meets"
    assert any("one fewer (replicas 8) meets the SLO on fresh seeds" in note for note in result.notes)
