"""Move a model stage's batch-cost profile (kind: batch, batch size → latency) to a GPU or CPU it was not
measured on, from the work one batch does: FLOPs per item and bytes per batch (the weights, read once a
batch) plus bytes per item (activations), given on the command line or counted from an ONNX graph.

Per measured batch size n, the kernel time (the median less the profile's `overhead_ms`, which is host-side
dispatch and stays as it is) is split between a compute-bound and a memory-bound part in proportion to
their roofline times on the source hardware,

    compute(n) = F · n / peak FLOP/s          memory(n) = (B + b · n) / memory bandwidth

and each part is scaled by its catalogue ratio (source peak / target peak, source bandwidth / target
bandwidth, from models/hardware.yaml `specifications:`):

    t_target(n) = overhead + kernel(n) · (w(n) · peak_src / peak_dst + (1 − w(n)) · bw_src / bw_dst),
    w(n) = compute(n) / (compute(n) + memory(n)).

p90 / p99 / mean scale with the median (the same spread). No measured pair of batch profiles on two
hardware exists to learn an achieved-efficiency factor from, so the 95% interval is the LLM transfer's
reach allowances (calibrate/transfer.py REACH_LOG_SD: unmeasured hardware, other vendor, other precision)
plus two stated here: a plain roofline's own error (`roofline`, 0.25: the LLM validation table's plain
roofline missed by a median 22–44% on prefill) and a move between a CPU and a GPU (`device`, 0.30: another
software stack, as another vendor's). Rows measured with several busy instances are left out: co-located
interference is a property of the source host.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from calibrate.transfer import BYTES, REACH_LOG_SD, Z95, spec_of
from sim.errors import DataFileError
from sim.spec.hardware import HardwareSpec, load_catalogue, load_specifications

if TYPE_CHECKING:
    import pandas as pd

# Allowances beyond the LLM transfer's (log-sd), see the module docstring.
ROOFLINE_LOG_SD = 0.25
DEVICE_LOG_SD = 0.30


@dataclass(frozen=True)
class Work:
    """What one batch of n items costs the hardware: `flops_per_item` · n FLOPs (a multiply-add is 2) and
    `bytes_per_batch` + `bytes_per_item` · n bytes moved through memory; `source` says where from."""

    flops_per_item: float
    bytes_per_batch: float
    bytes_per_item: float = 0.0
    source: str = "given on the command line"

    def __post_init__(self) -> None:
        for name in ("flops_per_item", "bytes_per_batch", "bytes_per_item"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise DataFileError(f"--{name.replace('_', '-')}: must be a finite number >= 0")
        if self.flops_per_item == 0 and self.bytes_per_batch == 0 and self.bytes_per_item == 0:
            raise DataFileError("--flops-per-item / --bytes-per-batch: a batch must do some work (both are 0)")


def roofline_ms(work: Work, n: float, spec: HardwareSpec, precision: str, name: str) -> tuple[float, float]:
    """(compute, memory) roofline times in ms of a batch of `n` on `spec` at `precision`."""
    compute = memory = 0.0
    if work.flops_per_item > 0:
        peak = spec.peak_tflops(precision)
        if not peak:
            raise DataFileError(
                f"hardware catalogue models/hardware.yaml: specifications.{name} lacks peak_dense_tflops.{precision}"
            )
        compute = work.flops_per_item * n / (peak * 1e12) * 1e3
    moved = work.bytes_per_batch + work.bytes_per_item * n
    if moved > 0:
        if not spec.memory_bandwidth_gb_s:
            raise DataFileError(
                f"hardware catalogue models/hardware.yaml: specifications.{name} lacks memory_bandwidth_gb_s"
            )
        memory = moved / (spec.memory_bandwidth_gb_s * 1e9) * 1e3
    return compute, memory


def time_ratio(work: Work, n: float, src: tuple[HardwareSpec, str, str], dst: tuple[HardwareSpec, str, str]) -> dict:
    """The kernel-time multiplier at batch size n from source (spec, name, precision) to target, with the
    compute share of the source roofline and the two part ratios."""
    (a, a_name, a_prec), (b, b_name, b_prec) = src, dst
    c_src, m_src = roofline_ms(work, n, a, a_prec, a_name)
    target_work = Work(
        work.flops_per_item,
        work.bytes_per_batch * BYTES[b_prec] / BYTES[a_prec],  # weights stored at the target's precision
        work.bytes_per_item,
        work.source,
    )
    c_dst, m_dst = roofline_ms(target_work, n, b, b_prec, b_name)
    share = c_src / (c_src + m_src)
    compute = c_dst / c_src if c_src > 0 else 1.0
    memory = m_dst / m_src if m_src > 0 else 1.0
    return {
        "compute_share": share,
        "compute_ratio": compute,
        "memory_ratio": memory,
        "ratio": share * compute + (1 - share) * memory,
        "roofline_ms": max(c_src, m_src),
    }


def reach(src: HardwareSpec, dst: HardwareSpec, same_hardware: bool, precision_changes: bool) -> dict[str, float]:
    """The interval's log-sd terms of this transfer (see the module docstring)."""
    out = {"roofline": ROOFLINE_LOG_SD}
    if not same_hardware:
        out["hardware"] = REACH_LOG_SD["hardware"]
    if dst.vendor != src.vendor:
        out["vendor"] = REACH_LOG_SD["vendor"]
    if dst.kind != src.kind:
        out["device"] = DEVICE_LOG_SD
    if precision_changes:
        out["precision"] = REACH_LOG_SD["precision"]
    return out


