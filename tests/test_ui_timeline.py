"""The Autoscaling tab's timeline reaches the peak its card states: window means alone smoothed a short
peak away (autoscale-diurnal: the window means peaked at 8 beside "Peak replicas 16")."""

from __future__ import annotations

from pathlib import Path

from sim.analysis import planner
from sim.metrics.timeline import windowed
from sim.present.timeline import timeline_figure
from sim.spec.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent


def test_the_replicas_panel_reaches_the_peak_replicas_of_the_summary():
    scenario = load_scenario(ROOT / "scenarios" / "autoscale-diurnal.yaml")
    result = planner.run(scenario, planner.QUICK, seed=scenario.seed)
    peak = result.summary["autoscaling"]["max_replicas"]
    window_s = 1800.0
    assert windowed(result.run, scenario, window_s)["paid_replicas"].max() < peak  # what the panel drew
    figure = timeline_figure(result.run, scenario, window_s)
    replicas_axis = next(axis for axis in figure.axes if axis.get_ylabel() == "replicas")
    assert max(line.get_ydata().max() for line in replicas_axis.get_lines()) == peak
