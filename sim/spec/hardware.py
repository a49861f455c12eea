"""The hardware catalogue (models/hardware.yaml): name → on-demand price in USD per hour, with its source."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

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


def load_catalogue(path: str | Path | None = None) -> dict[str, Hardware]:
    """Read the catalogue (default: the shipped models/hardware.yaml); DataFileError names the entry at fault."""
    path = Path(path) if path is not None else shipped_file("models/hardware.yaml") or Path("models/hardware.yaml")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataFileError(f"hardware catalogue not found: {path}") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DataFileError(f"cannot read hardware catalogue {path}: {exc}") from None
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
