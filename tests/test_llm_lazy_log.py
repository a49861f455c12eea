"""A run fresh from the engine keeps its LLM stages' logs as the engine left them and lays out the llm frames
only when asked (sim/engine/runlog.py); the summary reads the engine's arrays (sim/metrics/llm.py). Both must
give what the frames give: the same frames however the log is split, joined or written, and the same summary
as a log rebuilt from its frames (a log read back)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sim.analysis.simulate import simulate
from sim.engine.runlog import LLM_FRAMES, RunLog
from sim.metrics.llm import distribution, gap_distribution, llm_key, stage_results
from sim.spec.scenario import load_scenario
from tests.llm_support import ROOT

SCENARIOS = ("llm-chat-continuous", "llm-chat-disaggregated")


def _run(name: str, replications: int = 2) -> tuple:
    scenario = load_scenario(ROOT / "scenarios" / f"{name}.yaml")
    return scenario, simulate(scenario, requests=1500, replications=replications).run


def _eager(run: RunLog) -> RunLog:
    """The same log with its llm frames laid out and its engine logs dropped (as a log read back)."""
    return RunLog(**run.frames(keep=False))


@pytest.mark.parametrize("name", SCENARIOS)
def test_frames_are_laid_out_only_when_asked_and_then_kept(name):
    _, run = _run(name)
    assert run.llm_logs and all(run.__dict__.get(frame) is None for frame in LLM_FRAMES)
    written = run.frames(keep=False)  # a writer's view
    assert all(run.__dict__.get(frame) is None for frame in LLM_FRAMES)
    gaps = run.llm_token_gaps
    assert run.llm_token_gaps is gaps  # made once
    pd.testing.assert_frame_equal(gaps, written["llm_token_gaps"], check_exact=True)
    assert list(gaps.columns) == ["replication", "stage", "request", "itl_ms"]
    assert sorted(gaps["replication"].unique()) == [0, 1]


@pytest.mark.parametrize("name", SCENARIOS)
def test_split_and_concat_keep_the_engine_logs_and_give_the_same_frames(name):
    _, run = _run(name)
    parts = run.split()
    assert [log.replication for part in parts for log in part.llm_logs] == [0, 1]
    joined = RunLog.concat(parts)
    assert joined.llm_logs and all(joined.__dict__.get(frame) is None for frame in LLM_FRAMES)
    eager = _eager(run)
    for frame in LLM_FRAMES:
        pd.testing.assert_frame_equal(getattr(joined, frame), getattr(eager, frame), check_exact=True)
    # A log read back (no engine logs) joined with a fresh one: frames throughout.
    mixed = RunLog.concat([_eager(parts[0]), parts[1]])
    assert not mixed.llm_logs
    for frame in LLM_FRAMES:
        pd.testing.assert_frame_equal(getattr(mixed, frame), getattr(eager, frame), check_exact=True)


@pytest.mark.parametrize("name", SCENARIOS)
def test_summary_from_the_engine_logs_is_the_one_from_the_frames(name):
    scenario, run = _run(name)
    assert llm_key(run, scenario) == llm_key(_eager(run), scenario)
    stage = scenario.stages[0]
    for (index, fresh), (rebuilt_index, rebuilt) in zip(stage_results(run, stage), stage_results(_eager(run), stage)):
        np.testing.assert_array_equal(index, rebuilt_index)
        np.testing.assert_array_equal(fresh.itl_counts, rebuilt.itl_counts)
        np.testing.assert_array_equal(fresh.itl_request, rebuilt.itl_request)
        np.testing.assert_array_equal(fresh.itl_ms, rebuilt.itl_ms)


def test_gap_statistics_from_counts_are_those_of_the_masked_gaps():
    """`gap_distribution` (a slice where the measured requests lie together, counts instead of a request per
    gap) equals `distribution` over the gaps of the masked requests, whatever the mask and groups."""
    _, run = _run("llm-chat-continuous", replications=1)
    result = run.llm_logs[0].result
    n = len(result.requests)
    rng = np.random.default_rng(3)
    served = ~result.requests.rejected.to_numpy()
    ranked = (np.arange(n) * 10) // n
    masks = [served, served & (np.arange(n) >= n // 10), served & (rng.random(n) > 0.3), np.zeros(n, bool)]
    for done in masks:
        for group in (ranked, np.full(n, -1), rng.integers(0, 10, n)):
            request = result.itl_request
            keep = done[request]
            assert gap_distribution(result, done, group) == distribution(result.itl_ms[keep], group[request[keep]])
