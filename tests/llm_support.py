"""Helpers for the LLM tests: a synthetic LLM profile with round-number costs, and a stage builder."""

from __future__ import annotations

from pathlib import Path

import yaml

from sim.spec.datafiles import FileAccess, default_access
from sim.spec.llm_schema import LLMStage

ROOT = Path(__file__).resolve().parent.parent

SYNTHETIC = {
    "kind": "llm",
    "name": "synthetic",
    "model": "test-model",
    "hardware": "test-gpu",
    "tensor_parallel": 1,
    "memory": {"gpus": 1, "gpu_memory_gib": 80.0, "weights_gib": 14.0, "kv_bytes_per_token": 524288},
    "prefill": {
        "floor_ms": 0.0,
        "intercept_ms": 10.0,
        "per_token_ms": 0.1,
        "attention_ms_per_mtoken2": 2.0,
        "per_extra_seq_ms": 3.0,
        "max_measured_prompt": 8192,
        "max_measured_tokens": 32768,
    },
    "decode": {"batch_sizes": [1, 8, 64], "step_ms": [20.0, 24.0, 52.0], "per_context_token_ms": 0.001},
}


def synthetic_profile(tmp_path: Path, **changes) -> Path:
    data = {**SYNTHETIC, **changes}
    path = tmp_path / "synthetic-llm.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def stage(profile: Path | str, **fields) -> LLMStage:
    spec = {"name": "llm", "kind": "llm", "profile": str(profile), **fields}
    # The synthetic profile lives in a test's tmp folder: allow it beside the project's own data.
    access = default_access(ROOT)
    access = FileAccess((*access.roots, Path(profile).resolve().parent))
    return LLMStage.model_validate(spec, context={"base_dir": ROOT, "file_access": access})
