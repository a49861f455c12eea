"""`servesim` command line: run a scenario and print a table (rich) or the JSON contract.

Sub-commands owned by other modules register themselves through `register(subparsers)`; every user
mistake arrives here as a ServesimError and leaves as one clean line on stderr with exit code 2. Every
number option of every command (calibrate's too) is read by `finite_float` / `whole_number`: NaN,
infinity and 30-digit numbers are bad input, refused before any work.

Exit codes (README, "Exit codes"; each command's --help): 0 ok; 1 a sweep with failed points (sim/cli/sweep.py);
2 bad input; 3 answered, but the result is unstable or nothing was served; 4 answered, but no candidate meets
the SLO (`size`, a failing `validate`).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import math
import sys
from pathlib import Path

from sim.cli.overrides import add_set_option, apply_set_options, parse_set_options  # noqa: F401 (re-exported)
from sim.cli.scenarios import scenario_argument
from sim.errors import ServesimError

# servesim's own sub-commands; each module's `register(subparsers)` adds its parser and imports nothing
# heavy (the work's imports happen when the command runs). Other packages (calibrate) add commands
# through the `servesim.commands` entry-point group, so sim never imports them.
COMMAND_MODULES = (
    "sim.cli.compare",
    "sim.cli.sweep",
    "sim.cli.size",
    "sim.cli.advise",
    "sim.cli.scenarios",
    "sim.cli.plan",
)
ENTRY_POINT_GROUP = "servesim.commands"
EXIT_OK = 0
EXIT_USER_ERROR = 2
EXIT_UNSTABLE = 3  # sim.metrics.invariants.EXIT_UNSTABLE
EXIT_NO_CANDIDATE = 4
EXIT_CODES_HELP = (
    "exit status: 0 ok; 1 sweep: some points failed (the others are stored); 2 bad input (a file, field or "
    "option refused); 3 answered, but unstable or nothing "
    "served (the load outgrows the fleet); 4 answered, but no candidate meets the SLO (size, a failing validate)"
)
MAX_OPTION_CHARS = 40  # a number option longer than this is refused without being read


def main(argv: list[str] | None = None) -> int:
    # Building the parser imports the commands' modules (pandas, pydantic schemas): objects that live as long
    # as the process and no garbage. The cycle collector stays out of it, and once a process (a test session
    # calls main many times) they are frozen out of its later walks: a tenth of a second of CPU per command.
    collecting = gc.isenabled()
    gc.disable()
    try:
        parser = build_parser()
        if not gc.get_freeze_count():
            gc.freeze()
    finally:
        if collecting:
            gc.enable()
    try:
        args = parser.parse_args(argv)
    except OptionError as exc:
        print(f"servesim: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
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
        prog="servesim",
        description="Serving-capacity simulator: latency, throughput and cost of an ML serving stack.",
        epilog=EXIT_CODES_HELP,
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    run = subparsers.add_parser("run", help="simulate a scenario and print p50/p95/p99, throughput and cost")
    run.add_argument("scenario", type=scenario_argument, help="scenario YAML file or shipped scenario name")
    run.add_argument("--requests", type=int, help="requests per replication (overrides workload)")
    run.add_argument("--seed", type=int, help="random seed (overrides the scenario's)")
    run.add_argument("--replications", type=int, help="independent replications for 95%% CIs (default: scenario's, 5)")
    add_set_option(run)
    run.add_argument(
        "--workers",
        type=int,
        default=1,
        help="run replications in parallel in this many processes (same results; default 1)",
    )
    run.add_argument("--json", action="store_true", help="print the JSON contract instead of a table")
    run.add_argument(
        "--log",
        type=Path,
        metavar="DIR",
        help="write the run log to folder DIR (parquet frames + scenario + settings); "
        "`servesim summarize DIR` recomputes the summary from it",
    )
    run.add_argument(
        "--timeline", type=Path, metavar="PNG", help="plot traffic, replicas, windowed p50/p99 and rejections over time"
    )
    run.add_argument("--window-s", type=float, default=None, help="window of the over-time view (default: run / 24)")
    run.set_defaults(func=cmd_run)
    summarize = subparsers.add_parser(
        "summarize", help="recompute the summary of a run log folder written by run --log"
    )
    summarize.add_argument("folder", type=Path, help="folder written by `servesim run --log`")
    summarize.add_argument("--json", action="store_true", help="print the JSON contract instead of a table")
    summarize.set_defaults(func=cmd_summarize)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    for entry in _entry_points():
        try:
            entry.load()(subparsers)
        except Exception as exc:  # a broken plug-in must not take `servesim run` down with it
            print(f"servesim: warning: commands from {entry.value} unavailable ({exc})", file=sys.stderr)
    _strict_numbers(parser)
    return parser


class OptionError(Exception):
    """A number option refused while parsing; not a ValueError, so argparse lets it through to `main`,
    which prints it as the one clean line of every bad input."""


def finite_float(text: str) -> float:
    """A float option: a finite number (NaN and infinity are refused as bad input, exit 2)."""
    try:
        value = float(text) if len(text) <= MAX_OPTION_CHARS else math.nan
    except ValueError:
        raise OptionError(f"{_shown(text)} is not a number") from None
    if not math.isfinite(value):
        raise OptionError(f"{_shown(text)} must be a finite number")
    return value


def whole_number(text: str) -> int:
    """An int option: a whole number of at most MAX_INT_DIGITS digits (a longer one is past every bound)."""
    from sim.spec.bounds import MAX_INT_DIGITS

    digits = text.strip().lstrip("+-")
    if len(digits) > MAX_INT_DIGITS and digits.isdigit():
        raise OptionError(f"a whole number of {len(digits)} digits is past every limit (at most {MAX_INT_DIGITS})")
    try:
        return int(text)
    except ValueError:
        raise OptionError(f"{_shown(text)} is not a whole number") from None


def _shown(text: str) -> str:
    return text if len(text) <= MAX_OPTION_CHARS else text[:MAX_OPTION_CHARS] + "..."


def _naming(read, action: argparse.Action):
    """`read` (finite_float / whole_number) with its refusals naming the option."""
    name = action.option_strings[-1] if action.option_strings else action.dest

    def checked(text: str):
        try:
            return read(text)
        except OptionError as exc:
            raise OptionError(f"{name}: {exc}") from None

    checked.__name__ = read.__name__
    checked.reads = read
    return checked


def _strict_numbers(parser: argparse.ArgumentParser) -> None:
    """Every `type=float` / `type=int` option of `parser` and its sub-commands read by `finite_float` /
    `whole_number`, and each command's --help ending with the exit codes."""
    if EXIT_CODES_HELP not in (parser.epilog or ""):
        parser.epilog = f"{parser.epilog}\n\n{EXIT_CODES_HELP}" if parser.epilog else EXIT_CODES_HELP
    for action in parser._actions:
        if action.type is float:
            action.type = _naming(finite_float, action)
        elif action.type is int:
            action.type = _naming(whole_number, action)
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                _strict_numbers(sub)


