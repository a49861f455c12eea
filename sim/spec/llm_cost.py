"""The LLM cost model: what one iteration of an LLM replica costs, from a measured LLM profile.

An LLM profile (`models/NAME.yaml` with `kind: llm`) holds two fitted curves (see calibrate/llm_perf.py):

- prefill: `max(floor_ms, intercept_ms + per_token_ms × Σnew + attention_ms_per_mtoken2 × Σ(new ×
  context) / 1e6 + per_extra_seq_ms × (seqs − 1))` — a roofline knee: short prompts cost the weight
  reads (`floor_ms`), longer ones the compute of linear layers per token, attention per (new token ×
  context token), and the measured per-sequence overhead of batched prefill;
- decode: one step for a batch of b sequences costs `step_ms(b)` (piecewise linear through the measured
  batch sizes) `+ per_context_token_ms × Σcontext` (reading the KV cache of every sequence); where the
  profile has `kv_read`, that term is its roofline: the KV bytes of one token read once per step over the
  HBM bandwidth of the tensor-parallel GPUs.

A profile may instead carry the measurements themselves (`prefill: {batch_tokens, prompt_time_ms}`, written
by `python -m calibrate.llm_perf --table`): prefill interpolated in the measured medians by the tokens of the
iteration, as splitwise-sim's DatabasePerformanceModel does, and decode steps by batch size with no context
term. That is interpolated measurement, not a model: no term says what bounds it.

All times are milliseconds. Outside the measured ranges the curves extrapolate linearly; the limits are
kept (`max_measured_*`) so that the summary can warn when a run relied on extrapolation.
"""

from __future__ import annotations

from bisect import bisect_right
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, ValidationError, model_validator

from sim.errors import DataFileError


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class PrefillCurve(_Frozen):
    """Prefill (prompt processing) cost of one iteration, in ms."""

    floor_ms: float = Field(ge=0, description="weight-read bound: no prefill iteration is faster")
    intercept_ms: float = Field(ge=0)
    per_token_ms: float = Field(ge=0)
    attention_ms_per_mtoken2: float = Field(ge=0, description="ms per 1e6 (new token × context token) pairs")
    per_extra_seq_ms: float = Field(ge=0)
    max_measured_prompt: PositiveInt
    max_measured_tokens: PositiveInt


class PrefillTable(_Frozen):
    """Prefill cost interpolated in measurements: the median `prompt_time_ms` of the measured iterations of
    each `batch_tokens` (Σ prompt tokens), linear between them and continued linearly beyond them (never
    below 0), as splitwise-sim's DatabasePerformanceModel does. Prompt count and context do not enter."""

    batch_tokens: list[PositiveInt] = Field(min_length=2)
    prompt_time_ms: list[PositiveFloat] = Field(min_length=2)
    max_measured_prompt: PositiveInt
    max_measured_tokens: PositiveInt

    @model_validator(mode="after")
    def _aligned(self) -> "PrefillTable":
        if len(self.batch_tokens) != len(self.prompt_time_ms):
            raise ValueError("batch_tokens and prompt_time_ms must have the same length")
        if any(b <= a for a, b in zip(self.batch_tokens, self.batch_tokens[1:])):
            raise ValueError("batch_tokens must be strictly increasing")
        return self


class KVRead(_Frozen):
    """Roofline of the decode step's KV-cache read: every context token's K and V, over all layers, read
    once per step from HBM, spread over the tensor-parallel GPUs."""

    formula: str = (
        "per_context_token_ms = 2 × layers × kv_heads × head_dim × bytes_per_element "
        "/ (gpus × hbm_bandwidth_gb_s × 1e9) × 1e3"
    )
    layers: PositiveInt
    kv_heads: PositiveInt
    head_dim: PositiveInt
    bytes_per_element: PositiveInt
    gpus: PositiveInt
    hbm_bandwidth_gb_s: PositiveFloat = Field(description="peak HBM bandwidth of one GPU, GB/s (1e9 bytes)")
    source: str = ""

    @property
    def bytes_per_token(self) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * self.bytes_per_element

    @property
    def ms_per_context_token(self) -> float:
        return self.bytes_per_token / (self.gpus * self.hbm_bandwidth_gb_s * 1e9) * 1e3


