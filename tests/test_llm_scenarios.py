"""The shipped LLM scenarios through the whole product: scenario file -> engine -> `llm` summary -> CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import sim.spec.scenario

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["llm-chat-continuous", "llm-chat-static", "llm-code-continuous"])
def test_shipped_llm_scenarios_run_and_report_the_llm_key(name):
    from sim.analysis.simulate import simulate

    scenario = sim.spec.scenario.load_scenario(ROOT / "scenarios" / f"{name}.yaml")
    result = simulate(scenario, requests=600, replications=1)
    llm = result.summary["llm"]
    assert llm["stage"] == "llm" and llm["completed"] > 0
    for key in ("ttft_ms", "tpot_ms", "itl_ms", "e2el_ms"):
        assert 0 < llm[key]["p50"] <= llm[key]["p99"]
    assert 0 <= llm["goodput"]["attainment"] <= 1 and llm["goodput"]["ttft_slo_ms"] == 1000
    log = result.log
    assert {"ttft_ms", "tpot_ms", "prompt_tokens", "output_tokens"} <= set(log.columns)
    served = ~log.rejected.to_numpy()
    # The stage's time is the request's whole latency here (one stage): queue + service = e2e.
    assert ((log.llm_queue_ms + log.llm_ms - log.latency_ms)[served].abs() < 1e-6).all()


def test_static_and_continuous_share_the_traffic_and_token_counts():
    from sim.analysis.simulate import simulate

    runs = {
        name: simulate(
            sim.spec.scenario.load_scenario(ROOT / "scenarios" / f"{name}.yaml"), requests=400, replications=1
        ).log
        for name in ("llm-chat-continuous", "llm-chat-static")
    }
    a, b = runs["llm-chat-continuous"], runs["llm-chat-static"]
    assert (a.arrival_ms == b.arrival_ms).all() and (a.output_tokens == b.output_tokens).all()
    assert b.ttft_ms.median() > a.ttft_ms.median()


def test_llm_scenario_without_tokens_is_a_clear_error(tmp_path):
    text = (
        (ROOT / "scenarios" / "llm-chat-continuous.yaml")
        .read_text()
        .replace("  tokens: {prompt_column: num_prefill_tokens, output_column: num_decode_tokens}\n", "")
    )
    with pytest.raises(sim.spec.scenario.ScenarioError, match="workload.tokens"):
        sim.spec.scenario.parse_scenario_text(text, base_dir=ROOT / "scenarios")


def test_cli_json_has_the_llm_key(capsys):
    from sim.cli.main import main

    code = main(
        [
            "run",
            str(ROOT / "scenarios" / "llm-chat-continuous.yaml"),
            "--requests",
            "300",
            "--replications",
            "2",
            "--json",
            "--set",
            "workload.arrival.rate_scale=2",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["llm"]["replications"] == 2 and "ci95" in summary["llm"]
    assert summary["llm"]["output_tokens_per_s"] > 0


def test_backlog_is_unstable_only_when_the_waiting_queue_grows():
    """A short stable run finishes fewer requests per second than arrive (the last ones are still decoding,
    and decoding slows while the batch fills): not a backlog. Five times the trace's rate fills the batch and
    the wait to be scheduled climbs to many seconds: unstable, in the status as well as the warning."""
    from sim.analysis.simulate import simulate
    from sim.spec.scenario import load_scenario
    from sim.spec.transforms import scale_load

    chat = load_scenario(ROOT / "scenarios" / "llm-chat-continuous.yaml")
    short = simulate(chat, requests=300, replications=1)
    assert short.summary["status"] == "ok", short.summary["status_reasons"]
    overloaded = simulate(scale_load(chat, 5), requests=3000, replications=1)
    assert overloaded.summary["status"] == "unstable"
    assert any("the wait to be scheduled rises" in reason for reason in overloaded.summary["status_reasons"])


def test_identical_replications_of_a_replay_give_a_real_interval_not_zero_width():
    """The chat trace with fixed costs replays the same way under any seed: three replications are one, so
    the intervals come from sections of one (batch means), never the zero spread of copies."""
    from sim.analysis.simulate import simulate
    from sim.spec.scenario import load_scenario

    chat = load_scenario(ROOT / "scenarios" / "llm-chat-continuous.yaml")
    summary = simulate(chat, requests=1000, replications=3).summary
    assert any("replications are identical" in w for w in summary["warnings"])
    low, high = summary["latency_ms_ci95"]["p99"]
    assert low < summary["latency_ms"]["p99"] < high
    assert summary["llm"]["replications"] == 3 and summary["llm"]["identical_replications"]
    ttft_low, ttft_high = summary["llm"]["ci95"]["ttft_ms"]["p99"]
    assert ttft_low < ttft_high
