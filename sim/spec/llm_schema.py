"""Scenario schema of the LLM pieces: the `kind: llm` stage, its batching policies, prefix cache, and the
token counts of the workload (`workload.tokens`). Pydantic models only; sim/spec/scenario.py composes them.

```yaml
workload:
  tokens: {prompt: {dist: lognormal, median: 1000, p99: 4000}, output: {dist: uniform, low: 10, high: 500}}
  # or, replaying a trace:  tokens: {prompt_column: num_prefill_tokens, output_column: num_decode_tokens}
stages:
  - name: llm
    kind: llm
    profile: models/llama2-70b-tp4-a100.yaml
    batching: {policy: continuous, max_num_seqs: 256, max_num_batched_tokens: 8192, block_size: 16}
    # or {policy: static, batch_size: 16, timeout_ms: 0}
    kv_cache: true
    prefix_cache: {hit_rate: 0.3}
```
"""

from __future__ import annotations

from functools import cached_property
from typing import Annotated, ClassVar, Literal, Union

import numpy as np
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from sim.spec.bounds import MAX_EXPONENT, MAX_LIST_ITEMS, BatchSize, Ms, PositiveCv, PositiveTokenFloat, Tokens
from sim.spec.datafiles import resolve_path
from sim.spec.distributions import SampleSource
from sim.errors import ServesimError
from sim.spec.llm_cost import LLMCost, load_llm_profile

_Z99 = 2.3263478740408408  # z-score of the normal 99th percentile


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, populate_by_name=True)


# ---- token-count distributions (integers >= 1) ---------------------------------------------------------


class _TokenDist(_Model):
    min: Tokens = 1
    max: Tokens | None = None

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """`n` token counts, integers clipped to [min, max]."""
        values = np.rint(self._draw(rng, n)).astype(np.int64)
        return np.clip(values, self.min, self.max if self.max is not None else None)

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        raise NotImplementedError


class TokenConstant(_TokenDist):
    """Always `value` tokens."""

    dist: Literal["constant"]
    value: Tokens

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, self.value)


class TokenUniform(_TokenDist):
    """Uniform integers from `low` to `high`, both included."""

    dist: Literal["uniform"]
    low: Tokens
    high: Tokens

    @model_validator(mode="after")
    def _ordered(self) -> "TokenUniform":
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) must be at least low ({self.low})")
        return self

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.integers(self.low, self.high + 1, size=n)


class TokenLognormal(_TokenDist):
    """Lognormal token counts given by `{median, p99}` or `{mean, cv}`, rounded."""

    dist: Literal["lognormal"]
    median: PositiveTokenFloat | None = None
    p99: PositiveTokenFloat | None = None
    mean: PositiveTokenFloat | None = None
    cv: PositiveCv | None = None

    @model_validator(mode="after")
    def _one_parameterisation(self) -> "TokenLognormal":
        by_quantiles = self.median is not None and self.p99 is not None
        by_moments = self.mean is not None and self.cv is not None
        if by_quantiles == by_moments:
            raise ValueError("give either {median, p99} or {mean, cv}")
        if by_quantiles and self.p99 <= self.median:
            raise ValueError(f"p99 ({self.p99}) must be larger than median ({self.median})")
        return self

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.median is not None:
            mu, sigma = np.log(self.median), np.log(self.p99 / self.median) / _Z99
        else:
            sigma2 = np.log1p(self.cv**2)
            mu, sigma = np.log(self.mean) - sigma2 / 2, np.sqrt(sigma2)
        return rng.lognormal(mu, sigma, size=n)


class TokenZipf(_TokenDist):
    """Zipf: P(k) ∝ k^-a for k = 1, 2, ... (`max` bounds the support; without it `a` must exceed 1)."""

    dist: Literal["zipf"]
    a: float = Field(gt=0, le=MAX_EXPONENT)

    @model_validator(mode="after")
    def _normalisable(self) -> "TokenZipf":
        if self.max is None and self.a <= 1:
            raise ValueError(f"zipf with a = {self.a} <= 1 needs `max` (the sum of k^-a diverges)")
        return self

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.max is None:
            return rng.zipf(self.a, size=n)
        support = np.arange(1, self.max + 1, dtype=float)
        weights = support**-self.a
        return rng.choice(support, size=n, p=weights / weights.sum())


class TokenEmpirical(_TokenDist, SampleSource):
    """Resample measured token counts: inline `samples`, or a CSV `file` (column `column`, else the first)."""

    values_what: ClassVar[str] = "empirical token counts"
    dist: Literal["empirical"]
    samples: list[Tokens] | None = Field(default=None, max_length=MAX_LIST_ITEMS)

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.choice(self.values, size=n, replace=True)


def _int_is_constant(value: object) -> object:
    """`output: 128` is shorthand for `{dist: constant, value: 128}`."""
    if isinstance(value, int) and not isinstance(value, bool):
        return {"dist": "constant", "value": value}
    if isinstance(value, dict) and "dist" not in value:
        raise ValueError("a token distribution needs `dist:` (constant, uniform, lognormal, zipf, empirical)")
    return value


