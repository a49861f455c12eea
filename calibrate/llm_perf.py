"""Import splitwise-sim's LLM cost table (`models/data/llm-perf-a100-h100.csv`) into LLM profiles.

The table holds three sweeps (prompt size at batch 1, batch size at prompt 512, output length at prompt
512 and batch 1), 5 repeats each, of `prompt_time` (prefill, ms) and `token_time` (one decode step, ms).
Whole configurations listed in `HELD_OUT` are left out of the fit so that tests can check the shipped
profiles against measurements they never saw.

    python -m calibrate.llm_perf              # rewrites models/llama2-70b-tp4-{a100,h100}.yaml and .png
    python -m calibrate.llm_perf --per-token  # models/llama2-70b-tp4-{a100,h100}-per-token.yaml: no per-prompt term
    python -m calibrate.llm_perf --table      # models/llama2-70b-tp4-{a100,h100}-table.yaml: the medians, interpolated
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy import stats
from scipy.optimize import least_squares, nnls

from sim.spec.datafiles import data_error, numeric_column, read_csv
from sim.errors import DataFileError
from sim.spec.llm_cost import GIB, DecodeCurve, KVRead, LLMCost, LLMProfile, Memory, PrefillCurve, PrefillTable

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CSV = ROOT / "models" / "data" / "llm-perf-a100-h100.csv"
COLUMNS = (
    "model",
    "hardware",
    "prompt_size",
    "batch_size",
    "token_size",
    "prompt_time",
    "token_time",
    "tensor_parallel",
)

# (prompt_size, batch_size, token_size) configurations never used in the fit: interior points of each sweep.
HELD_OUT: tuple[tuple[int, int, int], ...] = (
    (256, 1, 128),
    (2048, 1, 128),  # prompt sweep
    (512, 4, 128),
    (512, 16, 128),  # batch sweep
    (512, 1, 1024),
    (512, 1, 4096),  # output-length sweep
)

# Architecture facts (Llama 2 paper / Hugging Face configs): parameters, layers, KV heads, head dimension.
ARCHITECTURES = {
    "llama2-70b": {"params_b": 68.98, "layers": 80, "kv_heads": 8, "head_dim": 128},
    "bloom-176b": {"params_b": 176.25, "layers": 70, "kv_heads": 112, "head_dim": 128},
}
# Per-GPU memory (GiB, as nvidia-smi reports it), peak HBM bandwidth (NVIDIA datasheets: A100 SXM4 80GB
# 2,039 GB/s; H100 SXM5 80GB 3,350 GB/s) and on-demand price (AWS us-east-1, read 2026-11-28).
HARDWARE = {
    "a100-80gb": {
        "gpu_memory_gib": 80.0,
        "hbm_bandwidth_gb_s": 2039.0,
        "usd_per_gpu_hour": 3.43,
        "bandwidth_source": "NVIDIA A100 80GB SXM4 datasheet: 2,039 GB/s",
    },
    "h100-80gb": {
        "gpu_memory_gib": 80.0,
        "hbm_bandwidth_gb_s": 3350.0,
        "usd_per_gpu_hour": 6.88,
        "bandwidth_source": "NVIDIA H100 SXM5 80GB datasheet: 3.35 TB/s",
    },
    "h100-80gb-pcap": {
        "gpu_memory_gib": 80.0,
        "hbm_bandwidth_gb_s": 3350.0,
        "usd_per_gpu_hour": 6.88,
        "bandwidth_source": "NVIDIA H100 SXM5 80GB datasheet: 3.35 TB/s (power cap leaves HBM as is)",
    },
}
SHIPPED = (("llama2-70b", "a100-80gb", 4, "llama2-70b-tp4-a100"), ("llama2-70b", "h100-80gb", 4, "llama2-70b-tp4-h100"))
# The sweep where context varies at fixed batch and prompt: batch 1, prompt 512, outputs 128..8192 tokens.
CONTEXT_SWEEP = {"batch_size": 1, "prompt_size": 512}
BYTES_FP16 = 2


@dataclass(frozen=True)
class FitReport:
    """Relative errors (fractions) of the fitted profile on the rows used and on the held-out rows."""

    prefill_train_mape: float
    decode_train_mape: float
    prefill_held_out: dict[str, float]
    decode_held_out: dict[str, float]

    def as_dict(self) -> dict:
        return {
            "prefill_train_mape_pct": round(100 * self.prefill_train_mape, 2),
            "decode_train_mape_pct": round(100 * self.decode_train_mape, 2),
            "prefill_held_out_error_pct": {k: round(100 * v, 2) for k, v in self.prefill_held_out.items()},
            "decode_held_out_error_pct": {k: round(100 * v, 2) for k, v in self.decode_held_out.items()},
        }


def read_perf_table(path: str | Path = DEFAULT_CSV) -> pd.DataFrame:
    """The measurements, validated: every needed column present and numeric where it must be."""
    path = Path(path)
    frame = read_csv(path, "LLM cost table")
    for column in COLUMNS:
        if column not in frame.columns:
            raise data_error("LLM cost table", path, f"no column {column!r}")
    for column in COLUMNS[2:]:
        frame[column] = numeric_column(frame, column, path, "LLM cost table")
        if (frame[column] <= 0).any():
            raise data_error("LLM cost table", path, "has values <= 0", column=column)
    return frame


def select(frame: pd.DataFrame, model: str, hardware: str, tensor_parallel: int) -> pd.DataFrame:
    rows = frame[(frame.model == model) & (frame.hardware == hardware) & (frame.tensor_parallel == tensor_parallel)]
    if rows.empty:
        have = sorted(
            {(m, h, int(t)) for m, h, t in frame[["model", "hardware", "tensor_parallel"]].itertuples(index=False)}
        )
        raise DataFileError(
            f"LLM cost table: no rows for {model} on {hardware} with TP {tensor_parallel} (have {have})"
        )
    return rows


def held_out_mask(rows: pd.DataFrame) -> np.ndarray:
    keys = set(HELD_OUT)
    return np.array(
        [(int(p), int(b), int(t)) in keys for p, b, t in rows[["prompt_size", "batch_size", "token_size"]].to_numpy()]
    )


def _prefill_features(prompt: np.ndarray, batch: np.ndarray) -> np.ndarray:
    """Columns of the prefill model for `batch` equal prompts of `prompt` tokens from an empty cache."""
    tokens = prompt * batch
    return np.c_[np.ones_like(tokens), tokens, batch * prompt * prompt / 1e6, batch - 1]


def _relative_fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(floor, θ...) minimising the relative error of `max(floor, x @ θ)`, all >= 0: NNLS on the linear
    part first, then the roofline floor with it."""
    linear, _ = nnls(x / y[:, None], np.ones_like(y))
    result = least_squares(lambda th: np.maximum(th[0], x @ th[1:]) / y - 1, np.r_[y.min(), linear], bounds=(0, np.inf))
    return result.x