def _pct(log_half: float) -> str:
    return f"-{100 * (1 - math.exp(-log_half)):.0f}..+{100 * (math.exp(log_half) - 1):.0f}"


def transfer_batch_profile(data: dict, hardware: str, work: Work, precision: str | None = None) -> dict:
    """A batch-cost profile (its YAML mapping, validated) moved to `hardware`: every single-instance latency
    row scaled by its batch size's roofline ratio, a piecewise-linear curve through the new medians, the
    catalogue's price, and `estimated: true` with `estimate` (interval, ratios, inputs; sim/spec/profile.py)."""
    from sim.spec.profile import ProfileFile

    where = "profile"  # never text read from the file
    spec = ProfileFile.model_validate(data)  # callers load it first (sim.spec.profile.load_profile names the field)
    if not spec.hardware:
        raise DataFileError(f"{where}: hardware is not set (the hardware it was measured on is needed)")
    specs = load_specifications()
    if spec.hardware not in specs:
        raise DataFileError(f"{where}: hardware is not a key of specifications in models/hardware.yaml")
    source, target = spec_of(spec.hardware, specs), spec_of(hardware, specs)
    src_prec = spec.precision or "fp32"
    dst_prec = precision or src_prec
    for option, value in (("precision", src_prec), ("--precision", dst_prec)):
        if value not in BYTES:
            raise DataFileError(f"{where}: {option} must be one of {', '.join(BYTES)}")
    rows = sorted((r for r in spec.latency if r.instances == 1), key=lambda r: r.batch_size)
    ratios, new_rows, below = {}, [], []
    for row in rows:
        r = time_ratio(work, row.batch_size, (source, spec.hardware, src_prec), (target, hardware, dst_prec))
        ratios[row.batch_size] = r
        kernel = max(row.p50_ms - spec.overhead_ms, 0.0)
        if kernel < r["roofline_ms"]:
            below.append(row.batch_size)

        new = {"batch_size": row.batch_size, "instances": 1}
        for key in ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "mean_ms"):
            value = getattr(row, key)
            if value is not None:  # the overhead stays; the kernel time scales
                new[key] = round(max(spec.overhead_ms + (value - spec.overhead_ms) * r["ratio"], 1e-6), 6)
        new_rows.append(new)
    points = [[row["batch_size"], row["p50_ms"]] for row in new_rows]
    if len(points) >= 2:
        curve: dict[str, Any] = {"family": "piecewise_linear", "points": points}
    else:
        curve = {"family": "affine", "base_ms": 0.0, "per_item_ms": points[0][1] / points[0][0]}
    reaches = reach(source, target, spec.hardware == hardware, dst_prec != src_prec)
    half = Z95 * math.sqrt(sum(v * v for v in reaches.values()))
    catalogue = load_catalogue()
    price = catalogue[hardware].usd_per_hour if hardware in catalogue else None
    estimate = {
        "interval_log_half_width": round(half, 4),
        "interval_pct": _pct(half),
        "source_hardware": spec.hardware,
        "basis": f"roofline: {work.flops_per_item:.4g} FLOPs per item, {work.bytes_per_batch:.4g} bytes per batch "
        f"({work.source}) at the catalogue's {spec.hardware} -> {hardware} ratios",
        "from": f"{spec.name} ({spec.hardware}, {src_prec})",
        "to": f"{hardware} ({dst_prec})",
        "method": "kernel time split compute / memory by the source roofline, each part x its catalogue ratio "
        "(calibrate/transfer_model.py)",
        "work": {
            "flops_per_item": work.flops_per_item,
            "bytes_per_batch": work.bytes_per_batch,
            "bytes_per_item": work.bytes_per_item,
            "source": work.source,
        },
        "per_batch": {str(n): {k: round(v, 4) for k, v in r.items() if k != "roofline_ms"} for n, r in ratios.items()},
        "reach_log_sd": reaches,
        "interval": "95% prediction interval of each batch's median cost",
        "left_out": "rows measured with more than one busy instance (interference is the source host's)",
        "price": "catalogue price" if price is not None else "no catalogue price: add one to models/hardware.yaml",
    }
    if below:
        estimate["warning"] = (
            f"measured kernel time below the source roofline at batch sizes {below}: the FLOPs or bytes given "
            "overstate the work, so the split between compute and memory is suspect"
        )
    provenance = {
        "source": f"ESTIMATED by `servesim calibrate transfer` from {spec.name}, not measured",
        "source_provenance": spec.provenance.get("source", ""),
    }
    out = {
        "kind": "batch",
        "name": f"{spec.name}-on-{hardware}-estimated",
        "model": spec.model,
        "hardware": hardware,
        "usd_per_hour": price,
        "precision": dst_prec,
        "serving_stack": spec.serving_stack,
        "provenance": provenance,
        "overhead_ms": spec.overhead_ms,
        "curve": curve,
        "latency": new_rows,
        "estimated": True,
        "estimate": estimate,
    }
    if spec.max_batch_size is not None:
        out["max_batch_size"] = spec.max_batch_size
    if spec.default_spread is not None:
        out["default_spread"] = spec.default_spread.model_dump(exclude_none=True)
    return {k: v for k, v in out.items() if v is not None or k == "usd_per_hour"}


