"""`servesim sweep SWEEP.yaml`: run a sweep (resumably) and print its points table.

Registered by sim/cli/main.py through `register(subparsers)`. Exit code 0 when every point ran, 1 when some
points failed (their errors are in the tables and on stderr), 2 for a bad sweep file or option.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

EXIT_SOME_POINTS_FAILED = 1
MAX_ROWS_SHOWN = 40
MAX_ERRORS_SHOWN = 5


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="run a scenario over axes of its fields × replications (local pool or a Dask cluster), resumably",
        description=(
            "Run every point of a sweep file (grid, random or Latin hypercube over dotted scenario fields) "
            "× replications. Each finished run is appended to OUT as it lands; re-running the same command "
            "skips finished runs. Writes replications.{parquet,csv}, points.{parquet,csv} and plots/ in OUT."
        ),
    )
    parser.add_argument("sweep", type=Path, help="sweep YAML file")
    parser.add_argument("--out", type=Path, help="output folder (default: sweep-NAME in the current folder)")
    parser.add_argument(
        "--executor", default="auto", choices=("auto", "inprocess", "processes", "dask"),
        help="where runs execute (default auto: in-process for a handful of runs, else a local process pool; "
        "Dask when --scheduler, --dask-local or DASK_SCHEDULER_ADDRESS is given)",
    )  # fmt: skip
    parser.add_argument("--workers", type=int, help="processes of the local pool (default: all cores)")
    parser.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="run on this Dask scheduler")
    parser.add_argument(
        "--dask-local", type=int, nargs="?", const=os.cpu_count() or 1, metavar="N",
        help="start a Dask LocalCluster of N single-threaded workers (default N: all cores)",
    )  # fmt: skip
    parser.add_argument("--replications", type=int, help="replications per point (overrides the sweep file)")
    parser.add_argument("--requests", type=int, help="requests per replication (overrides the sweep file)")
    parser.add_argument("--fresh", action="store_true", help="forget results already in OUT and run everything")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--no-plots", action="store_true", help="do not draw plots")
    parser.add_argument("--json", action="store_true", help="print a JSON summary (files, counts, points) on stdout")
    parser.set_defaults(func=cmd_sweep)


def cmd_sweep(args: argparse.Namespace) -> int:
    from sim.analysis.sweep.run import load_sweep, run_sweep
    from sim.cli.paths import check_sweep_args

    check_sweep_args(args)
    sweep = load_sweep(args.sweep).with_options(replications=args.replications, requests=args.requests)
    out = args.out or Path(f"sweep-{sweep.name}")
    from sim.present.progress import ProgressBar

    progress = ProgressBar() if not args.no_progress and not args.json and sys.stderr.isatty() else None
    from sim.analysis.sweep.store import ResultStore

    with ResultStore(out) as store:  # held through the plots too: a second sweep on `out` is refused
        result = run_sweep(
            sweep,
            out,
            executor=args.executor,
            workers=args.workers,
            scheduler=args.scheduler,
            dask_local=args.dask_local,
            fresh=args.fresh,
            progress=progress,
            store=store,
        )
        if not args.no_plots:
            from sim.present.sweep_plots import write_plots

            result.files.update(write_plots(sweep, result.points, Path(out) / "plots"))
    failed = result.failed_points
    if args.json:
        print(json.dumps(_json_summary(result), indent=2))
    else:
        _print_table(result)
    for _, row in failed.head(MAX_ERRORS_SHOWN).iterrows():
        print(f"servesim: point {row['point']} {row['status']}: {row['error']}", file=sys.stderr)
    if len(failed) > MAX_ERRORS_SHOWN:
        print(
            f"servesim: {len(failed) - MAX_ERRORS_SHOWN} more failed points: see {out / 'points.csv'}", file=sys.stderr
        )
    return EXIT_SOME_POINTS_FAILED if len(failed) else 0


def _json_summary(result) -> dict:
    from sim.cli.main import json_ready

    return json_ready(
        {
            "sweep": result.sweep.name,
            "out": str(result.out_dir),
            "executor": result.executor,
            "points": len(result.points),
            "failed_points": len(result.failed_points),
            "replications": result.sweep.replications,
            "ran": result.ran,
            "skipped": result.skipped,
            "elapsed_s": result.elapsed_s,
            "files": {name: str(path) for name, path in result.files.items()},
            "table": result.points.to_dict(orient="records"),
        }
    )


def _print_table(result) -> None:
    from rich.console import Console
    from rich.table import Table

    sweep, points = result.sweep, result.points
    metrics = list(sweep.spec.metrics)[:6]
    table = Table(title=f"sweep {sweep.name}: {len(points)} points × {sweep.replications} replications")
    table.add_column("point", justify="right")
    for path in sweep.axis_paths:
        table.add_column(path, justify="right")
    for metric in metrics:
        table.add_column(metric, justify="right")
    table.add_column("status")
    for _, row in points.head(MAX_ROWS_SHOWN).iterrows():
        cells = [str(row["point"])] + [_fmt(row[p]) for p in sweep.axis_paths]
        cells += [_fmt(row[m]) for m in metrics]
        status = row["status"]
        cells.append(status if status == "ok" else f"[red]{status}[/red]")
        table.add_row(*cells)
    console = Console()
    console.print(table)
    if len(points) > MAX_ROWS_SHOWN:
        console.print(f"… {len(points) - MAX_ROWS_SHOWN} more points in {result.out_dir / 'points.csv'}")
    console.print(
        f"ran {result.ran} runs, skipped {result.skipped} already finished, on {result.executor}, in "
        f"{result.elapsed_s:.1f} s; tables in {result.out_dir}"
    )


def _fmt(value) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return "—"
        return f"{value:.4g}"
    return str(value)
