"""Prompt and output token counts per request, from distributions or from an arrival trace's columns."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from sim.errors import ScenarioError
from sim.spec.llm_schema import TokenSpec


def sample_tokens(
    spec: TokenSpec, rng: np.random.Generator, n: int, columns: Mapping[str, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(prompt, output) int64 arrays of length `n`, each >= 1: drawn from `rng` (prompt first), or read from
    the arrival trace's `columns` (`Arrivals.columns`)."""
    prompt = _one(spec.prompt, spec.prompt_column, "prompt", rng, n, columns)
    output = _one(spec.output, spec.output_column, "output", rng, n, columns)
    return prompt, output


def _one(dist, column: str | None, what: str, rng: np.random.Generator, n: int, columns) -> np.ndarray:
    if dist is not None:
        return dist.sample(rng, n)
    field = f"workload.tokens.{what}_column"
    if not columns or column not in columns:
        have = ", ".join(sorted(columns)) if columns else "none: the arrival process is not a trace"
        raise ScenarioError(f"{field}: the arrival trace has no column {column!r} (numeric columns: {have})")
    values = np.asarray(columns[column])
    if len(values) < n:
        raise ScenarioError(f"{field}: column {column!r} has {len(values)} values for {n} requests")
    values = values[:n].astype(float)
    bad = ~np.isfinite(values) | (values < 1) | (values != np.round(values))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ScenarioError(
            f"{field}: column {column!r} must hold whole token counts >= 1; request {row} has {values[row]:g}"
        )
    return values.astype(np.int64)
