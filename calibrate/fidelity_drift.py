"""Host drift around a `make fidelity` cell, as an interval on its prediction.

A host's speed moves over seconds to minutes: on the quiet 2-vCPU host of the shared runs, the calibration
after a cell found the kernel 0.93–1.12x as slow as the one just before it. A cell is calibrated just
before its runs; the next calibration of the same server (the next cell's, or the one the live harness
takes after a configuration's last cell) says where the speed had moved by the time the runs ended. So
the prediction is made at both ends — from the calibration as taken, and scaled by the next calibration's
level over this one's — and a measurement is judged against the band between them: inside, its error is 0;
outside, the distance to the nearer end. Where no later calibration exists, the band is the point.
"""

from __future__ import annotations

import numpy as np

from calibrate.fidelity_report import judge
from calibrate.fidelity_settings import ERROR_LIMIT_PCT


def kernel_level_ms(calibration: dict) -> float:
    """One number for how fast a calibration found the kernel: its mean service time (with every worker
    busy where measured so; dynamic1: the mean over batch sizes of each size's mean)."""
    if "batch_ms" in calibration:
        return float(np.mean([np.mean(v) for v in calibration["batch_ms"].values()]))
    return float(np.mean(calibration.get("service_busy_ms", calibration.get("service_ms"))))


def drift_ratios(configs: list[str], calibrations: list[dict], after: list[dict | None]) -> list[float | None]:
    """Per cell (in the order measured), the next calibration of the same server over this one's: the next
    cell of its configuration's, else `after` (taken once its last cell was served), else None."""
    out: list[float | None] = []
    for k, (config, calibration) in enumerate(zip(configs, calibrations)):
        later = next((cal for c, cal in zip(configs[k + 1 :], calibrations[k + 1 :]) if c == config), after[k])
        out.append(None if later is None else kernel_level_ms(later) / kernel_level_ms(calibration))
    return out


def judge_band(runs_ms: list[float], low_ms: float, high_ms: float, percentile: str) -> dict:
    """`judge` against a band: the error is 0 when the runs' mean lies between the two ends, else its
    distance to the nearer one (%, negative when the band lies below); noise and verdict as `judge`'s."""
    low_ms, high_ms = min(low_ms, high_ms), max(low_ms, high_ms)
    below, above = judge(runs_ms, high_ms, percentile), judge(runs_ms, low_ms, percentile)
    error = below["error_pct"] if below["error_pct"] < 0 else max(above["error_pct"], 0.0)
    verdict = (
        "noisy" if below["verdict"] == "noisy" else ("ok" if abs(error) <= ERROR_LIMIT_PCT[percentile] else "miss")
    )
    return {**below, "low_ms": low_ms, "high_ms": high_ms, "error_pct": error, "verdict": verdict}
