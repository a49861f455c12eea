"""`servesim` command line: run a scenario and print a table (rich) or the JSON contract.

Sub-commands owned by other modules register themselves through `register(subparsers)`; every user
mistake arrives here as a ServesimError and leaves as one clean line on stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
from pathlib import Path

from sim.errors import ServesimError

# Modules that add sub-commands; a module not present yet is skipped.
PLUGIN_MODULES = ("sim.cli.compare", "sim.cli.sweep", "sim.cli.size", "sim.cli.advise", "calibrate.cli")
EXIT_USER_ERROR = 2


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        return int(args.func(args) or 0)
    except ServesimError as exc:
        print(f"servesim: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except BrokenPipeError:  # output piped into `head` and closed early
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("servesim: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="servesim", description="Serving-capacity simulator: latency, throughput and cost of an ML serving stack."
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    run = subparsers.add_parser("run", help="simulate a scenario and print p50/p95/p99, throughput and cost")
    run.add_argument("scenario", type=Path, help="scenario YAML file")
    run.add_argument("--requests", type=int, help="requests per replication (overrides workload)")
    run.add_argument("--seed", type=int, help="random seed (overrides the scenario's)")
    run.add_argument("--replications", type=int, help="independent replications for 95%% CIs (default: scenario's, 5)")
    run.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                     help="override a field by dotted path, e.g. --set deployment.replicas=4 (YAML value)")
    run.add_argument("--json", action="store_true", help="print the JSON contract instead of a table")
    run.add_argument("--log", type=Path, help="write the request log (.parquet or .csv)")
    run.add_argument("--timeline", type=Path, metavar="PNG",
                     help="plot traffic, replicas, windowed p50/p99 and rejections over time")
    run.add_argument("--window-s", type=float, default=None, help="window of the over-time view (default: run / 24)")
    run.set_defaults(func=cmd_run)
    for module_name in PLUGIN_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                continue
            raise
        try:
            module.register(subparsers)
        except Exception as exc:  # a broken sub-command must not take `servesim run` down with it
            print(f"servesim: warning: commands from {module_name} unavailable ({exc})", file=sys.stderr)
    return parser


def parse_set_options(options: list[str]) -> dict:
    """`PATH=VALUE` pairs -> overrides; values are read as YAML (numbers, booleans, {inline: maps})."""
    from sim.spec.datafiles import parse_yaml

    overrides = {}
    for option in options:
        path, sep, value = option.partition("=")
        if not sep or not path.strip():
            raise ServesimError(f"--set {option!r}: expected PATH=VALUE, e.g. deployment.replicas=4")
        overrides[path.strip()] = parse_yaml(value, f"--set {path.strip()}", ServesimError)
    return overrides


def cmd_run(args: argparse.Namespace) -> int:
    from sim.cli.paths import check_run_args
    from sim.engine.run import simulate
    from sim.metrics.invariants import exit_code, with_status
    from sim.spec.scenario import load_scenario

    check_run_args(args)
    scenario = load_scenario(args.scenario)
    if args.set:
        scenario = scenario.with_overrides(parse_set_options(args.set))
    result = simulate(scenario, requests=args.requests, seed=args.seed, replications=args.replications)
    result.summary = with_status(result.summary, scenario)
    if args.log:
        write_log(result.log, args.log)
    window_s = args.window_s or _default_window_s(result.log)
    if args.timeline:
        from sim.metrics.timeline import timeline_figure

        timeline_figure(result.log, scenario, window_s).savefig(args.timeline, dpi=110)
    if args.json:
        print(json.dumps(json_ready(result.summary), indent=2))
    else:
        from sim.present.table import print_over_time, print_summary

        print_summary(result.summary)
        if scenario.deployment.autoscaling is not None or args.timeline:
            from sim.metrics.timeline import windowed

            print_over_time(windowed(result.log, scenario, window_s))
        if args.timeline:
            print(f"timeline plot: {args.timeline}")
    if result.summary["status"] != "ok":  # exit 3: see README, "Exit codes"
        print(f"servesim: {result.summary['status']}: {'; '.join(result.summary['status_reasons'])}", file=sys.stderr)
    return exit_code(result.summary)


def _default_window_s(log) -> float:
    """About 24 windows over the run, rounded to a readable length."""
    span_s = float(log["arrival_ms"].max()) / 1000.0
    for window in (1, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600):
        if span_s / window <= 30:
            return float(window)
    return 7200.0


def write_log(log, path: Path) -> None:
    if path.suffix == ".parquet":
        log.to_parquet(path, index=False)
    elif path.suffix == ".csv":
        log.to_csv(path, index=False)
    else:
        raise ServesimError(f"--log {path}: use a .parquet or .csv file name")


def json_ready(value):
    """NaN and infinity are not JSON: they become null."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return json_ready(value.item())
    return value


if __name__ == "__main__":
    sys.exit(main())
