"""The Compare tab (issue 12): deltas against a chosen baseline with a significance test, a meets-SLO row,
and "unstable" instead of numbers for a variant whose queue grows without bound."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from sim.analysis import compare, planner
from sim.present.comparison import (
    MEETS_ROW,
    baseline_note,
    comparison_cells,
    identical_pairs,
    identical_text,
    winner_text,
)
from sim.spec.scenario import parse_scenario_text

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")

# Two replicas at load 0.75 each; one replica would be at load 1.5.
TWO_REPLICAS = """
name: two-replicas
seed: 11
replications: 4
workload:
  arrival: {process: poisson, rate_rps: 150}
  requests: 4000
stages:
  - name: forward
    kind: model
    service_ms: {dist: exponential, mean: 10}
deployment:
  replicas: 2
  hardware: {name: t4, usd_per_hour: 0.526}
slo: {p99_ms: 60}
"""
VARIANTS = ["two: replicas=2", "three: replicas=3", "one: replicas=1"]


def welch_p(a: list[float], b: list[float]) -> float:
    """Welch's unequal-variance t-test, two-sided, from its formula (Welch 1947)."""
    a, b = np.asarray(a), np.asarray(b)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    t = (b.mean() - a.mean()) / np.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return float(2 * stats.t.sf(abs(t), df))


def test_welch_delta_matches_the_formula():
    base, far, near = [10.0, 11.0, 12.5], [14.0, 15.5, 16.0], [10.5, 12.0, 12.2]
    d = planner.delta(np.array(base), np.array(far))
    assert d.value == pytest.approx(np.mean(far) - np.mean(base))
    assert d.relative == pytest.approx((np.mean(far) - np.mean(base)) / np.mean(base))
    assert d.significant == (welch_p(base, far) < 0.05) and d.significant
    assert f"p = {welch_p(base, far):.2g}" in d.test
    assert not planner.delta(np.array(base), np.array(near)).significant
    assert welch_p(base, near) >= 0.05


def test_single_values_fall_back_to_ci_overlap():
    apart = planner.delta(np.array([10.0]), np.array([20.0]), (9.0, 11.0), (18.0, 22.0))
    assert apart.significant and "do not overlap" in apart.test
    touching = planner.delta(np.array([10.0]), np.array([12.0]), (9.0, 11.5), (11.0, 13.0))
    assert not touching.significant and "overlap" in touching.test


def run_variants():
    scenario = parse_scenario_text(TWO_REPLICAS, base_dir=ROOT / "scenarios")
    return compare.run_comparison(scenario, compare.parse_variants(VARIANTS, scenario), size=planner.QUICK)


def test_unstable_variant_shows_unstable_and_deltas_are_against_the_baseline():
    comparison = run_variants()
    table = comparison_cells(comparison, "two")
    one, two, three = table["one"], table["two"], table["three"]
    for row in ("p50 latency (ms)", "p95 latency (ms)", "p99 latency (ms)", "requests within p99 SLO (share)"):
        assert one[row] == "unstable"
    assert one[MEETS_ROW] == "no (unstable)"
    assert "Δ" not in two["p99 latency (ms)"]  # the baseline has no delta
    # Three replicas against two: the p99 delta is the difference of the means, tested with Welch's t.
    results = {r.variant.name: r for r in comparison.results}
    base_p99 = planner.group_values(results["two"].result, "p99")
    three_p99 = planner.group_values(results["three"].result, "p99")
    assert len(base_p99) == len(three_p99) == planner.QUICK_REPLICATIONS  # one per replication
    assert base_p99.mean() == pytest.approx(results["two"].summary["latency_ms"]["p99"])
    diff = three_p99.mean() - base_p99.mean()
    mark = "✱" if welch_p(list(base_p99), list(three_p99)) < 0.05 else "n.s."
    assert f"Δ {diff:+,.1f}".replace("-", "−") in three["p99 latency (ms)"]
    assert three["p99 latency (ms)"].endswith(mark)
    # Stars go to stable variants only; the meets row judges the p99's CI upper end (as Sizing does).
    assert "★" not in " ".join(one)
    for name in ("two", "three"):
        summary = results[name].summary
        word = planner.slo_verdict(
            summary["latency_ms"]["p99"], summary["latency_ms_ci95"]["p99"], summary["slo"]["p99_ms"]
        )
        assert table[name][MEETS_ROW] == {"meets": "yes", "too close": "too close to call", "misses": "no"}[word]


def test_no_deltas_against_an_unstable_baseline():
    """A baseline whose queue grows without bound has figures that depend on the run's length: no cell
    carries a delta from it (the throughput row did: +212% ✱), and the note says why."""
    comparison = run_variants()
    table = comparison_cells(comparison, "one")
    assert "Δ" not in " ".join(table.to_numpy().ravel())
    assert "unstable" in baseline_note(comparison, "one")
    assert baseline_note(comparison, "two") is None
    assert "Δ" in " ".join(comparison_cells(comparison, "two")["three"])


def test_the_scenarios_own_configuration_is_always_a_row():
    scenario = parse_scenario_text(TWO_REPLICAS, base_dir=ROOT / "scenarios")
    variants = compare.parse_variants(["three: replicas=3", "four: replicas=4"], scenario)
    names = [v.name for v in compare.with_current(variants)]
    assert names == [compare.CURRENT, "three", "four"]
    as_written = [compare.Variant("mine", {}), *variants]
    assert compare.with_current(as_written) == as_written  # already a row: not twice


