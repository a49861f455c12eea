"""A disaggregated LLM scenario's pools on the page (issue 21 / 24): the summary's `llm.pools` (busy share,
KV-cache use, batch size) and `llm.kv_transfer_ms`, as a small table on the LLM tab, in the page report and
in the CLI table."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.analysis import planner
from sim.present.headline import kv_transfer_text, pools_table
from sim.spec.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def run():
    return planner.run(load_scenario(ROOT / "scenarios" / "llm-chat-disaggregated.yaml"), planner.SWEEP)


@pytest.fixture(scope="module")
def split(run):
    return run.summary


def test_the_pools_table_is_the_summarys_pools(split):
    table = pools_table(split)
    assert list(table.index) == ["prefill", "decode"]
    for name in ("prefill", "decode"):
        pool = split["llm"]["pools"][name]
        row = table.loc[name]
        assert row["replicas"] == str(pool["replicas"])
        assert row["busy"] == f"{pool['busy_fraction']:.0%}"
        kv, batch = pool["kv_cache_utilization"], pool["batch_size"]
        assert row["KV cache use (mean / max)"] == f"{kv['mean']:.1%} / {kv['max']:.1%}"
        assert row["batch (mean / max)"] == f"{batch['mean']:.1f} / {batch['max']}"
    # The shipped split: 4 prefill + 2 decode replicas.
    assert (table["replicas"].tolist()) == ["4", "2"]


def test_the_kv_transfer_names_p50_and_p99(split):
    transfer = split["llm"]["kv_transfer_ms"]
    text = kv_transfer_text(split)
    assert f"p50 {transfer['p50']:.2g} ms" in text and f"p99 {transfer['p99']:.2g} ms" in text


def test_a_colocated_stage_has_no_pools():
    colocated = {"llm": {"ttft_ms": {"p99": 1.0}}, "latency_ms": {"p99": 2.0}}
    assert pools_table(colocated) is None and kv_transfer_text(colocated) is None
    assert pools_table({"latency_ms": {"p99": 2.0}}) is None


def test_the_cli_table_and_page_report_show_the_pools(run, split, tmp_path):
    from rich.console import Console

    from sim.present.page_report import write_page_report
    from sim.present.table import summary_tables

    report = write_page_report(run, tmp_path, described="a test run").read_text()
    assert "### Pools (disaggregated)" in report and "| prefill | 4 |" in report and "KV transfer" in report

    console = Console(width=200, record=True)
    for renderable in summary_tables(split):
        console.print(renderable)
    text = console.export_text()
    assert "prefill pool: 4 replicas" in text and "decode pool: 2 replicas" in text and "KV transfer" in text