TokenDist = Annotated[
    Union[TokenConstant, TokenUniform, TokenLognormal, TokenZipf, TokenEmpirical],
    Field(discriminator="dist"),
    BeforeValidator(_int_is_constant),
]


class TokenSpec(_Model):
    """Prompt and output token counts per request: each from a distribution or from a trace column."""

    prompt: TokenDist | None = None
    output: TokenDist | None = None
    prompt_column: str | None = None
    output_column: str | None = None

    @model_validator(mode="after")
    def _each_once(self) -> "TokenSpec":
        for what in ("prompt", "output"):
            given = (getattr(self, what) is not None) + (getattr(self, f"{what}_column") is not None)
            if given != 1:
                raise ValueError(f"give exactly one of {what}: DIST or {what}_column: NAME (of the arrival trace)")
        return self


# ---- the LLM stage -------------------------------------------------------------------------------------


class ContinuousLLMBatching(_Model):
    """vLLM-style iteration-level scheduling with a paged KV cache (see sim/engine/llm/policies.py)."""

    policy: Literal["continuous"]
    max_num_seqs: int = Field(default=256, gt=0, le=65_536)
    max_num_batched_tokens: int = Field(default=8192, gt=0, le=10_000_000)
    block_size: int = Field(default=16, gt=0, le=4096)
    num_gpu_blocks: int | None = Field(default=None, gt=0, le=100_000_000)
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    gpu_memory_gib: float | None = Field(
        default=None, gt=0, le=100_000, description="per GPU, GiB; default: the profile's"
    )
    watermark: float = Field(
        default=0.01, ge=0, lt=1, description="share of KV blocks a new admission must leave free (vLLM's 1%)"
    )
    chunked_prefill: bool = False
    preemption: Literal["recompute"] = "recompute"

    @model_validator(mode="after")
    def _budget_holds_decodes(self) -> "ContinuousLLMBatching":
        if self.chunked_prefill and self.max_num_batched_tokens < self.max_num_seqs:
            raise ValueError(
                f"with chunked_prefill, max_num_batched_tokens ({self.max_num_batched_tokens}) must be at least "
                f"max_num_seqs ({self.max_num_seqs}): every running sequence decodes one token per iteration"
            )
        return self

    def prompt_limit(self, max_model_len: int | None) -> int | None:
        """Longest prompt vLLM accepts: without chunked prefill a prompt must fit one iteration's token
        budget (`max_num_batched_tokens`) and `max_model_len`; with it, `max_model_len` only."""
        if self.chunked_prefill:
            return max_model_len
        return self.max_num_batched_tokens if max_model_len is None else min(max_model_len, self.max_num_batched_tokens)


class StaticLLMBatching(_Model):
    """FasterTransformer-style request-level batching: up to `batch_size` requests run together until the
    longest finishes. With `timeout_ms` > 0 a free replica waits that long after the oldest request for a
    full batch; with 0 it takes whatever is queued."""

    policy: Literal["static"]
    batch_size: BatchSize
    timeout_ms: Ms = 0.0
    block_size: int = Field(default=16, gt=0, le=4096, description="only to report KV use in blocks")


LLMBatching = Annotated[Union[ContinuousLLMBatching, StaticLLMBatching], Field(discriminator="policy")]


