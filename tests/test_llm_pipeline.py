"""The LLM stage inside a run: token counts from the `tokens` stream, columns aligned with the run's
requests, requests that skip the stage left alone, summaries over replications."""

from __future__ import annotations

import numpy as np
import pytest

from sim.errors import ScenarioError
from sim.engine.llm.pipeline import run_llm_stage
from sim.metrics.llm import summarize_llm_runs
from sim.spec.llm_schema import TokenSpec
from tests.llm_support import stage, synthetic_profile


def test_columns_align_with_the_run_and_skip_inactive_requests(tmp_path):
    st = stage(synthetic_profile(tmp_path))
    tokens = TokenSpec.model_validate({"prompt": {"dist": "uniform", "low": 10, "high": 100}, "output": 20})
    ready = np.arange(10) * 1000.0
    active = np.array([True, False] * 5)
    run = run_llm_stage(st, tokens, ready, active, {}, 2, "round_robin", seed=3, replication=0)
    assert np.isnan(run.done_ms[~active]).all() and (run.done_ms[active] > ready[active]).all()
    assert np.isnan(run.columns["ttft_ms"][~active]).all()
    np.testing.assert_allclose(
        run.done_ms[active], ready[active] + run.columns["llm_queue_ms"][active] + run.columns["llm_ms"][active]
    )
    # Token counts come from their own stream: the same for another policy or another set of active requests.
    again = run_llm_stage(
        stage(synthetic_profile(tmp_path), batching={"policy": "static", "batch_size": 4}),
        tokens,
        ready,
        ~active,
        {},
        2,
        "round_robin",
        seed=3,
        replication=0,
    )
    np.testing.assert_array_equal(run.columns["prompt_tokens"], again.columns["prompt_tokens"])


def test_missing_tokens_is_a_clear_error(tmp_path):
    with pytest.raises(ScenarioError, match="workload.tokens"):
        run_llm_stage(
            stage(synthetic_profile(tmp_path)), None, np.zeros(1), np.ones(1, bool), {}, 1, "round_robin", 0, 0
        )


def test_summary_over_replications_is_the_mean_with_t_intervals(tmp_path):
    st = stage(synthetic_profile(tmp_path))
    tokens = TokenSpec.model_validate(
        {"prompt": {"dist": "uniform", "low": 10, "high": 500}, "output": {"dist": "uniform", "low": 1, "high": 80}}
    )
    ready = np.arange(200) * 100.0
    runs = [
        run_llm_stage(st, tokens, ready, np.ones(200, bool), {}, 1, "round_robin", seed=1, replication=r)
        for r in range(3)
    ]
    runs = [(run.index, run.result) for run in runs]
    merged = summarize_llm_runs(runs, ttft_slo_ms=200, tpot_slo_ms=40)
    singles = [summarize_llm_runs([r], ttft_slo_ms=200, tpot_slo_ms=40) for r in runs]
    assert merged["ttft_ms"]["p99"] == pytest.approx(np.mean([s["ttft_ms"]["p99"] for s in singles]))
    assert merged["goodput"]["requests_per_s"] == pytest.approx(
        np.mean([s["goodput"]["requests_per_s"] for s in singles])
    )
    low, high = merged["ci95"]["ttft_ms"]["p99"]
    assert low <= merged["ttft_ms"]["p99"] <= high
    assert merged["replications"] == 3
