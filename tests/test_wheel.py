"""servesim installs as a wheel: the shipped data (hardware catalogue, profiles, scenarios) travel as
package data, and a scenario that prices its hardware from the catalogue runs outside the checkout."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCENARIO = """
name: wheel-check
seed: 3
workload: {arrival: {process: poisson, rate_rps: 20}, requests: 2000}
stages:
  - {name: forward, kind: model, profile: models/mlp-cpu-onnxruntime.yaml}
deployment: {replicas: 1, hardware: {name: t4}}
"""


@pytest.mark.slow
def test_the_wheel_runs_a_scenario_priced_from_the_catalogue_outside_the_checkout(tmp_path):
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            str(ROOT),
            "-w",
            str(tmp_path / "dist"),
        ],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("servesim-*.whl")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # The wheel alone provides servesim; its dependencies come from this environment's site-packages
    # (appended after the new venv's own, and without its .pth files: no editable checkout on the path).
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", site, str(wheel)],
        check=True,
        capture_output=True,
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    (work / "scenario.yaml").write_text(SCENARIO)
    probe = subprocess.run(
        [str(python), "-c", "import sim, sim.shipped as s; print(sim.__file__); print(s.shipped_root('models'))"],
        cwd=work,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert all(str(ROOT) not in line for line in probe), probe
    ran = subprocess.run(
        [str(python), "-m", "sim.cli.main", "run", "scenario.yaml", "--replications", "2", "--json"],
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    summary = json.loads(ran.stdout)
    from sim.spec.hardware import load_catalogue

    assert summary["cost"]["usd_per_hour"] == pytest.approx(load_catalogue()["t4"].usd_per_hour)
    assert summary["latency_ms"]["p99"] > 0
    by_name = subprocess.run(
        [str(python), "-m", "sim.cli.main", "run", "mm3", "--requests", "2000", "--replications", "2", "--json"],
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert by_name.returncode == 0, by_name.stderr[-2000:]
    assert json.loads(by_name.stdout)["scenario"] == "mm3"
    listing = subprocess.run(
        [str(python), "-m", "sim.cli.main", "scenarios"], cwd=work, capture_output=True, text=True, check=True
    )
    assert "llm-chat-continuous" in listing.stdout
    copied = subprocess.run(
        [str(python), "-m", "sim.cli.main", "init", "llm-chat-continuous", "mine"],
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert copied.returncode == 0, copied.stderr[-2000:]
    assert (work / "mine" / "traces" / "azure-llm-conv-trace.csv").is_file()
    from tests.test_cli_plan import free_port, wait_healthy

    port = free_port()
    planner = subprocess.Popen(
        [str(python), "-m", "sim.cli.main", "plan", "mm3", "--port", str(port)],
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_healthy(port, planner) == "ok"  # the installed planner serves (app.py is not in the wheel)
    finally:
        planner.terminate()
        planner.wait(timeout=30)
