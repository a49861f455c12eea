"""Shipped scenarios by name: `servesim scenarios`, `servesim init NAME DIR`, and a name where a file goes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim.cli.main import main
from sim.cli.scenarios import scenario_argument, shipped_scenarios, summary_line

ROOT = Path(__file__).resolve().parents[1]


def test_the_listing_names_every_shipped_scenario_with_one_line(capsys):
    assert main(["scenarios"]) == 0
    out = capsys.readouterr().out.splitlines()
    shipped = sorted(p.stem for p in (ROOT / "scenarios").glob("*.yaml"))
    listed = [line.split()[0] for line in out[: len(shipped)]]
    assert listed == shipped
    for line in out[: len(shipped)]:
        assert len(line.split(None, 1)) == 2, f"no description: {line!r}"


def test_a_summary_line_is_the_description_or_the_first_comment_sentence(tmp_path):
    described = tmp_path / "a.yaml"
    described.write_text("# ignored comment.\nname: a\ndescription: Ranker at 30 ms p99.\n")
    assert summary_line(described) == "Ranker at 30 ms p99."
    commented = tmp_path / "b.yaml"
    commented.write_text("# The M/M/3 queue. Erlang C gives the rest.\nname: b\n")
    assert summary_line(commented) == "The M/M/3 queue."


def test_a_name_runs_the_shipped_scenario_exactly_as_its_file(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing named mm3 here: the name must find the shipped file
    options = ["--requests", "3000", "--replications", "2", "--json"]
    assert main(["run", "mm3", *options]) == 0
    by_name = json.loads(capsys.readouterr().out)
    assert main(["run", str(ROOT / "scenarios" / "mm3.yaml"), *options]) == 0
    assert json.loads(capsys.readouterr().out) == by_name


def test_a_file_in_the_working_folder_wins_over_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mm3").write_text("name: local\n")
    assert scenario_argument("mm3") == Path("mm3")
    assert scenario_argument("./nope") == Path("./nope")
    assert scenario_argument("mm3.yaml") == shipped_scenarios()["mm3"]


def test_an_unknown_name_says_where_the_names_are(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "no-such-scenario"]) == 2
    err = capsys.readouterr().err
    assert "file not found" in err and "servesim scenarios" in err


def test_init_copies_a_scenario_and_its_trace_and_the_copy_runs(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["init", "llm-code-continuous", "mine"]) == 0
    copied = tmp_path / "mine" / "llm-code-continuous.yaml"
    assert copied.read_bytes() == (ROOT / "scenarios" / "llm-code-continuous.yaml").read_bytes()
    trace = tmp_path / "mine" / "traces" / "azure-llm-code-trace.csv"
    assert trace.read_bytes() == (ROOT / "scenarios" / "traces" / "azure-llm-code-trace.csv").read_bytes()
    capsys.readouterr()
    assert main(["run", str(copied), "--requests", "300", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["served"] > 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["init", "nope", "x"], "no shipped scenario of that name"),
        (["init", "../mm3", "x"], "no shipped scenario of that name"),
    ],
)
def test_init_refuses_an_unknown_name(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_init_does_not_overwrite_without_force(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["init", "mm3", "."]) == 0
    (tmp_path / "mm3.yaml").write_text("name: edited\n")
    assert main(["init", "mm3", "."]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "mm3.yaml").read_text() == "name: edited\n"
    assert main(["init", "mm3", ".", "--force"]) == 0
    assert (tmp_path / "mm3.yaml").read_bytes() == (ROOT / "scenarios" / "mm3.yaml").read_bytes()
