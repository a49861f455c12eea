"""The planner's headline (sim/present/headline.py): an LLM scenario leads with TTFT / TPOT against its
budgets, and the page shows one end-to-end p99 — the card, the LLM table's end-to-end row and the stage
bars' total read one function. Pure: no Streamlit."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from sim.analysis import planner
from sim.analysis.simulate import simulate
from sim.metrics.summary import stage_columns
from sim.present import headline
from sim.present.units import fmt_ms
import yaml

from sim.spec.scenario import parse_scenario_text
from sim.metrics.stages import stage_shares

ROOT = Path(__file__).resolve().parent.parent
NETWORK_MS = 40.0  # a stage before the LLM: end-to-end latency is the LLM's e2el plus this


def llm_with_network() -> dict:
    return {
        "name": "llm-plus-network",
        "seed": 5,
        "replications": 2,
        "workload": {
            "arrival": {"process": "poisson", "rate_rps": 2.0},
            "tokens": {"prompt": {"dist": "constant", "value": 400}, "output": {"dist": "constant", "value": 60}},
            "requests": 300,
            "warmup_requests": 30,
        },
        "stages": [
            {"name": "network", "kind": "delay", "service_ms": {"dist": "constant", "value": NETWORK_MS}},
            {
                "name": "llm",
                "kind": "llm",
                "profile": "models/llama2-70b-tp4-a100.yaml",
                "batching": {"policy": "continuous"},
            },
        ],
        "deployment": {"replicas": 1, "hardware": {"name": "4x A100", "usd_per_hour": 13.72}},
        "slo": {"ttft_ms": 1000, "tpot_ms": 100},
    }


@pytest.fixture(scope="module")
def run():
    scenario = parse_scenario_text(yaml.safe_dump(llm_with_network()), base_dir=ROOT / "scenarios")
    return scenario, simulate(scenario)


def test_one_end_to_end_p99_on_the_page(run):
    scenario, result = run
    summary = result.summary
    p99 = summary["latency_ms"]["p99"]
    # The scenario tells the paths apart: the LLM stage's own e2el leaves out the network stage.
    assert summary["llm"]["e2el_ms"]["p99"] < p99 - NETWORK_MS / 2
    card = next(c for c in headline.llm_cards(summary, 1000, 100) if c.label == "End-to-end p99")
    table = headline.llm_percentile_table(summary)
    bars = stage_shares(result.log, stage_columns(scenario), totals=headline.page_latency(summary).to_dict())
    assert card.value == fmt_ms(p99)
    assert table.loc["end-to-end", "p99 (ms)"] == p99
    assert bars.loc["p99"].sum() == pytest.approx(p99, rel=1e-12)


def test_llm_cards_judge_ttft_and_tpot_p99_against_the_budgets(run):
    _, result = run
    summary = result.summary
    llm = summary["llm"]
    ttft, tpot = llm["ttft_ms"]["p99"], llm["tpot_ms"]["p99"]
    # One budget just above each p99's CI upper end, one just below the p99 itself.
    ttft_upper = max(ttft, ((llm.get("ci95") or {}).get("ttft_ms") or {}).get("p99", [ttft, ttft])[1])
    cards = {c.label: c for c in headline.llm_cards(summary, ttft_upper + 1, tpot - 1)}
    assert cards["TTFT p99"].verdict == "meets" and cards["TTFT p99"].value == fmt_ms(ttft)
    assert (
        cards["TPOT p99"].verdict == "misses"
        and cards["TPOT p99"].note.startswith("+")
        and "over" in cards["TPOT p99"].note
    )
    assert cards["TTFT p50"].value == fmt_ms(llm["ttft_ms"]["p50"])
    word, sentence = headline.llm_verdict_sentence(summary, ttft_upper + 1, tpot - 1)
    assert word == "misses" and "TPOT p99" in sentence and "TTFT p99" in sentence
    per_token = summary["cost"]["usd_per_hour"] / (llm["output_tokens_per_s"] * 3600) * 1e6
    assert cards["$ per 1M output tokens"].value == f"${per_token:,.2f}"
    assert cards["Goodput"].value == f"{llm['goodput']['requests_per_s']:,.2f} req/s"


def test_no_llm_budget_says_so():
    word, sentence = headline.llm_verdict_sentence({"llm": {}}, None, None)
    assert word is None and "No TTFT / TPOT budget" in sentence


@pytest.mark.parametrize(
    ("value", "ci", "budget", "word"),
    [
        (29.9, (28.8, 31.0), 30.0, "too close"),  # the case: 29.9 ± 1.1 against 30 ms
        (29.9, (28.8, 29.95), 30.0, "meets"),
        (30.5, (29.0, 32.0), 30.0, "misses"),
        (29.0, None, 30.0, "meets"),  # no honest CI: judged on the estimate
        (29.0, (28.0, math.nan), 30.0, "meets"),
        (29.0, (28.0, 29.5), None, None),
    ],
)
def test_one_verdict_rule_on_the_ci_upper_end(value, ci, budget, word):
    assert planner.slo_verdict(value, ci, budget) == word


def test_the_verdict_rule_is_sizings():
    """sim.analysis.sizing.verdict judges a probe's p99 by the same rule."""
    from sim.analysis.sizing import Budgets, Probe, verdict

    cases = [(29.9, (28.8, 31.0)), (29.9, (28.8, 29.95)), (30.5, (29.0, 32.0))]
    for value, ci in cases:
        probe = Probe("t4", 2, value, ci, None, None, None, "")
        assert verdict(probe, Budgets(p99_ms=30.0)) == planner.slo_verdict(value, ci, 30.0)


@pytest.mark.parametrize(
    ("fraction", "text", "colour"),
    [(0.0, None, "off"), (0.0002, "<0.1% rejected", "off"), (0.034, "3.4% rejected", "inverse")],
)
def test_rejections_round_to_zero_are_not_red(fraction, text, colour):
    assert headline.rejected_note(fraction) == (text, colour)


def test_one_fmt_ms():
    from sim.present import plots, units

    assert plots.fmt_ms is units.fmt_ms
    assert fmt_ms(10_476.3) == "10.5 s"  # the card that was cut off at "10,476.…"


def test_the_page_report_leads_with_the_llm_verdict_too(run):
    from sim.present.page_report import verdict_lines

    _, result = run
    lines = verdict_lines(result.summary)
    assert "LLM budgets" in lines[0] and "TTFT p99" in lines[0] and "TPOT p99" in lines[0]
    assert not any("No latency budget" in line for line in lines)


def test_the_sizing_answer_is_one_line():
    from sim.analysis.sizing import Probe, SizingResult

    chosen = Probe("l4", 3, 240.0, (220.0, 260.0), 2.40, 28.0, 400.0, "meets", usd_per_day=57.6)
    fewer = Probe("l4", 2, 380.0, (340.0, 420.0), 1.60, 19.0, 612.0, "misses", usd_per_day=38.4)
    result = SizingResult(500.0, "min_replicas", probes=[chosen, fewer], chosen=chosen, one_fewer_recheck=fewer)
    assert headline.sizing_answer(result) == (
        "3 × l4 (min_replicas 3): $57.60/day, $2.40/h, $28.00 per 1M queries; "
        "one fewer misses (worst window p99 612 ms)"
    )
    assert headline.sizing_answer(SizingResult(500.0, "replicas")) is None
