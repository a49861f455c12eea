"""A plain SimPy model of the reference scenario, written the textbook way: one process per request,
a `simpy.Resource` for the preprocessing pool, a `simpy.Store` feeding model instances that form
Triton-style dynamic batches. It is the baseline servesim's engine is benchmarked against (and a
cross-check: both must agree on the latency distribution)."""

from __future__ import annotations

import numpy as np
import simpy


def run_plain_simpy(
    requests: int,
    rate_rps: float,
    network_ms: tuple[float, float],
    pool_workers: int,
    pool_mean_ms: float,
    batch_base_ms: float,
    batch_per_item_ms: float,
    batch_cv: float,
    max_batch_size: int,
    max_queue_delay_ms: float,
    servers: int,
    post_ms: float,
    seed: int = 0,
) -> np.ndarray:
    """Latency (ms) of each request, in arrival order."""
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(1000.0 / rate_rps, size=requests)
    mu, sigma = network_ms
    env = simpy.Environment()
    pool = simpy.Resource(env, capacity=pool_workers)
    queue = simpy.Store(env)
    latency = np.zeros(requests)
    shape = 1.0 / batch_cv**2

    def request(i: int):
        arrival = env.now
        yield env.timeout(rng.lognormal(mu, sigma))
        with pool.request() as slot:
            yield slot
            yield env.timeout(rng.exponential(pool_mean_ms))
        done = env.event()
        yield queue.put((env.now, done))
        yield done
        yield env.timeout(post_ms)
        latency[i] = env.now - arrival

    def instance():
        while True:
            first = yield queue.get()
            batch = [first]
            deadline = first[0] + max_queue_delay_ms
            while len(batch) < max_batch_size:
                if queue.items:
                    batch.append((yield queue.get()))
                    continue
                if env.now >= deadline:
                    break
                get = queue.get()
                got = yield get | env.timeout(deadline - env.now)
                if get in got:
                    batch.append(got[get])
                else:
                    get.cancel()
                    break
            mean = batch_base_ms + batch_per_item_ms * len(batch)
            yield env.timeout(rng.gamma(shape, mean / shape))
            for _, done in batch:
                done.succeed()

    def source():
        for i in range(requests):
            yield env.timeout(gaps[i])
            env.process(request(i))

    for _ in range(servers):
        env.process(instance())
    env.process(source())
    env.run()
    return latency
