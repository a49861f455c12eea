"""Measurements → a profile file (models/NAME.yaml), its fit report and its plot (NAME.png beside it)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from calibrate.fit import CurveFit, fit_curve, interference_table, summarise, throughput_knee
from sim.errors import DataFileError
from sim.spec.measured_samples import MIN_SAMPLES
from sim.spec.profile import ModelProfile, profile_from_dict


def latency_rows(summary: pd.DataFrame) -> list[dict[str, Any]]:
    """The `latency:` list of a profile from a measurement summary."""
    rows = []
    for _, r in summary.sort_values(["instances", "batch_size"]).iterrows():
        row: dict[str, Any] = {"batch_size": int(r["batch_size"]), "instances": int(r["instances"])}
        if "n" in r and pd.notna(r["n"]):
            row["n"] = int(r["n"])
        for key in ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "mean_ms"):
            if key in r and pd.notna(r[key]):
                row[key] = round(float(r[key]), 4)
        rows.append(row)
    return rows


def sample_rows(measurements: pd.DataFrame) -> list[dict[str, Any]]:
    """The `samples:` list of a profile: every measured batch time (4 decimals; like the curve, without
    `overhead_ms`) of each (batch size, instances) with at least MIN_SAMPLES repeats; fewer are left to
    the fitted spread."""
    rows = []
    for (batch, inst), group in measurements.groupby(["batch_size", "instances"], sort=True):
        values = group["latency_ms"].to_numpy(float)
        if len(values) >= MIN_SAMPLES:
            rows.append({"batch_size": int(batch), "instances": int(inst), "ms": [round(float(v), 4) for v in values]})
    return rows


def build_profile(
    summary: pd.DataFrame,
    fit: CurveFit,
    *,
    name: str,
    model: str | None = None,
    hardware: str | None = None,
    usd_per_hour: float | None = None,
    precision: str | None = None,
    serving_stack: str | None = None,
    provenance: dict[str, Any] | None = None,
    overhead_ms: float = 0.0,
    max_batch_size: int | None = None,
    samples: list[dict[str, Any]] | None = None,
    co_load: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A profile mapping ready to dump as YAML (checked by loading it through sim.spec.profile)."""
    provenance = dict(provenance or {})
    provenance.setdefault("date", dt.date.today().isoformat())
    if usd_per_hour is None and hardware:
        from sim.spec.hardware import load_catalogue

        try:
            entry = load_catalogue().get(hardware)
        except DataFileError:
            entry = None
        if entry is not None:
            usd_per_hour = entry.usd_per_hour
            provenance.setdefault(
                "price_source",
                f"models/hardware.yaml {hardware}: {entry.source}" + (" (approximate)" if entry.approximate else ""),
            )
    data: dict[str, Any] = {"kind": "batch", "name": name}
    for key, value in (
        ("model", model),
        ("hardware", hardware),
        ("usd_per_hour", usd_per_hour),
        ("precision", precision),
        ("serving_stack", serving_stack),
    ):
        if value is not None:
            data[key] = value
    data["provenance"] = provenance
    data["overhead_ms"] = float(overhead_ms)
    if max_batch_size is not None:
        data["max_batch_size"] = int(max_batch_size)
    data["curve"] = fit.curve_yaml()
    data["latency"] = latency_rows(summary)
    if samples:
        data["samples"] = samples
    if co_load:
        data["co_load"] = co_load
    check_profile(data, name)
    return data


def check_profile(data: dict[str, Any], where: str) -> ModelProfile:
    """Load a profile mapping exactly as the engine will (round trip through YAML)."""
    return profile_from_dict(yaml.safe_load(yaml.safe_dump(data, sort_keys=False)), where=f"profile {where}")


class _Dumper(yaml.SafeDumper):
    """Block style, except that table rows (lists of scalars, mappings of scalars inside lists) are one line each."""


def _represent_list(dumper: yaml.SafeDumper, value: list) -> yaml.Node:
    flat = all(not isinstance(v, (list, dict)) for v in value)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flat)


_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(tuple, _represent_list)


