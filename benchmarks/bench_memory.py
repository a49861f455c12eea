"""Peak memory of a run: `servesim run scenarios/reference.yaml --json` in a child process at growing
sizes, its peak RSS (getrusage of the child), the bytes per simulated request above the interpreter's
floor (a 1,000-request run measured in the same session), and what the run budget estimates for each
size — including the 5 × 1e7 run of the performance issue, which the budget refuses before it starts
(the request log of every replication is held at once)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sim.spec.budget import MEMORY_LIMIT_BYTES, estimate_run_bytes
from sim.spec.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "reference.yaml"


def _peak_rss_bytes(requests: int, replications: int) -> float:
    """Peak RSS of one child run (Linux reports ru_maxrss in KiB; the maximum over children so far, so
    each size runs in a fresh grandchild whose own getrusage is printed)."""
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
    sizes = [(200_000, 2)] if quick else [(200_000, 2), (1_000_000, 2), (1_000_000, 5)]
    floor = _peak_rss_bytes(1_000, 1)
    rows = [{"name": "memory: interpreter + imports (1,000 requests)", "value": floor / 1e6, "unit": "MB peak RSS"}]
    first = None
    for requests, replications in sizes:
        peak = _peak_rss_bytes(requests, replications)
        per_request = (peak - floor) / (requests * replications)
        first = first or per_request
        estimate = estimate_run_bytes(scenario, requests, replications)
        rows.append(
            {
                "name": f"memory: reference, {requests:,} × {replications}",
                "value": per_request,
                "unit": "B/request above the floor",
                "baseline": first,
                "ratio": per_request / first,
                "note": f"peak {peak / 1e9:.2f} GB; budget estimate {estimate / 1e9:.2f} GB (ratio 1 = linear)",
            }
        )
    big = estimate_run_bytes(scenario, 10_000_000, 5)
    rows.append(
        {
            "name": "memory: reference, 10,000,000 × 5 (budget estimate)",
            "value": big / 1e9,
            "unit": "GB",
            "baseline": MEMORY_LIMIT_BYTES / 1e9,
            "ratio": big / MEMORY_LIMIT_BYTES,
            "note": "refused before it starts (ratio > 1); target of the performance issue: within 4 GB, not met",
        }
    )
    return rows


if __name__ == "__main__":
    for row in run(quick=True):
        print(row)
