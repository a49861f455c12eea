"""`servesim calibrate ...` and `servesim validate`: argparse sub-commands; each handler returns an exit code
and raises ServesimError subclasses for user mistakes (sim/cli/main.py prints those as one clean line)."""

from __future__ import annotations

import argparse
import datetime as dt
import os
from pathlib import Path

from sim.cli.paths import input_file, output_file
from sim.errors import ServesimError


class CalibrateUsageError(ServesimError):
    """A bad command-line option of a calibrate command."""


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive whole numbers, got {text!r}")
    return values


def _rate_list(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError("expected comma-separated request rates (req/s)") from None
    if not values or any(not 0 < v < 1e6 for v in values):
        raise argparse.ArgumentTypeError("expected request rates between 0 and 1e6 req/s")
    return values


def _count_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError("expected comma-separated whole numbers") from None
    if not values or any(not 0 <= v <= 64 for v in values):
        raise argparse.ArgumentTypeError("expected whole numbers from 0 to 64")
    return values


def _dim(text: str) -> tuple[str, int]:
    name, sep, value = text.partition("=")
    if not sep or not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected NAME=SIZE (e.g. sequence=128), got {text!r}")
    return name, int(value)


def _add_meta(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("provenance written into the profile")
    g.add_argument("--name", help="profile name (default: the output file's stem)")
    g.add_argument("--model", dest="model_desc", help="what model was measured")
    g.add_argument("--hardware", help="hardware name (a key of models/hardware.yaml gives the price)")
    g.add_argument("--usd-per-hour", type=float, help="hardware price, USD per hour (default: from the catalogue)")
    g.add_argument("--precision", help="e.g. fp32, fp16, int8")
    g.add_argument("--serving-stack", help="e.g. 'Triton 24.05, TensorRT 10'")
    g.add_argument("--source", help="where the measurements come from (citation, URL, or 'measured by ...')")
    g.add_argument("--date", help="date of the measurements (default: today)")
    g.add_argument("--note", help="anything a reader of the profile should know (conditions, caveats)")
    p.add_argument(
        "--overhead-ms", type=float, default=0.0, help="per-batch overhead outside the kernel, ms (default 0)"
    )
    p.add_argument(
        "--max-batch-size", type=int, help="largest batch the profile allows (default: largest measured; at most 2x it)"
    )
    p.add_argument(
        "--family",
        default="auto",
        choices=["auto", "affine", "roofline", "piecewise_linear"],
        help="curve family (default auto: the simplest that fits within tolerance)",
    )
    p.add_argument("--tolerance-pct", type=float, default=2.0, help="fit tolerance per measured median, %% (default 2)")
    p.add_argument("--no-plot", action="store_true", help="do not write the PNG beside the profile")


def _meta(args: argparse.Namespace, **defaults) -> dict:
    provenance = {}
    if getattr(args, "source", None) or defaults.get("source"):
        provenance["source"] = args.source or defaults["source"]
    provenance["date"] = args.date or dt.date.today().isoformat()
    if getattr(args, "note", None):
        provenance["note"] = args.note
    for key in ("measured_on", "measurements_file", "method", "load_average"):
        if defaults.get(key):
            provenance[key] = defaults[key]
    return dict(
        name=args.name,
        model=args.model_desc or defaults.get("model"),
        hardware=args.hardware or defaults.get("hardware"),
        usd_per_hour=args.usd_per_hour,
        precision=args.precision or defaults.get("precision"),
        serving_stack=args.serving_stack or defaults.get("serving_stack"),
        provenance=provenance,
        overhead_ms=defaults.get("overhead_ms", args.overhead_ms),
        max_batch_size=args.max_batch_size,
    )


def _finish(data: dict, report: str, out: Path, png: Path | None) -> int:
    print(report)
    print(f"wrote {out}" + (f" and {png}" if png else ""))
    return 0


# --------------------------------------------------------------------------- handlers
def cmd_fit(args: argparse.Namespace) -> int:
    from calibrate.fit import load_measurements
    from calibrate.profile import fit_measurements

    input_file(args.measurements, "measurements")
    output_file(args.output, "--output", (".yaml", ".yml"))
    if args.serving_log:
        from calibrate.serving_log import load_serving_log

        measurements, overhead_ms, note = load_serving_log(
            args.measurements, args.server_column, args.kernel_column, args.batch_id_column
        )
        meta = _meta(args, measurements_file=str(args.measurements), method=note, overhead_ms=overhead_ms)
    else:
        measurements = load_measurements(args.measurements, latency_column=args.latency_column)
        meta = _meta(args, measurements_file=str(args.measurements))
    meta["name"] = meta["name"] or Path(args.output).stem
    data, report, png = fit_measurements(
        measurements, args.output, family=args.family, tolerance_pct=args.tolerance_pct, plot=not args.no_plot, **meta
    )
    return _finish(data, report, Path(args.output), png)


def cmd_measure(args: argparse.Namespace) -> int:
    from calibrate.measure import MeasureSettings, machine_description, measure
    from calibrate.networks import BUILTIN
    from calibrate.profile import fit_measurements

    if args.network in BUILTIN:
        build, describe = BUILTIN[args.network]
        model, model_desc = build(), describe()
    else:
        model, model_desc = str(args.network), f"ONNX model {Path(args.network).name}"
        if not Path(args.network).is_file():
            raise CalibrateUsageError(
                f"{args.network}: neither a built-in model ({', '.join(BUILTIN)}) nor an existing .onnx file"
            )
    stem = args.network if args.network in BUILTIN else Path(args.network).stem
    out = Path(args.output or f"models/{stem}-cpu-onnxruntime.yaml")
    csv = Path(args.csv) if args.csv else out.with_suffix(".csv")
    settings = MeasureSettings(
        batch_sizes=args.batch_sizes,
        instances=args.instances,
        warmup=args.warmup,
        repeats=args.repeats,
        threads=args.threads,
        interference_batch_sizes=args.interference_batch_sizes,
    )
    where = machine_description(args.threads)
    print(f"measuring {model_desc}\non {where}")

    def progress(b: int, k: int, wall_ms: float, cpu_ms: float) -> None:
        print(f"  batch {b:>4}, {k} busy instance(s): median {wall_ms:.3f} ms wall-clock, {cpu_ms:.3f} ms thread CPU")

    if args.clock == "cpu" and args.threads != 1:
        raise CalibrateUsageError("--clock cpu needs --threads 1 (the run's CPU time is then the calling thread's)")
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    frame = measure(model, settings, fixed_dims=dict(args.dim or []), seed=args.seed, progress=progress)
    load_after = os.getloadavg() if hasattr(os, "getloadavg") else None
    csv.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(csv, index=False, float_format="%.5f")
    meta = _meta(
        args,
        model=model_desc,
        hardware=f"cpu-{os.cpu_count()}vcpu",
        precision="fp32" if args.network in BUILTIN else None,
        serving_stack=f"ONNX Runtime CPU, {args.threads} intra-op thread(s) per instance",
        source="measured live with `servesim calibrate measure`",
        measured_on=where,
        measurements_file=csv.name,
        method=f"{args.warmup} warm-up runs then {args.repeats} timed runs per batch size and instance count, spread"
        f" over {settings.rounds} interleaved passes; concurrent instances are sessions in parallel threads, each timed"
        f" run overlapping all others; clock: {'wall-clock' if args.clock == 'wall' else 'thread CPU time'}",
        load_average=None
        if load_before is None
        else f"1-min load average {load_before[0]:.2f} before, {load_after[0]:.2f} after, on {os.cpu_count()} logical CPUs",
    )
    meta["name"] = meta["name"] or out.stem
    fitted = frame[["batch_size", "instances", "latency_ms" if args.clock == "wall" else "cpu_ms"]]
    if args.co_load_rps:
        from calibrate.co_load import CoLoadSettings, co_load_rows, measure_co_load

        co_settings = CoLoadSettings(
            client_rps=args.co_load_rps,
            siblings=args.co_load_siblings,
            batch_sizes=args.co_load_batch_sizes,
            warmup=args.warmup,
            repeats=args.co_load_repeats,
            threads=args.threads,
        )
        co_frame = measure_co_load(model, co_settings, seed=args.seed)
        co_csv = csv.with_name(csv.stem + "-co-load.csv")
        co_frame.to_csv(co_csv, index=False, float_format="%.5f")
        meta["co_load"] = co_load_rows(co_frame, "latency_ms" if args.clock == "wall" else "cpu_ms")
        meta["provenance"]["co_load_file"] = co_csv.name
        for row in meta["co_load"]:
            print(
                f"  co-load: batch {row['batch_size']}, client {row['client_rps']:g} req/s, {row['siblings']} sibling(s):"
                f" median {row['p50_ms']:.3f} ms, {row['slowdown']:.3f}x alone"
            )
        print(f"wrote {co_csv}")
    wall, cpu = frame["latency_ms"].median(), frame["cpu_ms"].median()
    print(
        f"median wall-clock {wall:.3f} ms vs thread CPU {cpu:.3f} ms over all runs"
        + ("" if args.threads != 1 else f" ({(wall - cpu) / wall * 100:.0f}% of wall time not on this thread's CPU)")
    )
    data, report, png = fit_measurements(
        fitted.set_axis(["batch_size", "instances", "latency_ms"], axis=1),
        out,
        family=args.family,
        tolerance_pct=args.tolerance_pct,
        plot=not args.no_plot,
        **meta,
    )
    print(f"wrote {csv}")
    return _finish(data, report, out, png)


def cmd_import_perf_analyzer(args: argparse.Namespace) -> int:
    from calibrate.fit import fit_curve
    from calibrate.importers import parse_file_batch, perf_analyzer_summary
    from calibrate.profile import build_profile, check_profile, fit_report, plot_profile, write_profile

    files = dict(parse_file_batch(spec) for spec in args.files)
    summary, overhead = perf_analyzer_summary(files)
    fit = fit_curve(summary, family=args.family, tolerance_pct=args.tolerance_pct)
    meta = _meta(
        args,
        source="imported from NVIDIA Triton perf_analyzer CSV: "
        + ", ".join(f"{Path(p).name} (batch {b})" for b, p in sorted(files.items())),
        method="lowest-concurrency row per file: batch cost = server compute input + infer + output;"
        " spread from client p90/p99 minus client p50",
        overhead_ms=overhead,
    )
    out = Path(args.output)
    meta["name"] = meta["name"] or out.stem
    data = build_profile(summary, fit, **meta)
    write_profile(data, out)
    png = None if args.no_plot else plot_profile(None, summary, check_profile(data, str(out)), out.with_suffix(".png"))
    print(f"per-batch overhead outside the kernel (smallest compute input + output): {overhead:.3f} ms")
    return _finish(data, fit_report(summary, fit), out, png)


def cmd_derive(args: argparse.Namespace) -> int:
    from calibrate.levers import derive, lever_summary
    from calibrate.profile import check_profile, write_profile
    from sim.spec.profile import read_profile_yaml

    base = read_profile_yaml(args.base)
    check_profile(base, str(args.base))
    data = derive(base, args.lever, speedup=args.speedup, name=args.name)
    out = Path(args.output) if args.output else Path(args.base).with_name(f"{data['name']}.yaml")
    check_profile(data, str(out))
    write_profile(data, out)
    print(lever_summary(data["lever"]))
    print(f"wrote {out}")
    return 0


def cmd_levers(args: argparse.Namespace) -> int:
    from calibrate.levers import LEVERS

    for lever in LEVERS.values():
        low, high = lever.speedup_range
        print(f"{lever.name:<19} x{low:g}-{high:g} (default x{low:g}) vs {lever.baseline}")
        print(f"{'':<19} accuracy: {lever.accuracy_cost}")
        print(f"{'':<19} source: {lever.source}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from calibrate.levers import lever_summary
    from sim.spec.profile import load_profile

    profile = load_profile(args.profile)
    print(
        f"{profile.name}: {profile.model or ''} on {profile.hardware or '?'} ({profile.precision or '?'}),"
        f" ${profile.usd_per_hour if profile.usd_per_hour is not None else '?'}/h"
    )
    print(f"source: {profile.provenance.get('source', '?')} ({profile.provenance.get('date', '?')})")
    print(
        f"curve: {profile.curve_family}; batch 1..{profile.max_batch_size}; {profile.max_instances} instance level(s);"
        f" overhead {profile.per_request_overhead_ms:g} ms per batch"
    )
    print(lever_summary(profile.lever))
    print("batch  " + "  ".join(f"p50/p99 ms @{k} busy" for k in range(1, profile.max_instances + 1)))
    for n in sorted({1, 2, 4, 8, 16, 32, 64, 128, profile.max_batch_size}):
        if n <= profile.max_batch_size:
            cells = [
                f"{profile.quantile_ms(n, 0.5, k):8.3f}/{profile.quantile_ms(n, 0.99, k):<8.3f}"
                for k in range(1, profile.max_instances + 1)
            ]
            print(f"{n:>5}  " + "     ".join(cells))
    for warning in profile.warnings:
        print(f"warning: {warning}")
    if args.plot:
        from calibrate.profile import curve_figure

        figure = curve_figure(profile)
        figure.savefig(args.plot, dpi=110)
        print(f"wrote {args.plot}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from calibrate.validate import format_comparison, validate_scenario

    input_file(args.scenario, "scenario", max_bytes=1_000_000)
    input_file(args.measured, "measured")
    table, what, warnings = validate_scenario(
        args.scenario,
        args.measured,
        requests=args.requests,
        seed=args.seed,
        replications=args.replications,
        level=args.level,
    )
    print(f"measured: {what}")
    print(format_comparison(table))
    for warning in warnings:
        print(f"warning: {warning}")
    # A percentile passes when it lies within the tolerance, or when the prediction's and the
    # measurement's 95% intervals overlap (the difference is within what the measurement can tell).
    overlap = table["agrees"].fillna(0.0).astype(bool)
    if args.tolerance_pct is not None:
        failing = table[(table["error_pct"].abs() > args.tolerance_pct) & ~overlap]
        if not failing.empty:
            names = ", ".join(failing["percentile"])
            print(f"FAIL: {names} off by more than {args.tolerance_pct:g}% and outside the measurement's interval")
            return 4  # answered, but the prediction fails the tolerance (README, "Exit codes")
        print(f"OK: every percentile within {args.tolerance_pct:g}% or within the measurement's interval")
    elif table["agrees"].notna().any():
        print(
            "agreement within the 95% intervals: "
            + ("every percentile" if overlap.all() else ", ".join(table.loc[~overlap, "percentile"]) + " outside")
        )
    return 0


# --------------------------------------------------------------------------- wiring
def add_validate_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("validate", help="compare a scenario's predicted p50/p95/p99 with a real load test")
    p.add_argument("scenario", help="scenario YAML")
    p.add_argument("measured", help="CSV of per-request latencies (latency_ms) or perf_analyzer output")
    p.add_argument("--requests", type=int, help="requests to simulate (default: the scenario's)")
    p.add_argument("--seed", type=int)
    p.add_argument("--replications", type=int)
    p.add_argument("--level", type=float, help="perf_analyzer concurrency / request-rate row to compare with")
    p.add_argument("--tolerance-pct", type=float, help="exit 4 if any percentile is off by more than this")
    p.set_defaults(func=cmd_validate)
    return p


def register(subparsers, include_validate: bool = True) -> None:
    """Add `calibrate` (fit, measure, import-perf-analyzer, derive, levers, show) and, unless told not to, `validate`."""
    cal = subparsers.add_parser("calibrate", help="measure and fit model profiles (models/NAME.yaml)")
    sub = cal.add_subparsers(dest="calibrate_command", metavar="COMMAND", required=True)

    p = sub.add_parser("import-llm-perf", help="fit the shipped LLM profiles from the splitwise-sim llm-perf table")
    p.add_argument("--csv", help="the llm-perf CSV (default: models/data/llm-perf-a100-h100.csv)")
    p.add_argument("--out", help="folder for the profiles (default: models/)")
    p.set_defaults(func=cmd_import_llm_perf)

    p = sub.add_parser(
        "transfer",
        help="estimate an LLM or batch-cost profile on hardware (or a TP degree) it was not measured on, with an interval",
    )
    p.add_argument("profile", help="an LLM profile (kind: llm) or a model stage's batch-cost profile (kind: batch)")
    p.add_argument(
        "--to",
        required=True,
        dest="to_hardware",
        help="target hardware: a key of specifications in models/hardware.yaml",
    )
    p.add_argument("--tp", type=int, help="target tensor-parallel degree (default: the profile's)")
    p.add_argument(
        "--precision", help="weights' precision on the target, e.g. fp8 (default: the profile's; widens the interval)"
    )
    p.add_argument("-o", "--output", help="profile to write (default: models/MODEL-tpN-HARDWARE-estimated.yaml)")
    p.add_argument("--json", action="store_true", help="print the estimate (terms, factors, interval) as JSON")
    p.add_argument(
        "--band", action="store_true", help="also write the interval's ends beside it: NAME-fast.yaml, NAME-slow.yaml"
    )
    g = p.add_argument_group("a batch-cost profile: the work of one batch (calibrate/transfer_model.py)")
    g.add_argument("--flops-per-item", type=float, help="FLOPs one item of a batch costs (a multiply-add is 2)")
    g.add_argument("--bytes-per-batch", type=float, help="bytes read once per batch (the weights)")
    g.add_argument("--bytes-per-item", type=float, help="bytes moved per item (activations; default 0)")
    g.add_argument("--onnx", help="count FLOPs per item and weight bytes from this ONNX graph instead")
    p.set_defaults(func=cmd_transfer)

    p = sub.add_parser("regimes", help="fit a slow-regime model (scenario `slowdown:`) to a service-time log in order")
    p.add_argument("log", help="CSV, one row per batch in the order served")
    p.add_argument("--column", default="service_ms", help="service time in ms (default service_ms)")
    p.add_argument("--time-column", help="batch start time in ms (default: batches back to back)")
    p.set_defaults(func=cmd_regimes)

    p = sub.add_parser("fit", help="fit a profile from a long-format measurements CSV")
    p.add_argument("measurements", help="CSV: batch_size, latency_ms [, instances], one row per repeat")
    p.add_argument("-o", "--output", required=True, help="profile to write, e.g. models/NAME.yaml")
    p.add_argument(
        "--latency-column",
        default="latency_ms",
        help="column holding the latency in ms (default latency_ms; e.g. cpu_ms of a `measure` CSV)",
    )
    g = p.add_argument_group("in-situ calibration from a serving log (one row per request, any batch sizes)")
    g.add_argument(
        "--serving-log",
        action="store_true",
        help="the CSV is a per-request serving log: batch_size, server time [, kernel time, batch id]",
    )
    g.add_argument("--server-column", default="server_ms", help="per-request time in the server after the queue, ms")
    g.add_argument("--kernel-column", help="the batch's kernel time, ms (separates the per-batch overhead)")
    g.add_argument("--batch-id-column", help="id of the batch a request rode in (each batch then counts once)")
    _add_meta(p)
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("measure", help="measure a model live with ONNX Runtime on this CPU and fit its profile")
    p.add_argument(
        "network",
        nargs="?",
        default="mlp",
        help="built-in 'mlp' (default) or 'bert-base-encoder', or a path to a .onnx file",
    )
    p.add_argument("-o", "--output", help="profile to write (default models/MODEL-cpu-onnxruntime.yaml)")
    p.add_argument("--csv", help="measurements CSV to write (default: beside the profile)")
    p.add_argument("--batch-sizes", type=_int_list, default=(1, 2, 4, 8, 16, 32, 64), help="default 1,2,4,8,16,32,64")
    p.add_argument(
        "--instances", type=_int_list, default=(1, 2), help="concurrent busy instances to measure, default 1,2"
    )
    p.add_argument(
        "--interference-batch-sizes", type=_int_list, help="batch sizes measured at >1 instance (default: all)"
    )
    p.add_argument("--warmup", type=int, default=10, help="untimed runs first (default 10)")
    p.add_argument("--repeats", type=int, default=50, help="timed runs per batch size and instance count (default 50)")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads per instance (default 1)")
    p.add_argument(
        "--dim", type=_dim, action="append", help="size of a symbolic input dimension, NAME=SIZE (repeatable)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="fit wall-clock time (default) or the running thread's CPU time (leaves out time slices lost"
        " to other processes on a shared machine; needs --threads 1)",
    )
    g = p.add_argument_group("co-load: the kernel beside the rest of the serving path (calibrate/co_load.py)")
    g.add_argument(
        "--co-load-rps",
        type=_rate_list,
        help="client rates (req/s) to measure the kernel beside: a load generator process and a reply thread",
    )
    g.add_argument(
        "--co-load-siblings", type=_count_list, default=(0,), help="other busy sessions beside it, default 0"
    )
    g.add_argument("--co-load-batch-sizes", type=_int_list, default=(1,), help="batch sizes measured so, default 1")
    g.add_argument("--co-load-repeats", type=int, default=60, help="timed runs per level and batch size (default 60)")
    _add_meta(p)
    p.set_defaults(func=cmd_measure)

    p = sub.add_parser(
        "import-perf-analyzer", help="build a profile from Triton perf_analyzer CSVs, one per batch size"
    )
    p.add_argument("files", nargs="+", help="PATH:BATCH_SIZE, e.g. run_b1.csv:1 run_b8.csv:8")
    p.add_argument("-o", "--output", required=True, help="profile to write")
    _add_meta(p)
    p.set_defaults(func=cmd_import_perf_analyzer)

    p = sub.add_parser("derive", help="apply an optimisation lever (int8, fp16, ...) to a profile")
    p.add_argument("base", help="base profile YAML")
    p.add_argument(
        "--lever",
        required=True,
        help="fp16, int8, int4-weight-only, structured-pruning, distillation, tensorrt, onnxruntime",
    )
    p.add_argument("--speedup", type=float, help="override the assumed forward speed-up (default: conservative end)")
    p.add_argument("--name", help="name of the derived profile (default BASE-LEVER)")
    p.add_argument("-o", "--output", help="derived profile to write (default: beside the base, NAME.yaml)")
    p.set_defaults(func=cmd_derive)

    p = sub.add_parser("levers", help="list the optimisation levers, their speed-up ranges, accuracy costs and sources")
    p.set_defaults(func=cmd_levers)

    p = sub.add_parser("show", help="print a profile's provenance and batch curve")
    p.add_argument("profile")
    p.add_argument("--plot", help="also write the curve (p50 and p1-p99 band per instance count) as a PNG")
    p.set_defaults(func=cmd_show)

    if include_validate:
        add_validate_parser(subparsers)


def cmd_import_llm_perf(args) -> int:
    from calibrate.llm_perf import main as llm_perf_main

    argv = [*(["--csv", args.csv] if args.csv else []), *(["--out", args.out] if args.out else [])]
    return llm_perf_main(argv)


def cmd_regimes(args) -> int:
    from calibrate.regimes import fit_regimes_from_csv

    print(fit_regimes_from_csv(args.log, args.column, args.time_column).report())
    return 0


def cmd_transfer(args) -> int:
    import json

    from calibrate import transfer_model
    from calibrate.transfer import band, transfer, write_estimated
    from sim.spec.llm_cost import load_llm_profile

    if args.tp is not None and args.tp < 1:
        raise CalibrateUsageError(f"--tp {args.tp}: must be a positive whole number")
    path = input_file(args.profile, "profile", suffixes=(".yaml", ".yml"))
    if transfer_model.is_batch_profile(path):
        return transfer_model.run_cli(args, path, output_file)
    if args.onnx or args.flops_per_item is not None or args.bytes_per_batch is not None:
        raise CalibrateUsageError("--onnx / --flops-per-item / --bytes-per-batch apply to batch-cost profiles only")
    profile = load_llm_profile(path)
    estimated = transfer(profile, args.to_hardware, args.tp, precision=args.precision)
    target = output_file(args.output or f"models/{estimated.name}.yaml", "--output", suffixes=(".yaml", ".yml"))
    write_estimated(estimated, target)
    if args.band:
        for edge, profile in band(estimated).items():
            write_estimated(profile, target.with_name(f"{target.stem}-{edge}{target.suffix}"))
    e = estimated.estimate
    if args.json:
        print(json.dumps({"estimated": True, "profile": str(args.output or target), **e}, indent=1))
        return 0
    print(f"ESTIMATED (not measured): {estimated.name} from {e['from']} -> {target}")
    print(
        f"  95% interval per iteration: prefill {e['interval_pct']['prefill']}%, decode {e['interval_pct']['decode']}%"
    )
    print(f"  spec ratios (time x): {e['spec_ratios']}; learned efficiency: {e['efficiency']}")
    print(f"  learned from: {', '.join(e['learned_from'])}; reach: {e['reach_log_sd'] or 'measured hardware'}")
    price = f"${estimated.usd_per_hour}/h per replica" if estimated.usd_per_hour is not None else e["price"]
    print(f"  price: {price}")
    return 0
