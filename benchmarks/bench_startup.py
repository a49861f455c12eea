"""Start-up: CPU seconds of `servesim --help` and of `servesim run` on a 1,000-request scenario, each
against the floor measured in the same run (a bare `python -c "import pandas"`, which every run needs),
repeated to show the spread. Figures are process CPU time (user + system) of the child processes."""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _cpu_s(argv: list[str]) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, cwd=ROOT, check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run(quick: bool = False) -> list[dict]:
    repeats = 3 if quick else 7
    commands = {
        "floor: python -c 'import pandas'": [sys.executable, "-c", "import pandas"],
        "servesim --help": [sys.executable, "-m", "sim.cli.main", "--help"],
        "servesim run mm3, 1,000 requests × 2 (JSON)": [
            sys.executable,
            "-m",
            "sim.cli.main",
            "run",
            "scenarios/mm3.yaml",
            "--requests",
            "1000",
            "--replications",
            "2",
            "--json",
        ],
    }
    times = {name: sorted(_cpu_s(argv) for _ in range(repeats)) for name, argv in commands.items()}
    floor = statistics.median(times["floor: python -c 'import pandas'"])
    rows = []
    for name, values in times.items():
        median = statistics.median(values)
        rows.append(
            {
                "name": f"start-up: {name}",
                "value": median,
                "unit": "CPU s",
                "baseline": floor,
                "ratio": median / floor,
                "note": f"range {values[0]:.2f}-{values[-1]:.2f} s over {repeats} runs; before the redesign (issue 11): "
                "--help 2.1-2.9 s, run 2.3-2.8 s; target under a third of that",
            }
        )
    return rows
