"""Where latency lives: the time per stage of the requests at a latency percentile."""

from __future__ import annotations

import numpy as np
import pandas as pd

# Requests "at" a percentile: those whose latency lies within this many quantile points of it.
BAND = {0.50: 0.05, 0.95: 0.01, 0.99: 0.005}


def measured(log: pd.DataFrame) -> pd.DataFrame:
    """Served requests after warm-up: the ones every figure describes."""
    return log[~log["warmup"].to_numpy() & ~log["rejected"].to_numpy()]


def stage_shares(
    log: pd.DataFrame,
    stage_columns: list[str],
    quantiles: tuple[float, ...] = (0.50, 0.99),
    totals: dict[str, float] | None = None,
) -> pd.DataFrame:
    """Mean time per stage (ms) of the requests *at* each latency percentile (latency within ±BAND of
    it, pooled over replications). The stages of a request add up to its latency, so each row sums to
    the mean latency of its band — a decomposition of p50 and p99 into where the time went.
    `totals` (row name -> ms, e.g. the summary's `latency_ms`): each such row is scaled to add up to that
    figure instead, so a page shows one p99 — the band's shares of the summary's own p99.
    Rows: 'p50', 'p99'; columns: stage columns without `_ms`."""
    served = measured(log)
    latency = served["latency_ms"].to_numpy()
    columns = [c for c in stage_columns if c in served]
    rows = {}
    for q in quantiles:
        half = BAND.get(q, min(q, 1 - q) / 2)
        low, high = np.quantile(latency, [max(q - half, 0.0), min(q + half, 1.0)])
        band = served[(latency >= low) & (latency <= high)]
        row = {c.removesuffix("_ms"): float(np.nan_to_num(band[c].to_numpy(dtype=float)).mean()) for c in columns}
        total = (totals or {}).get(_pname(q))
        band_ms = sum(row.values())
        if total is not None and np.isfinite(total) and band_ms > 0:
            row = {name: ms * total / band_ms for name, ms in row.items()}
        rows[_pname(q)] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def _pname(q: float) -> str:
    text = f"{q * 100:g}".replace(".", "")
    return f"p{text}"