class DecodeCurve(_Frozen):
    """Decode step cost: `step_ms` at each measured batch size (context-free part) + KV read per token."""

    batch_sizes: list[PositiveInt] = Field(min_length=1)
    step_ms: list[PositiveFloat] = Field(min_length=1)
    per_context_token_ms: float = Field(ge=0)
    kv_read: KVRead | None = Field(default=None, description="where given, per_context_token_ms is its roofline")

    @model_validator(mode="after")
    def _aligned(self) -> "DecodeCurve":
        if len(self.batch_sizes) != len(self.step_ms):
            raise ValueError("batch_sizes and step_ms must have the same length")
        if any(b <= a for a, b in zip(self.batch_sizes, self.batch_sizes[1:])):
            raise ValueError("batch_sizes must be strictly increasing")
        if self.kv_read is not None:
            roofline = self.kv_read.ms_per_context_token
            if abs(self.per_context_token_ms - roofline) > 1e-9 * max(roofline, 1e-12):
                raise ValueError(
                    f"per_context_token_ms ({self.per_context_token_ms:.6g}) differs from its kv_read roofline "
                    f"({roofline:.6g}): change one so that they agree"
                )
        return self

    @property
    def max_measured_batch(self) -> int:
        return self.batch_sizes[-1]


GIB = 2**30  # bytes; GPU memory is sold in GiB ("80 GB" A100 = 80 GiB = 85.9e9 bytes)


class Memory(_Frozen):
    """GPU memory of one replica (all its tensor-parallel GPUs together) and what the model needs."""

    gpus: PositiveInt
    gpu_memory_gib: PositiveFloat = Field(description="per GPU, GiB (2^30 bytes), as nvidia-smi reports it")
    weights_gib: PositiveFloat = Field(description="model weights over all GPUs, GiB")
    kv_bytes_per_token: PositiveInt = Field(description="K and V of one token over all layers, bytes")


class LLMProfile(_Frozen):
    """A measured LLM serving profile: provenance, price, memory, prefill and decode cost curves."""

    kind: Literal["llm"]
    name: str
    model: str
    hardware: str
    tensor_parallel: PositiveInt
    precision: str = "fp16"
    serving_stack: str = ""
    source: dict = Field(default_factory=dict)
    usd_per_hour: float | None = Field(default=None, ge=0)
    memory: Memory
    prefill: PrefillCurve | PrefillTable
    decode: DecodeCurve
    fit: dict = Field(default_factory=dict)
    # A profile moved to hardware it was not measured on (calibrate/transfer.py): its costs are estimates,
    # with the prediction interval, reach and factors in `estimate`.
    estimated: bool = False
    estimate: dict = Field(default_factory=dict)


def load_llm_profile(path: str | Path) -> LLMProfile:
    """Read and validate an LLM profile YAML; every problem becomes a DataFileError naming the file."""
    return _load_cached(str(Path(path).resolve()))


@lru_cache(maxsize=64)
def _load_cached(path: str) -> LLMProfile:
    from sim.spec.datafiles import MAX_YAML_BYTES, check_data_file, data_error, parse_yaml, shown, validation_problems

    check_data_file(Path(path), "LLM profile", limit=MAX_YAML_BYTES)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise data_error("LLM profile", path, "is not a readable UTF-8 file") from None
    raw = parse_yaml(text, f"LLM profile {shown(path)}", DataFileError, quote=False)
    if not isinstance(raw, dict) or raw.get("kind") != "llm":
        raise data_error("LLM profile", path, "is not an LLM profile (it needs `kind: llm`)")
    try:
        return LLMProfile.model_validate(raw)
    except ValidationError as exc:
        raise data_error("LLM profile", path, validation_problems(exc, LLMProfile, "LLM profile fields")) from None


