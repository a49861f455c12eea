"""LLM stage speed on the full Azure LLM conversation trace (19,366 requests, one hour) replayed on the
llama2-70b TP4 A100 profile × 6 replicas, as scenarios/llm-chat-continuous.yaml.

Baseline, measured in the same run: the engine as it was before the speed work of issue 24, kept as the
test oracle (tests/llm_oracle/). Each figure is the least CPU time of `repeats` runs (a shared machine only
ever adds time), with the spread of the runs in the note; ratio = current / baseline. Targets of issue 24:
≤ 0.5 s CPU in the engine, ≤ 1.5 s CPU and ≤ 300 MB peak RSS through `servesim run`, and the disaggregated
scenario (scenarios/llm-chat-disaggregated.yaml: the same trace on 4 prefill + 2 decode replicas) within 1.5×
the colocated run's CPU, user CPU too — the two runs alternate, so that both see the same machine."""

from __future__ import annotations

import compileall
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from sim.engine.llm.stage import simulate_llm_stage
from sim.engine.llm.tokens import sample_tokens
from sim.spec.arrivals import Trace
from sim.spec.llm_schema import LLMStage, TokenSpec

ROOT = Path(__file__).resolve().parent.parent
TRACE = ROOT / "scenarios" / "traces" / "azure-llm-conv-trace.csv"
SCENARIO = ROOT / "scenarios" / "llm-chat-continuous.yaml"
DISAGGREGATED = ROOT / "scenarios" / "llm-chat-disaggregated.yaml"
REPLICAS = 6  # as scenarios/llm-chat-continuous.yaml


def _profile() -> Path:
    """The profile the shipped chat scenario runs (the per-token A100 refit since issue 22): the engine is
    timed on what ships, and the engine before issue 24 on the same profile."""
    from sim.spec.scenario import load_scenario

    return Path(load_scenario(SCENARIO).stage("llm").profile)


TARGET_ENGINE_CPU_S = 0.5
TARGET_RUN_CPU_S = 1.5
TARGET_RUN_RSS_MB = 300.0
TARGET_DISAGGREGATED_RATIO = 1.5  # disaggregated CPU / colocated CPU, user CPU too
POLICIES = {
    "continuous": {"policy": "continuous"},
    "chunked prefill 2048": {"policy": "continuous", "chunked_prefill": True, "max_num_batched_tokens": 2048},
    "static batch 32": {"policy": "static", "batch_size": 32},
}


def _trace():
    trace = Trace(process="trace", file=str(TRACE), time_column="arrived_at", time_unit="s")
    arrivals = trace.generate(np.random.default_rng(0), trace.length, None)
    tokens = TokenSpec(prompt_column="num_prefill_tokens", output_column="num_decode_tokens")
    prompt, output = sample_tokens(tokens, np.random.default_rng(0), len(arrivals.times_ms), arrivals.columns)
    return arrivals.times_ms, prompt, output


def _baseline_engine():
    """The engine before the speed work, where the tests keep it (absent from an installed wheel)."""
    try:
        from tests.llm_oracle.stage import simulate_llm_stage as before
    except ImportError:
        return None
    return before


def engine_cpu_s(simulate, batching: dict, inputs, repeats: int) -> list[float]:
    """CPU seconds of `repeats` replays of the trace by `simulate` (trace reading excluded)."""
    ready, prompt, output = inputs
    stage = LLMStage.model_validate({"name": "llm", "kind": "llm", "profile": str(_profile()), "batching": batching})
    times = []
    for _ in range(repeats):
        cpu = time.process_time()
        simulate(ready, prompt, output, stage, REPLICAS, np.random.default_rng(0))
        times.append(time.process_time() - cpu)
    return times


# Run in a fresh process; print its own peak RSS (VmHWM: a forked child's ru_maxrss counts its parent's pages).
_CHILD = """
import contextlib, io, sys
from sim.cli.main import main
with contextlib.redirect_stdout(io.StringIO()):
    main(["run", sys.argv[1], "--json"])
status = open("/proc/self/status").read()
print(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")), file=sys.stderr)
"""


