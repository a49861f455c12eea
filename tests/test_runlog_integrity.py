"""A run log proves its integrity: `summarize` reads a folder only as its manifest describes it, and
refuses any other with one line naming the file and what differs (exit 2), never a traceback nor a
summary of changed data. An intact log recomputes its summary bit for bit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim.analysis.simulate import load_run, save_run, simulate
from sim.cli.main import main
from sim.engine.runlog_manifest import MANIFEST_FILE, sha256_of
from sim.errors import ServesimError
from sim.spec.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
# The columns whose loss gave a KeyError traceback before the manifest (and a few more).
COLUMNS = (
    "request", "replication", "arrival_ms", "rejected", "warmup", "departure_ms", "latency_ms",
    "forward_ms", "forward_queue_ms", "forward_start_ms", "forward_batch_id",
)  # fmt: skip


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[Path, dict]:
    """An mm3 run log of two replications, and the summary of the run that wrote it."""
    scenario = load_scenario(ROOT / "scenarios" / "mm3.yaml")
    result = simulate(scenario, requests=600, replications=2, seed=5)
    folder = tmp_path_factory.mktemp("runlog") / "log"
    save_run(result, folder, {"seed": 5, "requests": 600, "replications": 2})
    return folder, result.summary


@pytest.fixture
def log(written, tmp_path) -> Path:
    """A fresh copy of the written log, to tamper with."""
    return Path(shutil.copytree(written[0], tmp_path / "log"))


def summarize_cli(folder: Path, capsys, *flags: str) -> tuple[int, str]:
    code = main(["summarize", str(folder), *flags])
    return code, capsys.readouterr().err


def refused(folder: Path, capsys, *needles: str) -> None:
    """Both ways `summarize` reads a log (whole, and replication by replication) refuse it in one line."""
    for flags in (("--json",), ()):
        code, err = summarize_cli(folder, capsys, *flags)
        assert code == 2, err
        assert "Traceback" not in err and err.count("\n") == 1, err
        assert all(needle in err for needle in needles), err
    for keep_log in (True, False):
        with pytest.raises(ServesimError):
            load_run(folder, keep_log=keep_log)


def requests_of(folder: Path) -> pd.DataFrame:
    return pd.read_parquet(folder / "requests.parquet")


def rewrite(folder: Path, frame: pd.DataFrame, *, forge_manifest: bool = False) -> None:
    """Replace the request log; `forge_manifest`: also rewrite the manifest to match it, as a tamperer who
    knows the format would (columns, rows, checksum)."""
    frame.to_parquet(folder / "requests.parquet", index=False)
    if forge_manifest:
        import pyarrow.parquet as pq

        manifest = json.loads((folder / MANIFEST_FILE).read_text())
        entry = manifest["frames"]["requests"]
        entry["columns"] = {field.name: str(field.type) for field in pq.read_schema(folder / "requests.parquet")}
        counts = frame["replication"].value_counts() if "replication" in frame else pd.Series({"all": len(frame)})
        entry["rows_per_replication"] = {str(k): int(v) for k, v in counts.sort_index().items()}
        entry["rows"] = len(frame)
        path = folder / "requests.parquet"
        manifest["files"]["requests.parquet"] = {"bytes": path.stat().st_size, "sha256": sha256_of(path)}
        (folder / MANIFEST_FILE).write_text(json.dumps(manifest))


def test_an_intact_log_recomputes_the_run_summary_bit_for_bit(written, capsys):
    folder, summary = written
    assert (folder / MANIFEST_FILE).is_file()
    assert main(["summarize", str(folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["requests"] == summary["requests"]
    for keep_log in (True, False):
        again = load_run(folder, keep_log=keep_log).summary
        assert json.dumps(again, sort_keys=True, default=str) == json.dumps(summary, sort_keys=True, default=str)


def test_the_manifest_lists_rows_per_replication_columns_and_checksums(written):
    folder, _ = written
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    requests = manifest["frames"]["requests"]
    assert requests["rows"] == 1200 and requests["rows_per_replication"] == {"0": 600, "1": 600}
    assert requests["columns"]["arrival_ms"] == "double" and requests["columns"]["rejected"] == "bool"
    assert set(manifest["files"]) == {"requests.parquet", "scenario.yaml", "run.json"}
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == sha256_of(folder / name)


@pytest.mark.parametrize("column", COLUMNS)
def test_a_dropped_column_is_named(log, capsys, column):
    rewrite(log, requests_of(log).drop(columns=[column]))
    refused(log, capsys, "requests.parquet", f"1 column missing ('{column}')")


@pytest.mark.parametrize("column", ["forward_ms", "forward_batch_id", "latency_ms", "arrival_ms"])
def test_a_dropped_column_is_refused_even_with_a_forged_manifest(log, capsys, column):
    rewrite(log, requests_of(log).drop(columns=[column]), forge_manifest=True)
    refused(log, capsys, "requests.parquet", repr(column))


def test_run_json_that_is_not_json_is_named(log, capsys):
    (log / "run.json").write_text("{not json")
    refused(log, capsys, "run.json: not valid JSON")


def test_a_missing_scenario_is_named(log, capsys):
    (log / "scenario.yaml").unlink()
    refused(log, capsys, "scenario.yaml is missing")


def test_an_edited_scenario_is_refused(log, capsys):
    text = (log / "scenario.yaml").read_text()
    (log / "scenario.yaml").write_text(text.replace("replicas: 3", "replicas: 4"))
    refused(log, capsys, "scenario.yaml: contents differ from the manifest")


def test_duplicated_rows_are_refused(log, capsys):
    frame = requests_of(log)
    rewrite(log, pd.concat([frame, frame], ignore_index=True).sort_values("replication", kind="stable"))
    refused(log, capsys, "requests.parquet: 2400 rows where the manifest lists 1200")


def test_duplicated_rows_are_refused_even_with_a_forged_manifest(log, capsys):
    frame = requests_of(log)
    doubled = pd.concat([frame, frame], ignore_index=True).sort_values(["replication", "request"], kind="stable")
    rewrite(log, doubled, forge_manifest=True)
    refused(log, capsys, "requests are not numbered 0, 1, ... in order")


def test_rows_moved_between_replications_are_refused(log, capsys):
    frame = requests_of(log)
    frame.loc[frame.index[:10], "replication"] = 1
    rewrite(log, frame.sort_values("replication", kind="stable"))
    refused(log, capsys, "replication 0 has 590 rows where the manifest lists 600")


@pytest.mark.parametrize("change", ["negated", "nan"])
def test_a_changed_stage_column_is_refused(log, capsys, change):
    frame = requests_of(log)
    frame["forward_ms"] = -frame["forward_ms"] if change == "negated" else np.nan
    rewrite(log, frame)
    refused(log, capsys, "requests.parquet: contents differ from the manifest (SHA-256 checksum)")


def test_a_negated_stage_column_is_refused_even_with_a_forged_manifest(log, capsys):
    frame = requests_of(log)
    frame["forward_ms"] = -frame["forward_ms"]
    rewrite(log, frame, forge_manifest=True)
    refused(log, capsys, "column 'forward_ms' holds negative times")


def test_arrival_times_as_strings_are_refused(log, capsys):
    frame = requests_of(log)
    frame["arrival_ms"] = frame["arrival_ms"].astype(str)
    rewrite(log, frame)
    refused(log, capsys, "column 'arrival_ms' is ", "string where the manifest says double")


def test_arrival_times_as_strings_are_refused_even_with_a_forged_manifest(log, capsys):
    frame = requests_of(log)
    frame["arrival_ms"] = frame["arrival_ms"].astype(str)
    rewrite(log, frame, forge_manifest=True)
    refused(log, capsys, "column 'arrival_ms' is not numeric")


def test_a_frame_not_in_the_manifest_is_refused(log, capsys):
    shutil.copy(log / "requests.parquet", log / "timeline.parquet")
    refused(log, capsys, "timeline.parquet is not in the manifest")


def test_a_damaged_manifest_is_refused(log, capsys):
    (log / MANIFEST_FILE).write_text("[1, 2")
    refused(log, capsys, "manifest.json is not valid JSON")
    (log / MANIFEST_FILE).write_text('{"files": 3}')
    refused(log, capsys, "manifest.json is not a servesim run-log manifest")


def test_a_log_written_before_the_manifest_is_refused_with_how_to_fix_it(log, capsys):
    """Decision: a log without a manifest cannot be told from a tampered one, so it is refused; the
    scenario and seed it needs to be rerun are in its scenario.yaml and run.json."""
    (log / MANIFEST_FILE).unlink()
    refused(log, capsys, "no manifest.json: the log is incomplete", "or was written by an older servesim; rerun")


def test_a_log_cut_short_before_its_manifest_is_refused(tmp_path, capsys):
    """A run killed while writing its log leaves frames without a manifest (written last)."""
    from sim.engine.runlog import RunLogWriter

    scenario = load_scenario(ROOT / "scenarios" / "mm3.yaml")
    with RunLogWriter(tmp_path / "log") as writer:
        writer.append(simulate(scenario, requests=300, replications=1).run)
    (tmp_path / "log" / "run.json").write_text("{}")  # as far as a killed run may get
    refused(tmp_path / "log", capsys, "no manifest.json: the log is incomplete")


def test_a_log_cut_short_over_an_older_one_is_refused(log, capsys):
    """Writing a log over an older one drops the older manifest first: a run killed part way does not
    leave new frames beside a manifest that vouches for the old ones."""
    from sim.engine.runlog import RunLogWriter

    scenario = load_scenario(ROOT / "scenarios" / "mm3.yaml")
    with RunLogWriter(log) as writer:
        writer.append(simulate(scenario, requests=300, replications=1).run)
    refused(log, capsys, "no manifest.json: the log is incomplete")


def test_messages_do_not_name_the_absolute_folder(log, capsys, monkeypatch):
    monkeypatch.chdir(log.parent)
    (log / "run.json").write_text("{not json")
    code, err = summarize_cli(Path("log"), capsys)
    assert (
        code == 2
        and err.strip() == "servesim: error: run log log: run.json: not valid JSON (changed after the log was written)"
    )
    code, err = summarize_cli(log, capsys)
    assert str(log.parent) not in err


def test_a_log_written_again_over_another_keeps_only_its_own_frames(tmp_path):
    """--log onto a folder that held an autoscaled run's log: its timeline does not stay behind as part of
    the new run's log."""
    folder = tmp_path / "log"
    folder.mkdir()
    (folder / "timeline.parquet").write_bytes(b"stale")
    scenario = load_scenario(ROOT / "scenarios" / "mm3.yaml")
    save_run(simulate(scenario, requests=300, replications=1), folder, {"seed": 7})
    assert not (folder / "timeline.parquet").exists()
    assert load_run(folder).summary["requests"] > 0


@pytest.mark.parametrize("change", ["nan", "doubled", "zeroed", "latency"])
def test_a_changed_stage_column_is_refused_even_with_a_forged_manifest(log, capsys, change):
    # A NaN, doubled or zeroed stage time (or a latency edited alone) passed a forged manifest: the summary
    # then reported a stage mean of the changed column. A served request's stages add up to its latency.
    frame = requests_of(log)
    column = "latency_ms" if change == "latency" else "forward_ms"
    frame.loc[7, column] = {"nan": np.nan, "doubled": 2 * frame.loc[7, column], "zeroed": 0.0}.get(
        change, frame.loc[7, column] + 1.0
    )
    rewrite(log, frame, forge_manifest=True)
    refused(log, capsys, "requests.parquet: row 7 (a served request)")


def test_stage_times_of_every_shipped_kind_add_up_to_latency(tmp_path):
    # The invariant the check relies on, on a log with caches, pools, batching and skipped stages.
    scenario = load_scenario(ROOT / "scenarios" / "recsys-caches.yaml")
    result = simulate(scenario, replications=1, seed=2)
    save_run(result, tmp_path / "log", {"seed": 2, "requests": None, "replications": 1})
    assert load_run(tmp_path / "log", keep_log=False).summary == result.summary
