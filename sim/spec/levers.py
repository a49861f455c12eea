"""Optimisation levers (FP16, INT8, INT4 weight-only, pruning, distillation, TensorRT / ONNX Runtime): the
typical forward-pass speed-up each gives, its accuracy cost and a published source. Domain data, read by
the advisor, the planner and `calibrate derive` (which turns a lever into a derived profile).

The ranges are the typical effects reported in the field (DESIGN.md), each with a published source that
supports it. They are planning assumptions, not promises: measure the optimised model and fit it
(`servesim calibrate fit`) as soon as it exists. The default factor is the conservative end.
"""

from __future__ import annotations

from dataclasses import dataclass
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
