"""Routing requests to per-replica queues, one meaning per policy for every kind of stage (model and LLM).

- `round_robin`: request k goes to replica k mod R (in ready order);
- `random`: uniformly at random, independently per request;
- `power_of_two`: two distinct replicas drawn at random, the one with fewer outstanding requests wins,
  the first drawn on a tie (Mitzenmacher's "power of two choices");
- `least_outstanding`: the replica with the fewest outstanding requests; ties rotate with k so that
  replica 0 is not favoured (as a load balancer's round-robin tie-break).
(`shared_queue` is not routing: one central queue that free replicas pull from.) All draws are made up
front from the routing stream, so a policy's choices never depend on the other streams.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

ROUTINGS = ("round_robin", "random", "least_outstanding", "power_of_two")
FIXED_ROUTINGS = ("round_robin", "random")  # the replica of every request is known before the run


class Router:
    """Chooses the replica of each of `n` requests, in ready order."""

    def __init__(self, routing: str, replicas: int, rng: np.random.Generator, n: int) -> None:
        if routing not in ROUTINGS:
            raise ValueError(f"unknown routing {routing!r}")
        self.routing = routing
        self.replicas = replicas
        self.count = 0
        self.draws: list | None = None
        if routing == "random":
            self.draws = rng.integers(replicas, size=n).tolist()
        elif routing == "power_of_two" and replicas > 1:
            first = rng.integers(replicas, size=n)
            second = (first + 1 + rng.integers(replicas - 1, size=n)) % replicas  # distinct from first
            self.draws = list(zip(first.tolist(), second.tolist()))

    def fixed_assignment(self, n: int) -> np.ndarray:
        """The replica of each of the n requests, for the routings that do not look at the load."""
        assert self.routing in FIXED_ROUTINGS
        if self.routing == "round_robin" or self.replicas == 1:
            return np.arange(n) % self.replicas
        return np.asarray(self.draws[:n], dtype=np.int64)

    def choose(self, outstanding: Sequence[int]) -> int:
        """The next request's replica, given each replica's outstanding (queued + in service) requests."""
        k = self.count
        self.count += 1
        if self.replicas == 1:
            return 0
        if self.routing == "round_robin":
            return k % self.replicas
        if self.routing == "random":
            return self.draws[k]
        if self.routing == "power_of_two":
            a, b = self.draws[k]
            return a if outstanding[a] <= outstanding[b] else b
        return min(range(self.replicas), key=lambda r: (outstanding[r], (r - k) % self.replicas))
