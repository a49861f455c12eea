"""Autoscaling min-replica sizing, the planner's third question: `servesim size
scenarios/autoscale-diurnal.yaml --replications 2 --workers 2` (every 5-minute window judged, the default
for a load that changes over time; each probe's two replications in parallel on the machine's 2 cores) in a
child process — wall and CPU time against the performance issue's target of
3 minutes wall (before: 39 minutes), with the answer and the probes it took. Quick: the first 20,000
requests only (a speed figure, not the day's answer)."""

from __future__ import annotations

import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 180.0


def run(quick: bool = False) -> list[dict]:
    with tempfile.TemporaryDirectory() as out:
        command = [
            sys.executable,
            "-m",
            "sim.cli.main",
            "size",
            "scenarios/autoscale-diurnal.yaml",
            "--replications",
            "2",
            "--workers",
            "2",
            "--out",
            out,
        ]
        if quick:
            command += ["--requests", "20000"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if result.returncode not in (0, 1):
        raise RuntimeError(f"size exited {result.returncode}: {result.stderr.strip()[-300:]}")
    probes = len(re.findall(r"min_replicas=\d+:", result.stdout))
    chosen = re.search(r"chosen: (.*?)(?:→|$)", " ".join(result.stdout.split()))
    label = "first 20,000 requests" if quick else "the whole day"
    return [
        {
            "name": f"size autoscale-diurnal, every window, 2 replications, 2 workers ({label}): wall",
            "value": wall,
            "unit": "s",
            "baseline": TARGET_S,
            "ratio": wall / TARGET_S,
            "note": f"CPU of the size process {cpu:.0f} s (its pool workers' not counted); {probes} probes; {chosen.group(1).strip() if chosen else 'no count met'}; "
            "target ≤ 180 s (ratio ≤ 1)",
        }
    ]


if __name__ == "__main__":
    for row in run(quick=True):
        print(row)