def _table_rows(value: Any, inside_list: bool = False) -> Any:
    if isinstance(value, dict):
        if inside_list and all(not isinstance(v, (list, dict)) for v in value.values()):
            return _FlowMap(value)
        return {k: _table_rows(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_table_rows(v, inside_list=True) for v in value]
    return value


class _FlowMap(dict):
    pass


_Dumper.add_representer(_FlowMap, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", dict(v), flow_style=True))


def dump_profile(data: dict[str, Any]) -> str:
    """Profile mapping → YAML text, one line per table row."""
    return yaml.dump(_table_rows(data), Dumper=_Dumper, sort_keys=False, width=120, allow_unicode=True)


def write_profile(data: dict[str, Any], path: str | Path) -> Path:
    """Write a profile mapping as YAML; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = f"# servesim model profile ({data.get('name')}); format: see sim/spec/profile.py\n"
    path.write_text(header + dump_profile(data), encoding="utf-8")
    return path


def fit_report(summary: pd.DataFrame, fit: CurveFit) -> str:
    """Plain-text fit report: the batch curve, the chosen family and its quality, interference."""
    lines = [f"chosen curve: {fit.family} {fit.params if fit.family != 'piecewise_linear' else ''}".rstrip()]
    q = fit.quality
    loo = f", leave-one-out MAPE {q['leave_one_out_mape_pct']:.2f}%" if "leave_one_out_mape_pct" in q else ""
    lines.append(
        f"fit quality: MAPE {q['mape_pct']:.2f}%, max |error| {q['max_abs_pct_err']:.2f}%, R² {q['r2']:.4f}{loo}"
    )
    for fam, cand in fit.candidates.items():
        if "params" in cand:
            verdict = "within tolerance" if cand["accepted"] else "outside tolerance"
            lines.append(
                f"  {fam:<17} MAPE {cand['mape_pct']:6.2f}%  max {cand['max_abs_pct_err']:6.2f}%  R² {cand['r2']:.4f}  {verdict}"
            )
        else:
            lines.append(f"  {fam:<17} not tried: {cand['reason']}")
    lines.append("batch  n     p50 ms    p99 ms    fitted ms  error %   ms/item")
    alone = summary[summary["instances"] == 1].sort_values("batch_size")
    for (_, r), per in zip(alone.iterrows(), fit.quality["per_batch"]):
        lines.append(
            f"{int(r['batch_size']):>5}  {(str(int(r['n'])) if pd.notna(r['n']) else '-'):<4} {r['p50_ms']:9.3f} {r['p99_ms']:9.3f} {per['fitted_ms']:10.3f}"
            f" {per['error_pct']:+8.2f} {r['p50_ms'] / r['batch_size']:9.4f}"
        )
    knee = throughput_knee(summary)
    lines.append(
        f"throughput per item stops improving (<5% gain to the next measured size) after batch {knee}"
        if knee is not None
        else "throughput per item still improving at the largest measured batch size"
    )
    inter = interference_table(summary)
    if not inter.empty:
        lines.append("interference (median with k busy instances / median alone):")
        for _, r in inter.iterrows():
            lines.append(
                f"  batch {int(r['batch_size']):>3}, {int(r['instances'])} instances: {r['p50_ms']:.3f} ms vs"
                f" {r['p50_alone_ms']:.3f} ms alone = x{r['slowdown']:.2f}"
            )
    return "\n".join(lines)


def plot_profile(
    measurements: pd.DataFrame | None, summary: pd.DataFrame, profile: ModelProfile, path: str | Path
) -> Path:
    """PNG: measured repeats, p50 / p99 per batch size and per instance count, the fitted curve and its p1–p99 band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    levels = sorted(summary["instances"].unique())
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    grid = np.arange(1, profile.max_batch_size + 1)
    for i, k in enumerate(levels):
        c = colours[i % len(colours)]
        part = summary[summary["instances"] == k].sort_values("batch_size")
        if measurements is not None:
            raw = measurements[measurements["instances"] == k]
            ax.scatter(raw["batch_size"], raw["latency_ms"], s=4, alpha=0.25, color=c)
        ax.plot(part["batch_size"], part["p50_ms"], "o", color=c, label=f"measured p50, {k} busy")
        if "p99_ms" in part:
            ax.plot(part["batch_size"], part["p99_ms"], "^", color=c, alpha=0.7, label=f"measured p99, {k} busy")
        k_eff = min(int(k), profile.max_instances)
        med = [profile.quantile_ms(int(n), 0.5, k_eff) for n in grid]
        lo = [profile.quantile_ms(int(n), 0.01, k_eff) for n in grid]
        hi = [profile.quantile_ms(int(n), 0.99, k_eff) for n in grid]
        ax.plot(grid, med, "-", color=c, lw=1.2, label=f"profile median ({profile.curve_family})" if k == 1 else None)
        ax.fill_between(grid, lo, hi, color=c, alpha=0.12)
        ax2.plot(part["batch_size"], part["p50_ms"] / part["batch_size"], "o-", color=c, label=f"{k} busy")
    ax.set_xlabel("batch size")
    ax.set_ylabel("latency per batch (ms)")
    ax.set_title(f"{profile.name}: batch cost (band: profile p1–p99)")
    ax.legend(fontsize=7)
    ax2.set_xscale("log", base=2)
    ax2.set_xlabel("batch size")
    ax2.set_ylabel("median ms per item")
    ax2.set_title("cost per item")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def fit_measurements(
    measurements: pd.DataFrame,
    out: str | Path,
    *,
    family: str = "auto",
    tolerance_pct: float = 2.0,
    plot: bool = True,
    **meta: Any,
) -> tuple[dict[str, Any], str, Path | None]:
    """Summarise, fit, write the profile (and its PNG); returns (profile mapping, report text, png path)."""
    out = Path(out)
    summary = summarise(measurements)
    fit = fit_curve(summary, family=family, tolerance_pct=tolerance_pct)
    meta.setdefault("name", out.stem)
    meta.setdefault("samples", sample_rows(measurements))
    if list(fit.batch_sizes) == [1]:
        if (meta.get("max_batch_size") or 1) > 1:
            raise DataFileError(
                f"max_batch_size {meta['max_batch_size']}: only batch size 1 was measured; measure larger batches first"
            )
        meta["max_batch_size"] = 1
    data = build_profile(summary, fit, **meta)
    write_profile(data, out)
    png = None
    if plot:
        png = plot_profile(measurements, summary, check_profile(data, str(out)), out.with_suffix(".png"))
    return data, fit_report(summary, fit), png


def list_profiles(folder: str | Path = "models") -> list[tuple[Path, str, str]]:
    """(path, name, kind) of every profile YAML in `folder` (hardware.yaml excluded), for pickers."""
    found = []
    for path in sorted(Path(folder).glob("*.yaml")):
        if path.name == "hardware.yaml":
            continue
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(raw, dict) and "name" in raw:
            found.append((path, str(raw["name"]), str(raw.get("kind", "batch"))))
    return found


def curve_figure(profile: ModelProfile):
    """A matplotlib Figure of a loaded profile: measured p50 / p99 per batch size and instance count, the
    median curve and its p1–p99 band (for the planner; the caller closes it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    grid = np.arange(1, profile.max_batch_size + 1)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k in range(1, profile.max_instances + 1):
        rows = [r for r in profile.measured if r.instances == k]
        c = colours[(k - 1) % len(colours)]
        if rows:
            ax.plot(
                [r.batch_size for r in rows],
                [r.p50_ms + profile.per_request_overhead_ms for r in rows],
                "o",
                color=c,
                label=f"measured p50, {k} busy",
            )
        if not rows and k > 1:
            continue
        ax.plot(grid, [profile.quantile_ms(int(n), 0.5, k) for n in grid], "-", color=c, lw=1.2)
        ax.fill_between(
            grid,
            [profile.quantile_ms(int(n), 0.01, k) for n in grid],
            [profile.quantile_ms(int(n), 0.99, k) for n in grid],
            color=c,
            alpha=0.12,
        )
    title = profile.name + (
        f" ({profile.lever['name']} x{profile.lever['speedup']:g}, assumed)" if profile.lever else ""
    )
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("batch size")
    ax.set_ylabel("batch latency (ms)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
