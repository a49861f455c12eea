"""Token-count specs: each distribution against its own definition, trace columns, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError

from sim.errors import ScenarioError
from sim.spec.llm_schema import TokenSpec
from sim.engine.llm.tokens import sample_tokens

N = 200_000


def spec(**fields) -> TokenSpec:
    return TokenSpec.model_validate(fields)


def test_constant_shorthand_and_uniform_bounds_and_mean():
    prompt, output = sample_tokens(
        spec(prompt=128, output={"dist": "uniform", "low": 10, "high": 20}), np.random.default_rng(1), N
    )
    assert (prompt == 128).all()
    assert output.min() == 10 and output.max() == 20  # both ends included
    assert output.mean() == pytest.approx(15.0, abs=0.05)  # (low + high) / 2; SE ≈ 3.2/√N ≈ 0.007


def test_lognormal_median_and_p99():
    _, output = sample_tokens(
        spec(prompt=1, output={"dist": "lognormal", "median": 200, "p99": 2000}), np.random.default_rng(2), N
    )
    assert np.median(output) == pytest.approx(200, rel=0.02)
    assert np.quantile(output, 0.99) == pytest.approx(2000, rel=0.05)


def test_bounded_zipf_matches_its_probabilities():
    # P(k) = k^-a / Σ_{j<=max} j^-a, the definition of the truncated zeta distribution.
    a, top = 1.2, 50
    _, output = sample_tokens(spec(prompt=1, output={"dist": "zipf", "a": a, "max": top}), np.random.default_rng(3), N)
    weights = np.arange(1, top + 1) ** -a
    expected = weights / weights.sum()
    observed = np.bincount(output, minlength=top + 1)[1:] / N
    assert (np.abs(observed[:5] - expected[:5]) < 4 * np.sqrt(expected[:5] / N)).all()  # 4 binomial SEs
    assert output.max() <= top


def test_zipf_without_max_needs_a_above_one():
    with pytest.raises(ValidationError, match="needs `max`"):
        spec(prompt=1, output={"dist": "zipf", "a": 0.9})


def test_empirical_resamples_the_given_values():
    _, output = sample_tokens(
        spec(prompt=1, output={"dist": "empirical", "samples": [3, 7]}), np.random.default_rng(4), 1000
    )
    assert set(np.unique(output)) == {3, 7}


def test_trace_columns_are_read_and_checked():
    columns = {"num_prefill_tokens": np.array([5, 6, 7]), "num_decode_tokens": np.array([1, 2, 3])}
    prompt, output = sample_tokens(
        spec(prompt_column="num_prefill_tokens", output_column="num_decode_tokens"),
        np.random.default_rng(0),
        3,
        columns,
    )
    np.testing.assert_array_equal(prompt, [5, 6, 7])
    np.testing.assert_array_equal(output, [1, 2, 3])
    with pytest.raises(ScenarioError, match="no column 'decode'"):
        sample_tokens(
            spec(prompt_column="num_prefill_tokens", output_column="decode"), np.random.default_rng(0), 3, columns
        )
    with pytest.raises(ScenarioError, match="request 1 has 0$"):
        sample_tokens(spec(prompt=4, output_column="bad"), np.random.default_rng(0), 3, {"bad": np.array([1, 0, 2])})


def test_each_count_needs_exactly_one_source():
    with pytest.raises(ValidationError, match="exactly one of output"):
        spec(prompt=3)
    with pytest.raises(ValidationError, match="exactly one of prompt"):
        spec(prompt=3, prompt_column="x", output=4)
    with pytest.raises(ValidationError, match="dist"):
        TypeAdapter(TokenSpec).validate_python({"prompt": {"median": 3}, "output": 1})