def band(data: dict) -> dict[str, dict]:
    """The estimate at its interval's ends ("fast", "slow"): every latency and curve point × exp(∓ width)."""
    width = data["estimate"]["interval_log_half_width"]
    out = {}
    for edge, sign in (("fast", -1.0), ("slow", 1.0)):
        k = math.exp(sign * width)
        rows = [{**row, **{key: v * k for key, v in row.items() if key.endswith("_ms")}} for row in data["latency"]]
        curve = dict(data["curve"])
        if "points" in curve:
            curve["points"] = [[n, ms * k] for n, ms in curve["points"]]
        else:
            curve["per_item_ms"] = curve["per_item_ms"] * k
        out[edge] = {
            **data,
            "name": f"{data['name']}-{edge}",
            "latency": rows,
            "curve": curve,
            "estimate": {**data["estimate"], "band_edge": edge},
        }
    return out


# --- counting the work from an ONNX graph --------------------------------------------------------------


def onnx_work(path: str | Path) -> Work:
    """FLOPs per item (MatMul, Gemm, Conv: 2 per multiply-add; element-wise operations left out) and the
    bytes of the initializers (the weights, read once a batch) of an ONNX graph, at batch size 1."""
    import numpy as np
    import onnx
    from onnx import numpy_helper, shape_inference

    from sim.spec.datafiles import shown

    try:
        model = onnx.load(str(path))
    except Exception:  # noqa: BLE001 - any unreadable file is one message naming it
        raise DataFileError(f"--onnx {shown(path)}: not a readable ONNX model") from None
    graph = model.graph
    weights = {init.name for init in graph.initializer}
    for value in graph.input:
        if value.name in weights:
            continue
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].ClearField("dim_param")
            dims[0].dim_value = 1
    try:
        inferred = shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001
        raise DataFileError(f"--onnx {shown(path)}: ONNX shape inference failed") from None
    shapes: dict[str, list[int]] = {}
    for value in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        dims = value.type.tensor_type.shape.dim
        shapes[value.name] = [d.dim_value if d.HasField("dim_value") else 0 for d in dims]
    for init in graph.initializer:
        shapes[init.name] = list(init.dims)
    flops, unknown = 0.0, []
    for node in inferred.graph.node:
        if node.op_type not in ("MatMul", "Gemm", "Conv"):
            continue
        out = shapes.get(node.output[0], [])
        a, w = shapes.get(node.input[0], []), shapes.get(node.input[1], [])
        if not out or 0 in out or not a or not w:
            unknown.append(node.op_type)
            continue
        if node.op_type == "Conv":  # weights [out channels, in channels / group, kernel...]
            macs = float(np.prod(out)) * (w[1] if len(w) > 1 else 1) * float(np.prod(w[2:]))
        elif node.op_type == "Gemm":
            trans_a = next((attr.i for attr in node.attribute if attr.name == "transA"), 0)
            k = a[0] if trans_a else a[-1]
            macs = float(np.prod(out)) * k
        else:
            macs = float(np.prod(out)) * a[-1]
        flops += 2.0 * macs
    if unknown:
        raise DataFileError(
            f"--onnx {shown(path)}: {len(unknown)} {'/'.join(sorted(set(unknown)))} node(s) without inferred shapes; "
            "give --flops-per-item and --bytes-per-batch instead"
        )
    weight_bytes = float(sum(numpy_helper.to_array(init).nbytes for init in graph.initializer))
    return Work(flops, weight_bytes, 0.0, f"counted from the ONNX graph {Path(path).name} (MatMul / Gemm / Conv)")