def test_the_compare_tab_shows_unstable_and_a_chosen_baseline():
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    at.file_uploader(key="upload").upload("two.yaml", TWO_REPLICAS.encode(), "application/x-yaml").run()
    at.session_state["view"] = "Compare"
    at.run()
    generation = at.session_state["_scenario_generation"]
    at.text_area(key=f"compare.variants@{generation}").set_value("\n".join(VARIANTS)).run()
    at.selectbox(key=f"compare.baseline@{generation}").set_value("three").run()
    assert not at.exception, [e.value for e in at.exception]
    table = next(m.value for m in at.markdown if m.value.startswith("| metric |"))
    p99_row = next(line for line in table.splitlines() if line.startswith("| p99 latency"))
    cells = [c.strip() for c in p99_row.strip("|").split("|")][1:]
    assert cells[3] == "unstable"  # columns: the scenario as configured, two, three, one
    assert "Δ" in cells[0] and "Δ" in cells[1] and "Δ" not in cells[2]  # "three" is the baseline now
    assert any(line.startswith(f"| {MEETS_ROW}") for line in table.splitlines())
    assert len([c for c in at.caption if c.value.startswith("★ best per metric")]) == 1  # one legend
    assert any("**one** is unstable" in w.value for w in at.warning)


# Load 40 at one replica (2,000 req/s × 20 ms): 41 replicas are the fewest that keep up.
FORTY = (
    TWO_REPLICAS.replace("name: two-replicas", "name: forty")
    .replace("rate_rps: 150", "rate_rps: 2000")
    .replace("mean: 10", "mean: 20")
    .replace("replicas: 2", "replicas: 45")
)


def test_cost_vs_replicas_goes_past_32_with_one_unstable_point():
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    at.file_uploader(key="upload").upload("forty.yaml", FORTY.encode(), "application/x-yaml").run()
    at.session_state["view"] = "Cost vs replicas"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value
    assert table["replicas"].min() == 40 and table["replicas"].max() > 32
    unstable = table[table["p99 (ms)"] == "unstable"]
    assert list(unstable["replicas"]) == [40]
    assert list(unstable["SLO met"]) == ["no (unstable)"]
    stable = table[table["p99 (ms)"] != "unstable"]
    assert len(stable) >= 8 and all(float(v.replace(",", "")) > 0 for v in stable["p99 (ms)"])
    assert any("Below 41 replicas" in c.value for c in at.caption)


def test_variants_that_act_alike_are_named_as_identical():
    """A static batch of 32 with a 5 ms timeout and a dynamic batch of up to 32 waiting 5 ms send the same
    batches on this traffic: the note says so, and a variant that differs is not named."""
    scenario = parse_scenario_text(TWO_REPLICAS, base_dir=ROOT / "scenarios")
    specs = [
        "static: batching=static(batch_size=32,timeout_ms=5)",
        "dynamic: batching=dynamic(max_batch_size=32,max_queue_delay_ms=5)",
        "none: batching=none",
    ]
    comparison = compare.run_comparison(scenario, compare.parse_variants(specs, scenario), size=planner.QUICK)
    assert identical_pairs(comparison) == [("static", "dynamic")]
    assert "static and dynamic" in identical_text(identical_pairs(comparison), comparison)
    # A variant that sets what the scenario already has is the same configuration, said as such.
    again = compare.run_comparison(
        scenario, compare.with_current(compare.parse_variants(["two: replicas=2", "three: replicas=3"], scenario))
    )
    text = identical_text(identical_pairs(again), again)
    assert text == f"two is {compare.CURRENT} (the same configuration)."


def test_cost_at_equal_slo_is_what_the_sizing_search_finds_per_variant():
    """Each variant sized to the SLO by `servesim size`'s search on the comparison's seed: the rows show its
    replicas and $ per 1M queries, and the cheapest is starred."""
    from sim.analysis.sizing import parse_candidates, size
    from sim.present.comparison import AT_SLO_ROWS

    scenario = parse_scenario_text(TWO_REPLICAS, base_dir=ROOT / "scenarios")
    variants = compare.parse_variants(["routed: routing=random", "shared: routing=shared_queue"], scenario)
    comparison = compare.run_comparison(scenario, variants, size=planner.QUICK)
    at_slo = compare.cost_at_slo(comparison, 60.0)
    for result in comparison.results:
        plan = planner.plan(result.scenario, planner.QUICK)
        direct = size(
            result.scenario,
            60.0,
            parse_candidates(None, result.scenario, {}),
            replications=max(2, plan.replications),
            requests=plan.requests,
            seed=comparison.seed,
        )
        assert at_slo[result.variant.name].replicas == direct.chosen.replicas
    # A shared queue needs no more replicas than random routing for the same p99 (M/M/c against c × M/M/1).
    assert at_slo["shared"].replicas <= at_slo["routed"].replicas
    table = comparison_cells(comparison, None, at_slo)
    assert table.loc[AT_SLO_ROWS[0], "shared"] == str(at_slo["shared"].replicas)
    assert "★" in table.loc[AT_SLO_ROWS[1], "shared"]


def test_the_winner_is_named_with_the_test_against_the_runner_up():
    comparison = run_variants()
    results = {r.variant.name: r for r in comparison.results}
    text = winner_text(comparison)
    # "one" is unstable and left out; three replicas beat two.
    assert text.startswith("Lowest p99: three") and "two next" in text
    p_value = welch_p(
        list(planner.group_values(results["two"].result, "p99")),
        list(planner.group_values(results["three"].result, "p99")),
    )
    assert ("significant at 5%" in text) == (p_value < 0.05) and f"p = {p_value:.2g}" in text
