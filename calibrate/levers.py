"""Optimisation levers as profile transforms: a derived profile whose forward costs are divided by the
lever's speed-up, with the assumed factor and the expected accuracy cost written into it.

The ranges are the typical effects reported in the field (DESIGN.md, issue 4), each with a published
source that supports it. They are planning assumptions, not promises: measure the optimised model and
fit it (`servesim calibrate fit`) as soon as it exists. The default factor is the conservative end.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.errors import ServesimError


@dataclass(frozen=True)
class Lever:
    name: str
    speedup_range: tuple[float, float]  # forward-pass speed-up, low (conservative, the default) .. high
    accuracy_cost: str
    baseline: str  # what the speed-up is relative to
    source: str

    @property
    def default_speedup(self) -> float:
        return self.speedup_range[0]


LEVERS: dict[str, Lever] = {
    lever.name: lever
    for lever in (
        Lever(
            "fp16",
            (1.5, 2.0),
            "negligible for most CNNs and transformers (< 0.1% top-1); check models with wide activations",
            "FP32 on hardware with FP16 units (tensor cores); little or no gain on CPUs without them",
            "Micikevicius et al., Mixed Precision Training, ICLR 2018 (arXiv:1710.03740), accuracy parity;"
            " ~2x forward over FP32 as in DESIGN.md / issue 4",
        ),
        Lever(
            "int8",
            (2.0, 4.0),
            "0.5-1.5% top-1 / task-metric drop with post-training quantisation; less with quantisation-aware training",
            "FP32 (about 2x less against FP16)",
            "Wu et al., Integer Quantization for Deep Learning Inference, NVIDIA 2020 (arXiv:2004.09602):"
            " INT8 within 1% of FP32 on most networks studied; 2-4x forward as in DESIGN.md / issue 4",
        ),
        Lever(
            "int4-weight-only",
            (3.0, 5.0),
            "small for large LLMs with GPTQ / AWQ (perplexity +0.1-0.5 at 4 bits); larger for small models",
            "FP16, memory-bound decoding (batch-1 generation); much less for compute-bound batches",
            "Frantar et al., GPTQ, ICLR 2023 (arXiv:2210.17323): ~3.25x on A100 and ~4.5x on A6000 for"
            " OPT-175B generation; Lin et al., AWQ, MLSys 2024 (arXiv:2306.00978)",
        ),
        Lever(
            "structured-pruning",
            (1.5, 2.5),
            "1-3% task-metric drop after fine-tuning to recover; grows quickly with sparsity",
            "the dense model on the same hardware",
            "Hoefler et al., Sparsity in Deep Learning, JMLR 2021 (arXiv:2102.00554), survey;"
            " 1.5-2.5x as in DESIGN.md / issue 4",
        ),
        Lever(
            "distillation",
            (2.0, 10.0),
            "2-5% task-metric drop typical (DistilBERT keeps 97% of BERT-base's GLUE score; TinyBERT 96.8%)",
            "the teacher model on the same hardware",
            "Sanh et al., DistilBERT (arXiv:1910.01108): 1.6x faster; Jiao et al., TinyBERT (arXiv:1909.10351):"
            " 9.4x faster than BERT-base",
        ),
        Lever(
            "tensorrt",
            (1.5, 3.0),
            "none expected at the same precision (kernel fusion, auto-tuning); check numerics after conversion",
            "eager PyTorch on the same GPU and precision",
            "NVIDIA TensorRT documentation (graph optimisation, kernel auto-tuning); 1.5-3x as in DESIGN.md / issue 4",
        ),
        Lever(
            "onnxruntime",
            (1.5, 3.0),
            "none expected at the same precision (graph optimisation, operator fusion); check numerics after export",
            "eager PyTorch on the same hardware and precision",
            "ONNX Runtime documentation (graph optimisations, transformer fusions); 1.5-3x as in DESIGN.md / issue 4",
        ),
    )
}


class LeverError(ServesimError):
    """An unknown lever or an impossible speed-up factor."""


def get_lever(name: str) -> Lever:
    try:
        return LEVERS[name]
    except KeyError:
        raise LeverError(f"unknown lever {name!r} (choose from {', '.join(LEVERS)})") from None


def _scale(value: Any, factor: float) -> Any:
    return round(value / factor, 4) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def derive(base: dict[str, Any], lever_name: str, speedup: float | None = None, name: str | None = None) -> dict[str, Any]:
    """A derived profile mapping: every measured latency quantile and the fitted curve divided by the speed-up.

    The per-batch overhead (`overhead_ms`, outside the kernel) and the interference ratios are kept; the
    lever, its assumed factor, its published range and its accuracy cost go into `lever`. Applying a lever
    to an already-derived profile multiplies the factors and keeps the chain in `lever.applied_on`."""
    lever = get_lever(lever_name)
    factor = lever.default_speedup if speedup is None else float(speedup)
    if not factor > 0:
        raise LeverError(f"lever {lever_name}: speed-up must be positive, got {speedup}")
    out = copy.deepcopy(base)
    for row in out.get("latency", []):
        for key in ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "mean_ms"):
            if key in row:
                row[key] = _scale(row[key], factor)
    for row in out.get("samples") or []:
        row["ms"] = [_scale(v, factor) for v in row["ms"]]
    curve = out.get("curve", {})
    for key in ("base_ms", "per_item_ms", "per_item_below_ms", "per_item_above_ms"):
        if key in curve:
            curve[key] = _scale(curve[key], factor)
    if "points" in curve:
        curve["points"] = [[b, _scale(ms, factor)] for b, ms in curve["points"]]
    if "quality" in curve:  # the fit quality was measured on the base, not on the derived model
        curve["quality"] = {"note": f"quality of the base profile's fit; costs here are scaled by 1/{factor:g}"}
    previous = base.get("lever")
    lever_entry: dict[str, Any] = {
        "name": lever.name if not previous else f"{previous['name']}+{lever.name}",
        "speedup": factor * (previous["speedup"] if previous else 1.0),
        "assumed_speedup_of_this_lever": factor,
        "speedup_range": list(lever.speedup_range),
        "default_is_conservative_end": speedup is None,
        "accuracy_cost": lever.accuracy_cost,
        "baseline": lever.baseline,
        "source": lever.source,
        "derived_from": base.get("name"),
        "status": "assumed from published ranges, not measured",
    }
    if previous:
        lever_entry["applied_on"] = previous
    out["lever"] = lever_entry
    out["name"] = name or f"{base.get('name', 'profile')}-{lever.name}"
    if base.get("precision") and lever.name in ("fp16", "int8", "int4-weight-only"):
        out["precision"] = {"fp16": "fp16", "int8": "int8", "int4-weight-only": "int4 weights"}[lever.name]
    return out


def lever_summary(lever: dict[str, Any] | None) -> str:
    """One line to show next to results: which lever, assumed speed-up and accuracy cost."""
    if not lever:
        return "no optimisation lever (measured costs)"
    rng = lever.get("speedup_range") or []
    published = f" (published range {rng[0]:g}-{rng[1]:g}x)" if len(rng) == 2 else ""
    speedup = lever.get("speedup")
    factor = f"x{speedup:g}" if isinstance(speedup, (int, float)) else "an unstated"
    return (
        f"lever {lever.get('name', '?')}: assumed {factor} forward speed-up{published},"
        f" accuracy cost: {lever.get('accuracy_cost', 'unknown')} — assumed, not measured"
    )


def derived_profile_path(base_path: str | Path, lever_name: str, speedup: float | None = None,
                         folder: str | Path | None = None) -> Path:
    """Write (once) the profile `base_path` transformed by a lever and return its path, for callers that
    point a scenario's `profile:` at it (the planner). Default folder: a servesim directory in the system
    temp dir; the file name carries the lever and factor, so equal requests reuse one file."""
    import tempfile

    from calibrate.profile import check_profile, write_profile
    from sim.spec.profile import read_profile_yaml

    base_path = Path(base_path)
    lever = get_lever(lever_name)
    factor = lever.default_speedup if speedup is None else float(speedup)
    folder = Path(folder) if folder is not None else Path(tempfile.gettempdir()) / "servesim-derived"
    out = folder / f"{base_path.stem}-{lever.name}-x{factor:g}.yaml"
    if out.is_file() and out.stat().st_mtime >= base_path.stat().st_mtime:
        return out
    data = derive(read_profile_yaml(base_path), lever_name, speedup)
    check_profile(data, str(out))
    tmp = out.with_suffix(f".tmp{id(data)}")
    folder.mkdir(parents=True, exist_ok=True)
    write_profile(data, tmp)
    tmp.replace(out)  # atomic: concurrent callers never see half a file
    return out
