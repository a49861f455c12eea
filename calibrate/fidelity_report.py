"""Verdicts on a `make fidelity` cell (judged only where its runs agree) and the live run's printed
table."""

from __future__ import annotations

import math

import numpy as np

from calibrate.fidelity_settings import (
    LOW_FLAG_PCT,
    ERROR_LIMIT_PCT,
    MAX_BATCH_SIZE,
    MAX_QUEUE_DELAY_MS,
    MODEL_HIDDEN,
    NOISE_LIMIT_PCT,
)


def judge(runs_ms: list[float], predicted_ms: float, percentile: str) -> dict:
    """Noise (the runs' spread over their mean, %), the prediction's error against their mean (%), and the
    verdict: "noisy" when the runs disagree by more than NOISE_LIMIT_PCT (not judged; also with a single
    run, which shows no noise), else "ok" within ERROR_LIMIT_PCT, else "miss"."""
    values = np.asarray(runs_ms, dtype=float)
    mean = float(values.mean())
    noise = 100.0 * float(values.max() - values.min()) / mean if len(values) > 1 else float("nan")
    error = 100.0 * (predicted_ms - mean) / mean
    if not noise <= NOISE_LIMIT_PCT:  # nan (one run) is not judged either
        verdict = "noisy"
    else:
        verdict = "ok" if abs(error) <= ERROR_LIMIT_PCT[percentile] else "miss"
    return {"measured_mean_ms": mean, "noise_pct": noise, "error_pct": error, "verdict": verdict}


def chance(runs_ms: list[float], sd_pct: float) -> dict:
    """What chance alone does to a percentile measured on a steady host, from servesim's replications of a
    run of the same length (`sd_pct`: one run's standard deviation over the mean, %): the probability that
    two such runs agree within NOISE_LIMIT_PCT (so that the cell is judged), and whether the runs disagree
    by more than chance explains (two runs' difference beyond 1.96 sqrt(2) sd: the host moved, not only the
    sample). NaN / None where it cannot say (one run, or no spread simulated)."""
    values = np.asarray(runs_ms, dtype=float)
    if not np.isfinite(sd_pct) or sd_pct <= 0:
        return {"chance_sd_pct": float("nan"), "judged_chance": float("nan"), "beyond_chance": None}
    judged = math.erf(NOISE_LIMIT_PCT / (2.0 * sd_pct))
    spread = 100.0 * float(values.max() - values.min()) / float(values.mean()) if len(values) > 1 else None
    beyond = None if spread is None else bool(spread > 1.96 * math.sqrt(2.0) * sd_pct)
    return {"chance_sd_pct": float(sd_pct), "judged_chance": judged, "beyond_chance": beyond}


def noise_word(row: dict) -> str:
    """A noisy verdict with its cause where known: (host) beyond chance, (chance) within it."""
    if row.get("verdict") != "noisy" or row.get("beyond_chance") is None:
        return row.get("verdict", "")
    return "noisy:host" if row["beyond_chance"] else "noisy:chance"


def steady_host_judged(cells: list[dict]) -> float:
    """How many percentiles a steady host would judge at this run length, by chance alone (the sum of each
    row's probability that its two runs agree within NOISE_LIMIT_PCT)."""
    return float(
        sum(r["judged_chance"] for c in cells for r in c["table"] if np.isfinite(r.get("judged_chance", np.nan)))
    )