class LLMCost:
    """Iteration costs (ms) of one LLM replica. Hot paths take sums, so the engine never loops per token."""

    def __init__(self, profile: LLMProfile) -> None:
        self.profile = profile
        p = profile.prefill
        self._table: tuple[list[int], list[float]] | None = None
        if isinstance(p, PrefillTable):
            self._table = (list(p.batch_tokens), list(p.prompt_time_ms))
        else:
            self._floor, self._p0, self._p_tok, self._p_seq = (
                p.floor_ms,
                p.intercept_ms,
                p.per_token_ms,
                p.per_extra_seq_ms,
            )
            self._p_att = p.attention_ms_per_mtoken2 / 1e6
        d = profile.decode
        self._kv_ms = self.kv_ms_per_token = d.per_context_token_ms
        self._step_table: list[float] = []
        self._extend_step_table(max(d.batch_sizes[-1], 256))

    def _extend_step_table(self, max_batch: int) -> None:
        d = self.profile.decode
        b = np.arange(len(self._step_table), max_batch + 1, dtype=float)
        xs, ys = np.asarray(d.batch_sizes, float), np.asarray(d.step_ms, float)
        values = np.interp(b, xs, ys)
        if len(xs) > 1:
            # Linear continuation of the last measured segment (never below the last measured value).
            slope = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
            above = b > xs[-1]
            values[above] = ys[-1] + max(slope, 0.0) * (b[above] - xs[-1])
        self._step_table.extend(values.tolist())

    def prefill_parts_ms(self, tokens: float, attention_pairs: float, seqs: int) -> float:
        """Prefill of `seqs` sequences computing `tokens` new tokens in all, with Σ(new × context) =
        `attention_pairs`."""
        if self._table is not None:
            return self._interpolated_prefill_ms(tokens)
        compute = self._p0 + self._p_tok * tokens + self._p_att * attention_pairs + self._p_seq * (seqs - 1)
        return compute if compute > self._floor else self._floor

    def _interpolated_prefill_ms(self, tokens: float) -> float:
        """The measured prefill table at `tokens`: linear between its points, the end segments continued."""
        xs, ys = self._table
        i = min(max(bisect_right(xs, tokens), 1), len(xs) - 1)
        slope = (ys[i] - ys[i - 1]) / (xs[i] - xs[i - 1])
        if tokens > xs[-1]:
            slope = max(slope, 0.0)  # as the decode steps: never cheaper than the largest measured iteration
        value = ys[i - 1] + slope * (tokens - xs[i - 1])
        return value if value > 0.0 else 0.0

    def prefill_ms(self, tokens_in_iteration: int, batch: int = 1) -> float:
        """Prefill of `batch` equal prompts totalling `tokens_in_iteration` tokens, from an empty cache."""
        per_seq = tokens_in_iteration / batch
        return self.prefill_parts_ms(tokens_in_iteration, per_seq * per_seq * batch, batch)

    def decode_step_ms(self, batch_size: int, context_tokens: float) -> float:
        """One decode step of `batch_size` sequences whose KV caches hold `context_tokens` tokens in all."""
        if batch_size >= len(self._step_table):
            self._extend_step_table(2 * batch_size)
        return self._step_table[batch_size] + self._kv_ms * context_tokens

    def decode_steps_ms(self, batch_size: int, context_tokens: np.ndarray) -> np.ndarray:
        """Vectorised `decode_step_ms` for many steps of one batch size."""
        if batch_size >= len(self._step_table):
            self._extend_step_table(2 * batch_size)
        return self._step_table[batch_size] + self._kv_ms * np.asarray(context_tokens, dtype=float)

    def recompute_step_ms(self, batch_size: int, context_tokens: float, context_squares: float) -> float:
        """A decode step without a KV cache: every sequence recomputes its whole context (a prefill of
        Σcontext tokens with Σcontext² attention pairs), so the per-token cost grows with length."""
        return self.prefill_parts_ms(context_tokens, context_squares, batch_size)

    def mixed_ms(
        self, prefill_tokens: float, prefill_pairs: float, prefill_seqs: int, decode_batch: int, decode_context: float
    ) -> float:
        """An iteration with both prefill chunks and decodes (chunked prefill): bound by the slower of the
        compute for the prefill tokens and the weight + KV reads of the decode step; the other hides under
        it (Sarathi-Serve's piggybacking argument)."""
        if prefill_seqs == 0:
            return self.decode_step_ms(decode_batch, decode_context)
        prefill = self.prefill_parts_ms(prefill_tokens, prefill_pairs, prefill_seqs)
        if decode_batch == 0:
            return prefill
        return max(prefill, self.decode_step_ms(decode_batch, decode_context))

    def kv_capacity_tokens(self, gpu_memory_utilization: float, gpu_memory_gib: float | None = None) -> int:
        """Tokens of KV cache that fit in `gpu_memory_utilization` of the replica's GPU memory (GiB) after
        the weights (vLLM's sizing, less its activation reserve)."""
        m = self.profile.memory
        per_gpu_gib = m.gpu_memory_gib if gpu_memory_gib is None else gpu_memory_gib
        free_bytes = (gpu_memory_utilization * per_gpu_gib * m.gpus - m.weights_gib) * GIB
        return max(int(free_bytes // m.kv_bytes_per_token), 0)
