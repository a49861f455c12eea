"""Move an LLM profile to hardware, a tensor-parallel degree or a model it was not measured on: an
estimate, with a prediction interval that widens with how far the transfer reaches.

Every term of an LLM profile (sim/spec/llm_cost.py) is labelled by what bounds it:

    compute    prefill `per_token_ms`, `attention_ms_per_mtoken2`; the decode step's growth with batch size
    memory     prefill `floor_ms` (the weights read once); the decode step's weight read, weights / (TP × HBM)
    overhead   prefill `intercept_ms`, `per_extra_seq_ms`; the rest of the batch-1 decode step: kernel launches
               and the tensor-parallel all-reduce (communication), which grows with TP
    kv_read    the decode KV read per context token: its roofline, recomputed from the target's bandwidth

A transfer multiplies each term by its bound's spec ratio — peak dense FLOP/s × TP (compute), HBM
bandwidth × TP (memory), all-reduce fan-in 1 + log2 TP and layers (overhead), and the
parameter ratio where the model changes — divided by an achieved-efficiency factor per bound. The factors
are learned (least squares on log error) from measured pairs of the same kind in the llm-perf table
(A100 → H100 at equal TP, TP4 → TP8 on the other GPU, ...): the issue measured H100/A100 at 2.1–2.4× for
prefill where peak FLOP/s say 3.2×, so a plain roofline transfer is optimistic. The interval is
exp(±1.96 σ), σ² = the learned fit's residual variance + one term per reach the data never saw
(REACH_LOG_SD: hardware, vendor, precision, TP without a measured pair).

    python -m calibrate.transfer --validate      # fit on one GPU / TP / model, predict the other's rows
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from calibrate import llm_perf
from sim.errors import DataFileError
from sim.spec.hardware import HardwareSpec, load_catalogue, load_specifications
from sim.spec.llm_cost import GIB, DecodeCurve, KVRead, LLMProfile, Memory, PrefillTable

BOUNDS = ("compute", "memory", "overhead")
QUANTITIES = ("prefill", "decode")
# One achieved-efficiency factor per (quantity, bound): prefill's compute is not decode's (a power cap slows
# prefill and leaves decode as it was).
FACTORS = tuple(f"{q}.{b}" for q in QUANTITIES for b in BOUNDS)
Z95 = 1.959964
# Pull of each log factor towards 1 (the plain roofline), as one residual of that size: factors move only
# where the measured pairs insist (decode memory and overhead are nearly collinear across pairs).
RIDGE = 1.0
# Log-sd added to the interval for each way a transfer reaches past the measured pairs. Assumptions, not
# fits: an unmeasured GPU of a measured vendor may differ from the learned efficiency as much as H100 did
# from A100 at decode (~15%); another vendor's software stack adds ~30%; another precision ~25%; a TP
# degree never measured for this kind of transfer ~10%; tensor parallelism over PCIe where the source had
# NVLink ~30%.
REACH_LOG_SD = {"hardware": 0.15, "vendor": 0.30, "precision": 0.25, "tp": 0.10, "interconnect": 0.30}
# Measured hardware whose specifications are another entry's (a power cap changes no datasheet figure).
SPEC_ALIAS = {"h100-80gb-pcap": "h100-80gb"}
# Bytes per weight by precision (the KV cache stays fp16).
BYTES = {"fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2, "fp8": 1, "int8": 1, "fp4": 0.5}
Key = tuple[str, str, int]  # (model, hardware, tensor_parallel)


@dataclass(frozen=True)
class Efficiency:
    """Achieved-efficiency factors (a term's time is divided by its bound's) and the log-sd of the learned
    fit's residuals per quantity; `pairs`: the measured transfers they were learned from."""

    factors: dict[str, float] = field(default_factory=lambda: dict.fromkeys(FACTORS, 1.0))
    log_sd: dict[str, float] = field(default_factory=lambda: {"prefill": 0.0, "decode": 0.0})
    pairs: tuple[str, ...] = ()


def spec_of(hardware: str, specs: dict[str, HardwareSpec]) -> HardwareSpec:
    name = SPEC_ALIAS.get(hardware, hardware)
    if name not in specs:
        raise DataFileError(
            f"hardware catalogue models/hardware.yaml: no specifications.{name} (have: {', '.join(sorted(specs))})"
        )
    return specs[name]