def _calibration_text(cal: dict) -> str:
    text = f"transport median {cal['transport_ms_median']:.3f} ms"
    if "service_ms_mean" in cal:
        text += f", service mean {cal['service_ms_mean']:.3f} ms (p99 {cal['service_ms_p99']:.3f})"
    if "service_busy_ms_mean" in cal:
        text += (
            f", with both busy {cal['service_busy_ms_mean']:.3f} (p99 {cal['service_busy_ms_p99']:.3f}; transport "
            f"median then {cal['transport_busy_ms_median']:.3f}, not used)"
        )
    if "batch_ms_mean" in cal:
        text += ", batch mean ms " + " ".join(f"{b}:{m:.2f}" for b, m in cal["batch_ms_mean"].items())
        text += (
            f" (reply send median {cal['reply_send_ms_median']:.3f} ms included), timer overshoot median "
            f"{cal['overshoot_ms_median']:.3f} ms"
        )
    return text + f"; capacity {cal['capacity_rps']:.0f} req/s ({cal['capacity']})"


def format_report(result: dict) -> str:
    lines = [
        f"machine: {result['machine']}",
        f"ONNX Runtime MLP {MODEL_HIDDEN}, 1 intra-op thread; dynamic1: max_batch_size {MAX_BATCH_SIZE}, "
        f"max_queue_delay_ms {MAX_QUEUE_DELAY_MS:g}; server and client pinned to separate CPUs: "
        f"{'yes' if result.get('pinned') else 'no'}",
        f"{result['runs']} runs of {result['requests_per_run']} requests per cell (first 5% dropped); judged where "
        f"the runs agree within {result['noise_limit_pct']:g}%: ok when the prediction is within "
        + " / ".join(f"{v:g}% ({k})" for k, v in result["error_limit_pct"].items()),
    ]
    runs = result["runs"]
    header = (
        f"{'config':<9}{'rho':>4} {'req/s':>6} {'pct':>4} "
        + "".join(f"{f'run{k + 1} ms':>9}" for k in range(runs))
        + f"{'noise%':>8} {'chance%':>7} {'predicted ms [95% CI]':>25} {'error%':>7}  verdict       "
        + "co-load (error%, verdict)"
        + "  drift band [low, high] (error%, verdict)  co-load replayed (error%)  in-situ replay (error%)"
    )
    lines.append(header)
    for cell in result["cells"]:
        for row in cell["table"]:
            lo, hi = row["predicted_ci95"]
            noise = "—" if np.isnan(row["noise_pct"]) else f"{row['noise_pct']:.1f}"
            line = (
                f"{cell['config']:<9}{cell['utilisation']:>4g} {cell['rate_rps']:>6.0f} {row['percentile']:>4} "
                + "".join(f"{v:>9.2f}" for v in row["measured_runs_ms"])
                + f"{noise:>8} {sd_text(row):>7} {row['predicted_ms']:>8.2f} [{lo:6.2f}, {hi:6.2f}] "
                f"{row['error_pct']:>+7.1f}  {noise_word(row):<12}"
            )
            if "co_load_ms" in row:
                line += f"  {row['co_load_ms']:.2f} ({row['co_load_error_pct']:+.1f}, {row['co_load_verdict']})"
            if "drift_band_ms" in row:
                low, high = row["drift_band_ms"]
                line += f"  [{low:.2f}, {high:.2f}] ({row['drift_band_error_pct']:+.1f}, {row['drift_band_verdict']})"
            if "co_load_replay_ms" in row:
                line += f"  {row['co_load_replay_ms']:.2f} ({row['co_load_replay_error_pct']:+.1f})"
            if "in_situ_replay_ms" in row:
                line += f"  {row['in_situ_replay_ms']:.2f} ({row['in_situ_error_pct']:+.1f})"
            lines.append(line.rstrip())
        lines.append("    calibrated just before: " + _calibration_text(cell["calibration"]))
        notes = ["sender lateness p50/p99 ms " + ", ".join(f"{x['p50']:.2f}/{x['p99']:.2f}" for x in cell["lateness"])]
        if "mean_batch_size_measured" in cell:
            notes.append(
                "mean batch "
                + ", ".join(f"{x:.2f}" for x in cell["mean_batch_size_measured"])
                + f" measured, {cell['mean_batch_size_predicted']:.2f} predicted"
            )
        if "worker_share" in cell:
            notes.append("worker 0 served " + ", ".join(f"{100 * x:.0f}%" for x in cell["worker_share"]))
        if "service_ms_mean_in_situ" in cell:
            notes.append(f"in situ service mean {cell['service_ms_mean_in_situ']:.3f} ms")
        if "service_lag1_autocorrelation_in_situ" in cell:
            notes.append(f"lag-1 autocorrelation {cell['service_lag1_autocorrelation_in_situ']:.2f}")
        if "co_load_factor" in cell:
            notes.append(f"co-load calibration: kernel {cell['co_load_factor']:.3f}x its time alone")
        if "co_load_path_ms" in cell:
            path = cell["co_load_path_ms"]
            notes.append(
                f"serving path under co-load median {path['median']:.3f} ms, p99 {path['p99']:.3f} "
                f"({cell['co_load_path_samples']} requests found a worker idle)"
            )
        if cell.get("next_calibration_ratio") is not None:
            notes.append(f"next calibration {cell['next_calibration_ratio']:.3f}x this one's (host drift)")
        lines.append("    " + "; ".join(notes))
    verdicts = [
        (c["config"], c["utilisation"], r["percentile"], r["verdict"]) for c in result["cells"] for r in c["table"]
    ]
    judged = [v for v in verdicts if v[3] != "noisy"]
    ok = [v for v in judged if v[3] == "ok"]
    lines.append(
        f"judged {len(judged)} of {len(verdicts)} percentiles (the rest noisy); {len(ok)} of them ok"
        + (
            ": misses " + ", ".join(f"{c} {u:g} {p}" for c, u, p, v in judged if v == "miss")
            if len(ok) < len(judged)
            else ""
        )
    )
    if any(np.isfinite(r.get("judged_chance", np.nan)) for c in result["cells"] for r in c["table"]):
        lines.append(chance_line(result["cells"], len(verdicts)))
    co_load = [r["co_load_verdict"] for c in result["cells"] for r in c["table"] if "co_load_verdict" in r]
    if co_load:
        judged_co = [v for v in co_load if v != "noisy"]
        lines.append(f"co-load calibration: {sum(v == 'ok' for v in judged_co)} of {len(judged_co)} judged ok")
    band = [(c, r) for c in result["cells"] for r in c["table"] if "drift_band_verdict" in r]
    if band:
        judged_band = [(c, r) for c, r in band if r["drift_band_verdict"] != "noisy"]
        low = [
            f"{c['config']} {c['utilisation']:g} {r['percentile']} {r['drift_band_error_pct']:+.1f}%"
            for c, r in judged_band
            if r["percentile"] != "p50" and r["drift_band_error_pct"] < -LOW_FLAG_PCT
        ]
        lines.append(
            f"drift band: {sum(r['drift_band_verdict'] == 'ok' for _, r in judged_band)} of {len(judged_band)} judged "
            f"ok; judged p95/p99 more than {LOW_FLAG_PCT:g}% low: " + (", ".join(low) if low else "none")
        )
    return "\n".join(lines)


def sd_text(row: dict) -> str:
    sd = row.get("chance_sd_pct", float("nan"))
    return "—" if not np.isfinite(sd) else f"±{sd:.1f}"


def chance_line(cells: list[dict], total: int) -> str:
    """Beside the judged count: what chance alone would allow at this run length, and why the rest were noisy."""
    rows = [r for c in cells for r in c["table"]]
    host = sum(r["verdict"] == "noisy" and r.get("beyond_chance") is True for r in rows)
    by_chance = sum(r["verdict"] == "noisy" and r.get("beyond_chance") is False for r in rows)
    return (
        f"chance alone (servesim's replications of a run this long; chance% = one run's sd): a steady host would "
        f"judge about {steady_host_judged(cells):.1f} of {total}; noisy beyond chance (the host moved) "
        f"{host}, within chance (runs too short) {by_chance}"
    )
