"""Every speed figure of servesim in one command: `python -m benchmarks.run [--quick] [--json FILE]`.

Imports each `benchmarks/bench_*.py` module present and calls its `run(quick) -> list[dict]` (rows with
`name`, `value`, `unit` and optionally `baseline`, `ratio`, `note`), prints one table, and writes the rows
as JSON. A module that is missing or fails is reported in the table; the others still run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import platform
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The figures the README quotes; a module not written yet shows as missing rather than vanishing.
EXPECTED_MODULES = (
    "bench_engine",
    "bench_llm",
    "bench_app",
    "bench_sweep",
    "bench_startup",
    "bench_summary",
    "bench_memory",
    "bench_sizing",
)


def discover(only: list[str] | None = None) -> list[str]:
    present = sorted(p.stem for p in HERE.glob("bench_*.py"))
    names = sorted(set(present) | set(EXPECTED_MODULES))
    if only:
        unknown = [n for n in only if n not in names and f"bench_{n}" not in names]
        if unknown:
            raise SystemExit(f"benchmarks.run: no benchmark module {', '.join(unknown)} (have: {', '.join(names)})")
        names = [n for n in names if n in only or n.removeprefix("bench_") in only]
    return names


def run_module(name: str, quick: bool) -> tuple[list[dict], dict]:
    """Rows of one module, and its status: ok, missing or failed (with the error), and the seconds taken."""
    started = time.perf_counter()
    if not (HERE / f"{name}.py").is_file():
        return [], {"status": "missing", "seconds": 0.0, "error": f"benchmarks/{name}.py not present"}
    try:
        module = importlib.import_module(f"benchmarks.{name}")
        rows = [dict(row) for row in module.run(quick=quick)]
        for row in rows:
            missing = {"name", "value", "unit"} - set(row)
            if missing:
                raise ValueError(f"row {row!r} lacks {', '.join(sorted(missing))}")
    except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the others
        frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        where = f" (at {Path(frame.filename).name}:{frame.lineno})" if frame else ""
        error = f"{type(exc).__name__}: {exc}{where}"
        return [], {"status": "failed", "seconds": time.perf_counter() - started, "error": error}
    return rows, {"status": "ok", "seconds": time.perf_counter() - started, "error": None}


def run_all(quick: bool, only: list[str] | None = None, echo=None) -> dict:
    """Run the benchmark modules in turn; `echo(text)` hears about each as it starts and ends."""
    report = {
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "quick": quick,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        },
        "modules": {},
        "results": [],
    }
    for name in discover(only):
        if echo:
            echo(f"[dim]running {name} …[/dim]")
        rows, status = run_module(name, quick)
        report["modules"][name] = status
        report["results"].extend({"module": name, **row} for row in rows)
        if echo:
            echo(f"[dim]{name}: {status['status']} in {status['seconds']:.1f} s[/dim]")
    return report


def print_table(report: dict, console) -> None:
    from rich.table import Table

    table = Table(title=f"servesim benchmarks{' (quick)' if report['quick'] else ''}")
    for column, justify in (("module", "left"), ("figure", "left"), ("value", "right"), ("unit", "left"),
                            ("baseline", "right"), ("ratio", "right"), ("note", "left")):  # fmt: skip
        table.add_column(column, justify=justify, overflow="fold")
    for name, status in report["modules"].items():
        rows = [r for r in report["results"] if r["module"] == name]
        if status["status"] != "ok":
            colour = "yellow" if status["status"] == "missing" else "red"
            table.add_row(name, f"[{colour}]{status['status']}[/{colour}]", "", "", "", "", status["error"])
            continue
        for row in rows:
            table.add_row(
                name, str(row["name"]), _fmt(row.get("value")), str(row.get("unit", "")),
                _fmt(row.get("baseline")), _fmt(row.get("ratio")), str(row.get("note") or ""),
            )  # fmt: skip
    console.print(table)


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if not math.isfinite(value):
            return "—"
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    return str(value)


def _json_ready(value):
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):
        return _json_ready(value.item())
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (a minute or so in all)")
    parser.add_argument(
        "--json", type=Path, metavar="FILE", help="write the results as JSON (default: stdout table only)"
    )
    parser.add_argument("--only", nargs="+", metavar="MODULE", help="run only these modules (e.g. sweep engine)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a module is missing or fails")
    args = parser.parse_args(argv)

    from rich.console import Console

    console = Console() if sys.stdout.isatty() else Console(width=180)
    progress = Console(stderr=True)
    report = run_all(args.quick, args.only, echo=progress.print)
    print_table(report, console)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(_json_ready(report), indent=2) + "\n")
        progress.print(f"wrote {args.json}")
    bad = [n for n, s in report["modules"].items() if s["status"] != "ok"]
    return 1 if args.strict and bad else 0


if __name__ == "__main__":
    sys.exit(main())