def spec_scales(
    src: Key, dst: Key, precision: str, specs: dict[str, HardwareSpec], to_precision: str | None = None
) -> dict[str, float]:
    """Time multipliers per bound from the specifications alone (before efficiency). `to_precision`: the
    weights' precision on the target (compute at its peak; weight reads scale with its bytes)."""
    (m_s, h_s, t_s), (m_d, h_d, t_d) = src, dst
    to_precision = to_precision or precision
    a, b = spec_of(h_s, specs), spec_of(h_d, specs)
    arch_s, arch_d = llm_perf.ARCHITECTURES[m_s], llm_perf.ARCHITECTURES[m_d]
    params = arch_d["params_b"] / arch_s["params_b"]
    flops_s, flops_d = a.peak_tflops(precision), b.peak_tflops(to_precision)
    if not flops_s or not flops_d or not a.memory_bandwidth_gb_s or not b.memory_bandwidth_gb_s:
        raise DataFileError(
            f"hardware catalogue models/hardware.yaml: specifications.{h_s if not flops_s else h_d} lacks "
            f"peak_dense_tflops.{precision if not flops_s else to_precision} or memory_bandwidth_gb_s"
        )
    weight_bytes = BYTES[to_precision] / BYTES[precision]
    fan_in = (1 + math.log2(t_d)) / (1 + math.log2(t_s))
    return {
        "compute": params * (flops_s * t_s) / (flops_d * t_d),
        "memory": params * weight_bytes * (a.memory_bandwidth_gb_s * t_s) / (b.memory_bandwidth_gb_s * t_d),
        # Decode's all-reduces carry a few kB: latency, not link bandwidth, bounds them, so the overhead term
        # scales with layers and TP fan-in only; a target without NVLink widens the interval instead (`reach`).
        "overhead": (arch_d["layers"] / arch_s["layers"]) * fan_in,
    }


def weight_read_ms(profile: LLMProfile, bandwidth_gb_s: float) -> float:
    """The decode step's weight read: all weights once, spread over the TP GPUs, at peak bandwidth."""
    return profile.memory.weights_gib * GIB / (profile.tensor_parallel * bandwidth_gb_s * 1e9) * 1e3


def move(
    profile: LLMProfile,
    dst: Key,
    factors: dict[str, float],
    specs: dict[str, HardwareSpec],
    price: float | None,
    precision: str | None = None,
) -> LLMProfile:
    """The profile's terms scaled to `dst` (model, hardware, TP) and `precision`: spec ratio / efficiency."""
    src = (profile.model, profile.hardware, profile.tensor_parallel)
    precision = precision or profile.precision
    scale = spec_scales(src, dst, profile.precision, specs, precision)
    k = {name: scale[name.split(".")[1]] / factors[name] for name in FACTORS}
    model, hardware, tp = dst
    p, d = profile.prefill, profile.decode
    prefill = p.model_copy(
        update={
            "floor_ms": p.floor_ms * k["prefill.memory"],
            "intercept_ms": p.intercept_ms * k["prefill.overhead"],
            "per_token_ms": p.per_token_ms * k["prefill.compute"],
            "attention_ms_per_mtoken2": p.attention_ms_per_mtoken2 * k["prefill.compute"],
            "per_extra_seq_ms": p.per_extra_seq_ms * k["prefill.overhead"],
        }
    )
    weights = weight_read_ms(profile, spec_of(profile.hardware, specs).memory_bandwidth_gb_s)
    step1 = d.step_ms[0]
    overhead = max(step1 - weights, 0.0)
    steps = [
        min(weights, step1) * k["decode.memory"]
        + overhead * k["decode.overhead"]
        + max(s - step1, 0.0) * k["decode.compute"]
        for s in d.step_ms
    ]
    arch, target = llm_perf.ARCHITECTURES[model], spec_of(hardware, specs)
    kv = KVRead(
        layers=arch["layers"],
        kv_heads=arch["kv_heads"],
        head_dim=arch["head_dim"],
        bytes_per_element=llm_perf.BYTES_FP16,
        gpus=tp,
        hbm_bandwidth_gb_s=target.memory_bandwidth_gb_s,
        source=f"{model} config; {target.model}: {target.source}",
    )
    decode = DecodeCurve(
        batch_sizes=d.batch_sizes, step_ms=steps, per_context_token_ms=kv.ms_per_context_token, kv_read=kv
    )
    memory = Memory(
        gpus=tp,
        gpu_memory_gib=target.memory_gib or profile.memory.gpu_memory_gib,
        weights_gib=round(arch["params_b"] * 1e9 * BYTES[precision] / GIB, 2),
        kv_bytes_per_token=kv.bytes_per_token,
    )
    return profile.model_copy(
        update={
            "name": f"{model}-tp{tp}-{hardware}{'' if precision == profile.precision else '-' + precision}-estimated",
            "model": model,
            "precision": precision,
            "hardware": hardware,
            "tensor_parallel": tp,
            "usd_per_hour": None if price is None else round(price * tp, 4),
            "memory": memory,
            "prefill": prefill,
            "decode": decode,
        }
    )


