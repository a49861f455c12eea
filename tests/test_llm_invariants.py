"""Hypothesis invariants of the LLM stage: every request arrives once and finishes once with all its
tokens, KV use never exceeds the blocks, batches respect their limits, a replica runs one iteration at a
time."""

from __future__ import annotations

import numpy as np
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.llm_support import SYNTHETIC, stage
from sim.engine.llm.stage import simulate_llm_stage


@st.composite
def workloads(draw):
    n = draw(st.integers(1, 25))
    ready = np.sort(np.array(draw(st.lists(st.floats(0, 3000), min_size=n, max_size=n))))
    prompt = np.array(draw(st.lists(st.integers(1, 200), min_size=n, max_size=n)))
    output = np.array(draw(st.lists(st.integers(1, 60), min_size=n, max_size=n)))
    return ready, prompt, output


@st.composite
def continuous(draw):
    seqs = draw(st.integers(1, 8))
    chunked = draw(st.booleans())
    return {
        "policy": "continuous",
        "max_num_seqs": seqs,
        "max_num_batched_tokens": draw(st.integers(max(seqs, 16), 512)),
        "block_size": draw(st.sampled_from([4, 8, 16])),
        "num_gpu_blocks": draw(st.integers(4, 40)),
        "chunked_prefill": chunked,
    }


def _check_common(result, ready, prompt, output):
    log = result.requests
    served = ~log.rejected.to_numpy()
    assert log.done_ms[served].notna().all()
    assert (log.llm_queue_ms[served] >= -1e-9).all()
    assert (log.ttft_ms[served] > 0).all()
    assert (log.e2e_ms[served] >= log.ttft_ms[served] - 1e-9).all()
    counts = np.bincount(result.itl_request, minlength=len(log))
    np.testing.assert_array_equal(counts[served], output[served] - 1)
    assert counts[~served].sum() == 0
    gap_sums = np.bincount(result.itl_request, weights=result.itl_ms, minlength=len(log))
    np.testing.assert_allclose(gap_sums[served], (log.done_ms - log.first_token_ms)[served], rtol=1e-9, atol=1e-6)
    it = result.iterations
    for _, one in it.groupby("replica"):
        ends = (one.time_ms + one.duration_ms).to_numpy()
        assert (one.time_ms.to_numpy()[1:] >= ends[:-1] - 1e-6).all()  # one iteration at a time
    assert it.preempted.sum() == log.preemptions.sum()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    workloads(),
    continuous(),
    st.booleans(),
    st.integers(1, 3),
    st.sampled_from([0.0, 0.5]),
    st.sampled_from(["round_robin", "least_outstanding"]),
)
def test_continuous_batching_invariants(tmp_path_factory, workload, batching, kv_cache, replicas, hit_rate, routing):
    ready, prompt, output = workload
    profile = tmp_path_factory.mktemp("p") / "synthetic.yaml"
    profile.write_text(yaml.safe_dump(SYNTHETIC))
    s = stage(profile, batching=batching, kv_cache=kv_cache, prefix_cache={"hit_rate": hit_rate})
    result = simulate_llm_stage(ready, prompt, output, s, replicas, np.random.default_rng(0), routing)
    _check_common(result, ready, prompt, output)
    bs, blocks = batching["block_size"], batching["num_gpu_blocks"]
    usable = blocks - int(0.01 * blocks)  # vLLM's 1% watermark
    never_fits = -(-(prompt + output - 1) // bs) > usable
    if not batching["chunked_prefill"]:  # vLLM ignores a prompt above one iteration's token budget
        never_fits |= prompt > batching["max_num_batched_tokens"]
    np.testing.assert_array_equal(result.requests.rejected, never_fits)
    it = result.iterations
    assert (it.kv_blocks_used <= blocks).all()
    assert (it.running <= batching["max_num_seqs"]).all()
    if batching["chunked_prefill"]:
        assert (it.prefill_tokens + it.decode_tokens <= batching["max_num_batched_tokens"]).all()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workloads(), st.integers(1, 6), st.sampled_from([0.0, 50.0]), st.integers(1, 2))
def test_static_batching_invariants(tmp_path_factory, workload, batch_size, timeout_ms, replicas):
    ready, prompt, output = workload
    profile = tmp_path_factory.mktemp("p") / "synthetic.yaml"
    profile.write_text(yaml.safe_dump(SYNTHETIC))
    s = stage(profile, batching={"policy": "static", "batch_size": batch_size, "timeout_ms": timeout_ms})
    result = simulate_llm_stage(ready, prompt, output, s, replicas, np.random.default_rng(0))
    _check_common(result, ready, prompt, output)
    assert not result.requests.rejected.any()
    assert (result.iterations.batch_size <= batch_size).all()
    assert result.requests.preemptions.sum() == 0