def _entry_points():
    from importlib.metadata import entry_points

    return sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda entry: entry.name)


def cmd_run(args: argparse.Namespace) -> int:
    from sim.analysis.simulate import finish_log, save_run, simulate
    from sim.engine.runlog import RunLogWriter
    from sim.cli.paths import check_run_args
    from sim.metrics.invariants import exit_code
    from sim.present.progress import steps
    from sim.spec.scenario import load_scenario

    check_run_args(args)
    scenario = load_scenario(args.scenario)
    scenario = apply_set_options(scenario, args.set)
    # The log is kept only for what reads it (the timeline plot, the table's over-time view); otherwise each
    # replication is summarised as it finishes (and written, with --log) and dropped: memory is one
    # replication's.
    keep_log = bool(args.timeline or (not args.json and scenario.deployment.autoscaling is not None))
    settings = {
        "seed": args.seed if args.seed is not None else scenario.seed,
        "requests": args.requests,
        "replications": args.replications or scenario.replications,
    }
    writer = RunLogWriter(args.log) if args.log and not keep_log else None
    try:
        with steps(f"simulating {scenario.name}", "replications") as on_replication:
            result = simulate(
                scenario,
                requests=args.requests,
                seed=args.seed,
                replications=args.replications,
                workers=args.workers,
                on_replication=on_replication,
                keep_log=keep_log,
                each_log=writer.append if writer else None,
            )
    finally:
        if writer:
            writer.close()
    if writer:
        finish_log(writer, scenario, settings)
    elif args.log:
        save_run(result, args.log, settings)
    show(result, args.json, args.timeline, args.window_s)
    return exit_code(result.summary)


def cmd_summarize(args: argparse.Namespace) -> int:
    from sim.analysis.simulate import load_run

    from sim.metrics.invariants import exit_code

    # Read replication by replication unless the table's over-time view needs the whole log.
    keep_log = not args.json and _autoscaled(args.folder)
    result = load_run(args.folder, keep_log=keep_log)
    show(result, args.json, None, None)
    return exit_code(result.summary)


def _autoscaled(folder: Path) -> bool:
    """Whether a run log folder holds an autoscaling timeline (the table then shows the over-time view)."""
    return (Path(folder) / "timeline.parquet").is_file()


def show(result, as_json: bool, timeline: Path | None, window_s: float | None) -> None:
    """Print a run's summary (table or JSON) and, for time-varying runs, the over-time view."""
    scenario = result.scenario
    if result.run is not None:
        window_s = window_s or _default_window_s(result.log)
    if timeline:
        from sim.present.timeline import timeline_figure

        timeline_figure(result.run, scenario, window_s).savefig(timeline, dpi=110)
    if result.summary["status"] != "ok":  # exit 3: see README, "Exit codes"
        print(f"servesim: {result.summary['status']}: {'; '.join(result.summary['status_reasons'])}", file=sys.stderr)
    if as_json:
        from sim.metrics.llm import without_undefined_utilization

        print(json.dumps(json_ready(without_undefined_utilization(result.summary)), indent=2))
        return
    from sim.present.table import print_over_time, print_summary

    print_summary(result.summary)
    if result.run is not None and (scenario.deployment.autoscaling is not None or timeline):
        from sim.metrics.timeline import windowed

        print_over_time(windowed(result.run, scenario, window_s))
    if timeline:
        print(f"timeline plot: {timeline}")


def _default_window_s(log) -> float:
    """About 30 windows over the run, rounded to a readable length."""
    from sim.metrics.windows import readable_window_s

    return readable_window_s(float(log["arrival_ms"].max()) / 1000.0)


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
