"""The table profiles (`python -m calibrate.llm_perf --table`): the splitwise-sim measurements interpolated as
splitwise-sim's DatabasePerformanceModel does — prefill by the tokens of the iteration, through the median of
the measured rows at each — rather than fitted. Every expected value here is recomputed from the CSV."""

from __future__ import annotations

import numpy as np
import pytest

from calibrate.llm_perf import build_table_profile, read_perf_table, select, valid_rows
from sim.engine.llm.stage import simulate_llm_stage
from sim.errors import DataFileError
from sim.metrics.llm import extrapolation_warnings
from sim.spec.llm_cost import LLMCost, PrefillTable, load_llm_profile
from tests.llm_support import ROOT, SYNTHETIC, stage, synthetic_profile

SHIPPED = [("llama2-70b-tp4-a100-table", "a100-80gb"), ("llama2-70b-tp4-h100-table", "h100-80gb")]


@pytest.fixture(scope="module")
def table():
    return read_perf_table()


def measured(table, hardware):
    rows, _ = valid_rows(select(table, "llama2-70b", hardware, 4))
    return rows.assign(batch_tokens=rows.prompt_size * rows.batch_size)


@pytest.mark.parametrize("name,hardware", SHIPPED)
def test_table_profile_returns_the_measured_median_at_every_measured_point(table, name, hardware):
    rows = measured(table, hardware)
    cost = LLMCost(load_llm_profile(ROOT / "models" / f"{name}.yaml"))
    for tokens, group in rows.groupby("batch_tokens"):
        assert cost.prefill_parts_ms(tokens, 0.0, 1) == pytest.approx(group.prompt_time.median(), rel=1e-12)
    for batch, group in rows.groupby("batch_size"):
        assert cost.decode_step_ms(int(batch), 0.0) == pytest.approx(group.token_time.median(), rel=1e-12)


@pytest.mark.parametrize("name,hardware", SHIPPED)
def test_a_configuration_alone_at_its_batch_tokens_is_reproduced_exactly(table, name, hardware):
    rows = measured(table, hardware)
    configs = rows.groupby("batch_tokens")[["prompt_size", "batch_size"]].nunique()
    alone = configs[(configs.prompt_size == 1) & (configs.batch_size == 1)].index
    assert {128, 256, 16384, 32768} <= set(alone)
    cost = LLMCost(load_llm_profile(ROOT / "models" / f"{name}.yaml"))
    for tokens in alone:
        config = rows[rows.batch_tokens == tokens]
        prompt, batch = int(config.prompt_size.iloc[0]), int(config.batch_size.iloc[0])
        assert cost.prefill_ms(prompt * batch, batch) == pytest.approx(config.prompt_time.median(), rel=1e-12)


@pytest.mark.parametrize("name,_", SHIPPED)
def test_between_measured_points_the_cost_is_linear_and_monotone(name, _):
    profile = load_llm_profile(ROOT / "models" / f"{name}.yaml")
    cost = LLMCost(profile)
    xs, ys = profile.prefill.batch_tokens, profile.prefill.prompt_time_ms
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        grid = np.linspace(x0, x1, 41)
        values = np.array([cost.prefill_parts_ms(t, 0.0, 1) for t in grid])
        np.testing.assert_allclose(values, y0 + (y1 - y0) * (grid - x0) / (x1 - x0), rtol=1e-12)
        steps = np.diff(values)
        assert (steps * np.sign(y1 - y0) >= 0).all()
    batches, steps_ms = profile.decode.batch_sizes, profile.decode.step_ms
    for (b0, y0), (b1, y1) in zip(zip(batches, steps_ms), zip(batches[1:], steps_ms[1:])):
        values = np.array([cost.decode_step_ms(b, 0.0) for b in range(b0, b1 + 1)])
        assert values.min() >= min(y0, y1) - 1e-12 and values.max() <= max(y0, y1) + 1e-12
        assert (np.diff(values) * np.sign(y1 - y0) >= -1e-12).all()


def test_prompt_count_and_context_do_not_enter_a_table_profile():
    cost = LLMCost(load_llm_profile(ROOT / "models" / "llama2-70b-tp4-a100-table.yaml"))
    assert cost.prefill_parts_ms(4096, 4096**2, 1) == cost.prefill_parts_ms(4096, 8 * 512**2, 8)
    steps = cost.decode_steps_ms(32, np.array([0.0, 1e4, 1e6]))
    assert steps[0] == steps[1] == steps[2] and cost.kv_ms_per_token == 0.0


def test_beyond_the_measured_points_the_end_segments_continue():
    profile = load_llm_profile(ROOT / "models" / "llama2-70b-tp4-a100-table.yaml")
    cost = LLMCost(profile)
    (x0, x1), (y0, y1) = profile.prefill.batch_tokens[:2], profile.prefill.prompt_time_ms[:2]
    assert cost.prefill_parts_ms(64, 0.0, 1) == pytest.approx(y0 - (y1 - y0) / (x1 - x0) * (x0 - 64))
    (xa, xb), (ya, yb) = profile.prefill.batch_tokens[-2:], profile.prefill.prompt_time_ms[-2:]
    assert cost.prefill_parts_ms(2 * xb, 0.0, 1) == pytest.approx(yb + (yb - ya) / (xb - xa) * xb)
    assert profile.prefill.max_measured_tokens == xb and profile.decode.max_measured_batch == 64


def test_a_run_beyond_the_measured_batch_sizes_warns_as_the_fitted_profiles_do():
    st = stage(ROOT / "models" / "llama2-70b-tp4-a100-table.yaml", batching={"policy": "continuous"})
    n = 400
    result = simulate_llm_stage(
        np.zeros(n), np.full(n, 200), np.full(n, 300), st, 1, np.random.default_rng(0)
    )  # 400 at once on one replica: decode batches reach well above 64
    assert any("decode cost extrapolated" in w for w in extrapolation_warnings(result))


@pytest.mark.parametrize("name,hardware", SHIPPED)
def test_shipped_table_profile_is_what_the_importer_writes(table, name, hardware):
    shipped = load_llm_profile(ROOT / "models" / f"{name}.yaml")
    built = build_table_profile(table, "llama2-70b", hardware, 4, name, shipped.source["file"])
    assert isinstance(shipped.prefill, PrefillTable)
    assert built.prefill == shipped.prefill and built.decode == shipped.decode  # YAML keeps floats exactly
    assert "interpolated measurements" in shipped.fit["method"]


def test_a_table_whose_tokens_do_not_increase_is_refused_by_field(tmp_path):
    prefill = {"batch_tokens": [512, 256], "prompt_time_ms": [100.0, 60.0]}
    prefill |= {"max_measured_prompt": 512, "max_measured_tokens": 512}
    path = synthetic_profile(tmp_path, prefill=prefill, name=SYNTHETIC["name"])
    with pytest.raises(DataFileError, match="strictly increasing"):
        load_llm_profile(path)


def test_transfer_refuses_a_table_profile_by_name():
    from calibrate.transfer import transfer

    profile = load_llm_profile(ROOT / "models" / "llama2-70b-tp4-a100-table.yaml")
    with pytest.raises(DataFileError, match="table of measurements"):
        transfer(profile, "h200")
