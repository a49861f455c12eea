"""Sizing a disaggregated LLM stage (sim/analysis/sizing_split.py): each pool searched to its boundary, TTFT
owed to the prefill pool alone, the colocated fleet sized on the same budgets, and refusals that name the field."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from sim.analysis.sizing import Budgets, probe
from sim.analysis.sizing_split import size_split
from sim.cli.main import main
from sim.errors import ScenarioError, ServesimError
from sim.spec.scenario import parse_scenario
from sim.spec.transforms import colocated, split_overrides, with_split

ROOT = Path(__file__).resolve().parents[1]
A100 = str(ROOT / "models" / "llama2-70b-tp4-a100.yaml")
BUDGETS = Budgets(ttft_p99_ms=3000.0, tpot_p99_ms=70.0)


def raw_split(requests: int = 1500) -> dict:
    """Long prompts at 6 req/s on TP4 A100s: the prefill pool needs several replicas for a 3 s TTFT, the decode
    pool two for a 70 ms TPOT."""
    return {
        "name": "split",
        "seed": 3,
        "workload": {
            "arrival": {"process": "poisson", "rate_rps": 6.0},
            "requests": requests,
            "tokens": {
                "prompt": {"dist": "lognormal", "median": 1500, "p99": 4000},
                "output": {"dist": "lognormal", "median": 150, "p99": 600},
            },
        },
        "stages": [
            {
                "name": "llm",
                "kind": "llm",
                "profile": A100,
                "disaggregated": {"prefill_replicas": 2, "decode": {"replicas": 2}},
            }
        ],
        "deployment": {"replicas": 4, "hardware": {"name": "a100", "usd_per_hour": 13.72}},
        "slo": {"ttft_ms": 3000, "tpot_ms": 70},
    }


@pytest.fixture(scope="module")
def sized():
    scenario = parse_scenario(raw_split(), base_dir=ROOT)
    return scenario, size_split(scenario, BUDGETS, replications=3)


def test_each_pool_is_searched_to_its_boundary(sized):
    scenario, result = sized
    prefill, decode = result.chosen_pools
    assert result.chosen.replicas == prefill + decode and result.chosen.verdict == "meets"
    # The search's own evidence: one fewer in each pool, on the search's seeds, does not meet.
    below = {p.replicas: p.verdict for p in result.prefill}
    assert below[prefill] == "meets" and (prefill == 1 or below[prefill - 1] != "meets")
    below = {p.replicas: p.verdict for p in result.decode}
    assert below[decode] == "meets" and (decode == 1 or below[decode - 1] != "meets")
    assert prefill >= 2 and decode >= 2  # this load needs more than one of each
    assert result.chosen_scenario.stage("llm").disaggregated.prefill_replicas == prefill
    assert result.chosen_scenario.deployment.replicas == prefill + decode
    assert result.chosen_scenario.slo.tpot_ms == 70.0


def test_ttft_is_the_prefill_pools_alone(sized):
    # The first token leaves when the KV transfer ends: the decode pool's size cannot move TTFT, to the bit.
    scenario, result = sized
    prefill, decode = result.chosen_pools
    held = next(p for p in result.prefill if p.replicas == prefill)
    found = next(p for p in result.decode if p.replicas == decode)
    assert held.ttft_p99_ms == found.ttft_p99_ms and held.ttft_ci95 == found.ttft_ci95
    one = probe(
        scenario,
        "x",
        1,
        BUDGETS,
        seed=3,
        replications=3,
        requests=None,
        window_s=None,
        fleet=lambda s, _c: with_split(s, prefill, 1),
    )
    assert one.ttft_p99_ms == held.ttft_p99_ms and one.tpot_p99_ms > found.tpot_p99_ms


def test_a_tight_tpot_costs_a_colocated_fleet_more(sized):
    # DistServe (OSDI '24, §2): with a tight TPOT budget a colocated fleet must over-provision, since every
    # prefill batch stalls the decodes beside it; split pools meet it with fewer GPUs.
    scenario, result = sized
    together = result.colocated.chosen
    assert together is not None and together.verdict == "meets"
    assert together.replicas > sum(result.chosen_pools)
    assert together.usd_per_1m_tokens > result.chosen.usd_per_1m_tokens
    assert result.cheaper == "disaggregated"
    # The colocated fleet runs both phases on the stage's profile: no pools in its summary.
    assert colocated(scenario).stage("llm").disaggregated is None


def test_rechecks_cover_one_fewer_in_each_pool(sized):
    _, result = sized
    prefill, decode = result.chosen_pools
    assert result.recheck.replicas == prefill + decode
    assert result.fewer_decode.hardware == f"{prefill} prefill + {decode - 1} decode"
    assert result.fewer_decode.verdict != "meets"  # the decode boundary is sharp at this load
    assert result.fewer_prefill.hardware == f"{prefill - 1} prefill + {decode} decode"
    assert math.isfinite(result.fewer_prefill.ttft_p99_ms)


def test_a_split_needs_both_budgets():
    scenario = parse_scenario(raw_split(100), base_dir=ROOT)
    with pytest.raises(ServesimError, match=r"stages\.llm\.disaggregated: .*TTFT and a TPOT p99 budget"):
        size_split(scenario, Budgets(ttft_p99_ms=1000.0), replications=2)


def test_pool_counts_are_checked():
    scenario = parse_scenario(raw_split(100), base_dir=ROOT)
    with pytest.raises(ScenarioError, match=r"stages\.llm\.disaggregated\.decode\.replicas must be a whole number"):
        split_overrides(scenario, 2, 0)


def test_cli_sizes_the_pools_and_writes_one_frontier(tmp_path, capsys):
    import yaml

    path = tmp_path / "split.yaml"
    path.write_text(yaml.safe_dump(raw_split(600)))
    out = tmp_path / "out"
    code = main(["size", str(path), "--replications", "2", "--no-colocated", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "disaggregated:" in text and " prefill + " in text and "colocated:" not in text
    frontier = pd.read_csv(out / "frontier.csv")
    assert set(frontier["pool"]) == {"prefill", "decode"}
    assert (out / "split-sized.yaml").exists()
    # The answer line is the page's headline function, on the same search.
    from sim.present.headline import split_answer

    direct = size_split(parse_scenario(raw_split(600), base_dir=ROOT), BUDGETS, replications=2, with_colocated=False)
    assert f"answer: {split_answer(direct)}" in " ".join(text.split())


def test_cli_refuses_hardware_candidates_on_a_split(capsys):
    assert main(["size", "llm-code-disaggregated", "--hardware", "h100-80gb"]) == 2
    err = capsys.readouterr().err
    assert "stages.llm.disaggregated" in err and err.count("\n") == 1


def test_compare_shorthands_set_both_pools_or_colocate():
    from sim.analysis.compare import VariantError, parse_variant

    scenario = parse_scenario(raw_split(100), base_dir=ROOT)
    split = parse_variant("s:split=3+1", scenario)
    assert split.overrides == {
        "stages.llm.disaggregated.prefill_replicas": 3,
        "stages.llm.disaggregated.decode.replicas": 1,
        "deployment.replicas": 4,
    }
    together = scenario.with_overrides(parse_variant("colocated=6", scenario).overrides)
    assert together.stage("llm").disaggregated is None and together.deployment.replicas == 6
    for spec, words in (
        ("split=3", r"split= takes prefill \+ decode"),
        ("split=0+2", "prefill_replicas must be"),
        ("colocated=two", "colocated= takes a replica count"),
    ):
        with pytest.raises(VariantError, match=words):
            parse_variant(spec, scenario)
    plain = parse_scenario(
        {**raw_split(100), "stages": [{"name": "llm", "kind": "llm", "profile": A100}], "deployment": {"replicas": 2}},
        base_dir=ROOT,
    )
    with pytest.raises(VariantError, match="needs an LLM stage with disaggregated"):
        parse_variant("split=1+1", plain)


def test_an_llm_comparison_speaks_ttft_tpot_and_dollars_per_token(sized):
    # One function prices a token everywhere: the comparison's row equals the sizing probe's figure.
    from sim.analysis.compare import METRICS, format_metric
    from sim.analysis.simulate import simulate
    from sim.analysis.sizing import _llm_fields

    scenario, result = sized
    summary = simulate(with_split(scenario, *result.chosen_pools), seed=3, replications=2).summary
    rows = {m.key: m for m in METRICS}
    per_token = rows["usd_per_1m_output_tokens"].value(summary)
    assert per_token == _llm_fields(summary, summary["cost"])["usd_per_1m_tokens"]
    assert rows["ttft_ms_p99"].value(summary) == summary["llm"]["ttft_ms"]["p99"]
    assert rows["tpot_ms_p99"].ci(summary) == tuple(summary["llm"]["ci95"]["tpot_ms"]["p99"])
    assert rows["goodput"].value(summary) == summary["llm"]["goodput"]["attainment"]
    # Absent from a scenario without an LLM stage: those rows are left out of its table.
    assert format_metric(rows["ttft_ms_p99"], {"latency_ms": {"p99": 1.0}, "cost": {}}) == "–"
