"""LLM metrics from the stage log: values worked out by hand on micro-scenarios."""

from __future__ import annotations

import numpy as np
import pytest

from sim.engine.llm.stage import simulate_llm_stage
from sim.metrics.llm import distribution, llm_summary, llm_timeseries
from tests.llm_support import stage, synthetic_profile


def run(st, ready, prompt, output, replicas=1):
    return simulate_llm_stage(
        np.asarray(ready, float), np.asarray(prompt), np.asarray(output), st, replicas, np.random.default_rng(0)
    )


def test_single_request_summary_is_its_own_timings(tmp_path):
    result = run(stage(synthetic_profile(tmp_path)), [0.0], [300], [50])
    row = result.requests.iloc[0]
    s = llm_summary(result)
    assert s["ttft_ms"]["p50"] == pytest.approx(row.ttft_ms) and s["ttft_ms"]["p99"] == pytest.approx(row.ttft_ms)
    assert s["e2el_ms"]["mean"] == pytest.approx(row.e2e_ms)
    assert s["tpot_ms"]["mean"] == pytest.approx(row.tpot_ms)
    assert s["itl_ms"]["mean"] == pytest.approx(row.tpot_ms)  # one request: mean gap = TPOT
    assert s["output_tokens_per_s"] == pytest.approx(50 / (row.e2e_ms / 1000))
    assert s["requests_per_s"] == pytest.approx(1 / (row.e2e_ms / 1000))


def test_goodput_counts_requests_meeting_both_slos(tmp_path):
    rng = np.random.default_rng(3)
    n = 300
    result = run(
        stage(synthetic_profile(tmp_path)),
        np.sort(rng.uniform(0, 20_000, n)),
        rng.integers(10, 2000, n),
        rng.integers(1, 100, n),
        replicas=2,
    )
    log = result.requests
    ttft_slo, tpot_slo = np.quantile(log.ttft_ms, 0.7), np.nanquantile(log.tpot_ms, 0.8)
    s = llm_summary(result, ttft_slo_ms=ttft_slo, tpot_slo_ms=tpot_slo)
    good = (log.ttft_ms <= ttft_slo) & ((log.tpot_ms <= tpot_slo) | log.tpot_ms.isna())
    span_s = (log.done_ms.max() - log.ready_ms.min()) / 1000
    assert s["goodput"]["requests_per_s"] == pytest.approx(good.sum() / span_s)
    assert s["goodput"]["attainment"] == pytest.approx(good.mean())
    assert s["output_tokens_per_s"] == pytest.approx(log.output_tokens.sum() / span_s)
    assert s["itl_ms"]["mean"] == pytest.approx(result.itl_ms.mean())
    lo, hi = s["ci95"]["ttft_ms"]["p50"]
    assert lo < hi


def test_kv_utilisation_is_time_weighted_with_idle_as_empty(tmp_path):
    # 32-token prompt = 2 blocks during the prefill; the one decode step holds 33 tokens = 3 blocks.
    st = stage(synthetic_profile(tmp_path), batching={"policy": "continuous", "num_gpu_blocks": 10, "block_size": 16})
    result = run(st, [0.0], [32], [2])
    prefill_ms, step_ms = result.iterations.duration_ms
    s = llm_summary(result)
    assert s["kv_cache_utilization"]["mean"] == pytest.approx(
        (2 * prefill_ms + 3 * step_ms) / (10 * (prefill_ms + step_ms))
    )
    assert s["kv_cache_utilization"]["max"] == pytest.approx(0.3)
    assert s["batch_size"]["mean"] == pytest.approx(1.0)


def test_extrapolation_is_warned(tmp_path):
    roomy = {"policy": "continuous", "max_num_batched_tokens": 16384}  # else the 9000-token prompt is rejected
    result = run(stage(synthetic_profile(tmp_path), batching=roomy), np.zeros(71), [9000] + [20] * 70, np.full(71, 5))
    warnings = " ".join(llm_summary(result)["warnings"])
    assert "beyond the profile's measured batch sizes" in warnings
    assert "longer than the measured 8192" in warnings


def test_distribution_percentiles_and_batch_mean_interval():
    values = np.arange(1000, dtype=float)
    point, ci = distribution(values, np.arange(1000) // 100)
    assert point["p50"] == pytest.approx(499.5) and point["p99"] == pytest.approx(989.01)
    # Ten groups of 100 consecutive values: group medians 49.5, 149.5, ... have mean 499.5.
    assert (ci["p50"][0] + ci["p50"][1]) / 2 == pytest.approx(499.5)


def test_timeseries_bins_cover_the_run(tmp_path):
    result = run(stage(synthetic_profile(tmp_path)), np.arange(20) * 500.0, np.full(20, 100), np.full(20, 40))
    series = llm_timeseries(result, bin_s=1.0)
    assert series.time_s.iloc[0] == 0 and (series.kv_cache_utilization >= 0).all()
    assert series.decode_tokens_per_s.sum() * 1.0 == pytest.approx(result.iterations.decode_tokens.sum())


def test_charts_draw_every_variant_from_the_same_quantiles(tmp_path):
    from sim.present.llm_charts import distribution_points, distributions_chart, timeseries_chart

    results = {
        name: run(
            stage(synthetic_profile(tmp_path), batching=batching),
            np.arange(30) * 200.0,
            np.full(30, 100),
            np.arange(1, 31),
        )
        for name, batching in (
            ("continuous", {"policy": "continuous"}),
            ("static", {"policy": "static", "batch_size": 4}),
        )
    }
    points = distribution_points(results)
    ttft = points[(points.variant == "static") & (points.metric == "ttft_ms")]
    assert ttft.value_ms.iloc[-1] == pytest.approx(results["static"].requests.ttft_ms.max())
    assert set(points.variant) == {"continuous", "static"}
    distributions_chart(results, "itl_ms").to_dict()
    timeseries_chart(results, bin_s=1.0).to_dict()


def test_a_stage_that_cannot_keep_up_is_flagged(tmp_path):
    ready = np.arange(200) * 50.0  # 20 requests/s of 200 tokens: far beyond one replica
    slow = run(
        stage(synthetic_profile(tmp_path), batching={"policy": "static", "batch_size": 2}),
        ready,
        np.full(200, 100),
        np.full(200, 200),
    )
    assert any("queue grows" in w for w in llm_summary(slow)["warnings"])
    fine = run(stage(synthetic_profile(tmp_path)), ready * 100, np.full(200, 100), np.full(200, 20))
    assert not any("queue grows" in w for w in llm_summary(fine)["warnings"])
