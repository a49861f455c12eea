"""Calibration fidelity of the shipped LLM profiles (issue 15): the decode step's KV-read term is the
roofline of the bytes read, not a slope confounded with prompt size; batched prefill is checked against
the batched rows; KV capacity is in GiB with vLLM's watermark; prompts above vLLM's limit are rejected."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from calibrate.llm_perf import build_profile, read_perf_table, select
from sim.engine.llm.stage import gpu_blocks, simulate_llm_stage
from sim.errors import DataFileError
from sim.metrics.llm import llm_summary
from sim.spec.llm_cost import LLMCost, load_llm_profile
from tests.llm_support import ROOT, SYNTHETIC, stage, synthetic_profile

A100 = ROOT / "models" / "llama2-70b-tp4-a100.yaml"
H100 = ROOT / "models" / "llama2-70b-tp4-h100.yaml"


def run(st, ready, prompt, output, replicas=1):
    return simulate_llm_stage(
        np.asarray(ready, float), np.asarray(prompt), np.asarray(output), st, replicas, np.random.default_rng(0)
    )


@pytest.fixture(scope="module")
def table():
    return read_perf_table()


def test_kv_read_term_lies_within_the_physical_estimate_for_a100_tp4():
    # Llama 2 70B: 80 layers, 8 KV heads (GQA), head dim 128, fp16; A100 80GB SXM4: 2,039 GB/s per GPU; TP 4.
    kv_bytes_per_token = 2 * 80 * 8 * 128 * 2
    roofline_us = kv_bytes_per_token / (4 * 2039e9) * 1e6
    fitted_us = 1e3 * load_llm_profile(A100).decode.per_context_token_ms
    assert 0.04 <= roofline_us <= 0.07
    assert 0.04 <= fitted_us <= 0.07
    assert fitted_us == pytest.approx(roofline_us, rel=1e-12)


def test_h100_kv_read_term_uses_its_own_bandwidth():
    fitted_us = 1e3 * load_llm_profile(H100).decode.per_context_token_ms
    assert fitted_us == pytest.approx(2 * 80 * 8 * 128 * 2 / (4 * 3350e9) * 1e6, rel=1e-12)


def test_decode_step_at_fixed_prompt_is_flat_across_context_within_the_measured_noise(table):
    rows = select(table, "llama2-70b", "a100-80gb", 4)
    sweep = rows[(rows.batch_size == 1) & (rows.prompt_size == 512)]
    repeat_sd_ms = float(np.sqrt(sweep.groupby("token_size").token_time.var().mean()))
    cost = LLMCost(load_llm_profile(A100))
    contexts = 512 + np.sort(sweep.token_size.unique()) / 2  # mean context over each generation: 576..4,608
    predicted = np.array([cost.decode_step_ms(1, c) for c in contexts])
    assert predicted.max() - predicted.min() <= 2 * repeat_sd_ms
    # The old all-rows slope (0.275 µs per token) would climb 1.1 ms over the same sweep: outside the noise.
    assert 0.275e-3 * (contexts.max() - contexts.min()) > 2 * repeat_sd_ms
    medians = sweep.groupby("token_size").token_time.median().to_numpy()
    assert np.abs(predicted - medians).mean() <= 3 * repeat_sd_ms


def test_measured_context_slope_interval_contains_the_roofline():
    measured = load_llm_profile(A100).fit["terms"]["decode_context"]
    low, high = measured["measured"]["slope_ci95_us_per_token"]
    assert low <= measured["per_context_token_us"] <= high
    assert measured["roofline_within_measured_ci95"] is True


def test_batched_prefill_cost_per_extra_prompt_is_what_the_batched_rows_imply(table):
    """The per-extra-sequence term is fitted on the batched rows only: it lies within the values each
    training batch size implies once the single-prompt terms are fixed, and predicts the held-out ones."""
    profile = load_llm_profile(A100)
    p = profile.prefill
    rows = select(table, "llama2-70b", "a100-80gb", 4)
    batched = rows[(rows.batch_size > 1) & ~rows.batch_size.isin([4, 16])]
    med = batched.groupby("batch_size").prompt_time.median()
    b = med.index.to_numpy(float)
    token_part = p.intercept_ms + p.per_token_ms * 512 * b + p.attention_ms_per_mtoken2 * b * 512**2 / 1e6
    implied = (med.to_numpy() - token_part) / (b - 1)
    assert implied.min() <= p.per_extra_seq_ms <= implied.max()
    cost = LLMCost(profile)
    for held_batch in (4, 16):
        measured = rows[(rows.batch_size == held_batch) & (rows.prompt_size == 512)].prompt_time.median()
        assert cost.prefill_ms(512 * held_batch, held_batch) == pytest.approx(measured, rel=0.15)


def test_importer_reports_per_term_quality_and_held_out_error(table):
    profile, report = build_profile(table, "llama2-70b", "a100-80gb", 4, "x", "csv")
    terms = profile.fit["terms"]
    assert set(terms) == {
        "floor_intercept_per_token_attention",
        "per_extra_seq",
        "decode_context",
        "decode_step_by_batch",
    }
    assert terms["decode_context"]["measured"]["all_batch1_rows_slope_us_per_token"] > 0.2  # the confounded slope
    assert max(report.decode_held_out.values()) < 0.06
    assert max(report.prefill_held_out.values()) < 0.15


def test_kv_capacity_is_counted_in_gib():
    st = stage(A100)
    m = st.cost.profile.memory
    assert (m.gpu_memory_gib, m.weights_gib) == (80.0, round(68.98e9 * 2 / 2**30, 2))
    free_bytes = (0.9 * 80 * 4 - m.weights_gib) * 2**30
    assert gpu_blocks(st) == int(free_bytes // (2 * 80 * 8 * 128 * 2)) // 16


def test_an_inconsistent_kv_read_roofline_is_a_clear_error(tmp_path):
    kv_read = {
        "layers": 2,
        "kv_heads": 1,
        "head_dim": 64,
        "bytes_per_element": 2,
        "gpus": 1,
        "hbm_bandwidth_gb_s": 1000.0,
    }
    decode = {**SYNTHETIC["decode"], "kv_read": kv_read}
    with pytest.raises(DataFileError, match="decode: .*per_context_token_ms .* kv_read roofline"):
        load_llm_profile(synthetic_profile(tmp_path, decode=decode))
    right = 2 * 2 * 1 * 64 * 2 / 1000e9 * 1e3
    assert load_llm_profile(synthetic_profile(tmp_path, decode={**decode, "per_context_token_ms": right}))


def test_admission_leaves_the_watermark_free(tmp_path):
    # 200 blocks of 16: watermark int(0.01 × 200) = 2 blocks. A takes 99 blocks; B needs 100 of the 101 left,
    # which would leave 1 < 2: vLLM defers B until A has finished (A emits one token, at its prefill).
    profile = synthetic_profile(tmp_path)
    prompt, output = [99 * 16, 100 * 16], [1, 1]
    held = run(stage(profile, batching={"policy": "continuous", "num_gpu_blocks": 200}), [0.0, 0.0], prompt, output)
    log = held.requests
    assert log.first_token_ms[1] > log.done_ms[0]
    free = run(
        stage(profile, batching={"policy": "continuous", "num_gpu_blocks": 200, "watermark": 0.0}),
        [0.0, 0.0],
        prompt,
        output,
    )
    assert free.requests.first_token_ms[1] == free.requests.first_token_ms[0]


def test_prompt_longer_than_the_token_budget_is_rejected_and_counted(tmp_path):
    profile = synthetic_profile(tmp_path)
    budget = {"policy": "continuous", "max_num_batched_tokens": 4096}
    result = run(stage(profile, batching=budget), [0.0, 1.0, 2.0], [100, 5000, 4096], [5, 5, 5])
    np.testing.assert_array_equal(result.requests.rejected, [False, True, False])
    summary = llm_summary(result)
    assert summary["rejected"] == 1 and summary["rejected_prompt_too_long"] == 1
    assert any("longer than the limit of 4096 tokens" in w for w in summary["warnings"])
    # With chunked prefill only max_model_len limits a prompt (vLLM's prompt_limit).
    chunked = run(
        stage(profile, batching={**budget, "chunked_prefill": True}), [0.0, 1.0, 2.0], [100, 5000, 4096], [5, 5, 5]
    )
    assert not chunked.requests.rejected.any()
    capped = run(
        stage(profile, batching={**budget, "chunked_prefill": True}, max_model_len=4500),
        [0.0, 1.0],
        [100, 4600],
        [5, 5],
    )
    np.testing.assert_array_equal(capped.requests.rejected, [False, True])
    assert llm_summary(capped)["rejected_prompt_too_long"] == 1


def test_shipped_profiles_state_their_roofline_inputs():
    for path in (A100, H100):
        raw = yaml.safe_load(path.read_text())
        kv_read = raw["decode"]["kv_read"]
        assert {"formula", "layers", "kv_heads", "head_dim", "bytes_per_element", "gpus", "hbm_bandwidth_gb_s"} <= set(
            kv_read
        )
