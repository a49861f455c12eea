"""Run-log tampering family (issue 23): random damage to a saved run log — columns dropped, rows duplicated
or moved, values negated or turned into text, files cut short, bytes flipped, files deleted, with or
without a manifest forged to match — and `summarize` must either refuse in one line (exit 2) or, where the
damage changed nothing it reads, give the original summary. Never a traceback, never another summary.

CI runs a few dozen examples; `make fuzz` (HYPOTHESIS_PROFILE=fuzz) runs 1,000.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.cli.main import main
from tests.test_runlog_integrity import rewrite

EXAMPLES = 1000 if os.environ.get("HYPOTHESIS_PROFILE") == "fuzz" else 40
OUTCOMES: Counter = Counter()


def teardown_module() -> None:
    print(f"\nrun-log tampering outcomes: {dict(OUTCOMES)}")


FILES = ("requests.parquet", "run.json", "scenario.yaml", "manifest.json")


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """A saved mm3 run log (two replications) and the JSON summary `summarize` gives of it."""
    folder = tmp_path_factory.mktemp("fuzzlog") / "log"
    root = Path(__file__).resolve().parents[1]
    code = main(
        ["run", str(root / "scenarios" / "mm3.yaml"), "--requests", "400", "--replications", "2"]
        + ["--seed", "3", "--json", "--log", str(folder)]
    )
    assert code == 0
    return folder


def summarize(folder: Path, capsys) -> tuple[int, str, str]:
    code = main(["summarize", str(folder), "--json"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


damage = st.sampled_from(
    ["drop_column", "duplicate_rows", "negate", "to_text", "move_rows", "truncate", "flip_byte", "delete"]
)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(kind=damage, pick=st.integers(0, 10**6), forge=st.booleans())
def test_damaged_run_logs_are_refused_in_one_line_or_read_unchanged(original, tmp_path, capsys, kind, pick, forge):
    baseline_code, baseline, _ = summarize(original, capsys)
    assert baseline_code == 0
    folder = Path(shutil.copytree(original, tmp_path / f"log-{pick}-{kind}-{forge}", dirs_exist_ok=True))
    frame = pd.read_parquet(folder / "requests.parquet")
    numeric = [c for c in frame.columns if c.endswith("_ms") and frame[c].notna().any()]
    rng = np.random.default_rng(pick)
    if kind == "drop_column":
        rewrite(folder, frame.drop(columns=[frame.columns[pick % len(frame.columns)]]), forge_manifest=forge)
    elif kind == "duplicate_rows":
        rows = rng.integers(0, len(frame), 1 + pick % 20)
        rewrite(folder, pd.concat([frame, frame.iloc[rows]], ignore_index=True), forge_manifest=forge)
    elif kind == "negate":
        column = numeric[pick % len(numeric)]
        frame[column] = -frame[column].abs() - 1.0
        rewrite(folder, frame, forge_manifest=forge)
    elif kind == "to_text":
        column = frame.columns[pick % len(frame.columns)]
        frame[column] = frame[column].astype(str)
        rewrite(folder, frame, forge_manifest=forge)
    elif kind == "move_rows":
        moved = frame.sample(frac=1.0, random_state=pick % 2**31).reset_index(drop=True)
        if moved.equals(frame):
            moved = frame.iloc[::-1].reset_index(drop=True)
        rewrite(folder, moved, forge_manifest=forge)
    else:
        path = folder / FILES[pick % len(FILES)]
        if kind == "delete":
            path.unlink()
        else:
            data = bytearray(path.read_bytes())
            if kind == "truncate":
                data = data[: pick % max(len(data), 1)]
            else:
                data[pick % len(data)] ^= 1 << (pick % 8)
            path.write_bytes(bytes(data))
    code, out, err = summarize(folder, capsys)
    assert "Traceback" not in err, err
    if code == 0:
        assert json.loads(out) == json.loads(baseline), f"{kind}: another summary from a damaged log"
        OUTCOMES["read unchanged"] += 1
    else:
        assert code == 2 and err.count("\n") == 1, (kind, code, err)
        OUTCOMES["refused in one line"] += 1
