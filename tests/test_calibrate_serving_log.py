"""In-situ calibration: `calibrate fit --serving-log` fits a profile from what the serving path logged per
request (any batch sizes, batch 1 alone included), with the per-batch overhead separated from the kernel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim.cli.main import main as calibrate_main
from calibrate.serving_log import measurements_from_log
from sim.errors import DataFileError
from sim.spec.profile import load_profile

KERNEL_BASE_MS, KERNEL_PER_ITEM_MS, OVERHEAD_MS = 2.0, 0.5, 0.8


def serving_log(rng: np.random.Generator, batches: int, sizes: list[int]) -> pd.DataFrame:
    """Requests as a batching server logs them: each batch's kernel (affine in its size, ±2% noise) is
    shared by its requests; each batch adds its overhead (0.8 ms ± 0.05) outside the kernel."""
    rows = []
    for batch_id in range(batches):
        size = int(rng.choice(sizes))
        kernel = (KERNEL_BASE_MS + KERNEL_PER_ITEM_MS * size) * rng.uniform(0.98, 1.02)
        overhead = OVERHEAD_MS + rng.uniform(-0.05, 0.05)
        rows += [{"batch_id": batch_id, "batch_size": size, "kernel_ms": kernel, "server_ms": kernel + overhead}] * size
    return pd.DataFrame(rows)


def fit(tmp_path: Path, log: pd.DataFrame, *flags: str) -> Path:
    csv, out = tmp_path / "log.csv", tmp_path / "insitu.yaml"
    log.to_csv(csv, index=False)
    assert calibrate_main(["calibrate", "fit", str(csv), "-o", str(out), "--serving-log", "--no-plot", *flags]) == 0
    return out


def test_overhead_is_separated_from_the_kernel_curve(tmp_path):
    log = serving_log(np.random.default_rng(1), 600, [1, 2, 3, 5, 8])
    profile = load_profile(fit(tmp_path, log, "--kernel-column", "kernel_ms", "--batch-id-column", "batch_id"))
    assert profile.per_request_overhead_ms == pytest.approx(OVERHEAD_MS, abs=0.01)
    for size in (1, 4, 8):  # 4 was never logged: the fitted curve
        assert profile.median_ms(size) == pytest.approx(
            OVERHEAD_MS + KERNEL_BASE_MS + KERNEL_PER_ITEM_MS * size, rel=0.01
        )
    assert "median of server_ms − kernel_ms over 600 batches" in profile.provenance["method"]


def test_each_batch_counts_once_with_batch_ids():
    log = serving_log(np.random.default_rng(2), 200, [1, 8])
    measured, _, _ = measurements_from_log(log, "log", kernel_column="kernel_ms", batch_id_column="batch_id")
    assert len(measured) == 200 and len(log) > 200


def test_a_batch_one_only_log_makes_an_unbatched_profile(tmp_path):
    log = serving_log(np.random.default_rng(3), 300, [1])
    profile = load_profile(fit(tmp_path, log, "--kernel-column", "kernel_ms"))
    assert profile.max_batch_size == 1
    assert profile.median_ms(1) == pytest.approx(OVERHEAD_MS + KERNEL_BASE_MS + KERNEL_PER_ITEM_MS, rel=0.01)
    with pytest.raises(DataFileError, match="allows 1..1"):
        profile.median_ms(2)


def test_without_a_kernel_column_the_overhead_stays_in_the_curve_and_the_profile_says_so(tmp_path):
    log = serving_log(np.random.default_rng(4), 400, [1, 4, 8])
    profile = load_profile(fit(tmp_path, log))
    assert profile.per_request_overhead_ms == 0.0
    assert "not separated" in profile.provenance["method"]
    assert profile.median_ms(4) == pytest.approx(OVERHEAD_MS + KERNEL_BASE_MS + 4 * KERNEL_PER_ITEM_MS, rel=0.02)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda f: f.drop(columns=["server_ms"]), "missing column.*server_ms"),
        (lambda f: f.assign(kernel_ms=np.where(f.index == 3, 99.0, f.kernel_ms)), "row 5: kernel_ms exceeds server_ms"),
        (
            lambda f: f.assign(batch_size=np.where(f.index == 0, 2, f.batch_size)),
            "has requests logging different batch sizes",
        ),
        (lambda f: f.assign(batch_size=4), "only one batch size measured"),
    ],
)
def test_bad_serving_logs_are_named(change, message):
    rows = [(0, 3, 3.5, 4.3)] * 3 + [(1, 1, 2.5, 3.3)] + [(2, 3, 3.6, 4.4)] * 3
    log = pd.DataFrame(rows, columns=["batch_id", "batch_size", "kernel_ms", "server_ms"])
    with pytest.raises(DataFileError, match=message):
        measurements_from_log(change(log), "log", kernel_column="kernel_ms", batch_id_column="batch_id")