class PrefixCache(_Model):
    """Prompt tokens found in the prefix cache are not recomputed: a `hit_rate` fraction of each prompt
    (as vLLM's token-level prefix-cache hit rate), or a shared prefix of `shared_prefix_tokens` (e.g. a
    system prompt). At least the last prompt token is always computed."""

    hit_rate: float = Field(default=0.0, ge=0, le=1)
    shared_prefix_tokens: TokenDist | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> "PrefixCache":
        if self.hit_rate > 0 and self.shared_prefix_tokens is not None:
            raise ValueError("give hit_rate or shared_prefix_tokens, not both")
        return self

    def cached_tokens(self, prompt: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.shared_prefix_tokens is not None:
            cached = self.shared_prefix_tokens.sample(rng, len(prompt))
        else:
            cached = np.floor(self.hit_rate * prompt).astype(np.int64)
        return np.clip(np.minimum(cached, prompt - 1), 0, None)


def loadable_profile(value: str, info: ValidationInfo) -> str:
    """A scenario's `profile:` field: the path of an LLM profile that loads (its problems as the field's)."""
    path = resolve_path(value, info.context)
    try:
        load_llm_profile(path)
    except ServesimError as exc:
        raise ValueError(str(exc)) from None
    return str(path)


# Per-GPU bandwidth (GB/s, one direction) and latency (ms) of the links a KV cache can move over. Each GPU of a
# tensor-parallel replica sends its own shard, so a replica's link is `gpus` times one GPU's. Bandwidths are the
# vendors' peak figures: NVLink 4 on H100 SXM (900 GB/s both directions: 450 one way; NVIDIA H100 datasheet,
# 2023), InfiniBand NDR 400 Gb/s, one adapter per GPU as in DGX H100 (50 GB/s), PCIe Gen4 x16 (32 GB/s raw,
# ~25 achieved), 100 GbE (12.5 GB/s). The latencies are assumed (a transfer's software set-up, not the wire's).
LINKS = {
    "nvlink": (450.0, 0.01),
    "infiniband": (50.0, 0.02),
    "pcie": (25.0, 0.02),
    "ethernet": (12.5, 0.1),
}


class KVLink(_Model):
    """The link a request's KV cache crosses from its prefill replica to its decode replica: a `kind` (its
    per-GPU bandwidth and latency from LINKS), or `bandwidth_gb_s` / `latency_ms` given. `overlap: layer`
    sends each layer's KV as soon as it is computed (DistServe, Splitwise), so only what outlasts the
    prefill's compute is exposed; `none` sends it after the prefill."""

    kind: Literal["nvlink", "infiniband", "pcie", "ethernet"] = "infiniband"
    bandwidth_gb_s: float | None = Field(default=None, gt=0, le=1e6, description="per GPU, GB/s (1e9 bytes)")
    latency_ms: float | None = Field(default=None, ge=0, le=1e6)
    overlap: Literal["layer", "none"] = "layer"

    @property
    def gb_per_s(self) -> float:
        return self.bandwidth_gb_s if self.bandwidth_gb_s is not None else LINKS[self.kind][0]

    @property
    def setup_ms(self) -> float:
        return self.latency_ms if self.latency_ms is not None else LINKS[self.kind][1]


class DecodePool(_Model):
    """The decode pool of a disaggregated stage: its replicas, optionally another profile (another GPU or TP
    of the same model) and price, and its continuous-batching caps."""

    replicas: int = Field(gt=0, le=100_000)
    profile: str | None = Field(default=None, description="LLM profile of a decode replica (default: the stage's)")
    usd_per_hour: float | None = Field(default=None, ge=0, le=1e9, description="price of one decode replica")
    max_num_seqs: int = Field(default=256, gt=0, le=65_536)
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)

    @field_validator("profile")
    @classmethod
    def _profile_loads(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else loadable_profile(value, info)


class Disaggregation(_Model):
    """Prefill and decode on separate pools (sim/engine/llm/disaggregated.py): `prefill_replicas` run the
    stage's batching on prompts only, `decode` generates the rest, `link` moves the KV cache between them."""

    prefill_replicas: int = Field(gt=0, le=100_000)
    decode: DecodePool
    link: KVLink = Field(default_factory=KVLink)

    @property
    def replicas(self) -> int:
        return self.prefill_replicas + self.decode.replicas


class LLMStage(_Model):
    """An LLM deployment: per-iteration costs from an LLM profile, a batching policy, KV cache on or off
    (off: every decode step recomputes attention over the whole context), an optional prefix cache, and an
    optional `max_model_len` (longer requests are rejected)."""

    name: str
    kind: Literal["llm"]
    profile: str
    batching: LLMBatching = Field(default_factory=lambda: ContinuousLLMBatching(policy="continuous"))
    kv_cache: bool = True
    prefix_cache: PrefixCache | None = None
    max_model_len: Tokens | None = None
    disaggregated: Disaggregation | None = None

    @model_validator(mode="after")
    def _disaggregation_fits(self) -> "LLMStage":
        split = self.disaggregated
        if split is None:
            return self
        if not isinstance(self.batching, ContinuousLLMBatching):
            raise ValueError("disaggregated: the prefill pool runs continuous batching (batching.policy: continuous)")
        if not self.kv_cache:
            raise ValueError("disaggregated: a decode pool needs the KV cache it receives (kv_cache: true)")
        decode = self.decode_cost.profile
        prefill = self.cost.profile
        if decode.model != prefill.model or decode.memory.kv_bytes_per_token != prefill.memory.kv_bytes_per_token:
            raise ValueError(
                f"disaggregated.decode.profile: serves {decode.model!r} with {decode.memory.kv_bytes_per_token} KV "
                f"bytes a token, the stage's profile {prefill.model!r} with {prefill.memory.kv_bytes_per_token}: "
                "both pools must run the same model"
            )
        if split.link.overlap == "layer" and prefill.decode.kv_read is None:
            raise ValueError(
                "disaggregated.link.overlap: 'layer' needs the layer count (the profile's decode.kv_read.layers); "
                "use overlap: none"
            )
        return self

    @field_validator("profile")
    @classmethod
    def _profile_loads(cls, value: str, info: ValidationInfo) -> str:
        return loadable_profile(value, info)

    @cached_property
    def cost(self) -> LLMCost:
        return LLMCost(load_llm_profile(self.profile))

    @cached_property
    def decode_cost(self) -> LLMCost:
        """The decode pool's costs (a disaggregated stage): its own profile, else the stage's."""
        split = self.disaggregated
        if split is None or split.decode.profile is None:
            return self.cost
        return LLMCost(load_llm_profile(split.decode.profile))
