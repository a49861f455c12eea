"""The planner's pure helpers, without AppTest: what they return is what the page shows."""

from __future__ import annotations

import pandas as pd
import pytest

pytest.importorskip("streamlit")

from ui.views.sizing import budget_text, count  # noqa: E402
from ui.views.sweeps import cost_table  # noqa: E402
from ui.views.verdict import dominant_stage_sentence  # noqa: E402


def test_dominant_stage_sentence_names_the_stage_with_its_queue():
    shares = pd.DataFrame(
        {"preprocess_queue": [0.0, 10.0], "preprocess": [5.0, 60.0], "forward": [5.0, 30.0]}, index=["p50", "p99"]
    )
    # preprocess at p99: 70 of 100 ms, 10 of them queueing for it.
    assert dominant_stage_sentence(shares) == (
        "At p99, **preprocess** takes 70% of a request's 100.0 ms (10% of the total queueing for it)."
    )
    assert dominant_stage_sentence(pd.DataFrame()) == ""


def test_cost_table_says_unstable_instead_of_numbers():
    curve = pd.DataFrame(
        [
            {"replicas": 1, "offered_load": 1.3, "stable": False},
            {
                "replicas": 2,
                "offered_load": 0.65,
                "stable": True,
                "p50": 12.0,
                "p99": 80.0,
                "throughput_rps": 99.5,
                "usd_per_1m_queries": 2.9,
                "slo_met": True,
            },
        ]
    )
    table = cost_table(curve)
    assert table.loc[0, "p99 (ms)"] == "unstable" and table.loc[0, "SLO met"] == "no (unstable)"
    assert table.loc[1, "p99 (ms)"] == "80.0" and table.loc[1, "SLO met"] == "yes"
    assert table.loc[1, "offered load (limiting stage)"] == "65%"


def test_budget_text_and_counts():
    assert budget_text(100.0, 50.0) == "p99 ≤ 100 ms and p95 ≤ 50 ms"
    assert budget_text(0.0, 0.0, 1000.0, 100.0) == "TTFT p99 ≤ 1000 ms and TPOT p99 ≤ 100 ms"
    assert (count(1, "probe"), count(3, "probe")) == ("1 probe", "3 probes")
