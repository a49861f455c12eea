"""Optimisation levers as profile transforms: a derived profile whose forward costs are divided by the
lever's speed-up, with the assumed factor and the expected accuracy cost written into it. The lever table
itself (ranges, accuracy costs, sources) is domain data in sim/spec/levers.py."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from sim.spec.levers import LEVERS, Lever, LeverError, get_lever, lever_summary

__all__ = ["LEVERS", "Lever", "LeverError", "derive", "derived_profile_path", "get_lever", "lever_summary"]


def _scale(value: Any, factor: float) -> Any:
    return round(value / factor, 4) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def derive(
    base: dict[str, Any], lever_name: str, speedup: float | None = None, name: str | None = None
) -> dict[str, Any]:
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


def derived_profile_path(
    base_path: str | Path, lever_name: str, speedup: float | None = None, folder: str | Path | None = None
) -> Path:
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
