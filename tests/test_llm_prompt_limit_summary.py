"""Prompts longer than vLLM's prompt limit are rejected, and `servesim run` says so: the count and the
warning reach the summary of a fresh run and of its saved log alike (before, only the engine's own result
carried them, and both summaries counted the requests rejected without saying why)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from sim.analysis.simulate import load_run, save_run, simulate
from sim.cli.main import main
from sim.spec.scenario import parse_scenario

ROOT = Path(__file__).resolve().parent.parent
RAW = {
    "name": "long-prompts",
    "seed": 3,
    "workload": {
        "arrival": {"process": "poisson", "rate_rps": 1.0},
        "requests": 300,
        "tokens": {"prompt": {"dist": "lognormal", "median": 1500, "p99": 9000}, "output": 50},
    },
    "stages": [
        {
            "name": "llm",
            "kind": "llm",
            "profile": str(ROOT / "models" / "llama2-70b-tp4-a100-per-token.yaml"),
            "batching": {"policy": "continuous", "max_num_batched_tokens": 4096},
        }
    ],
    "deployment": {"replicas": 1},
}


def test_a_fresh_run_and_its_log_say_how_many_prompts_were_too_long(tmp_path):
    scenario = parse_scenario(RAW, base_dir=ROOT)
    result = simulate(scenario, replications=2, seed=3)
    llm = result.summary["llm"]
    assert llm["rejected_prompt_too_long"] == llm["rejected"] > 0
    assert any("rejected: prompt longer than the limit of 4096 tokens" in w for w in result.summary["warnings"])
    save_run(result, tmp_path / "run", {"seed": 3, "requests": None})
    again = load_run(tmp_path / "run").summary
    assert json.dumps(again, sort_keys=True) == json.dumps(result.summary, sort_keys=True)


def test_the_cli_json_carries_them(tmp_path, capsys):
    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump(RAW))
    main(["run", str(path), "--json", "--replications", "1"])
    summary = json.loads(capsys.readouterr().out)
    assert summary["llm"]["rejected_prompt_too_long"] > 0
    assert summary["llm"]["rejected_prompt_too_long"] == summary["llm"]["rejected"]


def test_no_key_when_no_prompt_is_too_long():
    raw = {**RAW, "workload": {**RAW["workload"], "tokens": {"prompt": 500, "output": 50}}}
    summary = simulate(parse_scenario(raw, base_dir=ROOT), replications=1, seed=3).summary
    assert "rejected_prompt_too_long" not in summary["llm"]


def test_replications_with_and_without_a_long_prompt_merge():
    # Before: a replication without a too-long prompt lacked the key, and merging raised KeyError.
    raw = {
        **RAW,
        "workload": {
            **RAW["workload"],
            "requests": 30,
            "tokens": {"prompt": {"dist": "lognormal", "median": 1000, "p99": 4500}, "output": 20},
        },
    }
    result = simulate(parse_scenario(raw, base_dir=ROOT), replications=8, seed=3)
    per_replication = [
        int((log.result.requests["prompt_tokens"].to_numpy() > 4096).sum()) for log in result.run.llm_logs
    ]
    assert 0 in per_replication and any(per_replication)  # the case: some replications have one, some not
    expected = int(round(sum(per_replication) / len(per_replication)))
    assert result.summary["llm"].get("rejected_prompt_too_long", 0) == expected