# --- learning the efficiency factors from measured pairs --------------------------------------------------


@lru_cache(maxsize=1)
def _table() -> pd.DataFrame:
    return llm_perf.read_perf_table()


def measured(key: Key, frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """Median prefill / decode step / e2e per configuration of one (model, hardware, TP), failed runs dropped."""
    rows, _ = llm_perf.valid_rows(llm_perf.select(_table() if frame is None else frame, *key))
    return (
        rows.groupby(["prompt_size", "batch_size", "token_size"])[["prompt_time", "token_time", "e2e_time"]]
        .median()
        .reset_index()
    )


@lru_cache(maxsize=32)
def fitted(key: Key) -> LLMProfile:
    """The physically constrained profile of one (model, hardware, TP), fitted on all its valid rows."""
    profile, _ = llm_perf.build_profile(
        _table(), *key, f"{key[0]}-tp{key[2]}-{key[1]}", "llm-perf", per_token=True, hold_out=False
    )
    return profile


def predict(profile: LLMProfile, configs: pd.DataFrame) -> dict[str, np.ndarray]:
    """Prefill, mean decode step and end-to-end time (prefill + outputs × step) of measured configurations."""
    from sim.spec.llm_cost import LLMCost

    prefill, decode = llm_perf.predict(LLMCost(profile), configs)
    return {"prefill": prefill, "decode": decode, "e2e": prefill + configs.token_size.to_numpy(float) * decode}


COLUMN = {"prefill": "prompt_time", "decode": "token_time", "e2e": "e2e_time"}
E2E_MAX_OUTPUTS = 512


@lru_cache(maxsize=256)
def _parts(src: Key, dst: Key) -> dict[str, np.ndarray]:
    """Each term's contribution to dst's measured configurations, from src's fitted profile scaled by the
    spec ratios alone: the learning loop divides them by candidate factors without rebuilding profiles
    (`move` + `predict` give the same numbers: tests/test_transfer.py checks it)."""
    specs = load_specifications()
    profile, rows = fitted(src), measured(dst)
    scale = spec_scales(src, dst, profile.precision, specs)
    prompt, batch = rows.prompt_size.to_numpy(float), rows.batch_size.to_numpy(float)
    p, d = profile.prefill, profile.decode
    weights = weight_read_ms(profile, spec_of(src[1], specs).memory_bandwidth_gb_s)
    step1 = d.step_ms[0]
    growth = np.maximum(np.interp(batch, d.batch_sizes, d.step_ms) - step1, 0.0)
    arch, target = llm_perf.ARCHITECTURES[dst[0]], spec_of(dst[1], specs)
    kv_bytes = 2 * arch["layers"] * arch["kv_heads"] * arch["head_dim"] * llm_perf.BYTES_FP16
    kv_ms = kv_bytes / (dst[2] * target.memory_bandwidth_gb_s * 1e9) * 1e3
    return {
        "prefill.memory": np.full(len(rows), p.floor_ms * scale["memory"]),
        "prefill.overhead": (p.intercept_ms + p.per_extra_seq_ms * (batch - 1)) * scale["overhead"],
        "prefill.compute": (p.per_token_ms * prompt * batch + p.attention_ms_per_mtoken2 * batch * prompt**2 / 1e6)
        * scale["compute"],
        "decode.memory": np.full(len(rows), min(weights, step1) * scale["memory"]),
        "decode.overhead": np.full(len(rows), max(step1 - weights, 0.0) * scale["overhead"]),
        "decode.compute": growth * scale["compute"],
        "decode.kv": kv_ms * llm_perf._mean_context(rows),
        "prompt_time": rows.prompt_time.to_numpy(float),
        "token_time": rows.token_time.to_numpy(float),
    }


def fast_predict(parts: dict[str, np.ndarray], factors: dict[str, float]) -> dict[str, np.ndarray]:
    """Prefill and decode of `_parts` with each term divided by its efficiency factor."""
    f = factors
    prefill = np.maximum(
        parts["prefill.memory"] / f["prefill.memory"],
        parts["prefill.overhead"] / f["prefill.overhead"] + parts["prefill.compute"] / f["prefill.compute"],
    )
    decode = (
        parts["decode.memory"] / f["decode.memory"]
        + parts["decode.overhead"] / f["decode.overhead"]
        + parts["decode.compute"] / f["decode.compute"]
        + parts["decode.kv"]
    )
    return {"prefill": prefill, "decode": decode}


def log_errors(src: Key, dst: Key, factors: dict[str, float]) -> dict[str, np.ndarray]:
    """log(predicted / measured) of dst's configurations, from src's fitted profile moved with `factors`."""
    parts = _parts(src, dst)
    guess = fast_predict(parts, factors)
    return {
        "prefill": np.log(guess["prefill"] / parts["prompt_time"]),
        "decode": np.log(guess["decode"] / parts["token_time"]),
    }


def _fit_factors(pairs: list[tuple[Key, Key]], specs) -> dict[str, float]:
    def residuals(theta: np.ndarray) -> np.ndarray:
        factors = dict(zip(FACTORS, np.exp(theta)))
        parts = [log_errors(s, d, factors) for s, d in pairs]
        return np.concatenate([np.r_[e["prefill"], e["decode"]] for e in parts] + [RIDGE * theta])

    theta = least_squares(residuals, np.zeros(len(FACTORS)), bounds=(np.log(0.05), np.log(20.0))).x
    return {name: float(v) for name, v in zip(FACTORS, np.exp(theta))}


def learn(pairs: list[tuple[Key, Key]], specs) -> Efficiency:
    """Efficiency factors minimising the log error of prefill and decode over `pairs` (none: 1, σ 0). The
    log-sd is the larger of the in-sample RMS and, with two pairs or more, the RMS of each pair predicted
    from factors learned on the others: how far the factors move from one pair to the next."""
    if not pairs:
        return Efficiency()
    factors = _fit_factors(pairs, specs)
    errors = [log_errors(s, d, factors) for s, d in pairs]
    rms = {q: float(np.sqrt(np.mean(np.concatenate([e[q] for e in errors]) ** 2))) for q in QUANTITIES}
    if len(pairs) >= 2:
        held = [log_errors(*pair, _fit_factors([p for p in pairs if p != pair], specs)) for pair in pairs]
        for q in QUANTITIES:
            rms[q] = max(rms[q], float(np.sqrt(np.mean(np.concatenate([e[q] for e in held]) ** 2))))
    return Efficiency(factors, rms, tuple(f"{_label(s)} -> {_label(d)}" for s, d in pairs))


def _label(key: Key) -> str:
    return f"{key[0]}/{key[1]}/TP{key[2]}"


def kind_of(src: Key, dst: Key) -> str:
    changed = [name for name, a, b in zip(("model", "hardware", "tp"), src, dst) if a != b]
    return "+".join(changed) or "same"


def measured_pairs(src: Key, dst: Key) -> list[tuple[Key, Key]]:
    """Measured transfers of the same kind and signature (same GPUs, TP degrees or models changing)."""
    keys = sorted(
        {(m, h, int(t)) for m, h, t in _table()[["model", "hardware", "tensor_parallel"]].itertuples(index=False)}
    )
    changed = [i for i, (a, b) in enumerate(zip(src, dst)) if a != b]
    out = []
    for s in keys:
        for d in keys:
            same_change = all((s[i], d[i]) == (src[i], dst[i]) for i in changed)
            rest_equal = all(s[i] == d[i] for i in range(3) if i not in changed)
            if s != d and same_change and rest_equal:
                out.append((s, d))
    return out


def reach(src: Key, dst: Key, precision: str, specs, to_precision: str | None = None) -> dict[str, float]:
    """The reach terms (log-sd) of a transfer that the measured pairs do not cover."""
    table = _table()
    out: dict[str, float] = {}
    if dst[1] != src[1] and dst[1] not in set(table.hardware):
        out["hardware"] = REACH_LOG_SD["hardware"]
    if spec_of(dst[1], specs).vendor != spec_of(src[1], specs).vendor:
        out["vendor"] = REACH_LOG_SD["vendor"]
    gpu_link = ("nvlink", "infinity_fabric")
    if any(k in spec_of(src[1], specs).interconnect_gb_s for k in gpu_link) and not any(
        k in spec_of(dst[1], specs).interconnect_gb_s for k in gpu_link
    ):
        out["interconnect"] = REACH_LOG_SD["interconnect"]
    if (to_precision or precision) != precision:
        out["precision"] = REACH_LOG_SD["precision"]
    if dst[2] != src[2] and not {src[2], dst[2]} <= set(table.tensor_parallel.astype(int)):
        out["tp"] = REACH_LOG_SD["tp"]
    return out


def half_width(log_sd: dict[str, float], reaches: dict[str, float], quantity: str) -> float:
    """Log half-width of the 95% prediction interval of one quantity."""
    return Z95 * math.sqrt(log_sd.get(quantity, 0.0) ** 2 + sum(v * v for v in reaches.values()))


def efficiency_for(src: Key, dst: Key, specs, hold_out: bool = False) -> Efficiency:
    """Factors for src -> dst, one changed dimension at a time (hardware, TP, model), each learned from every
    measured pair that makes the same change (an unmeasured GPU: the change from the source GPU to any
    measured one); factors multiply, residual variances add. `hold_out`: never learn from pairs that touch
    dst's own measurements (for validation)."""
    factors, log_var, used = dict.fromkeys(FACTORS, 1.0), dict.fromkeys(QUANTITIES, 0.0), []
    table_hw = set(_table().hardware)
    here = src
    for i in (1, 2, 0):  # hardware, then TP, then model
        if src[i] == dst[i]:
            continue
        step = tuple(dst[j] if j == i else here[j] for j in range(3))
        if i == 1 and step[1] not in table_hw:
            pairs = [(s, d) for s, d in _all_hardware_pairs() if s[1] == src[1]]
        else:
            pairs = measured_pairs(here, step)
        if hold_out:
            pairs = [(s, d) for s, d in pairs if dst not in (s, d) and (s, d) != (here, step)]
        learned = learn(pairs, specs)
        for name in FACTORS:
            factors[name] *= learned.factors[name]
        for q in log_var:
            log_var[q] += learned.log_sd[q] ** 2
        used += list(learned.pairs)
        here = step
    return Efficiency(factors, {q: math.sqrt(v) for q, v in log_var.items()}, tuple(used))


def transfer(
    profile: LLMProfile,
    hardware: str,
    tp: int | None = None,
    model: str | None = None,
    hold_out: bool = False,
    precision: str | None = None,
) -> LLMProfile:
    """`profile` moved to `hardware` (and TP / model / weight precision), labelled estimated, with its 95%
    interval. The efficiency factors are learned at fp16 only (the table has no other precision)."""
    if isinstance(profile.prefill, PrefillTable):
        raise DataFileError(
            f"LLM profile {profile.name}: prefill is a table of measurements, with no terms to scale; "
            "transfer a fitted profile (e.g. llama2-70b-tp4-a100-per-token.yaml)"
        )
    precision = precision or profile.precision
    if precision not in BYTES or profile.precision not in BYTES:
        raise DataFileError(f"--precision {precision!r}: one of {', '.join(BYTES)}")
    specs = load_specifications()
    src = (profile.model, profile.hardware, profile.tensor_parallel)
    dst = (model or profile.model, hardware, tp or profile.tensor_parallel)
    for name in (src[0], dst[0]):
        if name not in llm_perf.ARCHITECTURES:
            raise DataFileError(
                f"LLM profile: model {name!r} has no known architecture (have {', '.join(llm_perf.ARCHITECTURES)})"
            )
    target = spec_of(hardware, specs)
    if target.kind != "gpu":
        raise DataFileError(
            f"hardware catalogue models/hardware.yaml: specifications.{hardware} is a {target.kind}, not a GPU"
        )
    weights_gib = llm_perf.ARCHITECTURES[dst[0]]["params_b"] * 1e9 * BYTES[precision] / GIB
    if target.memory_gib and weights_gib > 0.9 * target.memory_gib * dst[2]:
        raise DataFileError(
            f"{dst[0]} weights ({weights_gib:.0f} GiB) do not fit in 90% of TP{dst[2]} x {hardware} "
            f"(specifications.{hardware}.memory_gib {target.memory_gib:g}): choose a larger --tp"
        )
    efficiency = efficiency_for(src, dst, specs, hold_out)
    reaches = reach(src, dst, profile.precision, specs, precision)
    catalogue = load_catalogue()
    price = catalogue[hardware].usd_per_hour if hardware in catalogue else None
    moved = move(profile, dst, efficiency.factors, specs, price, precision)
    estimate = {
        "from": f"{profile.name} ({_label(src)})",
        "to": _label(dst),
        "method": "each term x its bound's spec ratio / learned achieved efficiency (calibrate/transfer.py)",
        "terms": term_table(profile, specs),
        "spec_ratios": {b: round(v, 4) for b, v in spec_scales(src, dst, profile.precision, specs, precision).items()},
        "efficiency": {b: round(v, 4) for b, v in efficiency.factors.items()},
        "learned_from": list(efficiency.pairs) or ["none: plain roofline"],
        "fit_log_sd": {q: round(v, 4) for q, v in efficiency.log_sd.items()},
        "reach_log_sd": reaches,
        "interval_log_half_width": {
            q: round(half_width(efficiency.log_sd, reaches, q), 4) for q in ("prefill", "decode")
        },
        "interval_pct": {q: _pct(half_width(efficiency.log_sd, reaches, q)) for q in ("prefill", "decode")},
        "interval": "95% prediction interval of each iteration's cost",
        "price": "catalogue price x TP" if price is not None else "no catalogue price: add one to models/hardware.yaml",
    }
    return moved.model_copy(update={"estimated": True, "estimate": estimate, "fit": {}})


def _all_hardware_pairs() -> list[tuple[Key, Key]]:
    keys = {(m, h, int(t)) for m, h, t in _table()[["model", "hardware", "tensor_parallel"]].itertuples(index=False)}
    return [
        (s, d)
        for s in sorted(keys)
        for d in sorted(keys)
        if s[0] == d[0] and s[2] == d[2] and s[1] != d[1] and not d[1].endswith("pcap")
    ]


def _pct(log_half: float) -> str:
    return f"-{100 * (1 - math.exp(-log_half)):.0f}..+{100 * (math.exp(log_half) - 1):.0f}"


def term_table(profile: LLMProfile, specs) -> dict[str, dict]:
    """Each term of a profile with the bound it scales with."""
    p, d = profile.prefill, profile.decode
    weights = weight_read_ms(profile, spec_of(profile.hardware, specs).memory_bandwidth_gb_s)
    return {
        "prefill.floor_ms": {"value": round(p.floor_ms, 4), "bound": "memory"},
        "prefill.intercept_ms": {"value": round(p.intercept_ms, 4), "bound": "overhead"},
        "prefill.per_token_ms": {"value": round(p.per_token_ms, 6), "bound": "compute"},
        "prefill.attention_ms_per_mtoken2": {"value": round(p.attention_ms_per_mtoken2, 4), "bound": "compute"},
        "prefill.per_extra_seq_ms": {"value": round(p.per_extra_seq_ms, 4), "bound": "overhead"},
        "decode.weight_read_ms": {"value": round(min(weights, d.step_ms[0]), 4), "bound": "memory"},
        "decode.batch1_rest_ms": {"value": round(max(d.step_ms[0] - weights, 0.0), 4), "bound": "overhead"},
        "decode.growth_to_batch_ms": {
            "value": {str(b): round(s - d.step_ms[0], 4) for b, s in zip(d.batch_sizes, d.step_ms)},
            "bound": "compute",
        },
        "decode.per_context_token_ms": {"value": d.per_context_token_ms, "bound": "memory (KV-read roofline)"},
    }


def band(profile: LLMProfile) -> dict[str, LLMProfile]:
    """The estimate at its interval's ends: every prefill and decode term × exp(∓ its half-width)
    ("fast", "slow"); a run or sizing on "slow" carries the interval into latency (the conservative side)."""
    from sim.analysis.cost_interval import scaled_profile

    widths = profile.estimate["interval_log_half_width"]
    out = {}
    for edge, sign in (("fast", -1.0), ("slow", 1.0)):
        # The KV read stays its roofline (the schema ties it to kv_read); the step table carries the band.
        scaled = scaled_profile(profile, math.exp(sign * widths["prefill"]), math.exp(sign * widths["decode"]))
        out[edge] = scaled.model_copy(
            update={"name": f"{profile.name}-{edge}", "estimate": {**profile.estimate, "band_edge": edge}}
        )
    return out


def write_estimated(profile: LLMProfile, path) -> None:
    """Write an estimated profile with a header that says so."""
    import yaml

    header = (
        f"# ESTIMATED LLM profile {profile.name}: not measured. Transferred by `servesim calibrate transfer` from\n"
        f"# {profile.estimate.get('from')}; 95% interval per iteration: prefill "
        f"{profile.estimate['interval_pct']['prefill']}%, decode {profile.estimate['interval_pct']['decode']}%.\n"
    )
    path.write_text(header + yaml.safe_dump(profile.model_dump(mode="json"), sort_keys=False), encoding="utf-8")


# --- validation: fit on one GPU / TP / model, predict the other's measured rows ---------------------------


def validation_cases() -> list[tuple[str, Key, Key]]:
    """(class, source, target) transfers between measured configurations of the llm-perf table."""
    keys = {(m, h, int(t)) for m, h, t in _table()[["model", "hardware", "tensor_parallel"]].itertuples(index=False)}
    cases = []
    for s in sorted(keys):
        for d in sorted(keys):
            if s == d:
                continue
            if s[0] == d[0] and s[2] == d[2] and {s[1], d[1]} == {"a100-80gb", "h100-80gb"}:
                cases.append((f"{s[1].split('-')[0].upper()} -> {d[1].split('-')[0].upper()}", s, d))
            elif s[0] == d[0] and s[2] == d[2] and (s[1], d[1]) == ("h100-80gb", "h100-80gb-pcap"):
                cases.append(("H100 -> H100 power-capped", s, d))
            elif s[:2] == d[:2] and s[0] == "llama2-70b" and s[2] == 4 and s[1] != "h100-80gb-pcap":
                cases.append((f"TP4 -> TP{d[2]}", s, d))
            elif (s[0], d[0]) == ("llama2-70b", "bloom-176b") and s[1:] == d[1:] and s[1] != "h100-80gb-pcap":
                cases.append(("llama2-70b -> bloom-176b", s, d))
    return cases


def validate() -> pd.DataFrame:
    """Per case and quantity: |error| of every measured configuration of the target, and whether the 95%
    interval covers it; beside it the plain roofline (efficiency 1) for contrast. Factors are learned
    without the target's measurements (`hold_out`)."""
    specs = load_specifications()
    records = []
    for label, src, dst in validation_cases():
        estimate = transfer(fitted(src), dst[1], dst[2], dst[0], hold_out=True)
        rows = measured(dst)
        guess = predict(estimate, rows)
        roofline = predict(move(fitted(src), dst, dict.fromkeys(FACTORS, 1.0), specs, None), rows)
        widths = estimate.estimate["interval_log_half_width"]
        # e2e_time is prefill + outputs x step only up to 512 outputs (within 1%); longer rows stop near 580.
        short = rows.token_size.to_numpy() <= E2E_MAX_OUTPUTS
        for q in ("prefill", "decode", "e2e"):
            keep = short if q == "e2e" else np.ones(len(rows), dtype=bool)
            truth = rows[COLUMN[q]].to_numpy(float)[keep]
            err = guess[q][keep] / truth - 1
            width = widths[q] if q != "e2e" else max(widths.values())
            records += [
                {
                    "case": label,
                    "pair": f"{_label(src)} -> {_label(dst)}",
                    "quantity": q,
                    "abs_error": abs(e),
                    "roofline_abs_error": abs(r / t - 1),
                    "covered": abs(math.log(g / t)) <= width,
                }
                for e, g, t, r in zip(err, guess[q][keep], truth, roofline[q][keep])
            ]
    return pd.DataFrame.from_records(records)


def summary_table(detail: pd.DataFrame) -> pd.DataFrame:
    """Median and max |error| (%), interval coverage (%) and the plain roofline's median |error| per class."""
    grouped = detail.groupby(["case", "quantity"], sort=False)
    return pd.DataFrame(
        {
            "rows": grouped.size(),
            "median_err_pct": 100 * grouped.abs_error.median(),
            "max_err_pct": 100 * grouped.abs_error.max(),
            "coverage_pct": 100 * grouped.covered.mean(),
            "roofline_median_err_pct": 100 * grouped.roofline_abs_error.median(),
        }
    ).round(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--validate", action="store_true", help="print the validation table")
    args = parser.parse_args(argv)
    if args.validate:
        import sys

        table = summary_table(validate())
        sys.stdout.write(table.to_string() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
