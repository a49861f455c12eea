"""An autoscaled scenario has no Replicas knob (the autoscaler sets the count: the knob was silently
ignored); its bounds are knobs, in whichever spelling the scenario uses."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from sim.spec.scenario import load_scenario  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")


def test_an_autoscaled_scenario_has_bounds_and_no_replicas_knob():
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params["scenario"] = "autoscale-diurnal"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    labels = [w.label for w in at.sidebar.number_input]
    assert "Replicas" not in labels and {"Min replicas", "Max replicas"} <= set(labels), labels
    assert any("set by the ray\\_serve autoscaler" in c.value for c in at.sidebar.caption), [
        c.value for c in at.sidebar.caption
    ]
    # The Sizing tab's rate input shows the day's mean rate in four figures (was 23.848118510241232).
    at.session_state["view"] = "Sizing"
    at.run()
    rate = next(w for w in at.number_input if w.label == "Target rate (req/s, mean)")
    mean = load_scenario(ROOT / "scenarios" / "autoscale-diurnal.yaml").workload.arrival.mean_rate_rps
    assert rate.value == float(f"{mean:.4g}") != mean
