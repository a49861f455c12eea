"""The Sizing tab (issue 12): target rate + p99 SLO -> the smallest replica count and cheapest hardware,
by the same search as `servesim size` (sim.analysis.sizing.size), with no 32-replica ceiling."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from sim.analysis import planner  # noqa: E402
from sim.analysis.sizing import parse_candidates, size  # noqa: E402
from sim.spec.hardware import load_catalogue  # noqa: E402
from sim.spec.scenario import parse_scenario_text  # noqa: E402
from sim.theory import mmc_sojourn_quantile  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")

# M/M/c with 20 ms mean service: at 1,000 req/s it needs 21 replicas; the tab asks for 2,000 req/s.
MMC = """
name: mmc-sizing
seed: 13
replications: 3
workload:
  arrival: {process: poisson, rate_rps: 1000}
  requests: 4000
stages:
  - name: forward
    kind: model
    service_ms: {dist: exponential, mean: 20}
deployment:
  replicas: 25
  hardware: {name: t4, usd_per_hour: 0.526}
slo: {p99_ms: 110}
"""
TARGET_RPS = 2000.0
SLO_MS = 110.0


def own_hardware_only(at: AppTest) -> None:
    """Size on the scenario's own hardware alone (the tab preselects catalogue alternatives too)."""
    at.multiselect(key=f"size.candidates@{at.session_state['_scenario_generation']}").set_value(["as configured"]).run()


def metric(at: AppTest, label: str):
    """The last card with this label: the Sizing tab's, below the verdict cards of the page."""
    return [m for m in at.metric if m.label.startswith(label)][-1]


def test_the_sizing_tab_finds_what_servesim_size_finds_past_32_replicas():
    at = AppTest.from_file(APP, default_timeout=600)
    at.run()
    at.file_uploader(key="upload").upload("mmc.yaml", MMC.encode(), "application/x-yaml").run()
    at.session_state["view"] = "Sizing"
    at.run()
    own_hardware_only(at)  # the search below is called on the scenario's own hardware alone
    generation = at.session_state["_scenario_generation"]
    at.number_input(key=f"size.rate@{generation}").set_value(TARGET_RPS).run()
    at.button(key="size.run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    shown = int(metric(at, "Smallest replicas").value)

    # The same search called directly, as `servesim size` calls it, on the same traffic, size and seed.
    scenario = parse_scenario_text(MMC, base_dir=ROOT / "scenarios")
    at_target = scenario.with_overrides(planner.scale_load(scenario, TARGET_RPS / 1000.0))
    run_plan = planner.plan(at_target, planner.QUICK)
    direct = size(
        at_target,
        SLO_MS,
        parse_candidates("t4", at_target, load_catalogue()),
        replications=max(2, run_plan.replications),
        requests=run_plan.requests,
        seed=scenario.seed,
    )
    assert shown == direct.chosen.replicas
    assert metric(at, "$ per 1M queries").value == f"${direct.chosen.usd_per_1m_queries:,.2f}"
    assert metric(at, "$ per hour").value == f"${0.526 * shown:,.2f}"
    # Erlang C: 41 servers give p99 129 ms, 42 give 102 ms; the CI's upper end may ask for one or two more.
    assert mmc_sojourn_quantile(0.99, 41, TARGET_RPS / 1000, 1 / 20) * 1 > SLO_MS
    assert mmc_sojourn_quantile(0.99, 42, TARGET_RPS / 1000, 1 / 20) < SLO_MS
    assert 42 <= shown <= 44


def test_the_sizing_tab_sizes_on_a_p95_budget_as_servesim_size_does():
    """A p95 SLO beside (here: instead of) the p99: the tab's answer is the search's with that budget."""
    p95_ms = 80.0
    at = AppTest.from_file(APP, default_timeout=600)
    at.run()
    at.file_uploader(key="upload").upload("mmc.yaml", MMC.encode(), "application/x-yaml").run()
    at.session_state["view"] = "Sizing"
    at.run()
    own_hardware_only(at)  # the search below is called on the scenario's own hardware alone
    generation = at.session_state["_scenario_generation"]
    at.number_input(key=f"size.slo@{generation}").set_value(0.0).run()
    at.number_input(key=f"size.p95@{generation}").set_value(p95_ms).run()
    at.button(key="size.run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    shown = int(metric(at, "Smallest replicas").value)
    assert any("meets p95 ≤ 80 ms" in s.value for s in at.success)

    scenario = parse_scenario_text(MMC, base_dir=ROOT / "scenarios")
    run_plan = planner.plan(scenario, planner.QUICK)
    direct = size(
        scenario,
        None,
        parse_candidates("t4", scenario, load_catalogue()),
        slo_p95_ms=p95_ms,
        replications=max(2, run_plan.replications),
        requests=run_plan.requests,
        seed=scenario.seed,
    )
    assert shown == direct.chosen.replicas


def test_the_sizing_tab_and_servesim_size_give_the_same_min_replicas_for_an_autoscaled_day(tmp_path: Path):
    """Question (c) on a short autoscaled day (tests/test_sizing_autoscaled.py): the tab and the CLI run the
    same search (sim.analysis.sizing.size) on the whole horizon, window by window, and show the same
    min_replicas, frontier and one-fewer re-check."""
    import pandas as pd
    import yaml

    from sim.cli.main import main
    from tests.test_sizing_autoscaled import DAY, short_day

    at = AppTest.from_file(APP, default_timeout=600)
    at.run()
    at.file_uploader(key="upload").upload("day.yaml", DAY.encode(), "application/x-yaml").run()
    at.session_state["view"] = "Sizing"
    at.run()
    own_hardware_only(at)  # the search below is called on the scenario's own hardware alone
    at.button(key="size.run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    shown = int(metric(at, "Smallest min_replicas").value)
    table = at.dataframe[-1].value

    # The CLI at the tab's run size (the whole horizon: a load that changes over time is never cut short).
    run_plan = planner.plan(short_day(), planner.QUICK)
    assert run_plan.requests is None
    path, out = tmp_path / "day.yaml", tmp_path / "out"
    path.write_text(DAY)
    argv = ["size", str(path), "--replications", str(max(2, run_plan.replications)), "--out", str(out)]
    assert main(argv) == 0
    written = yaml.safe_load((out / "short-day-sized.yaml").read_text())
    assert shown == written["deployment"]["autoscaling"]["min_replicas"]
    frontier = pd.read_csv(out / "frontier.csv")
    assert list(table["min_replicas"]) == list(frontier["replicas"])
    assert list(table["verdict"]) == list(frontier["verdict"])
    assert list(table["worst window p99 (ms)"]) == pytest.approx(list(frontier["worst_window_p99_ms"]))
    fewer = [c.value for c in at.caption if c.value.startswith("One fewer")]
    assert fewer and f"(min_replicas = {shown - 1})" in fewer[0]
