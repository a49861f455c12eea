"""`servesim plan FILE` opens the planner on a scenario file (issue 21: `plan` took shipped names only; a
file had to be uploaded in the page)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from sim.cli.main import main
from sim.cli.plan import page_file, planner_command

ROOT = Path(__file__).resolve().parents[1]
MINE = """
name: my-own
seed: 3
workload:
  arrival: {process: poisson, rate_rps: 50}
  requests: 2000
stages:
  - name: forward
    kind: model
    service_ms: {dist: exponential, mean: 10}
deployment:
  replicas: 2
"""


@pytest.fixture()
def mine(tmp_path: Path) -> Path:
    path = tmp_path / "mine.yaml"
    path.write_text(MINE)
    return path


def test_a_file_is_served_by_its_absolute_path(mine, monkeypatch):
    monkeypatch.chdir(mine.parent)
    monkeypatch.setenv("SERVESIM_SCENARIO", "mm3")  # a name left in the environment does not win over the file
    _, env = planner_command("mine.yaml", 8765, browser=False)
    assert env["SERVESIM_SCENARIO_FILE"] == str(mine.resolve())
    assert "SERVESIM_SCENARIO" not in env


def test_a_shipped_name_still_works():
    _, env = planner_command("mm3", 8765, browser=False)
    assert env["SERVESIM_SCENARIO"] == "mm3" and "SERVESIM_SCENARIO_FILE" not in env


def test_a_bad_file_names_the_field_before_any_server_starts(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(MINE.replace("replicas: 2", "replicas: -1"))
    assert main(["plan", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "deployment.replicas" in err and "Traceback" not in err  # as `servesim run` says it


def test_the_page_opens_on_the_file(mine, monkeypatch):
    from streamlit.testing.v1 import AppTest

    import ui.state

    monkeypatch.setenv("SERVESIM_SCENARIO_FILE", str(mine))
    importlib.reload(ui.state)
    try:
        at = AppTest.from_file(page_file(), default_timeout=300).run()
        assert not at.exception, at.exception
        assert at.title[0].value == "my-own"
        box = at.sidebar.selectbox(key="scenario")
        assert box.value == "mine.yaml (local file)" and "mm3" in box.options  # the shipped ones beside it
        assert dict(at.query_params).get("scenario") == "mine.yaml (local file)"
        box.set_value("mm3").run()
        assert at.title[0].value == "mm3"
    finally:
        monkeypatch.delenv("SERVESIM_SCENARIO_FILE")
        importlib.reload(ui.state)
