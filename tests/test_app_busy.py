"""The page's busiest-stage card is the measured busy share (sim/metrics/busy.py), equal to the engine's
for the same scenario and seed: search-ranker's T4s are about three quarters busy, where offered load at
the maximum batch size said 21%."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from sim.analysis import planner  # noqa: E402
from sim.metrics.busy import busiest, busy_shares  # noqa: E402
from sim.metrics.load import offered_load  # noqa: E402
from sim.spec.scenario import load_scenario  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def test_the_busiest_stage_card_is_the_measured_busy_share():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.query_params["scenario"] = "search-ranker"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    scenario = load_scenario(ROOT / "scenarios" / "search-ranker.yaml")
    result = planner.run(scenario, planner.QUICK, seed=scenario.seed)
    name, share = busiest(busy_shares(result.run, scenario))
    card = next(m for m in at.metric if m.label == "Busiest stage")
    assert (card.value, card.delta) == (f"{share:.0%} busy", name)
    assert share > 2 * max(offered_load(scenario).values())  # what the card said before was not this