def is_batch_profile(path: Path) -> bool:
    """Whether a profile file is a batch-cost profile (kind: batch, the default) rather than an LLM one."""
    from sim.spec.profile import read_profile_yaml

    try:
        data = read_profile_yaml(path)
    except DataFileError:
        return False
    return isinstance(data, dict) and data.get("kind", "batch") == "batch"


def write_estimated(data: dict, path: Path) -> Path:
    """Write an estimated batch profile (checked as the engine loads it) under a header that says so."""
    from calibrate.profile import check_profile, dump_profile

    check_profile(data, str(path.name))
    e = data["estimate"]
    header = (
        f"# ESTIMATED model profile {data['name']}: not measured. Moved by `servesim calibrate transfer` from\n"
        f"# {e['from']} to {e['to']}; 95% interval per batch {e['interval_pct']}%. Format: sim/spec/profile.py\n"
    )
    path.write_text(header + dump_profile(data), encoding="utf-8")
    return path


def run_cli(args, path: Path, output_file) -> int:
    """`servesim calibrate transfer PROFILE --to HW` for a batch-cost profile (see calibrate/cli.py)."""
    import json

    from sim.spec.profile import load_profile, read_profile_yaml

    if args.tp is not None:
        raise DataFileError("--tp: a tensor-parallel degree applies to LLM profiles only")
    if args.onnx:
        if args.flops_per_item is not None or args.bytes_per_batch is not None:
            raise DataFileError("--onnx counts the work: give it, or --flops-per-item and --bytes-per-batch, not both")
        work = onnx_work(args.onnx)
    elif args.flops_per_item is None or args.bytes_per_batch is None:
        raise DataFileError(
            "a batch-cost profile moves by the work of one batch: give --flops-per-item and --bytes-per-batch "
            "(or --onnx MODEL.onnx to count them)"
        )
    else:
        work = Work(args.flops_per_item, args.bytes_per_batch, args.bytes_per_item or 0.0)
    load_profile(path)  # a broken profile is refused here, naming its file and field
    data = transfer_batch_profile(read_profile_yaml(path), args.to_hardware, work, args.precision)
    target = output_file(args.output or f"models/{data['name']}.yaml", "--output", suffixes=(".yaml", ".yml"))
    write_estimated(data, target)
    if args.band:
        for edge, edged in band(data).items():
            write_estimated(edged, target.with_name(f"{target.stem}-{edge}{target.suffix}"))
    e = data["estimate"]
    if args.json:
        print(json.dumps({"estimated": True, "profile": str(args.output or target), **e}, indent=1))
        return 0
    print(f"ESTIMATED (not measured): {data['name']} from {e['from']} -> {target}")
    print(f"  95% interval per batch: {e['interval_pct']}% (reach: {e['reach_log_sd']})")
    print(
        f"  work: {work.flops_per_item:.4g} FLOPs per item, {work.bytes_per_batch:.4g} bytes per batch ({work.source})"
    )
    for n, r in e["per_batch"].items():
        print(
            f"  batch {n}: compute share {r['compute_share']:.2f}, compute x{r['compute_ratio']:.3g}, "
            f"memory x{r['memory_ratio']:.3g} -> time x{r['ratio']:.3g}"
        )
    if "warning" in e:
        print(f"  warning: {e['warning']}")
    price = f"${data['usd_per_hour']}/h" if data["usd_per_hour"] is not None else e["price"]
    print(f"  price: {price}")
    return 0


