"""The benchmark runner: every module's rows in one table and one JSON; missing or failing modules reported."""

from __future__ import annotations

import json
import sys
import types

import pytest

from benchmarks import run as bench_run


@pytest.fixture
def fake_modules(tmp_path, monkeypatch):
    """benchmarks.bench_good (two rows), benchmarks.bench_broken (raises); bench_absent is expected but absent."""
    good = types.ModuleType("benchmarks.bench_good")
    good.run = lambda quick: [
        {"name": "fast thing", "value": 2000.0 if quick else 1000.0, "unit": "req/s", "baseline": 500.0, "ratio": 4.0},
        {"name": "other", "value": 1.5, "unit": "×", "note": "n"},
    ]
    broken = types.ModuleType("benchmarks.bench_broken")

    def explode(quick):
        raise RuntimeError("cluster did not start")

    broken.run = explode
    for name, module in (("bench_good", good), ("bench_broken", broken)):
        (tmp_path / f"{name}.py").write_text("# stand-in\n")
        monkeypatch.setitem(sys.modules, f"benchmarks.{name}", module)
    monkeypatch.setattr(bench_run, "HERE", tmp_path)
    monkeypatch.setattr(bench_run, "EXPECTED_MODULES", ("bench_good", "bench_absent"))


def test_rows_statuses_and_json(fake_modules, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench_run.main(["--quick", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["quick"] is True
    assert {n: s["status"] for n, s in report["modules"].items()} == {
        "bench_absent": "missing", "bench_broken": "failed", "bench_good": "ok",
    }  # fmt: skip
    assert "RuntimeError: cluster did not start" in report["modules"]["bench_broken"]["error"]
    assert [(r["module"], r["name"], r["value"]) for r in report["results"]] == [
        ("bench_good", "fast thing", 2000.0), ("bench_good", "other", 1.5),
    ]  # fmt: skip
    table = capsys.readouterr().out
    for text in ("fast thing", "2,000", "missing", "failed", "cluster did not start"):
        assert text in table
    assert bench_run.main(["--strict"]) == 1


def test_only_selects_modules(fake_modules, capsys):
    report = bench_run.run_all(quick=False, only=["good"])
    assert list(report["modules"]) == ["bench_good"]
    assert report["results"][0]["value"] == 1000.0
