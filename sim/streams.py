"""Named random streams: one generator per purpose, derived from (seed, replication, stream, sub-stream).

Streams are keyed by their index in the append-only `STREAMS` tuple (and stage streams by a stable hash
of the stage name), so adding a stream or a stage never shifts the others, and changing a batching
policy leaves the arrival sequence untouched (common random numbers across policies).
"""

from __future__ import annotations

import zlib

import numpy as np

# Append only: the position is part of every generator's seed.
STREAMS = (
    "arrivals",
    "stage_service",
    "batch_service",
    "routing",
    "cache",
    "cold_start",
    "tokens",
    "autoscaler",
    "prefix_cache",
)


def stream(seed: int, replication: int, name: str, sub: int | str = 0) -> np.random.Generator:
    key = zlib.crc32(sub.encode()) if isinstance(sub, str) else sub
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(replication, STREAMS.index(name), key)))


def replica_streams(rng: np.random.Generator, replicas: int) -> list[np.random.Generator]:
    """One child stream per replica of a stage stream (routed queues each draw their own service times, so
    one replica's batches never shift another's draws)."""
    seq = rng.bit_generator.seed_seq
    return [
        np.random.default_rng(
            np.random.SeedSequence(seq.entropy, spawn_key=(*seq.spawn_key, r), pool_size=seq.pool_size)
        )
        for r in range(replicas)
    ]