def fit_prefill(train: pd.DataFrame) -> tuple[PrefillCurve, dict]:
    """Each term where its regressor varies: floor, intercept, per-token and attention terms from the
    single-prompt rows (prompt 128..8192, batch 1); then the per-extra-sequence cost from the batched rows
    (batch 2..64 of 512-token prompts) with the others fixed. Returns the curve and per-term diagnostics."""
    med = train.groupby(["prompt_size", "batch_size"])["prompt_time"].median().reset_index()
    single, batched = med[med.batch_size == 1], med[med.batch_size > 1]
    x1 = _prefill_features(single.prompt_size.to_numpy(float), single.batch_size.to_numpy(float))[:, :3]
    y1 = single.prompt_time.to_numpy(float)
    floor, intercept, per_token, attention = _relative_fit(x1, y1)
    per_seq = 0.0
    implied: dict[str, float] = {}
    if not batched.empty:
        prompt, batch = batched.prompt_size.to_numpy(float), batched.batch_size.to_numpy(float)
        xb = _prefill_features(prompt, batch)
        yb = batched.prompt_time.to_numpy(float)
        rest = xb[:, :3] @ np.array([intercept, per_token, attention])
        # Least squares on relative error, one parameter: closed form (batched rows lie above the floor).
        k = xb[:, 3] / yb
        per_seq = max(float(np.sum(k * (1 - rest / yb)) / np.sum(k * k)), 0.0)
        implied = {f"batch{int(b)}": round(float(v), 2) for b, v in zip(batch, (yb - rest) / (batch - 1))}
    curve = PrefillCurve(
        floor_ms=float(floor),
        intercept_ms=float(intercept),
        per_token_ms=float(per_token),
        attention_ms_per_mtoken2=float(attention),
        per_extra_seq_ms=per_seq,
        max_measured_prompt=int(med.prompt_size.max()),
        max_measured_tokens=int((med.prompt_size * med.batch_size).max()),
    )
    terms = {
        "floor_intercept_per_token_attention": {
            "fitted_on": f"batch-1 rows, prompts {int(single.prompt_size.min())}..{int(single.prompt_size.max())}",
        },
        "per_extra_seq": {
            "fitted_on": "batched rows (512-token prompts), other terms fixed",
            "implied_ms_by_batch": implied,
            "note": (
                "the batched rows all have 512-token prompts, so a cost per extra prompt and a cost per token of "
                "extra prompts are indistinguishable here (0.12 ms/token on A100 would fit as well)"
            ),
        },
    }
    return curve, terms


