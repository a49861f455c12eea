"""The independent pieces every confidence interval is computed over: each replication, or consecutive
sections of a single one (batch means)."""

from __future__ import annotations

import numpy as np
import pandas as pd

SECTIONS_FOR_ONE_RUN = 10


def measurement_groups(log: pd.DataFrame) -> list[pd.DataFrame]:
    """The measured (non-warm-up) requests, split into replications — or, for a single replication,
    into SECTIONS_FOR_ONE_RUN consecutive sections by arrival time."""
    measured = log[~log["warmup"].to_numpy()]
    replication = measured["replication"].to_numpy()
    if len(np.unique(replication)) > 1:
        return [group for _, group in measured.groupby("replication", sort=True)]
    ordered = measured.sort_values("arrival_ms", kind="stable")
    bounds = np.linspace(0, len(ordered), SECTIONS_FOR_ONE_RUN + 1).astype(int)
    return [ordered.iloc[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]
