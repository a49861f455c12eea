"""`servesim plan [SCENARIO]`: open the Streamlit planner from an installed servesim (or a checkout) on a
shipped scenario or a scenario file. The page is the `ui` package's (ui/page.py, found without importing it:
sim never imports ui); this command only starts Streamlit on it, with the scenario to open first in
SERVESIM_SCENARIO (a shipped name) or SERVESIM_SCENARIO_FILE (a file, validated here first: a bad one is one
line naming the field, before any server starts). A local file wins over a shipped name, as in every
command."""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from sim.errors import ServesimError


def register(subparsers) -> None:
    plan = subparsers.add_parser("plan", help="open the capacity planner (Streamlit) on a scenario")
    plan.add_argument(
        "scenario", nargs="?", default=None, help="scenario YAML file or shipped scenario name (default: vision-a100)"
    )
    plan.add_argument("--port", type=int, default=8501, help="port to serve on (default 8501)")
    plan.add_argument("--browser", action="store_true", help="also open a browser tab")
    plan.set_defaults(func=cmd_plan)


def page_file() -> str:
    """The planner page's file (ui/page.py) in this installation."""
    spec = importlib.util.find_spec("ui.page")
    if spec is None or spec.origin is None:
        raise ServesimError("plan: the planner is not installed (install servesim with its [app] extra)")
    return spec.origin


def planner_command(scenario: str | None, port: int, browser: bool) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that serve the planner."""
    from sim.cli.scenarios import shipped_scenarios

    env = dict(os.environ)
    env.pop("SERVESIM_SCENARIO", None)
    env.pop("SERVESIM_SCENARIO_FILE", None)
    if scenario is not None and Path(scenario).is_file():
        from sim.spec.scenario import load_scenario

        load_scenario(scenario)  # a ScenarioError names the field, before the server starts
        env["SERVESIM_SCENARIO_FILE"] = str(Path(scenario).resolve())
    elif scenario is not None:
        name = scenario.removesuffix(".yaml")
        shipped = shipped_scenarios()
        if name not in shipped:
            raise ServesimError(
                f"plan: no shipped scenario or scenario file named {scenario!r} (shipped: {', '.join(shipped)})"
            )
        env["SERVESIM_SCENARIO"] = name
    if not 1 <= port <= 65535:
        raise ServesimError(f"--port: {port} is not a port number (1-65535)")
    if importlib.util.find_spec("streamlit") is None:
        raise ServesimError("plan: Streamlit is not installed (pip install 'servesim[app]')")
    command = [
        sys.executable, "-m", "streamlit", "run", page_file(),
        "--server.port", str(port), "--server.headless", "false" if browser else "true",
        "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    return command, env


def cmd_plan(args: argparse.Namespace) -> int:
    command, env = planner_command(args.scenario, args.port, args.browser)
    print(f"planner: http://localhost:{args.port}  (Ctrl-C to stop)", file=sys.stderr)
    return subprocess.call(command, env=env)
