"""`servesim compare` always shows the scenario as written beside the variants (issue 21: the best
configuration on search-ranker was the scenario's own, and the CLI report left it out)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim.analysis.compare import CURRENT
from sim.cli.main import main
from tests.test_report import SCENARIO

VARIANTS = ["-v", "one more:replicas=2", "-v", "none:batching=none"]


@pytest.fixture()
def scenario_file(tmp_path: Path) -> Path:
    path = tmp_path / "current.yaml"
    path.write_text(SCENARIO)
    return path


def compare_json(scenario_file: Path, tmp_path: Path, capsys, *extra: str) -> dict:
    args = ["compare", str(scenario_file), *VARIANTS, *extra, "--load-points", "0", "--requests", "1500"]
    assert main([*args, "-o", str(tmp_path / "out"), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_scenario_as_written_is_always_a_column(scenario_file, tmp_path, capsys):
    summaries = compare_json(scenario_file, tmp_path, capsys)
    assert list(summaries) == [CURRENT, "one more", "none"]
    report = (tmp_path / "out" / "report.md").read_text()
    assert f"| {CURRENT} |" in report
    assert (tmp_path / "out" / "scenarios" / "as-configured.yaml").is_file()


def test_baseline_keeps_its_name_and_keys(scenario_file, tmp_path, capsys):
    """--baseline JSON is unchanged: the same keys as before, no second copy of the scenario."""
    summaries = compare_json(scenario_file, tmp_path, capsys, "--baseline")
    assert list(summaries) == ["baseline", "one more", "none"]


def test_the_current_column_is_the_scenario_run_alone(scenario_file, tmp_path, capsys):
    summaries = compare_json(scenario_file, tmp_path, capsys)
    alone = compare_json(scenario_file, tmp_path, capsys, "--baseline")
    assert summaries[CURRENT] == {**alone["baseline"]}  # same seed, same configuration: the same run