def servesim_run(scenarios: list[Path], repeats: int) -> dict[Path, dict[str, list[float]]]:
    """CPU seconds (`cpu`, user + system; `user`) and peak RSS MB (`rss`) of `repeats` runs of `servesim run
    SCENARIO --json` for each scenario, each in a fresh process (imports included, as a user sees it), the
    scenarios taking turns. Linux only (/proc). The project's modules are compiled first, as from a user's
    second run on (where PYTHONDONTWRITEBYTECODE is set, every run would compile them: ~0.1 s)."""
    for package in ("sim", "calibrate"):
        compileall.compile_dir(ROOT / package, quiet=1)
    out = {scenario: {"cpu": [], "user": [], "rss": []} for scenario in scenarios}
    for _ in range(repeats):
        for scenario in scenarios:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            done = subprocess.run(
                [sys.executable, "-c", _CHILD, str(scenario)], check=True, capture_output=True, text=True, cwd=ROOT
            )
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            user = after.ru_utime - before.ru_utime
            out[scenario]["user"].append(user)
            out[scenario]["cpu"].append(user + after.ru_stime - before.ru_stime)
            out[scenario]["rss"].append(int(done.stderr.split()[-1]) / 1024)  # kB
    return out


def _spread(times: list[float]) -> str:
    return f"min {min(times):.3f} s, max {max(times):.3f} s over {len(times)} runs"


def run(quick: bool = False) -> list[dict]:
    repeats = 2 if quick else 4
    inputs = _trace()
    before = _baseline_engine()
    load = f"; load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    rows = []
    for label, batching in POLICIES.items() if not quick else list(POLICIES.items())[:1]:
        now = engine_cpu_s(simulate_llm_stage, batching, inputs, repeats)
        row = {"name": f"LLM conv trace, {label} (A100 TP4 × 6): engine CPU", "value": min(now), "unit": "s"}
        note = f"{_spread(now)}{load}"
        if before is not None:
            was = engine_cpu_s(before, batching, inputs, repeats)
            row.update(baseline=min(was), ratio=min(now) / min(was))
            note += f"; baseline (engine before issue 24) {_spread(was)}"
        if label == "continuous":
            note += f"; target ≤ {TARGET_ENGINE_CPU_S:g} s"
        rows.append({**row, "note": note})
    if not Path("/proc/self/status").is_file():
        return rows
    runs = servesim_run([SCENARIO, DISAGGREGATED], repeats)
    cpu, rss = runs[SCENARIO]["cpu"], runs[SCENARIO]["rss"]
    rows.append(
        {
            "name": "servesim run llm-chat-continuous: CPU",
            "value": min(cpu),
            "unit": "s",
            "baseline": TARGET_RUN_CPU_S,
            "ratio": min(cpu) / TARGET_RUN_CPU_S,
            "note": f"{_spread(cpu)}, imports included (.pyc compiled); baseline = the target",
        }
    )
    rows.append(
        {
            "name": "servesim run llm-chat-continuous: peak RSS",
            "value": max(rss),
            "unit": "MB",
            "baseline": TARGET_RUN_RSS_MB,
            "ratio": max(rss) / TARGET_RUN_RSS_MB,
            "note": f"largest of {len(rss)} runs (least {min(rss):.0f} MB); baseline = the target",
        }
    )
    split = runs[DISAGGREGATED]
    for kind in ("cpu", "user"):
        ratio = min(split[kind]) / min(runs[SCENARIO][kind])
        what = "CPU" if kind == "cpu" else "user CPU"
        rows.append(
            {
                "name": f"servesim run llm-chat-disaggregated / llm-chat-continuous: {what}",
                "value": ratio,
                "unit": "×",
                "baseline": TARGET_DISAGGREGATED_RATIO,
                "ratio": ratio / TARGET_DISAGGREGATED_RATIO,
                "note": f"least {what} of each, runs alternating; disaggregated {_spread(split[kind])}"
                + (f", peak RSS {max(split['rss']):.0f} MB" if kind == "cpu" else "")
                + "; baseline = the target",
            }
        )
    return rows


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        ratio = f" ratio {row['ratio']:.2f}" if "ratio" in row else ""
        print(f"{row['name']}: {row['value']:.3f} {row['unit']}{ratio}  ({row.get('note', '')})")
