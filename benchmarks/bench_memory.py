"""Peak memory of a run: `servesim run scenarios/reference.yaml --json` in a child process, its peak RSS
(getrusage of the child) against the interpreter's floor (a 1,000-request run in the same session).

`run --json` summarises each replication as it finishes and drops its log, so memory should follow the
requests of one replication, not the replication count: the rows compare 5 replications with 2 at the
same length (ratio 1 = independent of the count), and the full run measures the performance issue's
5 × 1e7 requests against its 4 GB target, next to what the run budget estimates before it starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sim.spec.budget import MEMORY_LIMIT_BYTES, estimate_run_bytes
from sim.spec.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "reference.yaml"
TARGET_BYTES = 4e9


def _peak_rss_bytes(requests: int, replications: int) -> float:
    """Peak RSS of one child run (Linux reports ru_maxrss in KiB; the maximum over children so far, so
    each size runs in a fresh grandchild whose own getrusage is printed); -1 if the run failed."""
    code = (
        "import resource, subprocess, sys;"
        f"r = subprocess.run([sys.executable, '-m', 'sim.cli.main', 'run', {str(SCENARIO)!r}, '--json', "
        f"'--requests', '{requests}', '--replications', '{replications}'], stdout=subprocess.DEVNULL);"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 if r.returncode == 0 else -1)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def run(quick: bool = False) -> list[dict]:
    scenario = load_scenario(SCENARIO)
    requests = 200_000 if quick else 1_000_000
    floor = _peak_rss_bytes(1_000, 1)
    rows = [{"name": "memory: interpreter + imports (1,000 requests)", "value": floor / 1e6, "unit": "MB peak RSS"}]
    two = _peak_rss_bytes(requests, 2)
    five = _peak_rss_bytes(requests, 5)
    per_request = (two - floor) / requests
    rows.append(
        {
            "name": f"memory: reference, {requests:,} × 2",
            "value": per_request,
            "unit": "B per request of one replication, above the floor",
            "note": f"peak {two / 1e9:.2f} GB",
        }
    )
    rows.append(
        {
            "name": f"memory: reference, {requests:,} × 5 vs × 2",
            "value": five / 1e9,
            "unit": "GB peak RSS",
            "baseline": two / 1e9,
            "ratio": five / two,
            "note": "ratio 1: memory does not grow with the replication count",
        }
    )
    big = estimate_run_bytes(scenario, 10_000_000, 5, keep_log=False)
    row = {
        "name": "memory: reference, 10,000,000 × 5",
        "unit": "GB peak RSS",
        "baseline": TARGET_BYTES / 1e9,
        "note": f"target ≤ 4 GB (ratio ≤ 1); the budget estimates {big / 1e9:.2f} GB against its "
        f"{MEMORY_LIMIT_BYTES / 1e9:.3g} GB limit",
    }
    if quick:  # a minute of CPU: the full run measures it; the quick one shows the budget's estimate
        row.update(value=big / 1e9, ratio=big / TARGET_BYTES, unit="GB (budget estimate, not measured)")
    else:
        peak = _peak_rss_bytes(10_000_000, 5)
        row.update(value=peak / 1e9, ratio=peak / TARGET_BYTES)
    rows.append(row)
    return rows


if __name__ == "__main__":
    for row in run(quick=True):
        print(row)
