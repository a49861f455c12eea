"""The table `python -m calibrate.fidelity --predict-only` prints (calibrate/fidelity_offline.py makes
the predictions): every cell, each model's prediction and error, how much of the isolated miss the in-situ
diagnostics close and what that says, the co-load model and its host-drift band, and per run the judged
and ok counts with the judged p95 / p99 more than LOW_FLAG_PCT low."""

from __future__ import annotations

import numpy as np

from calibrate.fidelity_report import chance_line, sd_text, noise_word
from calibrate.fidelity_settings import ERROR_LIMIT_PCT, LOW_FLAG_PCT


def _closes(row: dict, model: str) -> str:
    """How much of the isolated prediction's error `model` removes (%), '—' where it cannot say."""
    if model not in row or "isolated" not in row:
        return "—"
    before, after = abs(row["isolated"]["error_pct"]), abs(row[model]["error_pct"])
    return "—" if before < 1.0 else f"{100 * (before - after) / before:.0f}%"


def reading(row: dict) -> str:
    """Which part of an isolated miss is wrong: the service time (the in-situ mean closes it), the
    queueing model (only the replay does), or something outside both."""
    limit = ERROR_LIMIT_PCT[row["percentile"]]
    if row["isolated"]["verdict"] != "miss":
        return ""
    if "in_situ_mean" in row and abs(row["in_situ_mean"]["error_pct"]) <= limit:
        return "service time"
    if "in_situ_replay" in row and abs(row["in_situ_replay"]["error_pct"]) <= limit:
        return "queueing model"
    if "in_situ_mean" not in row and "in_situ_replay" not in row:
        return "no in-situ data"
    return "neither alone"


def _cell_text(model: str, row: dict) -> str:
    if model not in row:
        return f"{'—':>17}"
    entry = row[model]
    mark = "s" if entry.get("saved") else " "
    return f"{entry['ms']:8.2f}{mark}{entry['error_pct']:+7.1f}%"


def _band_text(band: dict) -> str:
    ends = f"{band['low_ms']:.2f}" if band["point"] else f"{band['low_ms']:.2f}, {band['high_ms']:.2f}"
    return f"{'[' + ends + ']':>22} {band['error_pct']:+6.1f}% {band['verdict']}"


def summary(run: dict, model: str) -> dict:
    """Judged / ok counts of a model's predictions, and its judged p95 / p99 more than LOW_FLAG_PCT low."""
    judged, ok, low = 0, 0, []
    for cell in run["cells"]:
        for row in cell["table"]:
            entry = row.get(model)
            if entry is None or entry.get("verdict", "noisy") == "noisy":
                continue
            judged += 1
            ok += entry["verdict"] == "ok"
            if row["percentile"] != "p50" and entry["error_pct"] < -LOW_FLAG_PCT:
                low.append(f"{cell['config']} {cell['utilisation']:g} {row['percentile']} {entry['error_pct']:+.1f}%")
    return {"judged": judged, "ok": ok, "below_limit": low}


def format_repredicted(runs: list[dict]) -> str:
    lines = []
    for run in runs:
        lines.append(f"== {run['run']}: {run['machine']}")
        if not run["request_logs"]:
            lines.append(
                "   no per-request logs in this run: in-situ replay only where the live run computed it (s = saved)"
            )
        replayed = any("co_load_replay" in row for cell in run["cells"] for row in cell["table"])
        lines.append(
            f"{'config':<9}{'rho':>4} {'pct':>4} {'measured':>9} {'noise%':>7} {'chance%':>7}  {'isolated':>17} "
            f"{'verdict':<12}"
            f" {'in-situ mean':>17} {'in-situ replay':>17}  closes mean/replay  reading          "
            f" {'co-load':>17} verdict  {'drift band [low, high]':>22} {'error':>7} verdict"
            + (f"  {'co-load replayed':>17}" if replayed else "")
        )
        for cell in run["cells"]:
            for row in cell["table"]:
                noise = "—" if np.isnan(row["noise_pct"]) else f"{row['noise_pct']:.1f}"
                lines.append(
                    f"{cell['config']:<9}{cell['utilisation']:>4g} {row['percentile']:>4} "
                    f"{row['measured_mean_ms']:>9.2f} {noise:>7} {sd_text(row):>7}  {_cell_text('isolated', row)} "
                    f"{noise_word(row):<12} {_cell_text('in_situ_mean', row)} "
                    f"{_cell_text('in_situ_replay', row)}  {_closes(row, 'in_situ_mean'):>5} / "
                    f"{_closes(row, 'in_situ_replay'):<5}      {reading(row):<16} {_cell_text('co_load', row)} "
                    f"{row['co_load']['verdict']:<7}  {_band_text(row['drift_band'])}"
                    + (f"  {_cell_text('co_load_replay', row)}" if replayed else "")
                )
            note = (
                f"    in-situ slowdown {cell['in_situ_factor']:.3f} ({cell['in_situ_source']})"
                if cell["in_situ_factor"] is not None
                else "    no in-situ slowdown"
            )
            cycle = cell.get("cycle_beyond_busy")
            if cycle:
                note += (
                    f"; back to back, a worker's cycle exceeded its logged busy time by {cycle['mean_ms']:.3f} ms"
                    f" ({100 * cycle['mean_ms'] / cycle['busy_mean_ms']:.1f}% of it, {cycle['pairs']} requests)"
                )
            note += f"; co-load factor {cell['co_load_factor']:.3f} ({cell['co_load_source']})"
            if cell.get("co_load_path_samples"):
                note += f"; serving path as the co-load phase timed it ({cell['co_load_path_samples']} requests)"
            if cell["next_calibration_ratio"] is not None:
                note += f"; next calibration {cell['next_calibration_ratio']:.2f}x this one's (host drift)"
            batch = cell.get("mean_batch_size")
            if batch:
                measured = ", ".join(f"{x:.2f}" for x in batch["measured"] or [])
                note += f"; mean batch {measured} measured, {batch['isolated']:.2f} isolated, {batch['co_load']:.2f} co-load"
            lines.append(note)
        lines.append(chance_line(run["cells"], sum(len(cell["table"]) for cell in run["cells"])))
        for model in ("isolated", "co_load", "drift_band") + (("co_load_replay",) if replayed else ()):
            s = summary(run, model)
            lines.append(
                f"{model}: judged {s['judged']}, ok {s['ok']}; judged p95/p99 more than {LOW_FLAG_PCT:g}% low: "
                + (", ".join(s["below_limit"]) if s["below_limit"] else "none")
            )
    return "\n".join(lines)


def jsonable(runs: list[dict]) -> list[dict]:
    """The re-prediction as JSON-ready data (the report's numbers)."""
    return [{k: v for k, v in run.items()} for run in runs]