def valid_rows(rows: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The rows less any batch-sweep configuration measured faster than the smaller batch before it (at the
    same prompt and output length): more work cannot take less time, so such a run failed (the TP2 rows at
    batch 64 take 1/8 of batch 32's prefill). Returns the rows kept and the configurations dropped."""
    med = rows.groupby(["prompt_size", "batch_size", "token_size"])["prompt_time"].median().reset_index()
    dropped: list[tuple[int, int, int]] = []
    for (_, _), sweep in med.groupby(["prompt_size", "token_size"]):
        sweep = sweep.sort_values("batch_size")
        best = 0.0
        for p, b, t, y in sweep[["prompt_size", "batch_size", "token_size", "prompt_time"]].to_numpy():
            if y < best:
                dropped.append((int(p), int(b), int(t)))
            best = max(best, y)
    keys = set(dropped)
    keep = [
        (int(p), int(b), int(t)) not in keys for p, b, t in rows[["prompt_size", "batch_size", "token_size"]].to_numpy()
    ]
    return rows[np.array(keep, dtype=bool)], [f"prompt{p}_batch{b}_tokens{t}" for p, b, t in dropped]


def fit_prefill_per_token(train: pd.DataFrame) -> tuple[PrefillCurve, dict]:
    """Physically constrained prefill: every term >= 0 and a batch charged per token, not per prompt
    (`per_extra_seq_ms` = 0): the batched rows all have 512-token prompts, so the two cannot be told apart and
    the per-token reading is the one that holds for other prompt lengths. One fit over every row (single and
    batched prompts): floor (weight reads), intercept, per-token and attention terms, on relative error."""
    med = train.groupby(["prompt_size", "batch_size"])["prompt_time"].median().reset_index()
    x = _prefill_features(med.prompt_size.to_numpy(float), med.batch_size.to_numpy(float))[:, :3]
    y = med.prompt_time.to_numpy(float)
    floor, intercept, per_token, attention = _relative_fit(x, y)
    curve = PrefillCurve(
        floor_ms=float(floor),
        intercept_ms=float(intercept),
        per_token_ms=float(per_token),
        attention_ms_per_mtoken2=float(attention),
        per_extra_seq_ms=0.0,
        max_measured_prompt=int(med.prompt_size.max()),
        max_measured_tokens=int((med.prompt_size * med.batch_size).max()),
    )
    unidentified = [name for name, value in (("intercept", intercept), ("attention", attention)) if value < 1e-6]
    terms = {
        "floor_intercept_per_token_attention": {
            "fitted_on": "every row (single prompts 128..8192 and batches of 512-token prompts), one fit",
            "bounds": {
                "floor": "memory (weight reads)",
                "intercept": "overhead",
                "per_token": "compute",
                "attention": "compute",
            },
            "not_identified": unidentified,
        },
        "per_extra_seq": {
            "value_ms": 0.0,
            "note": "charged per token, not per prompt: the batched rows all have 512-token prompts, so the data "
            "cannot tell the two apart",
        },
    }
    return curve, terms


def _mean_context(rows: pd.DataFrame) -> np.ndarray:
    """Σ over the batch of the KV tokens read per decode step, averaged over the generation."""
    return rows.batch_size.to_numpy(float) * (rows.prompt_size.to_numpy(float) + rows.token_size.to_numpy(float) / 2)


def kv_read_roofline(model: str, hardware: str, tensor_parallel: int) -> KVRead:
    """The decode step's KV-read cost per context token from the architecture and the HBM bandwidth."""
    arch, hw = ARCHITECTURES[model], HARDWARE[hardware]
    return KVRead(
        layers=arch["layers"],
        kv_heads=arch["kv_heads"],
        head_dim=arch["head_dim"],
        bytes_per_element=BYTES_FP16,
        gpus=tensor_parallel,
        hbm_bandwidth_gb_s=hw["hbm_bandwidth_gb_s"],
        source=f"{model} config (layers, KV heads, head dim); {hw['bandwidth_source']}",
    )


def context_slope(rows: pd.DataFrame) -> dict:
    """What the measurements say about the KV-read term: the slope of the decode step against mean context
    where only the context varies (batch 1, prompt 512), an OLS line through the per-configuration medians
    with its 95% interval (µs per context token per step); and, for contrast, the slope over all batch-1
    rows, where prompt size changes too."""
    sweep = rows[(rows.batch_size == CONTEXT_SWEEP["batch_size"]) & (rows.prompt_size == CONTEXT_SWEEP["prompt_size"])]
    med = sweep.groupby(["prompt_size", "batch_size", "token_size"])["token_time"].median().reset_index()
    out: dict = {"sweep": f"batch 1, prompt 512, outputs {int(med.token_size.min())}..{int(med.token_size.max())}"}
    if len(med) >= 3:
        line = stats.linregress(_mean_context(med), med.token_time.to_numpy(float))
        half = stats.t.ppf(0.975, len(med) - 2) * line.stderr
        out |= {
            "slope_us_per_token": round(1e3 * line.slope, 4),
            "slope_ci95_us_per_token": [round(1e3 * (line.slope - half), 4), round(1e3 * (line.slope + half), 4)],
            "repeat_sd_ms": round(float(np.sqrt(sweep.groupby("token_size")["token_time"].var().mean())), 3),
        }
    batch1 = (
        rows[rows.batch_size == 1]
        .groupby(["prompt_size", "batch_size", "token_size"])["token_time"]
        .median()
        .reset_index()
    )
    if batch1.prompt_size.nunique() > 1:
        out["all_batch1_rows_slope_us_per_token"] = round(
            1e3 * float(np.polyfit(_mean_context(batch1), batch1.token_time, 1)[0]), 4
        )
        out["note"] = (
            "all batch-1 rows mix prompt sizes: their slope is a step between short and long prompts, not a KV read"
        )
    return out


def fit_decode(train: pd.DataFrame, kv_read: KVRead) -> DecodeCurve:
    """KV-read term from its roofline (the measurements cannot resolve it: see `context_slope`), then the
    context-free step cost per measured batch size as the median residual."""
    per_token_ms = kv_read.ms_per_context_token
    med = train.groupby(["prompt_size", "batch_size", "token_size"])["token_time"].median().reset_index()
    med["base"] = med.token_time - per_token_ms * _mean_context(med)
    per_batch = med.groupby("batch_size")["base"].median()
    return DecodeCurve(
        batch_sizes=[int(b) for b in per_batch.index],
        step_ms=[float(v) for v in per_batch.to_numpy()],
        per_context_token_ms=per_token_ms,
        kv_read=kv_read,
    )


def predict(cost: LLMCost, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(prompt_time, token_time) the profile predicts for the measured configurations."""
    prefill = np.array([cost.prefill_ms(int(p * b), int(b)) for p, b in rows[["prompt_size", "batch_size"]].to_numpy()])
    decode = np.array([cost.decode_step_ms(int(b), c) for b, c in zip(rows.batch_size.to_numpy(), _mean_context(rows))])
    return prefill, decode


def build_profile(
    frame: pd.DataFrame,
    model: str,
    hardware: str,
    tensor_parallel: int,
    name: str,
    csv_label: str,
    per_token: bool = False,
    hold_out: bool = True,
) -> tuple[LLMProfile, FitReport]:
    """A profile fitted to one (model, hardware, TP)'s rows. `per_token`: the physically constrained prefill
    (`fit_prefill_per_token`) over the valid rows; `hold_out`: leave the HELD_OUT configurations out."""
    rows = select(frame, model, hardware, tensor_parallel)
    dropped: list[str] = []
    if per_token:
        rows, dropped = valid_rows(rows)
    held = held_out_mask(rows) if hold_out else np.zeros(len(rows), dtype=bool)
    train, test = rows[~held], rows[held]
    prefill, prefill_terms = fit_prefill_per_token(train) if per_token else fit_prefill(train)
    if dropped:
        prefill_terms["dropped_configs"] = {"configs": dropped, "why": "faster than the smaller batch: a failed run"}
    draft = LLMProfile(
        **_identity(model, hardware, tensor_parallel, name),
        source=_source(csv_label, rows, held_out=[list(c) for c in HELD_OUT]),
        prefill=prefill,
        decode=fit_decode(train, kv_read_roofline(model, hardware, tensor_parallel)),
    )
    cost = LLMCost(draft)
    report = FitReport(
        prefill_train_mape=_mape(cost, train)[0],
        decode_train_mape=_mape(cost, train)[1],
        prefill_held_out=_per_config_error(cost, test, "prompt_time"),
        decode_held_out=_per_config_error(cost, test, "token_time"),
    )
    spread = rows.groupby(["prompt_size", "batch_size", "token_size"])[["prompt_time", "token_time"]].agg(
        lambda v: (v.max() - v.min()) / v.median()
    )
    fit = report.as_dict() | {
        "terms": _term_quality(cost, train, prefill_terms, context_slope(rows)),
        "repeat_spread_max_pct": {
            "prompt_time": round(100 * float(spread.prompt_time.max()), 2),
            "token_time": round(100 * float(spread.token_time.max()), 2),
        },
        "note": "costs are deterministic per iteration: repeats differ by the spread above",
    }
    return draft.model_copy(update={"fit": fit}), report


def _identity(model: str, hardware: str, tensor_parallel: int, name: str) -> dict:
    """The fields every imported profile shares: what runs where, its price and its memory."""
    arch, hw = ARCHITECTURES[model], HARDWARE[hardware]
    return {
        "kind": "llm",
        "name": name,
        "model": model,
        "hardware": hardware,
        "tensor_parallel": tensor_parallel,
        "precision": "fp16",
        "serving_stack": "splitwise-sim measurements (vLLM-like iteration-level engine)",
        "usd_per_hour": round(hw["usd_per_gpu_hour"] * tensor_parallel, 4),
        "memory": Memory(
            gpus=tensor_parallel,
            gpu_memory_gib=hw["gpu_memory_gib"],
            weights_gib=round(arch["params_b"] * 1e9 * BYTES_FP16 / GIB, 2),
            kv_bytes_per_token=2 * arch["layers"] * arch["kv_heads"] * arch["head_dim"] * BYTES_FP16,
        ),
    }


def _source(csv_label: str, rows: pd.DataFrame, held_out: list | None = None) -> dict:
    return {
        "file": csv_label,
        "origin": "splitwise-sim data/perf_model.csv (github.com/Mutinifni/splitwise-sim), Patel et al., ISCA 2024",
        "licence": "MIT, Copyright (c) 2024 Pratyush Patel (models/data/LICENSE-splitwise-sim.txt)",
        "rows": int(len(rows)),
        **({"held_out_configs": held_out} if held_out is not None else {}),
        "imported_by": "python -m calibrate.llm_perf",
    }


def build_table_profile(
    frame: pd.DataFrame, model: str, hardware: str, tensor_parallel: int, name: str, csv_label: str
) -> LLMProfile:
    """The measurements as a profile, interpolated rather than fitted (splitwise-sim's DatabasePerformanceModel):
    prefill is the median `prompt_time` of all valid rows with the same batch tokens (prompt × batch, so a
    batch of 2 × 512 tokens and one 1,024-token prompt are pooled), decode the median `token_time` of all rows
    with the same batch size, with no context term. Every row is used: nothing is held out, so the held-out
    checks of the fitted profiles do not apply. (splitwise-sim looks decode up by batch tokens too, and
    evaluates it at the number of decoding sequences, below its smallest measured key; here decode is looked
    up by the batch size that was measured.)"""
    rows, dropped = valid_rows(select(frame, model, hardware, tensor_parallel))
    tokens = rows.prompt_size * rows.batch_size
    prefill = rows.groupby(tokens)["prompt_time"].median()
    decode = rows.groupby("batch_size")["token_time"].median()
    draft = LLMProfile(
        **_identity(model, hardware, tensor_parallel, name),
        source=_source(csv_label, rows),
        prefill=PrefillTable(
            batch_tokens=[int(t) for t in prefill.index],
            prompt_time_ms=[float(v) for v in prefill.to_numpy()],
            max_measured_prompt=int(rows.prompt_size.max()),
            max_measured_tokens=int(tokens.max()),
        ),
        decode=DecodeCurve(
            batch_sizes=[int(b) for b in decode.index],
            step_ms=[float(v) for v in decode.to_numpy()],
            per_context_token_ms=0.0,
        ),
    )
    configs = rows.groupby(["prompt_size", "batch_size", "token_size"])[["prompt_time", "token_time"]]
    med = configs.median().reset_index()
    predicted_prefill, predicted_decode = predict(LLMCost(draft), med)
    keys = [f"prompt{int(p)}_batch{int(b)}_tokens{int(t)}" for p, b, t in med.iloc[:, :3].to_numpy()]
    fit = {
        "method": "interpolated measurements: medians per batch tokens (prefill) and per batch size (decode), "
        "linear between them, continued linearly beyond (splitwise-sim DatabasePerformanceModel)",
        "prefill_error_vs_config_median_pct": {
            k: round(100 * float(v), 2) for k, v in zip(keys, predicted_prefill / med.prompt_time - 1)
        },
        "decode_error_vs_config_median_pct": {
            k: round(100 * float(v), 2) for k, v in zip(keys, predicted_decode / med.token_time - 1)
        },
        "note": "configurations sharing batch tokens (e.g. 2 × 512 and 1 × 1,024) or batch size are pooled, so "
        "each is off by its difference from the pool's median; decode has no context term",
    }
    if dropped:
        fit["dropped_configs"] = {"configs": dropped, "why": "faster than the smaller batch: a failed run"}
    return draft.model_copy(update={"fit": fit})


def _term_quality(cost: LLMCost, train: pd.DataFrame, prefill_terms: dict, context: dict) -> dict:
    """Training MAPE (%) of the rows each term was fitted on, beside what the data say about each term."""
    single = train[train.batch_size == 1]
    batched = train[train.batch_size > 1]
    terms = {key: dict(value) for key, value in prefill_terms.items()}
    terms["floor_intercept_per_token_attention"]["train_mape_pct"] = round(100 * _mape(cost, single)[0], 2)
    if not batched.empty and "implied_ms_by_batch" not in terms["per_extra_seq"]:
        terms["per_extra_seq"]["batched_rows_train_mape_pct"] = round(100 * _mape(cost, batched)[0], 2)
    elif not batched.empty:
        terms["per_extra_seq"]["train_mape_pct"] = round(100 * _mape(cost, batched)[0], 2)
    roofline_us = 1e3 * cost.kv_ms_per_token
    low, high = context.get("slope_ci95_us_per_token", [float("nan")] * 2)
    terms["decode_context"] = {
        "per_context_token_us": round(roofline_us, 5),
        "from": "kv_read roofline",
        "measured": context,
        "roofline_within_measured_ci95": bool(low <= roofline_us <= high),
    }
    terms["decode_step_by_batch"] = {
        f"batch{int(b)}_train_mape_pct": round(100 * _mape(cost, group)[1], 2)
        for b, group in train.groupby("batch_size")
    }
    return terms


def _mape(cost: LLMCost, rows: pd.DataFrame) -> tuple[float, float]:
    prefill, decode = predict(cost, rows)
    return (
        float(np.mean(np.abs(prefill / rows.prompt_time.to_numpy() - 1))),
        float(np.mean(np.abs(decode / rows.token_time.to_numpy() - 1))),
    )


def _per_config_error(cost: LLMCost, rows: pd.DataFrame, column: str) -> dict[str, float]:
    """Relative error of the prediction against the median of each held-out configuration."""
    med = rows.groupby(["prompt_size", "batch_size", "token_size"])[column].median().reset_index()
    prefill, decode = predict(cost, med)
    predicted = prefill if column == "prompt_time" else decode
    return {
        f"prompt{int(p)}_batch{int(b)}_tokens{int(t)}": float(abs(pv / mv - 1))
        for (p, b, t, mv), pv in zip(med[["prompt_size", "batch_size", "token_size", column]].to_numpy(), predicted)
    }


def write_profile(profile: LLMProfile, path: Path) -> None:
    data = profile.model_dump(mode="json", exclude={"estimated", "estimate"})  # measured: not estimated
    how = "interpolated" if isinstance(profile.prefill, PrefillTable) else "fitted"
    header = (
        f"# LLM profile {profile.name}: {how} by `python -m calibrate.llm_perf` from {profile.source['file']}\n"
        "# (splitwise-sim measurements, MIT). Times in ms. Do not edit by hand: re-run the importer.\n"
    )
    path.write_text(header + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def plot_fit(profile: LLMProfile, rows: pd.DataFrame, path: Path) -> Path:
    """Measured points (training and held out) against the fitted curves, one panel per sweep."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cost = LLMCost(profile)
    held = held_out_mask(rows)
    figure, axes = plt.subplots(1, 4, figsize=(17, 3.8))
    sweeps = (
        (
            "prompt_size",
            (rows.batch_size == 1) & (rows.token_size == 128),
            "prompt_time",
            "prompt tokens (batch 1)",
            "prefill (ms)",
        ),
        (
            "batch_size",
            (rows.prompt_size == 512) & (rows.token_size == 128),
            "prompt_time",
            "batch size (prompt 512)",
            "prefill (ms)",
        ),
        (
            "batch_size",
            (rows.prompt_size == 512) & (rows.token_size == 128),
            "token_time",
            "batch size (prompt 512)",
            "decode step (ms)",
        ),
        (
            "token_size",
            (rows.prompt_size == 512) & (rows.batch_size == 1),
            "token_time",
            "output tokens (prompt 512, batch 1)",
            "decode step (ms)",
        ),
    )
    for ax, (x, mask, y, xlabel, ylabel) in zip(axes, sweeps):
        part = rows[mask]
        for selection, label, style in ((~held[mask], "measured (fit)", "o"), (held[mask], "measured (held out)", "x")):
            ax.plot(part[x][selection], part[y][selection], style, ms=4, label=label)
        grid = np.unique(np.geomspace(part[x].min(), part[x].max(), 60).round().astype(int))
        fixed = part.iloc[0]
        frame = pd.DataFrame(
            {
                "prompt_size": grid if x == "prompt_size" else int(fixed.prompt_size),
                "batch_size": grid if x == "batch_size" else int(fixed.batch_size),
                "token_size": grid if x == "token_size" else int(fixed.token_size),
            }
        )
        prefill, decode = predict(cost, frame)
        ax.plot(grid, prefill if y == "prompt_time" else decode, "-", label="fitted")
        ax.set_xscale("log", base=2)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    quality = profile.fit
    figure.suptitle(
        f"{profile.name}: prefill MAPE {quality['prefill_train_mape_pct']}%, decode MAPE {quality['decode_train_mape_pct']}% "
        f"(held-out worst {max(quality['prefill_held_out_error_pct'].values())}% / {max(quality['decode_held_out_error_pct'].values())}%)",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", default=str(DEFAULT_CSV))
    parser.add_argument("--out", default=str(ROOT / "models"))
    parser.add_argument(
        "--per-token",
        action="store_true",
        help="the physically constrained prefill (per token, not per prompt): writes NAME-per-token.yaml",
    )
    parser.add_argument(
        "--table",
        action="store_true",
        help="the measurements interpolated, not fitted (splitwise-sim's performance model): writes NAME-table.yaml",
    )
    args = parser.parse_args(argv)
    frame = read_perf_table(args.csv)
    if args.table:
        for model, hardware, tp, name in SHIPPED:
            target = Path(args.out) / f"{name}-table.yaml"
            profile = build_table_profile(
                frame, model, hardware, tp, f"{name}-table", "models/data/llm-perf-a100-h100.csv"
            )
            write_profile(profile, target)
            errors = np.abs(list(profile.fit["prefill_error_vs_config_median_pct"].values()))
            print(f"{target}: prefill off a configuration's median by up to {errors.max():.1f}% (pooled batch tokens)")
        return 0
    for model, hardware, tp, name in SHIPPED:
        name = f"{name}-per-token" if args.per_token else name
        profile, report = build_profile(
            frame, model, hardware, tp, name, "models/data/llm-perf-a100-h100.csv", per_token=args.per_token
        )
        target = Path(args.out) / f"{name}.yaml"
        write_profile(profile, target)
        plot_fit(profile, select(frame, model, hardware, tp), target.with_suffix(".png"))
        worst_prefill = max(report.prefill_held_out.values())
        worst_decode = max(report.decode_held_out.values())
        print(
            f"{target}: prefill MAPE {100 * report.prefill_train_mape:.1f}% (held out, worst {100 * worst_prefill:.1f}%), "
            f"decode MAPE {100 * report.decode_train_mape:.1f}% (held out, worst {100 * worst_decode:.1f}%)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
