"""The hardware catalogue's specifications (issue 22): every accelerator and CPU instance with peak FLOP/s,
memory bandwidth and size, interconnect and power, each from a dated public source, validated."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sim.errors import DataFileError
from sim.spec.hardware import load_catalogue, load_specifications
from sim.spec.llm_cost import load_llm_profile

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "models/hardware.yaml"
ASKED_FOR = ("a100-40gb", "a100-80gb", "h100-80gb", "h100-pcie", "h200", "l4", "l40s", "a10g", "t4", "mi300x", "b200")


@pytest.fixture(scope="module")
def specs():
    return load_specifications()


def test_every_gpu_the_issue_names_and_every_priced_unit_has_specifications(specs):
    assert set(ASKED_FOR) <= set(specs)
    assert set(load_catalogue()) <= set(specs)


def test_every_gpu_states_bandwidth_memory_fp16_peak_and_a_dated_web_source(specs):
    for name, spec in specs.items():
        assert spec.source and spec.date, name
        if spec.kind == "gpu":
            assert spec.source.startswith("https://"), name
            assert spec.memory_bandwidth_gb_s and spec.memory_gib and spec.peak_tflops("fp16"), name
            assert spec.link_gb_s, name


def test_cpu_instances_state_their_vector_and_matrix_extensions(specs):
    cpus = {name: spec for name, spec in specs.items() if spec.kind == "cpu"}
    assert {"cpu-16vcpu", "cpu-2vcpu"} <= set(cpus)
    assert all(spec.vcpus and "avx512" in spec.isa for spec in cpus.values())


def test_h200_is_h100_compute_with_more_and_faster_memory(specs):
    h100, h200 = specs["h100-80gb"], specs["h200"]
    assert h200.peak_dense_tflops == h100.peak_dense_tflops
    assert h200.memory_bandwidth_gb_s > h100.memory_bandwidth_gb_s and h200.memory_gib > h100.memory_gib


def test_fp8_doubles_fp16_wherever_a_part_has_both(specs):
    # Hopper, Ada, Blackwell and CDNA3 tensor cores run FP8 at twice their FP16 rate (dense and sparse alike).
    for name, spec in specs.items():
        fp8, fp16 = spec.peak_dense_tflops.get("fp8"), spec.peak_dense_tflops.get("fp16")
        if fp8 and fp16:
            assert fp8 == pytest.approx(2 * fp16, rel=0.02), name  # L40S: 733 vs 2 x 362.05 on its own page


@pytest.mark.parametrize("profile", ["llama2-70b-tp4-a100", "llama2-70b-tp4-h100"])
def test_the_shipped_llm_profiles_kv_roofline_uses_the_catalogue_bandwidth(specs, profile):
    loaded = load_llm_profile(ROOT / f"models/{profile}.yaml")
    assert loaded.decode.kv_read.hbm_bandwidth_gb_s == specs[loaded.hardware].memory_bandwidth_gb_s


def _broken(tmp_path, edit) -> Path:
    data = yaml.safe_load(CATALOGUE.read_text(encoding="utf-8"))
    edit(data["specifications"])
    path = tmp_path / "hardware.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda s: s["h200"].update(memory_bandwidth_gb_s=-1), "specifications.h200: memory_bandwidth_gb_s"),
        (lambda s: s["l4"]["peak_dense_tflops"].update(fp16="fast"), "specifications.l4: peak_dense_tflops"),
        (lambda s: s["t4"].pop("source"), "specifications.t4: source"),
        (lambda s: s["b200"].update(date="last spring"), "specifications.b200: date"),
    ],
)
def test_a_bad_specification_is_one_line_naming_the_file_and_field(tmp_path, edit, field):
    path = _broken(tmp_path, edit)
    with pytest.raises(DataFileError) as caught:
        load_specifications(path)
    message = str(caught.value)
    assert field in message and "hardware.yaml" in message
    assert "\n" not in message and str(tmp_path) not in message
    assert "fast" not in message and "last spring" not in message  # the file's content is never echoed
