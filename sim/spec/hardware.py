"""The hardware catalogue (models/hardware.yaml): name → on-demand price in USD per hour, with its source;
and name → specifications (peak FLOP/s per precision, memory bandwidth and size, interconnect, power),
each with its public source and the date it was read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, ValidationError

from sim.errors import DataFileError
from sim.shipped import shipped_file


@dataclass(frozen=True)
class Hardware:
    """One priced unit of hardware: `usd_per_hour` per `unit` (a GPU-hour or a whole instance)."""

    name: str
    usd_per_hour: float
    unit: str
    description: str
    source: str
    date: str
    approximate: bool


def _catalogue_path(path: str | Path | None) -> Path:
    return Path(path) if path is not None else shipped_file("models/hardware.yaml") or Path("models/hardware.yaml")


def _read(path: Path):
    from sim.spec.datafiles import shown

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataFileError(f"hardware catalogue not found: {shown(path)}") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        raise DataFileError(f"cannot read hardware catalogue {shown(path)}: not a readable YAML file") from None


def load_catalogue(path: str | Path | None = None) -> dict[str, Hardware]:
    """Read the catalogue (default: the shipped models/hardware.yaml); DataFileError names the entry at fault."""
    from sim.spec.datafiles import shown

    path = _catalogue_path(path)
    data = _read(path)
    path = shown(path)
    entries = (data or {}).get("hardware") if isinstance(data, dict) else None
    if not isinstance(entries, dict) or not entries:
        raise DataFileError(f"hardware catalogue {path}: needs a non-empty mapping `hardware: {{name: {{...}}}}`")
    catalogue: dict[str, Hardware] = {}
    for name, entry in entries.items():
        if not isinstance(entry, dict):
            raise DataFileError(f"hardware catalogue {path}: hardware.{name} must be a mapping")
        price = entry.get("usd_per_hour")
        if isinstance(price, bool) or not isinstance(price, (int, float)) or price < 0:
            raise DataFileError(
                f"hardware catalogue {path}: hardware.{name}.usd_per_hour must be a non-negative number, got {price!r}"
            )
        if not entry.get("source"):
            raise DataFileError(
                f"hardware catalogue {path}: hardware.{name}.source is missing (say where the price is from)"
            )
        catalogue[str(name)] = Hardware(
            name=str(name),
            usd_per_hour=float(price),
            unit=str(entry.get("unit", "instance")),
            description=str(entry.get("description", "")),
            source=str(entry["source"]),
            date=str(entry.get("date", data.get("date_read", ""))),
            approximate=bool(entry.get("approximate", False)),
        )
    return catalogue


Precision = Literal["fp32", "tf32", "fp16", "bf16", "fp8", "int8", "fp4"]


class HardwareSpec(BaseModel):
    """Public specifications of one accelerator (per GPU) or CPU instance: what bounds a model's cost on it."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    kind: Literal["gpu", "cpu"]
    vendor: str = Field(min_length=1)
    model: str = Field(min_length=1)
    memory_gib: PositiveFloat | None = None
    memory_bandwidth_gb_s: PositiveFloat | None = Field(default=None, description="peak, GB/s (1e9 bytes/s)")
    peak_dense_tflops: dict[Precision, PositiveFloat] = Field(default_factory=dict, description="no sparsity")
    interconnect_gb_s: dict[Literal["nvlink", "infinity_fabric", "pcie"], PositiveFloat] = Field(default_factory=dict)
    tdp_w: PositiveFloat | None = None
    vcpus: PositiveInt | None = None
    cores: PositiveInt | None = None
    isa: list[str] = Field(default_factory=list)
    source: str = Field(min_length=1, description="vendor datasheet or product page (URL)")
    date: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$", description="the day the source was read")
    approximate: bool = False
    note: str = ""

    def peak_tflops(self, precision: str) -> float | None:
        """Peak dense tensor FLOP/s (TFLOP/s) at `precision`; bf16 and fp16 stand in for each other."""
        twin = {"fp16": "bf16", "bf16": "fp16"}.get(precision)
        return self.peak_dense_tflops.get(precision) or (self.peak_dense_tflops.get(twin) if twin else None)

    @property
    def link_gb_s(self) -> float | None:
        """The GPU-to-GPU link a tensor-parallel all-reduce rides on: NVLink / Infinity Fabric, else PCIe."""
        links = self.interconnect_gb_s
        return links.get("nvlink") or links.get("infinity_fabric") or links.get("pcie")


def load_specifications(path: str | Path | None = None) -> dict[str, HardwareSpec]:
    """The `specifications:` of the catalogue (default: the shipped models/hardware.yaml), validated;
    a DataFileError names the file and the field at fault, never the file's content."""
    from sim.spec.datafiles import shown, validation_problems

    path = _catalogue_path(path)
    data = _read(path)
    entries = data.get("specifications") if isinstance(data, dict) else None
    if not isinstance(entries, dict) or not entries:
        raise DataFileError(
            f"hardware catalogue {shown(path)}: needs a non-empty mapping `specifications: {{name: {{...}}}}`"
        )
    specs: dict[str, HardwareSpec] = {}
    for name, entry in entries.items():
        try:
            specs[str(name)] = HardwareSpec.model_validate(entry)
        except ValidationError as exc:
            problems = validation_problems(exc, HardwareSpec, "hardware specification fields")
            raise DataFileError(f"hardware catalogue {shown(path)}: specifications.{name}: {problems}") from None
    return specs
