"""The planner's one-click report (issue 12): what is on screen, as report.md + PNGs, from the page's own
summary — the report's p99 is the page's p99."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from sim.analysis import planner
from sim.present.page_report import page_report_zip, write_page_report
from sim.present.units import fmt_ms
from sim.spec.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent


def test_the_report_says_what_the_page_says(tmp_path):
    scenario = load_scenario(ROOT / "scenarios" / "search-ranker.yaml")
    result = planner.run(scenario, planner.QUICK, seed=scenario.seed)
    path = write_page_report(result, tmp_path, described="quick run", link="?scenario=search-ranker")
    text = path.read_text()
    summary = result.summary
    assert f"p99 {fmt_ms(summary['latency_ms']['p99'])}" in text
    assert ("**Meets the SLO**" in text) == bool(summary["slo"]["met"])
    assert "?scenario=search-ranker" in text
    for png in ("cdf.png", "stages.png"):
        assert (tmp_path / png).stat().st_size > 5_000 and f"]({png})" in text
    assert json.loads((tmp_path / "summary.json").read_text())["latency_ms"]["p99"] == summary["latency_ms"]["p99"]
    simulated = planner.sized(scenario, planner.QUICK)  # the quick run's length, as simulated
    assert load_scenario(tmp_path / "scenario.yaml").to_yaml() == simulated.to_yaml()


def test_a_changing_load_gets_its_timeline_and_window_verdict():
    scenario = load_scenario(ROOT / "scenarios" / "recsys-caches.yaml")
    result = planner.run(scenario, planner.QUICK, seed=scenario.seed)
    archive = zipfile.ZipFile(io.BytesIO(page_report_zip(result, described="quick run")))
    names = {Path(n).name for n in archive.namelist()}
    assert {"report.md", "cdf.png", "stages.png", "timeline.png", "scenario.yaml", "summary.json"} <= names
