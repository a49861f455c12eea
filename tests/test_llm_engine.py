"""Exact event-log micro-scenarios for the LLM stage, with costs computed in the test from the synthetic
profile's constants (tests/llm_support.py): prefill = 10 + 0.1·tokens + 2e-6·Σ(new × context) + 3·(seqs − 1)
ms; decode step = interp(batch; [1, 8, 64] → [20, 24, 52]) + 0.001·Σcontext ms."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.llm_support import ROOT, stage, synthetic_profile
from sim.errors import ScenarioError
from sim.engine.llm.stage import simulate_llm_stage


def prefill_ms(new: int, context: int, seqs: int = 1) -> float:
    """One sequence computing `new` tokens up to `context` tokens of KV; for several, `new` is their total
    and `context` the Σ(new × context) of all divided by `new`."""
    return 10.0 + 0.1 * new + 2e-6 * new * context + 3.0 * (seqs - 1)


def step_ms(batch: int, context: int, per_context: float = 0.001) -> float:
    return float(np.interp(batch, [1, 8, 64], [20.0, 24.0, 52.0])) + per_context * context


def run(st, ready, prompt, output, replicas=1, routing="round_robin", seed=0):
    return simulate_llm_stage(
        np.asarray(ready, float),
        np.asarray(prompt),
        np.asarray(output),
        st,
        replicas,
        np.random.default_rng(seed),
        routing,
    )


@pytest.mark.parametrize("batching", [{"policy": "continuous"}, {"policy": "static", "batch_size": 8}])
def test_single_request_at_zero_load_is_prefill_plus_decode_steps(tmp_path, batching):
    st = stage(synthetic_profile(tmp_path), batching=batching)
    p, n, t0 = 300, 50, 1234.5
    result = run(st, [t0], [p], [n])
    row = result.requests.iloc[0]
    ttft = prefill_ms(p, p)
    steps = [step_ms(1, p + j) for j in range(1, n)]  # step j holds the prompt and j generated tokens' KV
    assert row.llm_queue_ms == pytest.approx(0.0, abs=1e-9)
    assert row.ttft_ms == pytest.approx(ttft, rel=1e-12)
    assert row.e2e_ms == pytest.approx(ttft + sum(steps), rel=1e-12)
    assert row.tpot_ms == pytest.approx(sum(steps) / (n - 1), rel=1e-12)
    np.testing.assert_allclose(result.itl_ms, steps, rtol=1e-9)
    assert (result.itl_request == 0).all()


@pytest.mark.parametrize("n", [5, 8, 40])
def test_closed_decode_batch_makes_n_tokens_per_step(tmp_path, n):
    profile = synthetic_profile(
        tmp_path, decode={"batch_sizes": [1, 8, 64], "step_ms": [20.0, 24.0, 52.0], "per_context_token_ms": 0.0}
    )
    result = run(stage(profile), np.zeros(n), np.full(n, 16), np.full(n, 501))
    log = result.requests
    assert log.first_token_ms.nunique() == 1 and log.done_ms.nunique() == 1  # one prefill, then one batch
    decode_span_s = (log.done_ms.iloc[0] - log.first_token_ms.iloc[0]) / 1000
    tokens_per_s = n * 500 / decode_span_s
    assert tokens_per_s == pytest.approx(n / (step_ms(n, 0, 0.0) / 1000), rel=1e-9)
    assert log.first_token_ms.iloc[0] == pytest.approx(prefill_ms(16 * n, 16, n), rel=1e-9)


def test_kv_blocks_for_exactly_k_sequences_cap_concurrency(tmp_path):
    # 20 prompt + 10 output tokens: the KV cache peaks at 29 tokens = 2 blocks of 16, from admission on.
    k = 3
    st = stage(
        synthetic_profile(tmp_path), batching={"policy": "continuous", "block_size": 16, "num_gpu_blocks": 2 * k}
    )
    result = run(st, np.zeros(12), np.full(12, 20), np.full(12, 10))
    it = result.iterations
    assert it.running.max() == k
    assert it.kv_blocks_used.max() == 2 * k
    assert result.requests.preemptions.sum() == 0
    assert result.requests.done_ms.notna().all()


def test_shrinking_kv_memory_preempts_and_loses_nothing(tmp_path):
    # 10 prompt tokens fit 1 block at admission; by the last token (39 tokens of KV) each needs 3 blocks.
    n = 12
    prompt, output = np.full(n, 10), np.full(n, 30)
    roomy = run(
        stage(synthetic_profile(tmp_path), batching={"policy": "continuous", "num_gpu_blocks": 3 * n}),
        np.zeros(n),
        prompt,
        output,
    )
    tight = run(
        stage(synthetic_profile(tmp_path), batching={"policy": "continuous", "num_gpu_blocks": 6}),
        np.zeros(n),
        prompt,
        output,
    )
    assert roomy.requests.preemptions.sum() == 0
    assert tight.requests.preemptions.sum() > 0
    assert tight.iterations.preempted.sum() == tight.requests.preemptions.sum()
    assert tight.iterations.kv_blocks_used.max() <= 6
    _assert_every_token_delivered(tight, output)
    assert tight.requests.e2e_ms.max() > roomy.requests.e2e_ms.max()


def _assert_every_token_delivered(result, output):
    log = result.requests
    assert log.done_ms.notna().all() and not log.rejected.any()
    counts = np.bincount(result.itl_request, minlength=len(log))
    np.testing.assert_array_equal(counts, np.asarray(output) - 1)
    assert (result.itl_ms > 0).all()
    gap_sums = np.bincount(result.itl_request, weights=result.itl_ms, minlength=len(log))
    np.testing.assert_allclose(gap_sums, log.done_ms - log.first_token_ms, rtol=1e-9, atol=1e-6)


def test_chunked_prefill_splits_a_long_prompt_by_the_token_budget(tmp_path):
    st = stage(
        synthetic_profile(tmp_path),
        batching={"policy": "continuous", "chunked_prefill": True, "max_num_batched_tokens": 2048},
    )
    result = run(st, [0.0], [5000], [3])
    chunks = [(2048, 2048), (2048, 4096), (904, 5000)]  # (new tokens, context at the end of the chunk)
    ttft = sum(prefill_ms(new, context) for new, context in chunks)
    assert result.requests.ttft_ms.iloc[0] == pytest.approx(ttft, rel=1e-12)
    assert (result.iterations.prefill_tokens + result.iterations.decode_tokens <= 2048).all()


def test_chunked_prefill_decodes_keep_running_during_a_long_prefill(tmp_path):
    budget = 512
    st = stage(
        synthetic_profile(tmp_path),
        batching={"policy": "continuous", "chunked_prefill": True, "max_num_batched_tokens": budget},
    )
    result = run(st, [0.0, 100.0], [16, 4000], [200, 2])
    it = result.iterations
    mixed = it[(it.prefill_tokens > 0) & (it.decode_tokens > 0)]
    assert len(mixed) >= 4000 // budget  # the short request decodes alongside every chunk of the long one
    assert (mixed.prefill_tokens <= budget - 1).all()


def test_without_kv_cache_each_step_recomputes_the_whole_context(tmp_path):
    p, n = 100, 2048
    on = run(stage(synthetic_profile(tmp_path)), [0.0], [p], [n])
    off = run(stage(synthetic_profile(tmp_path), kv_cache=False), [0.0], [p], [n])
    expected = [prefill_ms(p + j, p + j) for j in range(1, n)]
    np.testing.assert_allclose(off.itl_ms, expected, rtol=1e-9)
    assert np.all(np.diff(off.itl_ms) > 0)  # per-token cost grows with length
    assert off.requests.e2e_ms.iloc[0] > 5 * on.requests.e2e_ms.iloc[0]


def test_static_batch_runs_until_its_longest_request_and_new_requests_wait(tmp_path):
    st = stage(synthetic_profile(tmp_path), batching={"policy": "static", "batch_size": 2})
    result = run(st, [0.0, 0.0, 1.0], [100, 100, 100], [10, 100, 5])
    log = result.requests
    prefill = prefill_ms(200, 100, 2)
    steps = np.cumsum([step_ms(2, 200 + 2 * k) for k in range(1, 100)])  # both slots grow while the batch runs
    assert log.done_ms[0] == pytest.approx(prefill + steps[8], rel=1e-12)
    assert log.done_ms[1] == pytest.approx(prefill + steps[98], rel=1e-12)
    assert log.ready_ms[2] + log.llm_queue_ms[2] == pytest.approx(prefill + steps[98], rel=1e-12)
    cont = run(stage(synthetic_profile(tmp_path)), [0.0, 0.0, 1.0], [100, 100, 100], [10, 100, 5])
    assert cont.requests.llm_queue_ms[2] < prefill  # continuous admits it at the next iteration


def test_prefix_cache_hit_rate_removes_prefill_tokens(tmp_path):
    p = 1000
    result = run(stage(synthetic_profile(tmp_path), prefix_cache={"hit_rate": 0.75}), [0.0], [p], [2])
    assert result.requests.cached_tokens.iloc[0] == 750
    assert result.requests.ttft_ms.iloc[0] == pytest.approx(prefill_ms(250, p), rel=1e-12)


def test_routing_round_robin_and_least_outstanding(tmp_path):
    st = stage(synthetic_profile(tmp_path))
    ready = np.arange(6) * 1.0
    rr = run(st, ready, np.full(6, 10), np.full(6, 20), replicas=3)
    np.testing.assert_array_equal(rr.requests.replica, [0, 1, 2, 0, 1, 2])
    # Short requests (about 31 ms each) finish before the next arrives 100 ms later; the long one does not.
    lo = run(st, ready * 100, np.full(6, 10), [500, 2, 2, 2, 2, 2], replicas=2, routing="least_outstanding")
    np.testing.assert_array_equal(lo.requests.replica, [0, 1, 1, 1, 1, 1])


def test_same_seed_same_log_and_seed_changes_random_choices(tmp_path):
    st = stage(
        synthetic_profile(tmp_path), prefix_cache={"shared_prefix_tokens": {"dist": "uniform", "low": 1, "high": 200}}
    )
    rng = np.random.default_rng(5)
    ready, prompt, output = np.sort(rng.uniform(0, 5000, 200)), rng.integers(50, 400, 200), rng.integers(1, 80, 200)
    a = run(st, ready, prompt, output, replicas=3, routing="random", seed=11)
    b = run(st, ready, prompt, output, replicas=3, routing="random", seed=11)
    c = run(st, ready, prompt, output, replicas=3, routing="random", seed=12)
    pd.testing.assert_frame_equal(a.requests, b.requests)
    pd.testing.assert_frame_equal(a.iterations, b.iterations)
    assert not a.requests.replica.equals(c.requests.replica)


def test_requests_that_can_never_fit_are_rejected_not_lost(tmp_path):
    st = stage(synthetic_profile(tmp_path), batching={"policy": "continuous", "num_gpu_blocks": 4}, max_model_len=100)
    result = run(st, [0.0, 0.0, 0.0], [30, 90, 60], [10, 20, 10])
    # 90 + 20 > max_model_len; 60 + 10 - 1 = 69 tokens of KV need 5 blocks of 16 > 4.
    np.testing.assert_array_equal(result.requests.rejected, [False, True, True])
    assert result.requests.ttft_ms[1:].isna().all() and result.requests.ttft_ms[0] > 0


def test_bad_inputs_give_clear_errors(tmp_path):
    st = stage(synthetic_profile(tmp_path))
    with pytest.raises(ScenarioError, match="routing"):
        run(st, [0.0], [10], [10], routing="fastest")
    with pytest.raises(ScenarioError, match=">= 1"):
        run(st, [0.0], [0], [10])
    with pytest.raises(ScenarioError, match="no room for a KV cache"):
        run(
            stage(synthetic_profile(tmp_path), batching={"policy": "continuous", "gpu_memory_gib": 10}),
            [0.0],
            [10],
            [10],
        )


def test_shipped_profile_runs_from_the_project_root():
    st = stage(ROOT / "models" / "llama2-70b-tp4-a100.yaml")
    result = run(st, [0.0], [512], [128])
    measured_e2e_ms = (
        5796.39  # llm-perf-a100-h100.csv: llama2-70b, a100-80gb, TP 4, prompt 512, batch 1, 128 tokens (median of 5)
    )
    assert result.requests.e2e_ms.iloc[0] == pytest.approx(measured_e2e_ms, rel=0.05)


@pytest.mark.parametrize("routing", ["round_robin", "random", "least_outstanding", "power_of_two"])
@pytest.mark.parametrize(
    "batching",
    [
        {"policy": "continuous"},
        {"policy": "continuous", "num_gpu_blocks": 60, "chunked_prefill": True, "max_num_batched_tokens": 256},
    ],
)
def test_fusing_quiet_decode_steps_changes_no_result(tmp_path, routing, batching):
    st = stage(synthetic_profile(tmp_path), batching=batching)
    rng = np.random.default_rng(9)
    n = 300
    ready, prompt, output = np.sort(rng.uniform(0, 60_000, n)), rng.integers(1, 300, n), rng.integers(1, 200, n)
    fused = simulate_llm_stage(ready, prompt, output, st, 3, np.random.default_rng(4), routing)
    stepwise = simulate_llm_stage(
        ready, prompt, output, st, 3, np.random.default_rng(4), routing, fuse_quiet_steps=False
    )
    pd.testing.assert_frame_equal(fused.requests, stepwise.requests, rtol=1e-9)
    pd.testing.assert_frame_equal(fused.iterations, stepwise.iterations, rtol=1e-9)
    np.testing.assert_allclose(fused.itl_ms, stepwise.itl_ms, rtol=1e-9)