# --- validation: no measured pair of batch profiles exists; LLM prefill stands in ------------------------


def validate() -> pd.DataFrame:
    """models/ holds no model measured on two catalogue hardware, so the nearest measured stand-in is used:
    LLM prefill of one prompt (a forward pass over a batch of prompt tokens) in the llm-perf table, A100 <->
    H100 at equal TP. Each measured (prompt tokens -> prefill ms) series becomes a batch profile whose items
    are tokens, with the work per GPU 2 x params / TP FLOPs a token and 2 bytes x params / TP of fp16 weights a
    batch; it is moved to the other GPU and compared with that GPU's measured prefill, row by row."""
    import pandas as pd

    from calibrate import llm_perf
    from calibrate.transfer import _table, measured

    keys = {(m, h, int(t)) for m, h, t in _table()[["model", "hardware", "tensor_parallel"]].itertuples(index=False)}
    records = []
    for model, hardware, tp in sorted(keys):
        other = {"a100-80gb": "h100-80gb", "h100-80gb": "a100-80gb"}.get(hardware)
        if other is None or (model, other, tp) not in keys:
            continue
        series = {}
        for hw in (hardware, other):
            rows = measured((model, hw, tp))
            series[hw] = rows[rows.batch_size == 1].groupby("prompt_size").prompt_time.median()
        params = llm_perf.ARCHITECTURES[model]["params_b"] * 1e9
        work = Work(2 * params / tp, 2 * params / tp, 0.0, f"{model} prefill, per GPU at TP{tp}")
        data = {
            "kind": "batch",
            "name": f"{model}-tp{tp}-{hardware}-prefill",
            "hardware": hardware,
            "precision": "fp16",
            "curve": {
                "family": "piecewise_linear",
                "points": [[int(n), float(v)] for n, v in series[hardware].items()],
            },
            "latency": [{"batch_size": int(n), "p50_ms": float(v)} for n, v in series[hardware].items()],
        }
        moved = transfer_batch_profile(data, other, work)
        width = moved["estimate"]["interval_log_half_width"]
        for row in moved["latency"]:
            truth = float(series[other].get(row["batch_size"], math.nan))
            if math.isnan(truth):
                continue
            records.append(
                {
                    "case": f"{hardware.split('-')[0].upper()} -> {other.split('-')[0].upper()}",
                    "pair": f"{model} TP{tp}",
                    "tokens": row["batch_size"],
                    "error": row["p50_ms"] / truth - 1,
                    "abs_error": abs(row["p50_ms"] / truth - 1),
                    "covered": abs(math.log(row["p50_ms"] / truth)) <= width,
                }
            )
    return pd.DataFrame.from_records(records)


def summary_table(detail: pd.DataFrame) -> pd.DataFrame:
    """Median and max |error| (%) and how often the 95% interval covers the measurement, per direction."""
    import pandas as pd

    grouped = detail.groupby("case", sort=False)

    return pd.DataFrame(
        {
            "rows": grouped.size(),
            "median_err_pct": 100 * grouped.abs_error.median(),
            "median_signed_pct": 100 * grouped.error.median(),
            "max_err_pct": 100 * grouped.abs_error.max(),
            "coverage_pct": 100 * grouped.covered.mean(),
        }
    ).round(1)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--validate", action="store_true", help="print the stand-in validation table")
    args = parser.parse_args(argv)
    if args.validate:
        sys.stdout.write(summary_table(validate()).to_string() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
