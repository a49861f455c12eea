"""Disaggregated prefill / decode pools (sim/engine/llm/disaggregated.py) against sums worked by hand from the
profile's cost curves, the model's KV geometry, and the direction of the published trade-off."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sim.cli.main import main
from sim.engine.llm.disaggregated import simulate_decode_pool, simulate_disaggregated, transfer_ms
from sim.errors import ScenarioError
from sim.spec.llm_cost import LLMCost, load_llm_profile
from sim.spec.llm_schema import LLMStage
from sim.spec.scenario import load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[1]
A100 = str(ROOT / "models" / "llama2-70b-tp4-a100.yaml")
H100 = str(ROOT / "models" / "llama2-70b-tp4-h100.yaml")


def stage(link: dict | None = None, decode: dict | None = None, **batching) -> LLMStage:
    return LLMStage.model_validate(
        {
            "name": "llm",
            "kind": "llm",
            "profile": A100,
            "batching": {"policy": "continuous", **batching},
            "disaggregated": {
                "prefill_replicas": 1,
                "decode": {"replicas": 1, **(decode or {})},
                "link": link or {"kind": "nvlink", "bandwidth_gb_s": 1e6, "latency_ms": 0.0, "overlap": "none"},
            },
        },
        context={"base_dir": ROOT},
    )


def test_kv_bytes_per_token_are_the_models_architecture():
    # Llama 2 70B: 80 layers, 8 KV heads (grouped-query attention) of 128 dims, K and V, fp16 (2 bytes).
    for path in (A100, H100):
        profile = load_llm_profile(path)
        assert profile.memory.kv_bytes_per_token == 2 * 80 * 8 * 128 * 2 == 327_680
        assert profile.decode.kv_read.bytes_per_token == profile.memory.kv_bytes_per_token


def test_one_request_at_a_time_over_an_infinite_link_is_prefill_plus_decode_sums():
    s = stage()
    cost = LLMCost(load_llm_profile(A100))
    prompt = np.array([512, 2048, 100])
    output = np.array([64, 3, 200])
    ready = np.array([0.0, 1e6, 2e6])  # far apart: every request alone on each pool
    result = simulate_disaggregated(ready, prompt, output, s, np.random.default_rng(0))
    log = result.requests
    for i in range(3):
        prefill = cost.prefill_ms(int(prompt[i])) + prompt[i] * 327_680 / (1e6 * 1e9 * 4) * 1e3  # a µs-fast link
        decode = sum(cost.decode_step_ms(1, int(prompt[i]) + 1 + k) for k in range(int(output[i]) - 1))
        assert log.ttft_ms[i] == pytest.approx(prefill, rel=1e-9)
        assert log.e2e_ms[i] == pytest.approx(prefill + decode, rel=1e-9)
        assert log.tpot_ms[i] == pytest.approx(decode / (output[i] - 1), rel=1e-9)
    assert len(result.itl_ms) == int((output - 1).sum())  # one gap per token after the first
    gaps = result.itl_ms[result.itl_request == 0]
    expected = [cost.decode_step_ms(1, 512 + 1 + k) for k in range(63)]
    np.testing.assert_allclose(gaps, expected, rtol=1e-9)


def test_a_transfer_takes_the_prompts_kv_over_the_link():
    prompt = np.array([1000, 4000])
    prefill_ms = np.array([300.0, 900.0])
    whole = stage(link={"bandwidth_gb_s": 25.0, "latency_ms": 0.5, "overlap": "none"})
    expected = 0.5 + prompt * 327_680 / (25e9 * 4) * 1e3  # 4 GPUs, each sending its shard
    np.testing.assert_allclose(transfer_ms(whole, prompt, prefill_ms), expected, rtol=1e-12)
    layered = stage(link={"bandwidth_gb_s": 25.0, "latency_ms": 0.5, "overlap": "layer"})
    np.testing.assert_allclose(
        transfer_ms(layered, prompt, prefill_ms), np.maximum(expected / 80, expected - prefill_ms * 79 / 80)
    )
    slow = stage(link={"bandwidth_gb_s": 0.01, "latency_ms": 0.0, "overlap": "layer"})
    # A slow link outlasts the prefill: all but the part hidden under the prefill's compute is exposed.
    assert transfer_ms(slow, prompt, prefill_ms)[0] == pytest.approx(
        1000 * 327_680 / (0.01e9 * 4) * 1e3 - 300 * 79 / 80
    )


def test_two_requests_decoding_together_pay_the_batch_step():
    cost = LLMCost(load_llm_profile(A100))
    ready = np.array([0.0, 0.0])
    context = np.array([100, 300])
    steps = np.array([5, 2])
    log, replica, _ = simulate_decode_pool(ready, context, steps, np.array([8, 8]), cost, 1, 1000, 256)
    two = [cost.decode_step_ms(2, 400 + 2 * k) for k in range(2)]
    one = [cost.decode_step_ms(1, 100 + 2 + k) for k in range(3)]
    assert log.done_ms[1] == pytest.approx(sum(two), rel=1e-12)
    assert log.done_ms[0] == pytest.approx(sum(two) + sum(one), rel=1e-12)
    assert list(replica) == [0, 0]


def test_the_decode_pool_waits_for_kv_blocks_first_come_first_served():
    cost = LLMCost(load_llm_profile(A100))
    # 10 blocks: the first request holds 8 of them, the second (needing 4) waits for it to finish although the
    # third (needing 2) would fit: nobody passes the head of the queue.
    log, _, _ = simulate_decode_pool(
        np.array([0.0, 1.0, 2.0]), np.array([10, 10, 10]), np.array([50, 5, 5]), np.array([8, 4, 2]), cost, 1, 10, 256
    )
    assert log.admitted_ms[1] == log.done_ms[0]
    assert log.admitted_ms[2] == log.done_ms[0]
    seqs, _, _ = simulate_decode_pool(
        np.zeros(3), np.full(3, 10), np.full(3, 4), np.ones(3, dtype=np.int64), cost, 1, 100, 2
    )
    assert seqs.admitted_ms[2] == seqs.done_ms[0]  # max_num_seqs 2: the third joins when one finishes


def test_requests_go_to_the_decode_replica_with_fewest_requests():
    cost = LLMCost(load_llm_profile(A100))
    log, replica, _ = simulate_decode_pool(
        np.array([0.0, 0.0, 0.0, 1000.0]), np.full(4, 10), np.array([100, 100, 1, 100]), np.ones(4, dtype=np.int64),
        cost, 3, 100, 256,
    )  # fmt: skip
    assert list(replica[:3]) == [0, 1, 2]
    assert replica[3] == 2  # request 2 finished its one step before request 3 arrived


def test_the_decode_pool_can_run_on_another_profile():
    s = stage(decode={"profile": H100})
    h100 = LLMCost(load_llm_profile(H100))
    result = simulate_disaggregated(np.array([0.0]), np.array([500]), np.array([10]), s, np.random.default_rng(0))
    decode = sum(h100.decode_step_ms(1, 501 + k) for k in range(9))
    assert result.requests.e2e_ms[0] - result.requests.ttft_ms[0] == pytest.approx(decode, rel=1e-9)


def _scenario(**changes) -> dict:
    raw = {
        "name": "d",
        "workload": {
            "arrival": {"process": "poisson", "rate_rps": 1.0},
            "requests": 200,
            "tokens": {"prompt": 512, "output": 64},
        },
        "stages": [
            {
                "name": "llm",
                "kind": "llm",
                "profile": A100,
                "disaggregated": {"prefill_replicas": 1, "decode": {"replicas": 2}},
            }
        ],
        "deployment": {"replicas": 3},
    }
    raw["deployment"].update(changes)
    return raw


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"replicas": 4}, "deployment.replicas: stage 'llm' is disaggregated into 1 prefill + 2 decode replicas"),
        (
            {"autoscaling": {"policy": "ray_serve", "min_replicas": 1, "max_replicas": 3}},
            "deployment.autoscaling",
        ),
    ],
)
def test_a_disaggregated_stage_refuses_a_fleet_that_does_not_match(changes, message):
    with pytest.raises(ScenarioError, match=message.replace("(", r"\(").replace("+", r"\+")):
        parse_scenario(_scenario(**changes), base_dir=ROOT)


def test_the_decode_profile_must_serve_the_same_model(tmp_path):
    raw = _scenario()
    other = load_llm_profile(A100).model_dump()
    other["model"] = "bloom-176b"
    import yaml

    (tmp_path / "bloom.yaml").write_text(yaml.safe_dump(other))
    raw["stages"][0]["disaggregated"]["decode"]["profile"] = "bloom.yaml"
    with pytest.raises(ScenarioError, match="both pools must run the same model"):
        parse_scenario(raw, base_dir=tmp_path)


def test_the_run_reports_each_pool_and_the_transfers(capsys):
    path = ROOT / "scenarios" / "llm-chat-disaggregated.yaml"
    assert main(["run", str(path), "--requests", "1500", "--json"]) in (0, 3)
    llm = json.loads(capsys.readouterr().out)["llm"]
    scenario = load_scenario(path)
    split = scenario.stages[0].disaggregated
    assert llm["pools"]["prefill"]["replicas"] == split.prefill_replicas
    assert llm["pools"]["decode"]["replicas"] == split.decode.replicas
    assert 0 < llm["pools"]["prefill"]["busy_fraction"] <= 1
    assert llm["kv_transfer_ms"]["p99"] > 0
    assert llm["completed"] > 0


@pytest.mark.parametrize(
    "pair", [("llm-chat-continuous", "llm-chat-disaggregated"), ("llm-code-continuous", "llm-code-disaggregated")]
)
def test_disaggregation_removes_prefill_interference_from_tpot(pair):
    # DistServe (Zhong et al., OSDI '24, Fig. 2) and Splitwise (Patel et al., ISCA '24): a prefill batched with
    # decodes stretches that iteration for every decoding request, so colocated TPOT rises with the prompt
    # load; on a decode pool it stays at the decode step's cost. Same 6 replicas, same traffic.
    from sim.analysis.simulate import simulate

    colocated, split = (load_scenario(ROOT / "scenarios" / f"{name}.yaml") for name in pair)
    assert colocated.deployment.replicas == split.deployment.replicas  # the same fleet, split by phase
    a = simulate(colocated, requests=3000, replications=1).summary["llm"]
    b = simulate(split, requests=3000, replications=1).summary["llm"]
    assert b["tpot_ms"]["p99"] < a["tpot_ms"]["p99"]
    assert b["itl_ms"]["p99"] < a["itl_ms"]["p99"]


def test_a_decode_pool_priced_otherwise_is_paid_at_its_own_price():
    from sim.metrics.cost import price_usd_per_replica_hour

    raw = _scenario()
    raw["deployment"]["hardware"] = {"name": "a100 tp4", "usd_per_hour": 13.72}
    assert price_usd_per_replica_hour(parse_scenario(raw, base_dir=ROOT)) == 13.72
    raw["stages"][0]["disaggregated"]["decode"]["usd_per_hour"] = 27.52
    priced = parse_scenario(raw, base_dir=ROOT)
    assert price_usd_per_replica_hour(priced) * 3 == pytest.approx(13.72 + 2 * 27.52)  # 1 prefill + 2 decode
    del raw["stages"][0]["disaggregated"]["decode"]["usd_per_hour"]
    raw["stages"][0]["disaggregated"]["decode"]["profile"] = H100  # the H100 profile's measured price
    h100 = load_llm_profile(H100).usd_per_hour
    assert price_usd_per_replica_hour(parse_scenario(raw, base_dir=ROOT)) * 3 == pytest.approx(13.72 + 2 * h100)


def test_a_decode_pool_without_room_for_a_kv_cache_is_named():
    # Llama 2 70B's 128.5 GiB of weights fill 0.3 of 4 × 80 GiB (96 GiB): no KV block is left.
    s = stage(decode={"gpu_memory_utilization": 0.3})
    with pytest.raises(ScenarioError, match=r"stages\.llm\.disaggregated\.decode: no room for a KV cache"):
        simulate_disaggregated(np.array([0.0]), np.array([100]), np.array([5]), s, np.random.default_rng(0))
