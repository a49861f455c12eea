"""`servesim plan [SCENARIO]` serves the planner page (ui/page.py) on a shipped scenario."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from sim.cli.main import main
from sim.cli.plan import page_file, planner_command

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(port: int, process: subprocess.Popen, seconds: float = 90) -> str:
    """The planner's health endpoint's answer once it answers (Streamlit's /_stcore/health)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the planner exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as reply:
                return reply.read().decode()
        except OSError:
            time.sleep(0.5)
    raise AssertionError("the planner did not answer its health endpoint")


def test_the_command_serves_the_page_of_the_ui_package_on_the_named_scenario():
    command, env = planner_command("mm3", 8765, browser=False)
    assert Path(command[command.index("run") + 1]) == ROOT / "ui" / "page.py" == Path(page_file())
    assert command[command.index("--server.port") + 1] == "8765"
    assert env["SERVESIM_SCENARIO"] == "mm3"


@pytest.mark.parametrize(
    "argv, message", [(["plan", "nope"], "no shipped scenario"), (["plan", "--port", "0"], "--port")]
)
def test_bad_plan_arguments_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_the_page_opens_on_the_scenario_plan_names(monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SERVESIM_SCENARIO", "mm3")
    import importlib

    import ui.state

    importlib.reload(ui.state)
    try:
        at = AppTest.from_file(page_file(), default_timeout=300).run()
        assert not at.exception, at.exception
        assert at.title[0].value == "mm3"
    finally:
        monkeypatch.delenv("SERVESIM_SCENARIO")
        importlib.reload(ui.state)


@pytest.mark.slow
def test_servesim_plan_answers_its_health_endpoint(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "sim.cli.main", "plan", "mm3", "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_healthy(port, process) == "ok"
    finally:
        process.terminate()
        process.wait(timeout=30)
